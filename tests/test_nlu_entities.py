"""Entities from spaCy, the owner's regexes and lookups, and the trained model, merged into one list per message."""

from __future__ import annotations

import datetime

import pytest

from chatwright.dialogue.types import EntityValue
from chatwright.errors import ModelLoadError
from chatwright.nlu.entity_extractor import EntityExtractor, typed_value
from chatwright.nlu.pattern_entities import PatternEntities
from chatwright.nlu.spacy_entities import SpacyEntities, load_spacy
from chatwright.nlu.synonyms import Synonyms
from chatwright.nlu.training_data import SlotSpec

TODAY = datetime.date(2026, 3, 18)  # a Wednesday

SLOTS = {
    "card_type": SlotSpec(
        "card_type",
        synonyms={"Mastercard": ("master card", "MC"), "Visa Gold": ("gold visa",)},
        lookup=("Visa", "Visa Gold", "Maestro"),
    ),
    "iban": SlotSpec("iban", regex=(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,8}\b",)),
    "amount": SlotSpec("amount", regex=(r"\d+(?:[.,]\d+)?\s*(?:euros?|eur|€)",)),
    "pickup_date": SlotSpec("pickup_date", lookup=("tomorrow", "today")),
    "people.count": SlotSpec("people.count"),
}


@pytest.fixture(scope="module")
def spacy_entities() -> SpacyEntities:
    return SpacyEntities()


def simple(entities: tuple[EntityValue, ...]) -> list[tuple[str, object, str, str]]:
    return [(e.entity, e.value, e.text, e.extractor) for e in entities]


# --- spaCy --------------------------------------------------------------------------------------------


def test_spacy_finds_person_amount_and_date(spacy_entities: SpacyEntities) -> None:
    text = "Send 50 euros to Anna tomorrow"
    found = spacy_entities.extract(text, today=TODAY)
    assert simple(found) == [
        ("MONEY", {"amount": 50.0, "currency": "EUR"}, "50 euros", "spacy"),
        ("PERSON", "Anna", "Anna", "spacy"),
        ("DATE", "2026-03-19", "tomorrow", "spacy"),
    ]
    assert all(text[e.start : e.end] == e.text for e in found)


def test_spacy_normalises_every_type(spacy_entities: SpacyEntities) -> None:
    found = spacy_entities.extract("Pay $1,200.50 to Acme Corp in London next Friday at 3pm", today=TODAY)
    assert {e.entity: e.value for e in found} == {
        "MONEY": {"amount": 1200.5, "currency": "USD"},
        "ORG": "Acme Corp",
        "GPE": "London",
        "DATE": "2026-03-20",
        "TIME": "15:00",
    }
    counted = spacy_entities.extract("I want three tickets for March 12th", today=TODAY)
    assert simple(counted) == [("CARDINAL", 3, "three", "spacy"), ("DATE", "2027-03-12", "March 12th", "spacy")]


def test_spacy_keeps_text_it_cannot_normalise(spacy_entities: SpacyEntities) -> None:
    found = spacy_entities.extract("We met last summer", today=TODAY)
    assert [(e.entity, e.value) for e in found] == [("DATE", "last summer")]


def test_spacy_returns_only_the_chosen_labels() -> None:
    people = SpacyEntities(["PERSON"])
    assert simple(people.extract("Send 50 euros to Anna tomorrow", today=TODAY)) == [
        ("PERSON", "Anna", "Anna", "spacy")
    ]
    no_money = SpacyEntities(["CARDINAL"])
    assert [(e.entity, e.value) for e in no_money.extract("Send 50 euros to Anna")] == [("CARDINAL", 50)]


def test_spacy_batch_matches_one_by_one(spacy_entities: SpacyEntities) -> None:
    texts = ["Send 50 euros to Anna tomorrow", "hello", "Call Microsoft on Monday"]
    batch = spacy_entities.extract_batch(texts, today=TODAY)
    assert batch == [spacy_entities.extract(text, today=TODAY) for text in texts]
    assert batch[1] == ()


def test_spacy_pipeline_loads_once_and_runs_only_ner() -> None:
    nlp = load_spacy()
    assert load_spacy() is nlp
    assert nlp.pipe_names == ["ner"]


def test_spacy_rejects_unknown_labels() -> None:
    with pytest.raises(ValueError, match="NORP"):
        SpacyEntities(["PERSON", "NORP"])


def test_missing_spacy_model_is_a_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match="no_such_spacy_model"):
        SpacyEntities(model="no_such_spacy_model")


# --- regex, lookup, synonyms --------------------------------------------------------------------------


def test_regex_and_lookup_hits() -> None:
    found = PatternEntities(SLOTS).extract("Move 20 euros from my VISA to DE89 3704 0044 0532 0130 00")
    assert sorted(simple(tuple(found)), key=lambda e: e[2]) == [
        ("amount", "20 euros", "20 euros", "regex"),
        ("iban", "DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00", "regex"),
        ("card_type", "Visa", "VISA", "lookup"),
    ]


def test_lookup_prefers_the_longest_entry_and_whole_words() -> None:
    patterns = PatternEntities(SLOTS)
    assert simple(tuple(patterns.extract("is my visa gold blocked"))) == [
        ("card_type", "Visa Gold", "visa gold", "lookup")
    ]
    assert patterns.extract("visas and advisable maestros") == []


