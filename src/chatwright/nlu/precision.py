"""The arithmetic the NLU encoder computes in: bfloat16 where the CPU has it in hardware, int8 on request.

CPUs with AMX or AVX512-BF16 multiply bfloat16 matrices several times faster than float32, which cuts both
fine-tuning time and per-message latency; elsewhere bfloat16 is emulated and slower, so `auto` turns it on only
where the hardware has it. Autocast keeps the weights in float32 and runs only the matrix products in bfloat16.
Float32 and int8 models are served by ONNX Runtime (`onnx_encoder.served_encoder`); `quantised_int8` is
PyTorch's int8 copy, which serves where an encoder cannot be exported.
"""

from __future__ import annotations

import functools
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


def resolve(precision: Precision) -> Literal["fp32", "bf16"]:
    """The arithmetic training computes in: `auto` is bf16 only on hardware that has it; an int8 model trains
    in fp32 (int8 has no gradients) and is quantised for what it computes once trained."""
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return "fp32" if precision == "int8" else precision


def served(precision: Precision) -> Literal["fp32", "bf16", "int8"]:
    """The arithmetic a model trained with `precision` is calibrated and runs in (recorded on its card)."""
    return "int8" if precision == "int8" else resolve(precision)


def autocast(precision: Literal["fp32", "bf16"]) -> torch.autocast:
    """A context that runs the encoder's products in `precision`."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def runs_in(trained: Literal["fp32", "bf16", "int8"]) -> Literal["fp32", "bf16", "int8"]:
    """What a model whose card says `trained` runs in here: a bf16 model runs in fp32 where bf16 is emulated."""
    return "fp32" if trained == "bf16" and not native_bf16() else trained


def quantised_int8(module: _Module) -> _Module:
    """A copy of `module` with every linear layer's weights in int8, one scale per output channel (one scale per
    matrix cost more than a point of slot F1), and their inputs quantised on the fly; the rest stays float32."""
    with warnings.catch_warnings():  # torch announces the move of this API to torchao; torch is pinned
        warnings.filterwarnings("ignore", message=".*(torchao|deprecated).*")
        quantised: _Module = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            module, {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig})
    return quantised  # same class as `module`, its linear layers swapped
