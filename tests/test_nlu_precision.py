"""Choosing the arithmetic: bf16 only where the CPU has it and a timed probe finds it faster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from chatwright.nlu import precision


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    precision.bf16_pays.cache_clear()
    yield
    precision.bf16_pays.cache_clear()  # later tests time this CPU as it is


@pytest.mark.usefixtures("fresh_probe")
def test_a_cpu_with_the_flag_gets_bf16_only_as_its_timed_probe_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda: True)  # the flag, whatever this CPU reports
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    pays = precision.bf16_pays()  # real products timed in both arithmetics
    assert torch.equal(torch.rand(3), expected)  # a seeded run draws the same numbers after the probe
    assert precision.resolve("auto") == ("bf16" if pays else "fp32")
    assert precision.runs_in("bf16") == ("bf16" if pays else "fp32")
    assert precision.bf16_pays.cache_info().misses == 1  # timed once a process


@pytest.mark.usefixtures("fresh_probe")
def test_a_cpu_without_the_flag_computes_in_fp32_and_an_explicit_choice_stands(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    assert not precision.bf16_pays()
    assert precision.resolve("auto") == "fp32" and precision.runs_in("bf16") == "fp32"
    assert precision.resolve("bf16") == "bf16"  # asked for, it trains in bf16 even where emulated
    assert precision.resolve("int8") == "fp32" and precision.served("int8") == "int8"
    assert precision.runs_in("int8") == "int8"
