"""Data validation (conflicts, duplicates, small intents, sparse slots) and seeded stratified splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatwright.nlu.data_checks import validate_data
from chatwright.nlu.importers import import_dataset
from chatwright.nlu.splits import split_data
from chatwright.nlu.training_data import NluData, load_nlu_data, normalised_text
from shared_data import SHARED_DATA

INTENTS = """\
intents:
  block_card:
    examples:
      - block my card
      - Block my card!
      - freeze my [visa](card_type)
      - stop my card
      - my card was stolen
  lost_card:
    examples:
      - I lost my card
      - block   my card
      - freeze my visa
  greeting:
    route: greeting
    examples:
      - hi
"""


def load(tmp_path: Path) -> NluData:
    path = tmp_path / "intents.yaml"
    path.write_text(INTENTS, encoding="utf-8")
    return load_nlu_data(path, min_examples=0)


def test_validate_reports_conflicts_duplicates_and_small_intents(tmp_path: Path) -> None:
    issues = validate_data(load(tmp_path))
    found = {(issue.level, issue.code, issue.line) for issue in issues}
    assert ("error", "conflict", 12) in found  # "block   my card" is block_card at line 4
    assert ("error", "conflict", 13) in found  # "freeze my visa" is block_card at line 6
    assert ("warning", "entity_conflict", 13) in found  # and line 6 marks "visa", this one does not
    assert ("warning", "duplicate", 5) in found  # "Block my card!" normalises to "block my card"
    assert ("error", "too_few_examples", 14) in found  # greeting, pointing at its intent line
    assert ("warning", "few_examples", 9) in found  # lost_card has 3
    assert not any(issue[2] == 2 for issue in found)  # block_card has 5 examples
    assert ("warning", "few_slot_examples", 6) in found  # card_type is marked once
    assert issues[0].level == "error" and issues[-1].level == "warning"
    conflict = next(issue for issue in issues if issue.code == "conflict")
    assert str(conflict) == (
        f"{tmp_path / 'intents.yaml'}:12: error: 'block   my card' is labelled 'lost_card' here but "
        f"'block_card' at {tmp_path / 'intents.yaml'}:4"
    )


def test_validate_finds_entity_conflicts_and_unused_slots(tmp_path: Path) -> None:
    (tmp_path / "intents.yaml").write_text(
        "intents:\n  pay:\n    examples:\n      - pay with [visa](card)\n      - pay with visa\n",
        encoding="utf-8",
    )
    (tmp_path / "entities.yaml").write_text("slots:\n  card: {}\n  amount: {}\n", encoding="utf-8")
    data = load_nlu_data(tmp_path / "intents.yaml", tmp_path / "entities.yaml")
    codes = {(issue.code, issue.line) for issue in validate_data(data)}
    assert ("entity_conflict", 5) in codes
    assert ("unused_slot", None) in codes


def test_validate_finds_the_real_banking77_label_conflict() -> None:
    data = import_dataset(SHARED_DATA / "banking77" / "train.csv")
    conflicts = [issue for issue in validate_data(data) if issue.code == "conflict"]
    assert conflicts and all(issue.level == "error" for issue in conflicts)
    assert any("'Has my top-up gone through?'" in issue.message for issue in conflicts)


def test_split_is_deterministic_stratified_and_disjoint() -> None:
    data = import_dataset(SHARED_DATA / "snips" / "test")
    train, validation, test = split_data(data, validation=0.1, test=0.2, seed=7)
    again = split_data(data, validation=0.1, test=0.2, seed=7)
    assert [part.examples() for part in again] == [part.examples() for part in (train, validation, test)]
    assert split_data(data, seed=8)[2].examples() != split_data(data, seed=7)[2].examples()

    keys = [{(e.source, e.line) for e in part.examples()} for part in (train, validation, test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert sum(len(k) for k in keys) == len(data.examples())
    texts = [{normalised_text(e.text) for e in part.examples()} for part in (train, validation, test)]
    assert not (texts[0] & texts[2] or texts[0] & texts[1])  # duplicates never straddle splits

    for name, intent in data.intents.items():
        share = len(test.intents[name].examples) / len(intent.examples)
        assert share == pytest.approx(0.2, abs=0.03)
        assert train.intents[name].examples
    assert train.slots == data.slots


def test_split_keeps_every_intent_in_train_even_when_tiny(tmp_path: Path) -> None:
    train, validation, test = split_data(load(tmp_path), validation=0.4, test=0.4)
    assert train.labels == ["block_card", "greeting", "lost_card"]
    assert "greeting" not in validation.intents and "greeting" not in test.intents
    assert train.intents["greeting"].route.value == "greeting"
    with pytest.raises(ValueError, match="must be >= 0 and sum below 1"):
        split_data(load(tmp_path), validation=0.5, test=0.5)
