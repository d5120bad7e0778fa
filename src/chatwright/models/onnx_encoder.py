"""An encoder (a trained NLU model's, or the sentence embedder's) served by ONNX Runtime: the same weights and
outputs, in a third of PyTorch's time.

At batch 1 PyTorch's eager encoder spends its time dispatching dozens of small operators and in small matrix
products; ONNX Runtime fuses attention, GELU and layer norm and runs the whole graph in one call. On a 2-core
AVX2 EPYC without bfloat16, MiniLM-L6 took 5.2 ms for a 13-token message against 15.3 ms in PyTorch, with
outputs equal to 1e-6. The graph is exported once per set of weights into the model cache, named by a hash of
the weights, so every model built on the same encoder (all quick-mode models, say) shares one export, and
training exports its model before it is first loaded. An int8 model's graph is made from that export by ONNX
Runtime's dynamic quantisation (2.7 against 5.2 ms for the encoder alone).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime
import structlog
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import nn
from transformers import PreTrainedTokenizerBase

from chatwright.atomic import PARTIAL_SUFFIX, written_in_place
from chatwright.models.packaged import cache_dir
from chatwright.models.registry import available_cpus
from chatwright.nlu.precision import quantised_int8

log = structlog.get_logger(__name__)

_OPSET = 17
_RECIPE = f"onnx-encoder-1 torch-{torch.__version__} opset-{_OPSET}"
"""Part of every export's name: a change of exporter or recipe makes new files rather than reusing old ones."""
_AGREEMENT = 0.9999
"""Least cosine similarity to PyTorch's token states on the check batch for an export to be used."""
_INT8_AGREEMENT = 0.9
"""The same for an int8 graph, whose states differ by the rounding of its weights and inputs. For the packaged
MiniLM: 0.97 for ONNX Runtime's int8, 0.94 for PyTorch's, 0.53 for a float32 export that ignored the mask."""
_KEEP = 16
"""Exports kept in the cache, the most recently used; an older model's is made again when it is next loaded."""
_ABANDONED_SECONDS = 3600
"""A half-written export this old belongs to no running export (one takes seconds)."""


@dataclass(frozen=True)
class EncoderStates:
    """What the joint model reads from an encoder call, as transformers' output carries it."""

    last_hidden_state: torch.Tensor  # batch × tokens × hidden


class OnnxEncoder(nn.Module):
    """Stands in for the transformers encoder at inference: token ids and mask in, token states out."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        super().__init__()
        self._session = session

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> EncoderStates:
        feeds = {"input_ids": input_ids.numpy().astype(np.int64, copy=False),
                 "attention_mask": attention_mask.numpy().astype(np.int64, copy=False)}
        (states,) = self._session.run(None, feeds)
        return EncoderStates(torch.from_numpy(states))


def served_encoder(encoder: nn.Module, tokenizer: PreTrainedTokenizerBase,
                   precision: Literal["fp32", "bf16", "int8"]) -> nn.Module:
    """What computes a model's encoder states in `precision`: ONNX Runtime for fp32 and int8 (PyTorch's
    quantised copy for int8, or `encoder` itself for fp32, when the export fails); `encoder` for bf16."""
    if precision == "bf16":
        return encoder
    return onnx_encoder(encoder, tokenizer, int8=precision == "int8") or in_pytorch(encoder, precision)


def in_pytorch(encoder: nn.Module, precision: Literal["fp32", "int8"]) -> nn.Module:
    """What serves `encoder` when ONNX Runtime cannot: PyTorch's dynamically quantised copy for int8."""
    return quantised_int8(encoder) if precision == "int8" else encoder


def onnx_encoder(encoder: nn.Module, tokenizer: PreTrainedTokenizerBase, *,
                 int8: bool = False) -> OnnxEncoder | None:
    """`encoder` as an ONNX Runtime graph (with `int8`, its matrix products in 8 bits, one weight scale per
    output channel), exported on first use and found in the cache after; None, with a warning, when it cannot
    be exported faithfully. A cached graph that cannot be opened is exported again."""
    for _ in range(2):
        path = onnx_graph(encoder, tokenizer, int8=int8)
        if path is None:
            return None
        try:
            return load_onnx_encoder(path)
        except Exception as error:
            log.warning("cached ONNX encoder unreadable; exporting it again", path=str(path), error=str(error))
            path.unlink(missing_ok=True)
    return None


def load_onnx_encoder(path: Path) -> OnnxEncoder:
    """The graph at `path` in an ONNX Runtime session."""
    served = OnnxEncoder(_session(path))
    with suppress(OSError):  # a read-only cache still serves
        os.utime(path)  # its time is its last use, which pruning goes by
    return served


def load_after_release(path: Path, release: Callable[[], None]) -> OnnxEncoder | None:
    """The graph at `path` in a session opened only once `release` has dropped the caller's PyTorch copy and it
    has been collected: opening a session briefly needs about twice the graph's size, and a server's peak memory
    is its load. None when the graph cannot be opened; it is deleted, so loading the model again exports it
    afresh (the caller's PyTorch copy is gone by then)."""
    release()
    gc.collect()  # a model's modules refer to each other, so only a collection frees them
    try:
        return load_onnx_encoder(path)
    except Exception as error:
        log.warning("cached ONNX encoder unreadable; it is exported again on the next load", path=str(path),
                    error=str(error))
        path.unlink(missing_ok=True)
        return None


