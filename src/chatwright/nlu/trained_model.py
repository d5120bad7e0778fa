"""Loading a trained NLU model directory and running it on batches of messages.

Intent-and-slot models and sentiment models share this code: both are the joint network, the sentiment one
simply has no tags. LoRA adapters are merged into the encoder at load time, so inference costs the same as a
fully fine-tuned model. A float32 or int8 encoder is served by ONNX Runtime (models/onnx_encoder.py), a bfloat16
one by PyTorch, in the arithmetic the model was calibrated in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from scipy import special
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from chatwright.errors import ModelLoadError
from chatwright.models.onnx_encoder import OnnxEncoder, in_pytorch, load_after_release, onnx_graph
from chatwright.models.registry import encoder_location
from chatwright.nlu.bio import tagged_runs
from chatwright.nlu.joint_model import EncodedBatch, JointHeads, JointModel, JointOutput, encode_words, split_words
from chatwright.nlu.markup import EntitySpan
from chatwright.nlu.model_files import ADAPTER_DIR, ENCODER_DIR, ENCODER_SAVED, HEADS_FILE, ModelCard, read_card
from chatwright.nlu.neighbours import NeighbourVote, mix
from chatwright.nlu.precision import runs_in
from chatwright.nlu.slot_lexicon import SlotLexicon


@dataclass(frozen=True)
class RawPrediction:
    """Calibrated label probabilities and the decoded (valid BIO) entity spans of one message."""

    probabilities: npt.NDArray[np.float32]
    entities: tuple[EntitySpan, ...]


def load_encoder(location: str) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    try:
        return AutoTokenizer.from_pretrained(location), AutoModel.from_pretrained(location)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot load encoder {location!r}: {error}") from error


class TrainedModel:
    def __init__(self, card: ModelCard, tokenizer: PreTrainedTokenizerBase, network: JointModel,
                 vote: NeighbourVote | None = None, lexicon: SlotLexicon | None = None) -> None:
        """`network` with its encoder already in the form it is served in (see `load`); `vote` when the card
        gives the neighbour vote a share, `lexicon` when it gives the slot lexicon a weight."""
        self.card = card
        self._tokenizer = tokenizer
        self.precision = runs_in(card.precision)
        self._network = network.eval()
        self._decoder = network.heads.tag_decoder(card.labels, card.intent_slots)
        self._vote = vote
        self._lexicon = lexicon

    @classmethod
    def load(cls, directory: Path, *, root: Path | None = None) -> TrainedModel:
        card = read_card(directory)
        precision = runs_in(card.precision)
        tokenizer, network = _network(directory, card, root)
        vote, lexicon = _vote(directory, card), _lexicon(directory, card)
        if precision == "bf16":  # bf16 weights: faster at batch 1 than autocast, which re-casts every call
            return cls(card, tokenizer, network.to(torch.bfloat16), vote, lexicon)
        graph = onnx_graph(network.encoder, tokenizer, int8=precision == "int8")
        if graph is None:  # the small heads stay exact either way
            network.encoder = in_pytorch(network.encoder, precision)
            return cls(card, tokenizer, network, vote, lexicon)
        served = load_after_release(graph, lambda: setattr(network, "encoder", nn.Identity()))
        if served is None:
            return cls.load(directory, root=root)  # exports the deleted graph afresh
        network.encoder = served
        return cls(card, tokenizer, network, vote, lexicon)

    @torch.inference_mode()
    def predict(self, texts: Sequence[str], *, batch_size: int = 32) -> list[RawPrediction]:
        with _ONE_TORCH_THREAD.held() if isinstance(self._network.encoder, OnnxEncoder) else nullcontext():
            return self._predict(texts, batch_size)

    @torch.inference_mode()
    def logits(self, messages: Sequence[Sequence[str]]
               ) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
        """Raw label logits and, for each word within the token budget, raw tag logits of pre-split messages,
        as one batch: what a student model learns from (training/distillation.py)."""
        batch, (_, intent_logits, tag_logits) = self._forward(messages)
        kept = batch.word_mask.sum(dim=1).tolist()
        return [(intent_logits[row].float().numpy().copy(), tag_logits[row, :kept[row]].float().numpy().copy())
                for row in range(len(messages))]

    def _forward(self, messages: Sequence[Sequence[str]]) -> tuple[EncodedBatch, JointOutput]:
        """Pre-split messages as one batch through the network (an empty message as one empty word)."""
        batch = encode_words(self._tokenizer, [list(words) or [""] for words in messages], self.card.max_tokens)
        return batch, self._network(batch)

    def _predict(self, texts: Sequence[str], batch_size: int) -> list[RawPrediction]:
        results: list[RawPrediction] = []
        for first in range(0, len(texts), batch_size):
            chunk = texts[first:first + batch_size]
            split = [split_words(text) for text in chunk]
            batch, (pooled, intent_logits, tag_logits) = self._forward([words for words, _ in split])
            # in NumPy: torch's log-softmax wakes its thread pool even for one message, and the waking threads
            # then slowed the next ONNX Runtime call from 6 to 12 ms
            probabilities = special.softmax(intent_logits.float().numpy() / self.card.temperature, axis=-1)
            if self._vote is not None:
                probabilities = mix(probabilities, self._vote.votes(pooled.float().numpy()), self.card.vote_weight)
            tag_log_probs = special.log_softmax(tag_logits.float().numpy(), axis=-1)
            for row, (text, (words, spans)) in enumerate(zip(chunk, split, strict=True)):
                kept = int(batch.word_mask[row, :len(words)].sum())  # the words within the token budget
                row_log_probs = tag_log_probs[row, :kept]
                if self._lexicon is not None:
                    row_log_probs = row_log_probs + self.card.lexicon_weight * self._lexicon.bonus(
                        words[:kept], self.card.tags)
                row_probabilities, tags = self._decide(probabilities[row], row_log_probs)
                entities = spans_from_tags(text, spans, tags + ["O"] * (len(words) - kept)) if tags else ()
                results.append(RawPrediction(row_probabilities, entities))
        return results

    def _decide(self, probabilities: npt.NDArray[np.float32],
                log_probs: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], list[str]]:
        """The message's label probabilities and its words' tags (none when the model tags nothing)."""
        if len(self.card.tags) <= 1 or not len(log_probs):
            return probabilities, []
        probabilities, tags = self._decoder.decide(log_probs, probabilities, jointly=self.card.joint_decoding)
        return probabilities, [self.card.tags[i] for i in tags]


def _vote(directory: Path, card: ModelCard) -> NeighbourVote | None:
    if card.vote_weight == 0:
        return None
    try:
        return NeighbourVote.load(directory, len(card.labels))
    except (OSError, KeyError, SafetensorError) as error:
        raise ModelLoadError(f"{directory} gives the neighbour vote weight {card.vote_weight} but its "
                             f"neighbours file cannot be read: {error}") from error


def _lexicon(directory: Path, card: ModelCard) -> SlotLexicon | None:
    if card.lexicon_weight == 0:
        return None
    try:
        return SlotLexicon.load(directory)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(f"{directory} gives the slot lexicon weight {card.lexicon_weight} but its "
                             f"lexicon file cannot be read: {error}") from error


def _network(directory: Path, card: ModelCard, root: Path | None) -> tuple[PreTrainedTokenizerBase, JointModel]:
    """The saved network in PyTorch, LoRA adapters merged."""
    if card.mode in ENCODER_SAVED:
        tokenizer, encoder = load_encoder(str(directory / ENCODER_DIR))
    else:
        tokenizer, encoder = load_encoder(encoder_location(card.base_model, root=root))
    if card.mode == "lora":
        from peft import PeftModel  # only LoRA models need peft imported

        encoder = PeftModel.from_pretrained(encoder, str(directory / ADAPTER_DIR)).merge_and_unload()
    heads = JointHeads(encoder.config.hidden_size, len(card.labels), card.tags, word_context=card.word_context,
                       crf=card.crf)
    heads.load_state_dict(load_file(str(directory / HEADS_FILE)))
    return tokenizer, JointModel(encoder, heads)


class TorchOnOneThread:
    """PyTorch on one thread while any prediction served by ONNX Runtime runs. Beside ONNX Runtime its share of a
    prediction (the heads, a quick model's LSTM) is too small to split, and its second thread, spinning after
    each small parallel step, held a core ONNX Runtime needed: SNIPS quick went from 14 ms p50 and 32 ms p95 a
    message to 7.7 and 10.5.

    The thread count is global to the process and server threads predict concurrently, so the first prediction
    in saves and lowers it and the last one out restores it: a save and restore per call would let two
    overlapping calls leave PyTorch on one thread for good.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._saved = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if not self._inside:
                self._saved = torch.get_num_threads()
                torch.set_num_threads(1)
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if not self._inside:
                    torch.set_num_threads(self._saved)


_ONE_TORCH_THREAD = TorchOnOneThread()


def spans_from_tags(text: str, spans: Sequence[tuple[int, int]], tags: Sequence[str]) -> tuple[EntitySpan, ...]:
    """Entity spans from word offsets and valid BIO tags."""
    if len(spans) != len(tags):
        raise ValueError(f"{len(spans)} words but {len(tags)} tags")
    return tuple(EntitySpan(spans[first][0], spans[end - 1][1], text[spans[first][0]:spans[end - 1][1]], slot)
                 for first, end, slot in tagged_runs(tags))
