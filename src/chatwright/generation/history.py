"""Keeps earlier turns inside the model's context budget: newest turns first, whole turns only."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chatwright.dialogue.types import HistoryTurn


def fit_history(history: Sequence[HistoryTurn], budget_tokens: int,
                count_tokens: Callable[[str], int]) -> list[HistoryTurn]:
    """The longest suffix of `history` whose turns fit in `budget_tokens`, oldest first.

    A turn that does not fit whole is dropped rather than cut, because a half message misleads the model.
    """
    kept: list[HistoryTurn] = []
    used = 0
    for turn in reversed(history):
        cost = count_tokens(turn.text) + 4  # role markers and separators
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    return kept
