"""Sentence embeddings on the CPU with sentence-transformers, for retrieval and the quick NLU models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import structlog
import torch
from sentence_transformers import SentenceTransformer

from chatwright.errors import ModelLoadError

log = structlog.get_logger(__name__)


class SentenceTransformerEmbedder:
    """Implements the Embedder protocol; rows are L2-normalised so a dot product is the cosine similarity."""

    def __init__(self, model_name_or_path: str, *, threads: int | None = None) -> None:
        if threads is not None:
            # torch sizes its pool from the host's cores, which oversubscribes a small container.
            torch.set_num_threads(threads)
        try:
            self._model = SentenceTransformer(model_name_or_path, device="cpu")
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"cannot load embedder {model_name_or_path!r}: {error}") from error
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise ModelLoadError(f"{model_name_or_path!r} does not declare its embedding dimension")
        self._dim = dim
        log.info("embedder loaded", model=model_name_or_path, dim=dim, threads=torch.get_num_threads())

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """One L2-normalised float32 row per text."""
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        vectors = self._model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)
