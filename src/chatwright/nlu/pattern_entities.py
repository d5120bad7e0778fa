"""Slot values found by the owner's regexes and lookup lists: exact, explainable, and needing no training.

A trained extractor misses values it never saw (a new card product, an IBAN); the lists and patterns in
entities.yaml catch them. Lookup matches whole words, case-insensitively, longest entry first, and includes
the synonym spellings so 'master card' is found even when only 'Mastercard' is in the lookup list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from chatwright.dialogue.types import EntityValue
from chatwright.nlu.synonyms import match_key
from chatwright.nlu.training_data import SlotSpec


class PatternEntities:
    """Regexes and lookup lists of all slots, compiled once."""

    def __init__(self, slots: Mapping[str, SlotSpec]) -> None:
        self._regexes = [(name, re.compile(pattern)) for name, spec in slots.items() for pattern in spec.regex]
        self._lookups: list[tuple[str, re.Pattern[str], dict[str, str]]] = []
        for name, spec in slots.items():
            terms = [*spec.lookup, *(term for canonical, more in spec.synonyms.items() for term in (canonical, *more))]
            spelling = {match_key(term): term for term in reversed(terms) if term.strip()}  # first spelling wins
            if spelling:
                self._lookups.append((name, _lookup_pattern(spelling), spelling))

    def extract(self, text: str) -> list[EntityValue]:
        """Every regex and lookup hit; hits of different slots may overlap (the caller picks among them)."""
        found = [
            EntityValue(name, match.group(), match.group(), match.start(), match.end(), "regex")
            for name, pattern in self._regexes
            for match in pattern.finditer(text)
            if match.end() > match.start()
        ]
        for name, pattern, spelling in self._lookups:
            for match in pattern.finditer(text):
                value = spelling[match_key(match.group())]
                found.append(EntityValue(name, value, match.group(), match.start(), match.end(), "lookup"))
        return found


def _lookup_pattern(spelling: Mapping[str, str]) -> re.Pattern[str]:
    """One alternation, longest term first so 'visa gold' beats 'visa'; any run of spaces matches a space."""
    terms = sorted(spelling.values(), key=lambda term: (-len(match_key(term)), match_key(term)))
    alternatives = (r"\s+".join(map(re.escape, term.split())) for term in terms)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)
