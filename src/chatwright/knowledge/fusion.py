"""Reciprocal-rank fusion: combine rankings whose scores are not comparable (BM25 vs cosine) by rank alone."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def top_indices(scores: npt.NDArray[np.float32], count: int, *, positive_only: bool = False) -> list[int]:
    """Indices of the `count` highest scores, best first, without sorting the whole array."""
    candidates = np.flatnonzero(scores > 0) if positive_only else np.arange(scores.size)
    if candidates.size > count:
        candidates = candidates[np.argpartition(-scores[candidates], count - 1)[:count]]
    return [int(index) for index in candidates[np.argsort(-scores[candidates], kind="stable")]]


def reciprocal_rank_fusion(rankings: list[list[int]], rrf_k: int) -> list[tuple[int, float]]:
    """(index, fused score) best first; each ranking adds 1 / (rrf_k + rank) for the items it ranks."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, index in enumerate(ranking, start=1):
            fused[index] = fused.get(index, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(fused.items(), key=lambda item: -item[1])
