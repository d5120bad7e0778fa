"""BIO tag sets and decoding that only ever yields valid tag sequences.

A token classifier scores each word independently, so its argmax can produce `I-amount` after `O` or after
`B-date`. Viterbi decoding over the allowed transitions (I-x only after B-x or I-x) gives the best *valid*
sequence instead, which is what turns per-token scores into clean entity spans.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

OUTSIDE = "O"
_FORBIDDEN = -1e9


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
            transitions: npt.NDArray[np.float32]) -> list[int]:
    """Best allowed tag index per word, given per-word tag log-probabilities (words × tags)."""
    if len(log_probs) == 0:
        return []
    score = log_probs[0] + start
    back = np.zeros(log_probs.shape, dtype=np.int64)
    for word in range(1, len(log_probs)):
        candidates = score[:, None] + transitions  # from × to
        back[word] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[word]
    best = [int(score.argmax())]
    for word in range(len(log_probs) - 1, 0, -1):
        best.append(int(back[word, best[-1]]))
    return best[::-1]
