"""The joint intent and slot network: one shared encoder, an intent head and a word-tagging head.

Sharing the encoder halves inference cost against two models and lets each task regularise the other. The
intent head reads the mean of the token states (how the packaged MiniLM was pre-trained to summarise a
sentence); the tagging head reads the first sub-word of every word, so tags live on words, not sub-words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from chatwright.nlu.markup import word_tokens


@dataclass
class EncodedBatch:
    """Sub-word ids for a batch of messages plus, per word, the position of its first sub-word."""

    input_ids: torch.Tensor  # batch × tokens
    attention_mask: torch.Tensor  # batch × tokens
    word_positions: torch.Tensor  # batch × words (0 where there is no word)
    word_mask: torch.Tensor  # batch × words, True for real words kept within the token budget


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
    """Intent and tag classifiers over encoder features; trained alone (quick mode) or with the encoder."""

    def __init__(self, hidden: int, intents: int, tags: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.intent = nn.Linear(hidden, intents)
        self.tags = nn.Linear(hidden, max(tags, 1))

    def forward(self, pooled: torch.Tensor, word_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.intent(self.dropout(pooled)), self.tags(self.dropout(word_states))


class JointModel(nn.Module):
    def __init__(self, encoder: PreTrainedModel, heads: JointHeads) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = heads

    def features(self, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(sentence vector, word states): the mean of token states and each word's first sub-word state."""
        states = self.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        weights = batch.attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        index = batch.word_positions.unsqueeze(-1).expand(-1, -1, states.size(-1))
        return pooled, torch.gather(states, 1, index)

    def forward(self, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(intent logits: batch × intents, tag logits: batch × words × tags)."""
        pooled, word_states = self.features(batch)
        result: tuple[torch.Tensor, torch.Tensor] = self.heads(pooled, word_states)
        return result