def onnx_graph(encoder: nn.Module, tokenizer: PreTrainedTokenizerBase, *, int8: bool = False) -> Path | None:
    """The cached ONNX graph of `encoder`, exported and checked against PyTorch first if there is none; None,
    with a warning, when it cannot be exported faithfully. An int8 graph is made from the float32 one."""
    exported = cache_dir() / "onnx" / f"{_weights_digest(encoder)}.onnx"
    if not _ensure_graph(encoder, tokenizer, exported):
        return None
    if not int8:
        return exported
    quantised = exported.with_name(f"{exported.stem}-int8.onnx")
    return quantised if _ensure_graph(encoder, tokenizer, quantised, quantised_from=exported) else None


def _ensure_graph(encoder: nn.Module, tokenizer: PreTrainedTokenizerBase, path: Path, *,
                  quantised_from: Path | None = None) -> bool:
    """Whether `path` holds a graph of `encoder`, making it now (exported, or quantised from the float32 graph)
    and keeping it only if its states agree with PyTorch's."""
    if path.exists():
        return True
    int8 = quantised_from is not None
    try:
        if quantised_from is not None:
            _quantise(quantised_from, path)
        else:
            _export(encoder, tokenizer, path)
        agreement = _agreement(encoder, OnnxEncoder(_session(path)), tokenizer)
    except Exception as error:
        path.unlink(missing_ok=True)
        log.warning("encoder could not be exported to ONNX; it runs in PyTorch", error=str(error))
        return False
    if agreement < (_INT8_AGREEMENT if int8 else _AGREEMENT):
        path.unlink(missing_ok=True)
        log.warning("ONNX export of the encoder differs from PyTorch; it runs in PyTorch", agreement=agreement)
        return False
    log.info("encoder exported to ONNX", path=str(path), int8=int8, agreement=agreement)
    _prune(path.parent)
    return True


def _weights_digest(encoder: nn.Module) -> str:
    digest = hashlib.blake2b(_RECIPE.encode(), digest_size=16)
    for name, tensor in encoder.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class _StatesOnly(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states: torch.Tensor = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return states


def _check_batch(tokenizer: PreTrainedTokenizerBase) -> tuple[torch.Tensor, torch.Tensor]:
    """Two messages of different lengths: the trace must see padding, or it may record a graph without the
    attention mask (transformers skips the mask when a batch has none)."""
    encoded = tokenizer(["where is my new card, it has not arrived yet", "hello"], padding=True,
                        return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def _export(encoder: nn.Module, tokenizer: PreTrainedTokenizerBase, path: Path) -> None:
    """Trace `encoder` into `path`, written beside it first so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {0: "batch", 1: "tokens"}
    with (written_in_place(path) as partial, _evaluating(encoder), warnings.catch_warnings(),
          torch.inference_mode(False), torch.no_grad()):
        warnings.simplefilter("ignore")  # the tracer's notes on Python branches; the check afterwards decides
        torch.onnx.export(_StatesOnly(encoder), _check_batch(tokenizer), str(partial),
                          input_names=["input_ids", "attention_mask"], output_names=["states"],
                          dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "states": dynamic},
                          opset_version=_OPSET, dynamo=False)


def _quantise(exported: Path, path: Path) -> None:
    """The matrix products of `exported` with int8 weights (one scale per output channel) and inputs quantised
    on the fly, as PyTorch's dynamic quantisation does; written beside `path` first, like an export."""
    logging.disable(logging.WARNING)  # its advice on pre-processing, logged on every call
    try:
        with written_in_place(path) as partial:
            quantize_dynamic(exported, partial, op_types_to_quantize=["MatMul"], per_channel=True,
                             weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def _prune(directory: Path) -> None:
    """Keep the `_KEEP` most recently used exports, and drop what a killed export left half-written."""
    exports = sorted(directory.glob("*.onnx"), key=lambda path: path.stat().st_mtime, reverse=True)
    abandoned = [path for path in directory.glob(f".*{PARTIAL_SUFFIX}")
                 if time.time() - path.stat().st_mtime > _ABANDONED_SECONDS]
    for stale in [*exports[_KEEP:], *abandoned]:
        stale.unlink(missing_ok=True)


def _session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = available_cpus()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: it otherwise reports every fused node
    # its threads spin within a call (fast) but not after it, where they took the cores from PyTorch's threads
    # running the heads: SNIPS quick at batch 1 went from 16 ms p50 and 75 ms p95 to 14 and 32
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def _agreement(encoder: nn.Module, served: OnnxEncoder, tokenizer: PreTrainedTokenizerBase) -> float:
    """The least cosine similarity between PyTorch's and ONNX Runtime's state of a real token, over the check
    batch and one unpadded message."""
    batches = [_check_batch(tokenizer)]
    single = tokenizer(["what is the fee for a transfer abroad"], return_tensors="pt")
    batches.append((single["input_ids"], single["attention_mask"]))
    least = 1.0
    for input_ids, attention_mask in batches:
        with _evaluating(encoder):
            expected = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        got = served(input_ids, attention_mask).last_hidden_state
        real = attention_mask.bool()
        least = min(least, float(nn.functional.cosine_similarity(expected[real], got[real], dim=-1).min()))
    return least


@contextmanager
def _evaluating(encoder: nn.Module) -> Iterator[None]:
    """`encoder` without dropout for the block, back in its own mode after."""
    was_training = encoder.training
    encoder.eval()
    try:
        yield
    finally:
        encoder.train(was_training)
