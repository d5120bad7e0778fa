"""Map the way a user wrote a slot value to the one value actions work with ('master card' -> 'Mastercard').

Without this every spelling would be a different value to a flow; owners list the spellings in entities.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping

from chatwright.nlu.training_data import SlotSpec


def match_key(value: str) -> str:
    """How spellings are compared: casefolded, any run of whitespace as one space."""
    return " ".join(value.casefold().split())


class Synonyms:
    """Case- and whitespace-insensitive map of each slot's synonym variants to their canonical value.

    A lookup entry is canonical as the owner spelled it ('visa' -> 'Visa'), unless a synonym lists it.
    """

    def __init__(self, slots: Mapping[str, SlotSpec]) -> None:
        self._canonical: dict[str, dict[str, str]] = {}
        for name, spec in slots.items():
            table = self._canonical.setdefault(name, {})
            table.update((match_key(entry), entry) for entry in spec.lookup)
            for canonical, variants in spec.synonyms.items():
                for spelling in (canonical, *variants):
                    table[match_key(spelling)] = canonical

    def canonical(self, slot: str, value: str) -> str:
        """The canonical value for `value` of `slot`, or `value` unchanged when no synonym lists it."""
        return self._canonical.get(slot, {}).get(match_key(value), value)
