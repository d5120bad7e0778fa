"""Augmented training data: more examples by swapping entity values, deterministic and free of duplicates."""

from __future__ import annotations

from chatwright.nlu.augmentation import AUGMENTED_SOURCE, augment
from chatwright.nlu.markup import parse_markup
from chatwright.nlu.training_data import Example, IntentSpec, NluData, SlotSpec, normalised_text

SLOTS = {
    "card_type": SlotSpec("card_type", synonyms={"Mastercard": ("master card", "MC")}, lookup=("Visa", "Maestro")),
    "amount": SlotSpec("amount"),
}


def example(markup: str, intent: str) -> Example:
    text, spans = parse_markup(markup)
    return Example(text, intent, spans, "intents.yaml", 1)


def nlu_data(*intents: tuple[str, list[str]]) -> NluData:
    return NluData(
        {name: IntentSpec(name, tuple(example(m, name) for m in markups)) for name, markups in intents}, SLOTS
    )


DATA = nlu_data(
    ("top_up", ["top up my [Visa](card_type) with [20 euros](amount)", "add [50 euros](amount) to my card"]),
    ("block_card", ["block my [master card](card_type)", "my [Maestro](card_type) was stolen"]),
    ("greeting", ["hi", "hello there"]),
)


def added(result: NluData) -> list[Example]:
    return [e for e in result.examples() if e.source == AUGMENTED_SOURCE]


def test_augment_adds_copies_per_annotated_example_with_correct_spans() -> None:
    result = augment(DATA, copies=2)
    new = added(result)
    # 4 annotated examples, 2 copies each, but '50 euros' has only one other known value ('20 euros')
    assert len(new) == 7
    for item in new:
        assert item.entities
        for span in item.entities:
            assert item.text[span.start : span.end] == span.value
    assert result.intents["greeting"].examples == DATA.intents["greeting"].examples
    assert result.slots == DATA.slots


def test_augment_keeps_originals_first_and_intent_labels() -> None:
    result = augment(DATA, copies=3)
    for name, intent in DATA.intents.items():
        examples = result.intents[name].examples
        assert examples[: len(intent.examples)] == intent.examples
        assert all(e.intent == name for e in examples)


def test_substitution_uses_known_values_and_synonyms_use_variants() -> None:
    new = added(augment(DATA, copies=3))
    card_values = {span.value for e in new for span in e.entities if span.slot == "card_type"}
    assert card_values <= {"Visa", "Maestro", "Mastercard", "master card", "MC"}
    blocked = {e.text for e in new if e.intent == "block_card"}
    assert blocked & {"block my MC", "block my Mastercard"}  # synonym replacement
    amounts = {span.value for e in new for span in e.entities if span.slot == "amount"}
    assert amounts <= {"20 euros", "50 euros"}
    assert "add [20 euros](amount) to my card" in {e.markup for e in new}  # value seen in another example


def test_augment_never_duplicates_an_example() -> None:
    result = augment(DATA, copies=10)
    keys = [normalised_text(e.text) for e in result.examples()]
    assert len(keys) == len(set(keys))


def test_augment_is_deterministic_and_seeded() -> None:
    assert augment(DATA, copies=2, seed=1) == augment(DATA, copies=2, seed=1)
    runs = {tuple(e.text for e in added(augment(DATA, copies=1, seed=seed))) for seed in range(6)}
    assert len(runs) > 1


def test_no_copies_or_nothing_to_swap_adds_nothing() -> None:
    assert augment(DATA, copies=0) == DATA
    lonely = NluData({"ask": IntentSpec("ask", (example("is [x](thing) ok", "ask"),))}, {"thing": SlotSpec("thing")})
    assert augment(lonely) == lonely
