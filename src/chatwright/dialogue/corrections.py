"""Corrections: "no, make that 60" replaces a value the user gave earlier, even when the NLU finds no entity in it.

Left alone, the flow runner would read the whole message as the answer to its current question (a "no" to the
confirmation). A correction marker plus a value that one of the flow's filled slots accepts says what the user
means; when several slots accept it, the one filled most recently is the one they are looking at.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Any

from chatwright.dialogue.events import DialogueState, Event, SlotSet
from chatwright.dialogue.flow_spec import Flow, FlowBook
from chatwright.dialogue.slot_entities import slot_entity
from chatwright.dialogue.slot_values import SlotType, parse_value
from chatwright.dialogue.types import EntityValue

_MARKERS = re.compile(
    r"^\W*(?:(?:no|nope|nah|actually|sorry|oops|wait|oh|hmm)\b\W*)+"
    r"|\b(?:make|change)\s+(?:it|that)(?:\s+to)?\b"
    r"|\bi\s+mean(?:t)?\b|\b(?:it|that)\s+should\s+be\b|\binstead\b|\brather\b",
    re.IGNORECASE)


def find_correction(book: FlowBook, state: DialogueState, events: Sequence[Event], text: str,
                    today: datetime.date) -> EntityValue | None:
    """The entity that corrects a filled slot of the active flow, or None when the message is no correction.

    The slot being asked for is left to the runner, and free-text slots are never guessed: any text fits them.
    """
    frame = state.active
    if frame is None or not _MARKERS.search(text):
        return None
    remainder = " ".join(_MARKERS.sub(" ", text).split()).strip(".,!?;: ")
    if not remainder:
        return None
    flow = book.flows[frame.flow]
    for name in _filled_newest_first(flow, state, events):
        rules = book.slots[name].rules
        if name == frame.awaiting or rules.type is SlotType.TEXT:
            continue
        parsed = parse_value(rules, remainder, today=today)
        previous = state.slots[name]
        if not parsed.ok or parsed.value == previous:
            continue
        entity = slot_entity(book, flow, name, _keep_currency(parsed.value, previous), text, remainder,
                             "correction")
        if entity is not None:
            return entity
    return None


def _filled_newest_first(flow: Flow, state: DialogueState, events: Sequence[Event]) -> list[str]:
    last_set = {event.slot: index for index, event in enumerate(events) if isinstance(event, SlotSet)}
    return sorted((name for name in flow.slots if name in state.slots), key=lambda name: -last_set.get(name, -1))


def _keep_currency(value: Any, previous: Any) -> Any:
    """"make it 60" after "50 euros" means 60 euros."""
    if isinstance(value, Mapping) and value.get("currency") is None and isinstance(previous, Mapping):
        return {**value, "currency": previous.get("currency")}
    return value
