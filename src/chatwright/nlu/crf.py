"""Learned tag-to-tag scores over the word tagger's outputs: a linear-chain conditional random field.

A word classifier decides each word's tag alone; it cannot learn that `B-artist` is usually followed by
`I-artist`, or that a `timeRange` rarely ends where an `object_name` starts. A CRF scores whole tag sequences
(word scores plus a score for every move from one tag to the next, and for starting and ending on a tag) and
is trained on the likelihood of the gold sequence among all valid ones, so the decoder's Viterbi search
weighs the same moves it was taught. JointBERT's BERT on SNIPS: slot F1 96.90 without, 97.24 with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from chatwright.nlu.bio import transition_mask


class LearnedMoves(NamedTuple):
    """A trained CRF's scores as arrays for decoding: starting on a tag, moving between tags (from × to), ending."""

    start: npt.NDArray[np.float32]
    transitions: npt.NDArray[np.float32]
    end: npt.NDArray[np.float32]


class TagTransitions(nn.Module):
    """Start, transition and end scores for `tags`; moves BIO forbids (`I-x` not after `B-x` or `I-x`) stay
    forbidden, in training as in decoding, so the likelihood is taken over the sequences the decoder can emit."""

    forbidden_start: torch.Tensor
    forbidden: torch.Tensor

    def __init__(self, tags: Sequence[str]) -> None:
        super().__init__()
        count = len(tags)
        self.start = nn.Parameter(torch.zeros(count))
        self.transitions = nn.Parameter(torch.zeros(count, count))
        self.end = nn.Parameter(torch.zeros(count))
        forbidden_start, forbidden = transition_mask(tags)
        # rebuilt from the tag names, not saved: a model file holds only what was learned
        self.register_buffer("forbidden_start", torch.from_numpy(forbidden_start), persistent=False)
        self.register_buffer("forbidden", torch.from_numpy(forbidden), persistent=False)

    def negative_log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """Summed over messages: -log p(gold tags | word scores), for word scores `emissions` (messages × words ×
        tags) and gold `tags` (messages × words), negative (-100) after each message's last word."""
        mask = tags >= 0
        present = mask.any(dim=1)
        emissions, tags, mask = emissions[present].float(), tags[present].clamp(min=0), mask[present]
        if not len(tags):
            return emissions.new_zeros(())
        start = self.start + self.forbidden_start
        transitions = self.transitions + self.forbidden
        steps = mask.float()
        gold = start[tags[:, 0]] + (emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1) * steps).sum(dim=1)
        gold = gold + (transitions[tags[:, :-1], tags[:, 1:]] * steps[:, 1:]).sum(dim=1)
        last = tags.gather(1, (mask.sum(dim=1, keepdim=True) - 1)).squeeze(1)
        gold = gold + self.end[last]
        alpha = start + emissions[:, 0]  # messages × tags: log-sum of every path's score ending on each tag
        # the log-sum over previous tags as a product with exp(transitions), shifted by each row's largest
        # score: forwards and backwards, 15 times faster than logsumexp over messages × tags × tags (timed by
        # hand: 11-20 ms against 170 ms for 32 messages of 20 words and 73 tags)
        moves = transitions.exp()  # forbidden moves become 0
        for word in range(1, emissions.size(1)):
            top = alpha.max(dim=1, keepdim=True).values
            summed = ((alpha - top).exp() @ moves).clamp(min=1e-30)  # clamped: log stays finite, its gradient too
            moved = summed.log() + top + emissions[:, word]
            alpha = torch.where(mask[:, word].unsqueeze(1), moved, alpha)
        partition = torch.logsumexp(alpha + self.end, dim=1)
        return (partition - gold).sum()

    def learned(self) -> LearnedMoves:
        return LearnedMoves(*(value.detach().float().numpy().copy()
                              for value in (self.start, self.transitions, self.end)))
