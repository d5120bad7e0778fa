"""BIO tag sets and decoding that only ever yields valid tag sequences.

A token classifier scores each word independently, so its argmax can produce `I-amount` after `O` or after
`B-date`. Viterbi decoding over the allowed transitions (I-x only after B-x or I-x) gives the best *valid*
sequence instead, which is what turns per-token scores into clean entity spans. Decoding can also be kept to
the slots the predicted intent's examples use, so a `playlist` is never tagged in a weather question.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

OUTSIDE = "O"
_FORBIDDEN = -1e9

if TYPE_CHECKING:
    from chatwright.nlu.crf import LearnedMoves


def bio_tags(slots: Iterable[str]) -> list[str]:
    """`O` then `B-x`, `I-x` for every slot, in sorted slot order: a stable label map for a slot set."""
    tags = [OUTSIDE]
    for slot in sorted(set(slots)):
        tags += [f"B-{slot}", f"I-{slot}"]
    return tags


def transition_mask(tags: Sequence[str]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(start, transition) penalties: 0 where allowed, a large negative number where not."""
    count = len(tags)
    start = np.zeros(count, dtype=np.float32)
    transitions = np.zeros((count, count), dtype=np.float32)
    for to, tag in enumerate(tags):
        if not tag.startswith("I-"):
            continue
        start[to] = _FORBIDDEN
        slot = tag[2:]
        for frm, previous in enumerate(tags):
            if previous not in (f"B-{slot}", f"I-{slot}"):
                transitions[frm, to] = _FORBIDDEN
    return start, transitions


def viterbi(log_probs: npt.NDArray[np.float32], start: npt.NDArray[np.float32],
            transitions: npt.NDArray[np.float32], end: npt.NDArray[np.float32] | None = None) -> list[int]:
    """Best allowed tag index per word, given per-word tag log-probabilities (words × tags) and scores for
    starting on, moving between (from × to) and ending on tags."""
    if len(log_probs) == 0:
        return []
    score = log_probs[0] + start
    back = np.zeros(log_probs.shape, dtype=np.int64)
    for word in range(1, len(log_probs)):
        candidates = score[:, None] + transitions  # from × to
        back[word] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[word]
    if end is not None:
        score = score + end
    best = [int(score.argmax())]
    for word in range(len(log_probs) - 1, 0, -1):
        best.append(int(back[word, best[-1]]))
    return best[::-1]


def slot_penalty(tags: Sequence[str], slots: Iterable[str]) -> npt.NDArray[np.float32]:
    """Per-tag penalty: 0 for `O` and the tags of `slots`, forbidden for every other slot's tags."""
    allowed = set(slots)
    return np.array([0.0 if tag == OUTSIDE or tag[2:] in allowed else _FORBIDDEN for tag in tags],
                    dtype=np.float32)


class TagDecoder:
    """Valid BIO sequences, kept to the slots of the predicted intent when `intent_slots` is given, and scored
    with a CRF's learned moves when the model has them."""

    def __init__(self, tags: Sequence[str], labels: Sequence[str], intent_slots: Mapping[str, Sequence[str]] | None,
                 learned: LearnedMoves | None = None) -> None:
        self.start, self.transitions = transition_mask(tags)
        self.end = None
        if learned is not None:
            self.start, self.transitions = self.start + learned.start, self.transitions + learned.transitions
            self.end = learned.end
        self.penalties = None if intent_slots is None else np.stack(
            [slot_penalty(tags, intent_slots[label]) if label in intent_slots else np.zeros(len(tags), np.float32)
             for label in labels])

    def decode(self, log_probs: npt.NDArray[np.float32], label: int) -> list[int]:
        """Best allowed tag index per word (words × tags log-probabilities) for a message of intent `label`."""
        if self.penalties is not None:
            log_probs = log_probs + self.penalties[label]
        return viterbi(log_probs, self.start, self.transitions, self.end)
