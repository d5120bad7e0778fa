"""Slot values the policy found itself (a correction, an LLM proposal), handed to the flow runner as entities.

The runner fills a flow's slots from a message's entities. An entity of a type that only one of the flow's slots
takes lands in exactly that slot and goes through the same parsing and checks as anything the NLU found.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from chatwright.dialogue.flow_spec import Flow, FlowBook
from chatwright.dialogue.types import EntityValue, Understanding


def slot_entity(book: FlowBook, flow: Flow, slot: str, value: Any, message: str, fragment: str,
                extractor: str) -> EntityValue | None:
    """An entity for `slot` of `flow` whose `fragment` of `message` said `value`; None when every entity type
    of the slot is shared with another slot of the flow, so no entity could reach it alone."""
    others = {entity for name in flow.slots if name != slot for entity in book.slots[name].entities}
    own = [entity for entity in book.slots[slot].entities if entity not in others]
    if not own:
        return None
    start = max(message.casefold().find(fragment.casefold()), 0)
    return EntityValue(entity=own[0], value=value, text=fragment, start=start, end=start + len(fragment),
                       extractor=extractor)


def with_entities(understanding: Understanding, *entities: EntityValue) -> Understanding:
    """`entities` go first: the runner fills a slot from the first entity that fits, and what the policy found
    itself (a correction's "60 euros") or the newer message must win over, say, spaCy's bare CARDINAL "60"."""
    return dataclasses.replace(understanding, entities=(*entities, *understanding.entities))
