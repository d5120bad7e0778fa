"""The runners-up of an intent decision, which clarification questions and error reports both need."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from chatwright.dialogue.types import IntentScore

RANKING_SIZE = 5


def rank_intents(intents: Sequence[str], scores: npt.NDArray[np.floating]) -> tuple[IntentScore, ...]:
    """The best `RANKING_SIZE` intents by score, best first, with scores clipped to [0, 1]."""
    order = np.argsort(-scores)[:RANKING_SIZE]
    return tuple(IntentScore(intents[i], round(float(np.clip(scores[i], 0.0, 1.0)), 4)) for i in order)
