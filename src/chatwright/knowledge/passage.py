"""A retrieved piece of the knowledge base, with enough provenance to cite it."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Passage:
    chunk_id: str
    source: str  # path relative to the knowledge directory
    title: str  # document title
    heading_path: tuple[str, ...]  # headings above the chunk, outermost first
    text: str
    score: float = 0.0  # fused retrieval score (higher is better)
    dense_score: float = 0.0  # cosine similarity between query and chunk
    lexical_score: float = 0.0  # BM25 score

    def with_text(self, text: str) -> Passage:
        return replace(self, text=text)
