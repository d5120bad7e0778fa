"""Quality checks on NLU training data that a loader cannot reject outright but a trainer suffers from.

Conflicting labels and starved intents make a classifier learn noise; duplicates inflate test scores. Each
finding is an Issue that points back at the file and line of the example concerned.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from chatwright.nlu.training_data import Example, NluData, normalised_text

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    level: Level
    code: (
        str  # stable identifier: duplicate, conflict, entity_conflict, too_few_examples, few_slot_examples...
    )
    message: str
    source: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = (
            f"{self.source}:{self.line}: "
            if self.source and self.line
            else f"{self.source}: "
            if self.source
            else ""
        )
        return f"{where}{self.level}: {self.message}"


def validate_data(
    data: NluData, *, min_examples: int = 2, recommended_examples: int = 5, min_slot_examples: int = 2
) -> list[Issue]:
    """All issues, errors first, then by file and line.

    Errors: the same (normalised) text under two intents; intents below `min_examples`.
    Warnings: duplicates within an intent, one text annotated with different entities, intents below
    `recommended_examples`, slots declared but unused or used in fewer than `min_slot_examples` examples.
    """
    issues = [
        *_duplicates_and_conflicts(data.examples()),
        *_entity_conflicts(data.examples()),
        *_small_intents(data, min_examples, recommended_examples),
        *_sparse_slots(data, min_slot_examples),
    ]
    return sorted(issues, key=lambda issue: (issue.level != "error", issue.source or "", issue.line or 0))


def _where(example: Example) -> str:
    return (
        f"{example.source}:{example.line}"
        if example.source and example.line
        else example.source or "elsewhere"
    )


def _duplicates_and_conflicts(examples: list[Example]) -> list[Issue]:
    issues: list[Issue] = []
    first_by_key: dict[str, Example] = {}
    first_in_intent: dict[tuple[str, str], Example] = {}
    for example in examples:
        key = normalised_text(example.text)
        earlier = first_in_intent.get((example.intent, key))
        if earlier is not None:
            kind = "duplicate" if earlier.text == example.text else f"near-duplicate of {earlier.text!r}"
            issues.append(
                Issue(
                    "warning",
                    "duplicate",
                    f"{example.text!r} in intent {example.intent!r} is a {kind} ({_where(earlier)})",
                    example.source,
                    example.line,
                )
            )
            continue
        first_in_intent[(example.intent, key)] = example
        first = first_by_key.setdefault(key, example)
        if first.intent != example.intent:
            issues.append(
                Issue(
                    "error",
                    "conflict",
                    f"{example.text!r} is labelled {example.intent!r} here but "
                    f"{first.intent!r} at {_where(first)}",
                    example.source,
                    example.line,
                )
            )
    return issues


def _entity_conflicts(examples: list[Example]) -> list[Issue]:
    """The same text annotated two ways teaches the slot extractor both answers."""
    issues: list[Issue] = []
    first_by_text: dict[str, Example] = {}
    for example in examples:
        first = first_by_text.setdefault(example.text, example)
        if {(s.start, s.end, s.slot) for s in first.entities} != {
            (s.start, s.end, s.slot) for s in example.entities
        }:
            issues.append(
                Issue(
                    "warning",
                    "entity_conflict",
                    f"{example.markup!r} is annotated differently at {_where(first)}: {first.markup!r}",
                    example.source,
                    example.line,
                )
            )
    return issues


def _small_intents(data: NluData, min_examples: int, recommended_examples: int) -> list[Issue]:
    issues: list[Issue] = []
    for intent in data.intents.values():
        count = len(intent.examples)
        first = intent.examples[0] if intent.examples else None
        source = intent.source or (first.source if first else None)
        line = intent.line or (first.line if first else None)
        if count < min_examples:
            issues.append(
                Issue(
                    "error",
                    "too_few_examples",
                    f"intent {intent.name!r} has {count} example(s); at least {min_examples} are needed",
                    source,
                    line,
                )
            )
        elif count < recommended_examples:
            issues.append(
                Issue(
                    "warning",
                    "few_examples",
                    f"intent {intent.name!r} has {count} examples; "
                    f"{recommended_examples} or more make it reliable",
                    source,
                    line,
                )
            )
    return issues


def _sparse_slots(data: NluData, min_slot_examples: int) -> list[Issue]:
    uses = Counter(slot for example in data.examples() for slot in {span.slot for span in example.entities})
    issues: list[Issue] = []
    for name in sorted(set(data.slots) | set(uses)):
        if uses[name] == 0:
            issues.append(
                Issue("warning", "unused_slot", f"slot {name!r} is declared but no example marks it")
            )
        elif uses[name] < min_slot_examples:
            first = next(e for e in data.examples() if any(span.slot == name for span in e.entities))
            issues.append(
                Issue(
                    "warning",
                    "few_slot_examples",
                    f"slot {name!r} is marked in {uses[name]} "
                    f"example(s); {min_slot_examples} or more are needed to learn it",
                    first.source,
                    first.line,
                )
            )
    return issues
