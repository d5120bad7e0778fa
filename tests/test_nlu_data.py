"""Markup parsing and intents.yaml / entities.yaml loading, writing and their file:line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatwright.dialogue.types import Route
from chatwright.errors import ConfigError
from chatwright.nlu.markup import EntitySpan, MarkupError, from_bio, parse_markup, render_markup, to_bio
from chatwright.nlu.training_data import load_nlu_data, write_entities_yaml, write_intents_yaml

INTENTS = """\
intents:
  greeting:
    description: The user says hello.
    route: greeting
    examples:
      - hi
      - "yes"
  top_up:
    examples:
      - how much is a top up with my [Visa](card_type)
      - top up [20 euros](amount) please
"""

ENTITIES = """\
slots:
  card_type:
    synonyms: {Visa: [visa card, VISA], Mastercard: [master card, MC]}
    lookup: [Visa, Mastercard, Maestro]
  amount:
    regex: '\\d+(?:[.,]\\d+)?\\s*(?:euros?|eur|€)'
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- markup ---------------------------------------------------------------------------------------------


def test_parse_markup_gives_plain_text_and_spans() -> None:
    text, spans = parse_markup("send [20 euros](amount) to my [Visa](card_type)")
    assert text == "send 20 euros to my Visa"
    assert spans == (EntitySpan(5, 13, "20 euros", "amount"), EntitySpan(20, 24, "Visa", "card_type"))
    assert [text[s.start : s.end] for s in spans] == ["20 euros", "Visa"]


def test_render_markup_round_trips_including_escaped_brackets() -> None:
    markup = r"is \[beta\] live for [Visa](card_type)?"
    text, spans = parse_markup(markup)
    assert text == "is [beta] live for Visa?"
    assert render_markup(text, spans) == markup


@pytest.mark.parametrize(
    ("markup", "message", "column"),
    [
        ("top up [20 euros", "unbalanced '['", 8),
        ("top up 20] euros", "unbalanced ']'", 10),
        ("top up [20 euros]() now", "empty slot name", 18),
        ("top up [20 euros] (amount)", "must be followed by '(slot)'", 18),
        ("top up [20 euros](amount now", "unbalanced '('", 18),
        ("top up [](amount)", "empty entity value", 8),
        ("[a [b](x)](y)", "cannot nest", 4),
    ],
)
def test_markup_errors_say_what_and_where(markup: str, message: str, column: int) -> None:
    with pytest.raises(MarkupError, match=re.escape(message)) as caught:
        parse_markup(markup)
    assert caught.value.column == column


def test_bio_round_trip_and_i_tag_without_b() -> None:
    text, spans = parse_markup("play [the beatles](artist) on [spotify](service)")
    tokens, tags = to_bio(text, spans)
    assert tags == ["O", "B-artist", "I-artist", "O", "B-service"]
    assert from_bio(tokens, tags) == (text, spans)
    # An I- tag that does not continue an entity of its slot starts a new one.
    assert from_bio(["a", "b"], ["I-x", "I-y"])[1] == (EntitySpan(0, 1, "a", "x"), EntitySpan(2, 3, "b", "y"))
    with pytest.raises(ValueError, match="invalid tag 'X-artist' for token 1"):
        from_bio(["a"], ["X-artist"])


# --- load / write ---------------------------------------------------------------------------------------


def test_load_reads_intents_routes_slots_and_example_lines(tmp_path: Path) -> None:
    data = load_nlu_data(write(tmp_path, "intents.yaml", INTENTS), write(tmp_path, "entities.yaml", ENTITIES))
    assert data.labels == ["greeting", "top_up"]
    assert data.intents["greeting"].route is Route.GREETING
    assert data.intents["top_up"].route is Route.KNOWLEDGE
    visa = data.intents["top_up"].examples[0]
    assert (visa.text, visa.line) == ("how much is a top up with my Visa", 10)
    assert visa.entities == (EntitySpan(29, 33, "Visa", "card_type"),)
    assert data.slots["card_type"].synonyms["Visa"] == ("visa card", "VISA")
    assert data.slots["amount"].regex == (r"\d+(?:[.,]\d+)?\s*(?:euros?|eur|€)",)


