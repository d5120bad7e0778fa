"""Sentence embeddings on the CPU, for retrieval, the intent router and the quick NLU models.

The model loads with sentence-transformers. When it is the common kind (a transformer, mean pooling, then
normalisation, as all-MiniLM-L6-v2 is), its transformer is served by ONNX Runtime instead: every message is
embedded at least once a turn (routing, retrieval, sentence selection), and at batch 1 PyTorch's eager encoder
spends most of its time dispatching small operators (see models/onnx_encoder.py). Anything else stays in
sentence-transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import structlog
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
from transformers import PreTrainedTokenizerBase

from chatwright.errors import ModelLoadError
from chatwright.models.onnx_encoder import OnnxEncoder, load_after_release, onnx_graph

log = structlog.get_logger(__name__)

_ONNX_BATCH = 8
"""Most texts per ONNX Runtime call. Fewer texts pad less and keep the work in cache: 24 knowledge sentences took
112 ms in batches of 8 against 153 ms in batches of 32 (or of 1) on a 2-core EPYC."""


class SentenceTransformerEmbedder:
    """Implements the Embedder protocol; rows are L2-normalised so a dot product is the cosine similarity."""

    def __init__(self, model_name_or_path: str, *, threads: int | None = None) -> None:
        if threads is not None:
            # torch sizes its pool from the host's cores, which oversubscribes a small container.
            torch.set_num_threads(threads)
        try:
            model = SentenceTransformer(model_name_or_path, device="cpu")
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"cannot load embedder {model_name_or_path!r}: {error}") from error
        dim = model.get_embedding_dimension()
        if dim is None:
            raise ModelLoadError(f"{model_name_or_path!r} does not declare its embedding dimension")
        self._dim = dim
        self._tokenizer: PreTrainedTokenizerBase = model.tokenizer
        self._max_tokens = model.max_seq_length or self._tokenizer.model_max_length
        self._model: SentenceTransformer | None = model
        self._onnx: OnnxEncoder | None = None
        graph = _onnx_graph(model)
        if graph is not None:
            del model  # the only reference left is self._model, which the release drops
            self._onnx = load_after_release(graph, lambda: setattr(self, "_model", None))
            if self._onnx is None:
                self._model = SentenceTransformer(model_name_or_path, device="cpu")
        log.info("embedder loaded", model=model_name_or_path, dim=dim, onnx=self._onnx is not None,
                 threads=torch.get_num_threads())

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """One L2-normalised float32 row per text."""
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        if self._model is not None:
            vectors = self._model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
            return np.asarray(vectors, dtype=np.float32)
        return self._encode_onnx(texts, batch_size)

    def _encode_onnx(self, texts: Sequence[str], batch_size: int) -> npt.NDArray[np.float32]:
        """Mean of the real tokens' states, normalised, as the pooling and normalisation modules compute it;
        texts go in batches of similar length, as sentence-transformers sorts them, so padding stays small."""
        assert self._onnx is not None
        order = sorted(range(len(texts)), key=lambda index: -len(texts[index]))
        vectors = np.zeros((len(texts), self._dim), dtype=np.float32)
        step = min(batch_size, _ONNX_BATCH)
        for start in range(0, len(order), step):
            chosen = order[start:start + step]
            encoded = self._tokenizer([texts[index] for index in chosen], padding=True, truncation=True,
                                      max_length=self._max_tokens, return_tensors="pt")
            mask = encoded["attention_mask"]
            states = self._onnx(encoded["input_ids"], mask).last_hidden_state.numpy()
            weights = mask.numpy()[:, :, None].astype(np.float32)
            pooled = (states * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            vectors[chosen] = pooled / norms
        return vectors


def _onnx_graph(model: SentenceTransformer) -> Path | None:
    """The ONNX graph of the model's transformer, when the model is transformer, mean pooling, normalisation."""
    modules = list(model)
    if len(modules) != 3 or not isinstance(modules[0], Transformer) or not isinstance(modules[2], Normalize):
        return None
    if not isinstance(modules[1], Pooling) or modules[1].get_config_dict().get("pooling_mode") != "mean":
        return None
    return onnx_graph(modules[0].auto_model, model.tokenizer)