def test_lookup_finds_synonym_spellings() -> None:
    found = PatternEntities(SLOTS).extract("my Master  Card and my mc")
    assert [(e.value, e.text, e.start) for e in found] == [("master card", "Master  Card", 3), ("MC", "mc", 23)]


def test_synonyms_map_to_the_canonical_value() -> None:
    synonyms = Synonyms(SLOTS)
    assert synonyms.canonical("card_type", "MASTER   card") == "Mastercard"
    assert synonyms.canonical("card_type", "mastercard") == "Mastercard"
    assert synonyms.canonical("card_type", "gold visa") == "Visa Gold"
    assert synonyms.canonical("card_type", "maestro") == "Maestro"  # lookup entries are canonical as spelled
    assert synonyms.canonical("card_type", "Amex") == "Amex"
    assert synonyms.canonical("iban", "master card") == "master card"
    assert synonyms.canonical("unknown_slot", "MC") == "MC"


@pytest.mark.parametrize(
    ("slot", "value", "expected"),
    [
        ("amount", "20 euros", {"amount": 20.0, "currency": "EUR"}),
        ("transfer_amount", "£5", {"amount": 5.0, "currency": "GBP"}),
        ("money", "twelve", {"amount": 12.0, "currency": None}),
        ("pickup_date", "next friday", "2026-03-20"),
        ("pickup-time", "3pm", "15:00"),
        ("people.count", "three", 3),
        ("number", "2.5", 2.5),
        ("amount", "a lot", "a lot"),
        ("date", "someday", "someday"),
        ("dated_ref", "tomorrow", "tomorrow"),
        ("card_type", "20", "20"),
    ],
)
def test_slot_names_say_how_values_are_typed(slot: str, value: str, expected: object) -> None:
    assert typed_value(slot, value, TODAY) == expected


# --- merging ------------------------------------------------------------------------------------------


def model_entity(text: str, slot: str, value: str, confidence: float = 0.9) -> EntityValue:
    start = text.index(value)
    return EntityValue(slot, value, value, start, start + len(value), "model", confidence)


def test_extractor_merges_model_patterns_and_spacy(spacy_entities: SpacyEntities) -> None:
    text = "Send 50 euros to Anna tomorrow with my master card"
    extractor = EntityExtractor(SLOTS, spacy=spacy_entities)
    found = extractor.extract(text, [model_entity(text, "pickup_date", "tomorrow")], today=TODAY)
    assert simple(found) == [
        ("amount", {"amount": 50.0, "currency": "EUR"}, "50 euros", "regex"),  # beats spaCy's MONEY
        ("PERSON", "Anna", "Anna", "spacy"),
        ("pickup_date", "2026-03-19", "tomorrow", "model"),  # beats the lookup hit and spaCy's DATE
        ("card_type", "Mastercard", "master card", "lookup"),
    ]
    assert found[-1].confidence == 1.0 and found[2].confidence == 0.9


def test_owner_slots_beat_spacy_even_when_shorter(spacy_entities: SpacyEntities) -> None:
    text = "Pay Acme Corp tomorrow"
    extractor = EntityExtractor(SLOTS, spacy=spacy_entities)
    assert simple(extractor.extract(text, [model_entity(text, "card_type", "Acme")], today=TODAY)) == [
        ("card_type", "Acme", "Acme", "model"),
        ("pickup_date", "2026-03-19", "tomorrow", "lookup"),
    ]


def test_longer_span_wins_between_owner_slots() -> None:
    slots = {
        "card_type": SLOTS["card_type"],
        "product": SlotSpec("product", lookup=("gold",)),
        "bank": SlotSpec("bank", lookup=("visa gold card services",)),
    }
    extractor = EntityExtractor(slots, spacy=None)
    assert simple(extractor.extract("my visa gold card")) == [("card_type", "Visa Gold", "visa gold", "lookup")]
    assert simple(extractor.extract("call visa gold card services")) == [
        ("bank", "visa gold card services", "visa gold card services", "lookup")
    ]


def test_model_wins_a_tie_and_its_values_get_synonyms_and_types() -> None:
    text = "top up 20 euros on my MC for three people"
    model = [
        model_entity(text, "amount", "20 euros"),
        model_entity(text, "card_type", "MC"),
        model_entity(text, "people.count", "three"),
    ]
    found = EntityExtractor(SLOTS, spacy=None).extract(text, model)
    assert simple(found) == [
        ("amount", {"amount": 20.0, "currency": "EUR"}, "20 euros", "model"),
        ("card_type", "Mastercard", "MC", "model"),
        ("people.count", 3, "three", "model"),
    ]


def test_extract_batch_matches_extract(spacy_entities: SpacyEntities) -> None:
    extractor = EntityExtractor(SLOTS, spacy=spacy_entities)
    texts = ["Send 50 euros to Anna tomorrow", "block my visa", "thanks"]
    model = [[], [model_entity(texts[1], "card_type", "visa")], []]
    batch = extractor.extract_batch(texts, model, today=TODAY)
    assert batch == [extractor.extract(text, found, today=TODAY) for text, found in zip(texts, model, strict=True)]
    assert simple(batch[1]) == [("card_type", "Visa", "visa", "model")]
    assert extractor.extract_batch(texts, today=TODAY)[1][0].extractor == "lookup"
    with pytest.raises(ValueError, match="3 texts but model entities for 1"):
        extractor.extract_batch(texts, [[]])
