"""The joint intent and slot network: one shared encoder, an intent head and a word-tagging head.

Sharing the encoder halves inference cost against two models and lets each task regularise the other. The
intent head reads the mean of the token states (how the packaged MiniLM was pre-trained to summarise a
sentence); the tagging head reads the first sub-word of every word, so tags live on words, not sub-words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from chatwright.nlu.bio import TagDecoder
from chatwright.nlu.crf import TagTransitions
from chatwright.nlu.markup import word_tokens


@dataclass
class EncodedBatch:
    """Sub-word ids for a batch of messages plus, per word, the position of its first sub-word."""

    input_ids: torch.Tensor  # batch × tokens
    attention_mask: torch.Tensor  # batch × tokens
    word_positions: torch.Tensor  # batch × words (0 where there is no word)
    word_mask: torch.Tensor  # batch × words, True for real words kept within the token budget


class JointOutput(NamedTuple):
    """What the network computes for a batch: the sentence vectors (kept for the neighbour vote) and the logits."""

    pooled: torch.Tensor  # batch × hidden
    intent: torch.Tensor  # batch × intents
    tags: torch.Tensor  # batch × words × tags


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The words the tagger labels and their character offsets."""
    spans = word_tokens(text)
    return [text[start:end] for start, end in spans], spans


def encode_words(tokenizer: PreTrainedTokenizerBase, words: Sequence[Sequence[str]], max_tokens: int) -> EncodedBatch:
    """Tokenise pre-split messages; words whose first sub-word falls past `max_tokens` are masked out."""
    encoded = tokenizer([list(w) for w in words], is_split_into_words=True, truncation=True,
                        max_length=max_tokens, padding=True, return_tensors="pt")
    most_words = max((len(w) for w in words), default=0) or 1
    positions = torch.zeros((len(words), most_words), dtype=torch.long)
    mask = torch.zeros((len(words), most_words), dtype=torch.bool)
    for row in range(len(words)):
        seen: set[int] = set()
        for position, word in enumerate(encoded.word_ids(row)):
            if word is not None and word not in seen:
                seen.add(word)
                positions[row, word] = position
                mask[row, word] = True
    return EncodedBatch(encoded["input_ids"], encoded["attention_mask"], positions, mask)


class JointHeads(nn.Module):
    """Intent and tag classifiers over encoder features; trained alone (quick mode) or with the encoder.

    A frozen encoder's word states were never taught where a slot starts and ends, so heads trained without
    the encoder read them through a small bidirectional LSTM (`word_context` units a direction) first, with
    `dropout` on its input (one mask a message) and output. Word states read directly (a fine-tuned encoder's)
    are dropped out at `word_dropout` instead (the trainer passes the configured rate). With `crf` the tagger
    also learns scores for moves between tags (nlu/crf.py).
    """

    def __init__(self, hidden: int, intents: int, tags: Sequence[str], *, dropout: float = 0.1,
                 word_dropout: float = 0.1, word_context: int = 0, crf: bool = False) -> None:
        super().__init__()
        self.tag_names = list(tags)
        self.crf = TagTransitions(self.tag_names) if crf and len(self.tag_names) > 1 else None
        self.dropout = nn.Dropout(dropout)
        self.word_dropout = nn.Dropout(word_dropout)
        self.intent = nn.Linear(hidden, intents)
        self.word_context = word_context
        self.context = nn.LSTM(hidden, word_context, batch_first=True, bidirectional=True) if word_context else None
        self.tags = nn.Linear(2 * word_context if word_context else hidden, max(len(self.tag_names), 1))

    def forward(self, pooled: torch.Tensor, word_states: torch.Tensor,
                word_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        intent = self.intent(self.dropout(pooled))
        if self.tags.out_features == 1:  # nothing to tag (no slots, sentiment): the word path is skipped, as
            # its dropout over every word state took a third of BANKING77's quick-mode training
            return intent, word_states.new_zeros(*word_states.shape[:2], 1)
        if self.context is None:
            return intent, self.tags(self.word_dropout(word_states))
        words = _read_in_context(self.context, self._locked_dropout(word_states), word_mask)
        return intent, self.tags(self.dropout(words))

    def tag_decoder(self, labels: Sequence[str], intent_slots: Mapping[str, Sequence[str]] | None) -> TagDecoder:
        """The decoder for these heads' tag scores, with the CRF's moves as they are now when there is one."""
        return TagDecoder(self.tag_names, labels, intent_slots, self.crf.learned() if self.crf is not None else None)

    def _locked_dropout(self, word_states: torch.Tensor) -> torch.Tensor:
        """Dropout with one mask per message shared by all its words, as recurrent layers are usually fed
        (variational dropout): SNIPS quick-mode slot F1 stayed within its noise, and it draws about a tenth of the
        random numbers of a mask per word (drawing them took 18 % of an epoch)."""
        if not self.training or not self.dropout.p:
            return word_states
        keep = 1.0 - self.dropout.p
        mask = word_states.new_empty(word_states.size(0), 1, word_states.size(2)).bernoulli_(keep)
        return word_states * mask / keep


def _read_in_context(lstm: nn.LSTM, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
    """Word states read in both directions over each message's own words (padding left out)."""
    lengths = word_mask.sum(dim=1).clamp(min=1).cpu()
    dtype = next(lstm.parameters()).dtype  # bf16 when the model serves in bf16
    packed = pack_padded_sequence(words.to(dtype), lengths, batch_first=True, enforce_sorted=False)
    with torch.autocast("cpu", enabled=False):  # oneDNN has no LSTM under autocast; it runs in its own dtype
        states, _ = lstm(packed)
    padded, _ = pad_packed_sequence(states, batch_first=True, total_length=words.size(1))
    return padded


class JointModel(nn.Module):
    def __init__(self, encoder: PreTrainedModel, heads: JointHeads) -> None:
        super().__init__()
        self.encoder: nn.Module = encoder  # served, it may be a quantised copy or an ONNX Runtime graph
        self.heads = heads

    def features(self, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(sentence vector, word states): the mean of token states and each word's first sub-word state."""
        states = self.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        weights = batch.attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        index = batch.word_positions.unsqueeze(-1).expand(-1, -1, states.size(-1))
        return pooled, torch.gather(states, 1, index)

    def forward(self, batch: EncodedBatch) -> JointOutput:
        pooled, word_states = self.features(batch)
        return JointOutput(pooled, *self.heads(pooled, word_states, batch.word_mask))
