"""One list of entities per message from every source: the trained model, the owner's patterns and spaCy.

Sources overlap ('50 euros' is the model's `amount` and spaCy's MONEY), so one mention must end up with one
entity. The owner's slots win over spaCy's generic types because they say what this assistant needs; between
equals the longer span wins ('Visa Gold' over 'Visa'), then model over regex over lookup.

Slot values are then made canonical with the slot's synonyms and typed by the slot's name: a slot whose name
has the word `amount` or `money` gets {'amount', 'currency'}, `date` an ISO date, `time` 'HH:MM', and `number`
or `count` a number (words are split on '_', '-' and '.', so `transfer_amount` and `people.count` qualify).
A value that does not parse stays as text, so the flow can still ask again.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from chatwright.dialogue.types import EntityValue
from chatwright.nlu.normalise import number_value, parse_amount, parse_date, parse_number, parse_time
from chatwright.nlu.pattern_entities import PatternEntities
from chatwright.nlu.spacy_entities import SpacyEntities
from chatwright.nlu.synonyms import Synonyms
from chatwright.nlu.training_data import SlotSpec

_EXTRACTOR_RANK = {"model": 0, "regex": 1, "lookup": 2, "spacy": 3}


class EntityExtractor:
    """Merges the entities of a message; spaCy is optional (None skips the generic types)."""

    def __init__(self, slots: Mapping[str, SlotSpec], *, spacy: SpacyEntities | None) -> None:
        self._slots = frozenset(slots)
        self._patterns = PatternEntities(slots)
        self._synonyms = Synonyms(slots)
        self._spacy = spacy

    def extract(
        self, text: str, model_entities: Sequence[EntityValue] = (), *, today: datetime.date | None = None
    ) -> tuple[EntityValue, ...]:
        """Entities of `text`, without overlaps, sorted by start; `model_entities` come from the trained model."""
        day = today or datetime.date.today()
        generic = self._spacy.extract(text, today=day) if self._spacy else ()
        return self._merge(text, [*model_entities, *generic], day)

    def extract_batch(
        self,
        texts: Sequence[str],
        model_entities_per_text: Sequence[Sequence[EntityValue]] | None = None,
        *,
        today: datetime.date | None = None,
    ) -> list[tuple[EntityValue, ...]]:
        """`extract` for many texts, running spaCy over them in one batch."""
        day = today or datetime.date.today()
        model = model_entities_per_text if model_entities_per_text is not None else [()] * len(texts)
        if len(model) != len(texts):
            raise ValueError(f"{len(texts)} texts but model entities for {len(model)}")
        generic = self._spacy.extract_batch(texts, today=day) if self._spacy else [()] * len(texts)
        return [
            self._merge(text, [*found, *spacy_found], day)
            for text, found, spacy_found in zip(texts, model, generic, strict=True)
        ]

    def _merge(self, text: str, found: list[EntityValue], today: datetime.date) -> tuple[EntityValue, ...]:
        candidates = [*found, *self._patterns.extract(text)]
        candidates.sort(key=lambda e: (e.entity not in self._slots, e.start - e.end,
                                       _EXTRACTOR_RANK.get(e.extractor, 0), e.start))
        kept: list[EntityValue] = []
        for entity in candidates:
            if all(entity.end <= other.start or other.end <= entity.start for other in kept):
                kept.append(entity)
        return tuple(sorted((self._slot_value(entity, today) for entity in kept), key=lambda e: (e.start, e.end)))

    def _slot_value(self, entity: EntityValue, today: datetime.date) -> EntityValue:
        if entity.entity not in self._slots or not isinstance(entity.value, str):
            return entity
        value = self._synonyms.canonical(entity.entity, entity.value)
        return replace(entity, value=typed_value(entity.entity, value, today))


def typed_value(slot: str, value: str, today: datetime.date) -> Any:
    """`value` parsed as the type the slot's name announces (see the module docstring), else unchanged."""
    words = set(re.split(r"[_.\-]", slot.lower()))
    if words & {"amount", "money"} and (amount := parse_amount(value)) is not None:
        return amount.to_json()
    if "date" in words and (date := parse_date(value, today)) is not None:
        return date.isoformat()
    if "time" in words and (time := parse_time(value)) is not None:
        return time.strftime("%H:%M")
    if words & {"number", "count"} and (number := parse_number(value)) is not None:
        return number_value(number)
    return value
