"""BIO tag sets and decoding that only ever yields valid tag sequences.

A token classifier scores each word independently, so its argmax can produce `I-amount` after `O` or after
`B-date`. Viterbi decoding over the allowed transitions (I-x only after B-x or I-x) gives the best *valid*
sequence instead, which is what turns per-token scores into clean entity spans. Decoding can also be kept to
the slots the predicted intent's examples use, so a `playlist` is never tagged in a weather question, and the
intent can be decided together with its slots (`TagDecoder.decode_jointly`).
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


def tagged_runs(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first word, end word, slot) of each entity in a BIO sequence; an `I-x` that does not continue an `x`
    entity on the word before starts one."""
    runs: list[tuple[int, int, str]] = []
    for position, tag in enumerate(tags):
        if tag.startswith("I-") and runs and runs[-1][2] == tag[2:] and runs[-1][1] == position:
            runs[-1] = (runs[-1][0], position + 1, tag[2:])
        elif tag != OUTSIDE:
            runs.append((position, position + 1, tag[2:]))
    return runs


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
    _, paths = best_paths(log_probs[None], start, transitions, end)
    return [int(tag) for tag in paths[0]]


def best_paths(log_probs: npt.NDArray[np.float32], start: npt.NDArray[np.float32],
               transitions: npt.NDArray[np.float32], end: npt.NDArray[np.float32] | None = None
               ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Viterbi over several scorings of one message at once (variants × words × tags, at least one word):
    each variant's best path score and its path (variants × words)."""
    variants, words, _ = log_probs.shape
    score = log_probs[:, 0] + start
    back = np.zeros(log_probs.shape, dtype=np.int64)
    for word in range(1, words):
        candidates = score[:, :, None] + transitions  # variants × from × to
        back[:, word] = candidates.argmax(axis=1)
        score = candidates.max(axis=1) + log_probs[:, word]
    if end is not None:
        score = score + end
    paths = np.zeros((variants, words), dtype=np.int64)
    paths[:, -1] = score.argmax(axis=1)
    rows = np.arange(variants)
    for word in range(words - 1, 0, -1):
        paths[:, word - 1] = back[rows, word, paths[:, word]]
    return score.max(axis=1), paths


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

    def decide(self, log_probs: npt.NDArray[np.float32], probabilities: npt.NDArray[np.float32], *,
               jointly: bool) -> tuple[npt.NDArray[np.float32], list[int]]:
        """A message's label probabilities and tag ids as served: decided together (`decode_jointly`), or the
        likeliest label first and then its tags."""
        if jointly:
            return self.decode_jointly(log_probs, probabilities)
        return probabilities, self.decode(log_probs, int(probabilities.argmax()))

    def decode_jointly(self, log_probs: npt.NDArray[np.float32],
                       probabilities: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], list[int]]:
        """Intent and tags decided together: each intent's probability times the likelihood of its best tags
        (kept to its slots), renormalised, and the tags of the intent that wins.

        Where the likeliest tags fit the likeliest intent, nothing changes. Where that intent would have to
        drop a slot the tagger is sure of, an intent whose slots explain the words can win instead. Only the
        intents that could win are decoded: an intent's tags score at most the unconstrained best, so one
        whose probability cannot make up the top intent's shortfall keeps that bound, which leaves it below
        the top intent and never raises the winner's confidence.
        """
        if self.penalties is None or len(log_probs) == 0:
            return probabilities, self.decode(log_probs, int(probabilities.argmax()))
        top = int(probabilities.argmax())
        (bound, top_score), (_, top_path) = best_paths(np.stack([log_probs, log_probs + self.penalties[top]]),
                                                        self.start, self.transitions, self.end)
        with np.errstate(divide="ignore"):
            log_prior = np.log(probabilities)
        path_scores = np.full(len(probabilities), bound)
        path_scores[top] = top_score
        paths = {top: top_path}
        others = np.flatnonzero(log_prior + bound >= log_prior[top] + top_score)
        others = others[others != top]
        if len(others):
            scores, their_paths = best_paths(log_probs[None] + self.penalties[others][:, None],
                                             self.start, self.transitions, self.end)
            path_scores[others] = scores
            paths.update(zip(others.tolist(), their_paths, strict=True))
        weights = log_prior + path_scores
        joint = np.exp(weights - weights.max())
        joint = (joint / joint.sum()).astype(np.float32)
        return joint, [int(tag) for tag in paths[int(joint.argmax())]]