def test_without_entities_file_slots_are_declared_by_use(tmp_path: Path) -> None:
    data = load_nlu_data(write(tmp_path, "intents.yaml", INTENTS))
    assert sorted(data.slots) == ["amount", "card_type"]
    assert data.slots["amount"].regex == ()


def test_write_then_load_gives_the_same_data(tmp_path: Path) -> None:
    data = load_nlu_data(write(tmp_path, "intents.yaml", INTENTS), write(tmp_path, "entities.yaml", ENTITIES))
    out = tmp_path / "out"
    write_intents_yaml(data, out / "intents.yaml")
    write_entities_yaml(data, out / "entities.yaml")
    written = (out / "intents.yaml").read_text(encoding="utf-8")
    assert "      - how much is a top up with my [Visa](card_type)\n" in written
    assert "- 'yes'" in written  # quoted, so YAML reads it back as text
    again = load_nlu_data(out / "intents.yaml", out / "entities.yaml")
    assert again.slots == data.slots
    assert [(e.intent, e.markup) for e in again.examples()] == [(e.intent, e.markup) for e in data.examples()]
    assert again.intents["greeting"].description == "The user says hello."
    write_intents_yaml(again, out / "again.yaml")
    assert (out / "again.yaml").read_text(encoding="utf-8") == written


@pytest.mark.parametrize(
    ("intents", "line", "message"),
    [
        ("intents:\n  greeting:\n    examples:\n      - hi\n", 2, "has 1 example"),
        ("intents:\n  a:\n    examples:\n      - hi\n      - top up [20](sum)\n", 5, "unknown slot 'sum'"),
        ("intents:\n  a:\n    examples:\n      - hi\n      - top up [20 (amount)\n", 5, "unbalanced '['"),
        ("intents:\n  a:\n    route: shop\n    examples: [hi, hello]\n", 3, "Input should be 'knowledge'"),
        ("intents:\n  a:\n    examples:\n      - hi\n      - no\n", 5, "is not text; put it in quotes"),
        ("intents:\n  a:\n    exmples: [hi, hello]\n", 3, "Extra inputs are not permitted"),
    ],
)
def test_load_errors_name_file_and_line(tmp_path: Path, intents: str, line: int, message: str) -> None:
    intents_path = write(tmp_path, "intents.yaml", intents)
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        load_nlu_data(intents_path, write(tmp_path, "entities.yaml", ENTITIES))
    assert (caught.value.path, caught.value.line) == (intents_path, line)
    assert str(caught.value).startswith(f"{intents_path}:{line}: ")


def test_invalid_regex_names_entities_file_and_line(tmp_path: Path) -> None:
    entities = write(tmp_path, "entities.yaml", "slots:\n  amount:\n    regex: '(\\d+'\n")
    with pytest.raises(ConfigError, match="invalid regular expression") as caught:
        load_nlu_data(write(tmp_path, "intents.yaml", INTENTS), entities)
    assert (caught.value.path, caught.value.line) == (entities, 3)


def test_synonym_under_two_values_is_an_error(tmp_path: Path) -> None:
    entities = write(
        tmp_path, "entities.yaml", "slots:\n  card:\n    synonyms:\n      Visa: [VC]\n      Mc: [vc]\n"
    )
    with pytest.raises(ConfigError, match="'vc' is listed under both 'Visa' and 'Mc'") as caught:
        load_nlu_data(
            write(tmp_path, "intents.yaml", "intents:\n  a:\n    examples: [hi, hello]\n"), entities
        )
    assert caught.value.line == 5


def test_min_examples_zero_lets_validation_see_every_small_intent(tmp_path: Path) -> None:
    data = load_nlu_data(
        write(tmp_path, "intents.yaml", "intents:\n  a:\n    examples: [hi]\n"), min_examples=0
    )
    assert [e.text for e in data.examples()] == ["hi"]
