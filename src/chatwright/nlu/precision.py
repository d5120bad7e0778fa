"""The arithmetic the NLU encoder computes in: bfloat16 where it pays on this CPU, int8 on request.

CPUs with AMX or AVX512-BF16 can multiply bfloat16 matrices several times faster than float32, which cuts both
fine-tuning time and per-message latency; elsewhere bfloat16 is emulated and slower. The flag alone does not
settle it: a 2-core AMD EPYC with AVX512-BF16 fine-tuned 2.5-3 times faster in bf16, but a 2-core Xeon (family
6 model 207, AMX hidden by its hypervisor) fine-tuned MiniLM 1.5 times slower (a batch forwards and backwards:
0.36 s against 0.24 s in fp32, timed by hand). So `auto` turns bf16 on only where the CPU has the flag and a
short timed probe of one encoder-sized matrix product finds bf16 clearly faster. Autocast keeps the weights in
float32 and runs only the matrix products in bfloat16. Float32 and int8 models are served by ONNX Runtime
(`onnx_encoder.served_encoder`); `quantised_int8` is PyTorch's int8 copy, which serves where an encoder cannot
be exported.
"""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path
from typing import Literal, TypeVar

import torch
from torch import nn

from chatwright.config import Precision

_Module = TypeVar("_Module", bound=nn.Module)

_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 products in hardware (read from /proc/cpuinfo; False elsewhere)."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "").split()
    except OSError:
        return False
    return any(flag in flags for flag in _BF16_FLAGS)


_PROBE_ROUNDS = 3
_PROBE_PRODUCTS = 8
_BF16_MUST_TAKE = 0.8  # of fp32's time: a margin, so timing noise does not flip the choice between runs


@functools.cache
def bf16_pays() -> bool:
    """Whether bf16 is worth computing in here: the CPU has it in hardware and, timed once a process (0.2 s on
    an idle 2-core Xeon), a product of a MiniLM feed-forward layer's shape runs clearly faster in bf16."""
    if not native_bf16():
        return False
    values = torch.Generator().manual_seed(0)  # its own generator: the probe leaves a seeded run's draws alone
    inputs, weights = torch.randn(256, 384, generator=values), torch.randn(1536, 384, generator=values)

    def fastest(dtype: torch.dtype) -> float:
        left, right = inputs.to(dtype), weights.to(dtype).T
        rounds = []
        for _ in range(_PROBE_ROUNDS):
            started = time.perf_counter()
            for _ in range(_PROBE_PRODUCTS):
                left @ right
            rounds.append(time.perf_counter() - started)
        return min(rounds)

    return fastest(torch.bfloat16) < _BF16_MUST_TAKE * fastest(torch.float32)


def resolve(precision: Precision) -> Literal["fp32", "bf16"]:
    """The arithmetic training computes in: `auto` is bf16 only where it pays (`bf16_pays`); an int8 model
    trains in fp32 (int8 has no gradients) and is quantised for what it computes once trained."""
    if precision == "auto":
        return "bf16" if bf16_pays() else "fp32"
    return "fp32" if precision == "int8" else precision


def served(precision: Precision) -> Literal["fp32", "bf16", "int8"]:
    """The arithmetic a model trained with `precision` is calibrated and runs in (recorded on its card)."""
    return "int8" if precision == "int8" else resolve(precision)


def autocast(precision: Literal["fp32", "bf16"]) -> torch.autocast:
    """A context that runs the encoder's products in `precision`."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def runs_in(trained: Literal["fp32", "bf16", "int8"]) -> Literal["fp32", "bf16", "int8"]:
    """What a model whose card says `trained` runs in here: a bf16 model runs in fp32 where bf16 does not pay
    (emulated, or slower than fp32), within a few hundredths of its bf16 probabilities."""
    return "fp32" if trained == "bf16" and not bf16_pays() else trained


def quantised_int8(module: _Module) -> _Module:
    """A copy of `module` with every linear layer's weights in int8, one scale per output channel (one scale per
    matrix cost more than a point of slot F1), and their inputs quantised on the fly; the rest stays float32."""
    with warnings.catch_warnings():  # torch announces the move of this API to torchao; torch is pinned
        warnings.filterwarnings("ignore", message=".*(torchao|deprecated).*")
        quantised: _Module = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            module, {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig})
    return quantised  # same class as `module`, its linear layers swapped
