"""Cut long passages down to the sentences that bear on the question: prompts for small models stay short."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from chatwright.knowledge.passage import Passage
from chatwright.knowledge.sentences import join_sentences, split_sentences
from chatwright.knowledge.terms import terms
from chatwright.models.embedder import Embedder

# Share of the question's terms found in a sentence, added to its cosine: names, codes and numbers matter.
LEXICAL_WEIGHT = 0.3
# A best sentence this short ("Yes.", "Fees:") rarely makes sense without the one after it.
SHORT_FRAGMENT_WORDS = 6


def select_for_passages(query: str, passages: Sequence[Passage], embedder: Embedder,
                        max_sentences: int) -> list[Passage]:
    """Each passage with at most `max_sentences` of its most relevant sentences, in their original order;
    passages already that short come back unchanged. One encode call for all sentences."""
    sentences = [split_sentences(passage.text) for passage in passages]
    long = [index for index, found in enumerate(sentences) if len(found) > max_sentences]
    if not long:
        return list(passages)
    vectors = embedder.encode([query, *(sentence for index in long for sentence in sentences[index])])
    query_terms = set(terms(query))
    selected = list(passages)
    offset = 1
    for index in long:
        found = sentences[index]
        relevance = vectors[offset:offset + len(found)] @ vectors[0]
        relevance += LEXICAL_WEIGHT * np.array([_term_overlap(query_terms, sentence) for sentence in found])
        offset += len(found)
        keep = _choose(found, relevance, max_sentences)
        selected[index] = passages[index].with_text(join_sentences([found[i] for i in sorted(keep)]))
    return selected


def _choose(sentences: list[str], relevance: npt.NDArray[np.float32], max_sentences: int) -> set[int]:
    ranked = [int(i) for i in np.argsort(-relevance, kind="stable")]
    best = ranked[0]
    keep = {best}
    if len(sentences[best].split()) < SHORT_FRAGMENT_WORDS:
        keep.add(best + 1 if best + 1 < len(sentences) else best - 1)
    for index in ranked:
        if len(keep) >= max_sentences:
            break
        keep.add(index)
    return keep


def _term_overlap(query_terms: set[str], sentence: str) -> float:
    if not query_terms:
        return 0.0
    return len(query_terms.intersection(terms(sentence))) / len(query_terms)
