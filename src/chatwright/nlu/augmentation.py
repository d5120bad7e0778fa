"""More annotated examples from the ones an owner wrote, by swapping entity values.

Owners write few examples, and each names one card or one amount; an extractor trained on them learns those
words rather than the slot. Substituting other known values of the slot (seen in the data, in lookup lists,
in synonyms) and synonym spellings of the same value teaches it the context instead. Seeded and
deterministic so a retrained model can be compared with the last one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace

from chatwright.nlu.markup import EntitySpan
from chatwright.nlu.synonyms import match_key
from chatwright.nlu.training_data import Example, IntentSpec, NluData, normalised_text

AUGMENTED_SOURCE = "augmented"
_ATTEMPTS_PER_COPY = 4

# Picks the new text of a span, or None to leave it as written.
_Replacement = Callable[[EntitySpan], str | None]


def augment(data: NluData, *, copies: int = 2, seed: int = 0) -> NluData:
    """`data` plus up to `copies` new examples per example with entities, appended to its intent.

    New examples alternate between synonym replacement (a span becomes another spelling of the same value) and
    entity value substitution (every span becomes another value of its slot). An example whose normalised text
    already exists is never added, so augmentation cannot create duplicates or leak one across a split.
    """
    if copies < 0:
        raise ValueError(f"copies must be >= 0, not {copies}")
    values = _slot_values(data)
    groups = _synonym_groups(data)
    rng = random.Random(seed)
    seen = {normalised_text(example.text) for example in data.examples()}

    def synonym(span: EntitySpan) -> str | None:
        key = match_key(span.value)
        others = [v for v in groups.get((span.slot, key), ()) if match_key(v) != key]
        return rng.choice(others) if others else None

    def substitute(span: EntitySpan) -> str | None:
        others = [v for v in values.get(span.slot, ()) if match_key(v) != match_key(span.value)]
        return rng.choice(others) if others else None

    intents: dict[str, IntentSpec] = {}
    for name, intent in data.intents.items():
        added: list[Example] = []
        for example in intent.examples:
            if not example.entities:
                continue
            made = 0
            for attempt in range(copies * _ATTEMPTS_PER_COPY):
                if made == copies:
                    break
                new = _rewrite(example, synonym if attempt % 2 == 0 else substitute)
                if new is not None and normalised_text(new.text) not in seen:
                    seen.add(normalised_text(new.text))
                    added.append(new)
                    made += 1
        intents[name] = replace(intent, examples=(*intent.examples, *added))
    return NluData(intents, data.slots)


def _rewrite(example: Example, replacement: _Replacement) -> Example | None:
    """The example with each span's text replaced as `replacement` says, offsets shifted; None if nothing changed."""
    text = ""
    spans: list[EntitySpan] = []
    position = 0
    changed = False
    for span in sorted(example.entities, key=lambda s: s.start):
        new_value = replacement(span)
        changed = changed or new_value is not None
        value = span.value if new_value is None else new_value
        text += example.text[position : span.start]
        spans.append(EntitySpan(len(text), len(text) + len(value), value, span.slot))
        text += value
        position = span.end
    if not changed:
        return None
    return Example(text + example.text[position:], example.intent, tuple(spans), AUGMENTED_SOURCE)


def _slot_values(data: NluData) -> dict[str, list[str]]:
    """Each slot's known values, one spelling per value, in a fixed order: data, lookup, synonyms."""
    values: dict[str, dict[str, str]] = {}
    for example in data.examples():
        for span in example.entities:
            values.setdefault(span.slot, {}).setdefault(match_key(span.value), span.value)
    for name, spec in data.slots.items():
        known = values.setdefault(name, {})
        for value in (*spec.lookup, *_spellings(spec.synonyms)):
            known.setdefault(match_key(value), value)
    return {name: list(known.values()) for name, known in values.items() if known}


def _synonym_groups(data: NluData) -> dict[tuple[str, str], Sequence[str]]:
    """(slot, spelling key) -> every spelling of the same canonical value, the canonical first."""
    groups: dict[tuple[str, str], Sequence[str]] = {}
    for name, spec in data.slots.items():
        for canonical, variants in spec.synonyms.items():
            group = (canonical, *variants)
            for spelling in group:
                groups[(name, match_key(spelling))] = group
    return groups


def _spellings(synonyms: dict[str, tuple[str, ...]]) -> list[str]:
    return [spelling for canonical, variants in synonyms.items() for spelling in (canonical, *variants)]
