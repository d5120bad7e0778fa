"""What a person taking over a conversation reads first: why, the flow and slots, and the customer's own words.

The flow runner's summary gives the reason, the flow in progress and what is known; the customer's last messages
say in their words what they were trying to do, which no slot captures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from chatwright.dialogue.events import Event, Handoff, UserMessage

LAST_MESSAGES = 3
MAX_MESSAGE_CHARS = 200


def with_last_messages(handoff: Handoff, events: Sequence[Event]) -> Handoff:
    """`handoff` with the last user messages among `events` added to its summary."""
    said = [event.text for event in events if isinstance(event, UserMessage)][-LAST_MESSAGES:]
    if not said:
        return handoff
    quoted = " / ".join(f'"{_clipped(text)}"' for text in said)
    return dataclasses.replace(handoff, summary=f"{handoff.summary} Last messages: {quoted}.")


def _clipped(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
