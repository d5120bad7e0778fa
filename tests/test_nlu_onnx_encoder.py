"""The float32 encoder served by ONNX Runtime: the packaged MiniLM exported for real, checked against PyTorch."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from chatwright.models.onnx_encoder import EncoderStates, OnnxEncoder, onnx_encoder, served_encoder
from chatwright.models.registry import encoder_location
from chatwright.nlu.joint_model import encode_words, split_words
from chatwright.nlu.trained_model import TrainedModel, load_encoder
from nlu_samples import trained_nlu_project

MESSAGES = ["I was charged twice for the same coffee, can you refund one of them", "hi",
            "how long does a transfer to Germany take"]


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHATWRIGHT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


def test_the_onnx_encoder_computes_pytorchs_states_for_padded_and_single_messages(cache: Path) -> None:
    tokenizer, encoder = load_encoder(encoder_location("packaged:all-minilm-l6-v2"))
    served = onnx_encoder(encoder.eval(), tokenizer)
    assert isinstance(served, OnnxEncoder)
    assert len(list(cache.glob("*.onnx"))) == 1 and not list(cache.glob("*.partial"))
    batches = [encode_words(tokenizer, [split_words(text)[0] for text in MESSAGES], 64),
               encode_words(tokenizer, [split_words(MESSAGES[1])[0]], 64)]
    for batch in batches:
        with torch.inference_mode():
            expected = encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        got = served(batch.input_ids, batch.attention_mask).last_hidden_state
        real = batch.attention_mask.bool()
        assert got.shape == expected.shape
        assert (got[real] - expected[real]).abs().max().item() < 1e-4


def test_a_second_load_reuses_the_export_and_a_damaged_one_is_made_again(cache: Path) -> None:
    tokenizer, encoder = load_encoder(encoder_location("packaged:all-minilm-l6-v2"))
    assert onnx_encoder(encoder, tokenizer) is not None
    (export,) = cache.glob("*.onnx")
    exported_at = export.stat().st_mtime_ns
    content = export.read_bytes()
    assert onnx_encoder(encoder, tokenizer) is not None
    assert list(cache.glob("*.onnx")) == [export] and export.read_bytes() == content  # found, not exported
    assert export.stat().st_mtime_ns >= exported_at  # its time marks the last use
    export.write_bytes(b"not an onnx graph")
    served = onnx_encoder(encoder, tokenizer)
    assert served is not None and export.stat().st_size == len(content)


def test_other_weights_get_their_own_export_and_abandoned_halves_are_cleared(cache: Path) -> None:
    tokenizer, encoder = load_encoder(encoder_location("packaged:all-minilm-l6-v2"))
    assert onnx_encoder(encoder, tokenizer) is not None
    abandoned, running = cache / ".a.onnx.x.partial", cache / ".b.onnx.y.partial"
    for partial in (abandoned, running):
        partial.write_bytes(b"half an export")
    os.utime(abandoned, (time.time() - 7200, time.time() - 7200))  # left by an export killed two hours ago
    with torch.no_grad():
        encoder.encoder.layer[0].output.dense.bias.add_(0.5)
    assert onnx_encoder(encoder, tokenizer) is not None
    assert len(list(cache.glob("*.onnx"))) == 2
    assert not abandoned.exists() and running.exists()  # one still being written is left alone


def test_an_int8_graph_is_made_from_the_checked_float32_one_and_stays_close_to_pytorch(cache: Path) -> None:
    tokenizer, encoder = load_encoder(encoder_location("packaged:all-minilm-l6-v2"))
    served = onnx_encoder(encoder.eval(), tokenizer, int8=True)
    assert isinstance(served, OnnxEncoder)
    (exported,) = [path for path in cache.glob("*.onnx") if not path.stem.endswith("-int8")]
    (quantised,) = cache.glob("*-int8.onnx")
    assert quantised.name == f"{exported.stem}-int8.onnx"
    assert quantised.stat().st_size < 0.7 * exported.stat().st_size  # int8 weights; the vocabulary stays
    batch = encode_words(tokenizer, [split_words(text)[0] for text in MESSAGES], 64)
    with torch.inference_mode():
        expected = encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    got = served(batch.input_ids, batch.attention_mask).last_hidden_state
    real = batch.attention_mask.bool()
    similarity = nn.functional.cosine_similarity(expected[real], got[real], dim=-1)
    assert similarity.min().item() > 0.9 and similarity.mean().item() > 0.98
    assert (expected[real] - got[real]).abs().max().item() > 1e-3  # rounded, unlike the float32 graph


class _BatchSizeBranch(nn.Module):
    """An encoder whose Python branch on the batch size a trace cannot record: its export computes wrongly."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(30522, 8)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> EncoderStates:
        states = self.embedding(input_ids) * attention_mask.unsqueeze(-1)
        return EncoderStates(states + 1.0 if input_ids.shape[0] > 1 else states)


def test_an_encoder_the_export_gets_wrong_keeps_running_in_pytorch(cache: Path) -> None:
    tokenizer, _ = load_encoder(encoder_location("packaged:all-minilm-l6-v2"))
    assert onnx_encoder(_BatchSizeBranch(), tokenizer) is None
    assert not list(cache.glob("*.onnx"))  # a wrong export is not kept for the next load
    assert not isinstance(served_encoder(_BatchSizeBranch(), tokenizer, "int8"), OnnxEncoder)  # PyTorch's int8
    assert not list(cache.glob("*.onnx"))


def test_a_float32_model_is_exported_while_training_and_served_by_onnx_runtime_as_in_pytorch(
        tmp_path: Path, cache: Path) -> None:
    project = trained_nlu_project(tmp_path / "assistant", precision="fp32")
    exports = sorted(cache.glob("*.onnx"))
    assert exports  # made in training, where the quick heads learned from its states
    served = TrainedModel.load(project.intent_model_dir, root=project.root)
    assert isinstance(served._network.encoder, OnnxEncoder)
    assert sorted(cache.glob("*.onnx")) == exports  # the first load found it
    texts = ["send 20 euros to Tom", "please block my visa", "hello there", "transfer 300 dollars to my landlord"]
    threads = torch.get_num_threads()
    fast = served.predict(texts)
    assert torch.get_num_threads() == threads  # one thread only while it predicts
    _, encoder = load_encoder(encoder_location(served.card.base_model, root=project.root))
    served._network.encoder = encoder.eval()  # the same model in PyTorch
    for onnx, exact in zip(fast, served.predict(texts), strict=True):
        assert np.abs(onnx.probabilities - exact.probabilities).max() < 1e-4
        assert onnx.entities == exact.entities
    assert any(prediction.entities for prediction in fast)

    # PyTorch's encoder is released before the session opens, so a damaged graph means loading the model again
    for export in exports:
        export.write_bytes(b"not an onnx graph")
    reloaded = TrainedModel.load(project.intent_model_dir, root=project.root)
    assert isinstance(reloaded._network.encoder, OnnxEncoder)
    for again, before in zip(reloaded.predict(texts), fast, strict=True):
        assert np.abs(again.probabilities - before.probabilities).max() < 1e-5
