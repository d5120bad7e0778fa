"""Okapi BM25 over an inverted index with precomputed term weights, so a query costs one vector add per
query term however many chunks the knowledge base holds."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

K1 = 1.5
B = 0.75


class BM25:
    def __init__(self, documents: Sequence[Counter[str]]) -> None:
        """`documents` holds each document's term counts, in index order."""
        self.size = len(documents)
        lengths = np.array([sum(counts.values()) for counts in documents], dtype=np.float32)
        average_length = float(lengths.mean()) if self.size and lengths.mean() > 0 else 1.0
        normaliser = K1 * (1.0 - B + B * lengths / average_length)
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for doc, counts in enumerate(documents):
            for term, count in counts.items():
                ids, weights = postings.setdefault(term, ([], []))
                ids.append(doc)
                weights.append(count * (K1 + 1.0) / (count + float(normaliser[doc])))
        self._postings: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]] = {}
        for term, (ids, weights) in postings.items():
            idf = math.log(1.0 + (self.size - len(ids) + 0.5) / (len(ids) + 0.5))
            self._postings[term] = (np.array(ids, dtype=np.int64), np.array(weights, dtype=np.float32) * idf)

    def scores(self, query_terms: Sequence[str]) -> npt.NDArray[np.float32]:
        """BM25 score of every document for the query; 0 where no query term occurs."""
        scores = np.zeros(self.size, dtype=np.float32)
        for term in set(query_terms):
            posting = self._postings.get(term)
            if posting is not None:
                scores[posting[0]] += posting[1]
        return scores
