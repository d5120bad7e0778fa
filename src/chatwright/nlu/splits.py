"""Seeded, stratified train/validation/test splits and cross-validation folds of NLU data.

Stratifying per intent keeps every intent in train (a classifier cannot predict a label it never saw) and
keeps proportions comparable across splits. Examples that normalise to the same text always land in the same
split, so a duplicate cannot leak from train into test and inflate the score.
"""

from __future__ import annotations

import random
from dataclasses import replace

from chatwright.nlu.training_data import Example, NluData, normalised_text


def split_data(
    data: NluData, validation: float = 0.1, test: float = 0.1, seed: int = 42
) -> tuple[NluData, NluData, NluData]:
    """(train, validation, test); the same data and seed always give the same split.

    Every intent keeps at least one example in train; validation and test hold only the intents that got
    examples. Within each split, examples keep their original order.
    """
    if validation < 0 or test < 0 or validation + test >= 1:
        raise ValueError(
            f"validation ({validation}) and test ({test}) fractions must be >= 0 and sum below 1"
        )
    parts: tuple[dict[str, tuple[Example, ...]], ...] = ({}, {}, {})
    for name, intent in data.intents.items():
        for part, examples in zip(
            parts, _split_intent(intent.examples, validation, test, f"{seed}/{name}"), strict=True
        ):
            if examples:
                part[name] = examples
    train, val, tst = (
        NluData(
            {name: replace(data.intents[name], examples=examples) for name, examples in part.items()},
            data.slots,
        )
        for part in parts
    )
    return train, val, tst


def _split_intent(
    examples: tuple[Example, ...], validation: float, test: float, seed: str
) -> tuple[tuple[Example, ...], ...]:
    groups: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(normalised_text(example.text), []).append(index)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    spare = max(len(order) - 1, 0)  # groups that may leave train
    n_test = min(round(len(order) * test), spare)
    n_validation = min(round(len(order) * validation), spare - n_test)
    chosen = (order[n_test + n_validation :], order[n_test : n_test + n_validation], order[:n_test])
    return tuple(tuple(examples[i] for i in sorted(i for group in part for i in group)) for part in chosen)


def cross_validation_folds(data: NluData, k: int, seed: int = 42) -> list[tuple[NluData, NluData]]:
    """(train, test) for each of `k` folds; every example is tested in at most one fold.

    Each intent's groups of same-text examples are shuffled and dealt round-robin over the folds, so every
    fold holds each intent in proportion. An intent with a single group cannot be tested without leaving
    train, so it stays in train of every fold; intents with fewer groups than `k` are tested in some folds
    only but are in train of all. The first fold an intent is dealt to rotates, so folds stay even in size.
    """
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, not {k}")
    tests: list[dict[str, set[int]]] = [{} for _ in range(k)]  # per fold: intent -> indices of its examples
    dealt = 0
    for name, intent in data.intents.items():
        groups: dict[str, list[int]] = {}
        for index, example in enumerate(intent.examples):
            groups.setdefault(normalised_text(example.text), []).append(index)
        if len(groups) < 2:
            continue
        order = list(groups.values())
        random.Random(f"{seed}/{name}").shuffle(order)
        for group in order:
            tests[dealt % k].setdefault(name, set()).update(group)
            dealt += 1
    folds: list[tuple[NluData, NluData]] = []
    for test in tests:
        train_parts = {
            name: tuple(example for i, example in enumerate(intent.examples) if i not in test.get(name, set()))
            for name, intent in data.intents.items()
        }
        test_parts = {name: tuple(data.intents[name].examples[i] for i in sorted(test[name])) for name in test}
        folds.append((_subset(data, train_parts), _subset(data, test_parts)))
    return folds


def _subset(data: NluData, parts: dict[str, tuple[Example, ...]]) -> NluData:
    """`data` with each intent in `parts` holding only the given examples, in the order of `data`."""
    return NluData(
        {name: replace(data.intents[name], examples=parts[name]) for name in data.intents if name in parts},
        data.slots,
    )
