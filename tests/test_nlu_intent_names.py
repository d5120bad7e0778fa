"""Intent names as training examples: the words of each name, once, never for the out-of-scope intent."""

from __future__ import annotations

from pathlib import Path

from chatwright.config import NluTrainingConfig
from chatwright.nlu.intent_names import NAME_SOURCE, humanised, with_intent_names
from chatwright.nlu.training_data import Example, IntentSpec, NluData
from chatwright.training.train_nlu import train_intent_model


def test_names_in_every_usual_style_become_words() -> None:
    assert humanised("card_arrival") == "card arrival"
    assert humanised("SearchCreativeWork") == "search creative work"
    assert humanised("top-up.by_card") == "top up by card"
    assert humanised("getWeather2") == "get weather2"
    assert humanised("___") == ""


def data(**intents: list[str]) -> NluData:
    return NluData({name: IntentSpec(name, tuple(Example(text, name) for text in texts))
                    for name, texts in intents.items()})


def test_each_intent_gets_its_name_once_except_out_of_scope_and_existing_texts() -> None:
    result = with_intent_names(data(card_arrival=["where is my card"], greet=["Greet!", "hi"],
                                    out_of_scope=["what is the weather"]), skip="out_of_scope")
    names = [(e.intent, e.text) for e in result.examples() if e.source == NAME_SOURCE]
    assert names == [("card_arrival", "card arrival")]  # "greet" is already an example, out of scope is skipped
    assert [e.text for e in result.intents["card_arrival"].examples] == ["where is my card", "card arrival"]
    assert len(result.examples()) == 5
    validated = with_intent_names(data(card_arrival=["where is my card"]), held_out=data(card_arrival=["Card arrival"]))
    assert len(validated.examples()) == 1  # a validation example is never copied into training


def test_training_adds_the_names_to_the_training_part_only_and_can_be_switched_off(tmp_path: Path) -> None:
    examples = data(card_arrival=["where is my card", "card not here yet"], greet=["hello", "hi there"])
    held_out = data(card_arrival=["has my card shipped"], greet=["good morning"])
    named = train_intent_model(examples, NluTrainingConfig(mode="quick"), tmp_path / "named", validation=held_out,
                               show_progress=False)
    assert (named.metrics["train_examples"], named.metrics["validation_examples"]) == (6, 2)
    plain = train_intent_model(examples, NluTrainingConfig(mode="quick", intent_names_as_examples=False),
                               tmp_path / "plain", validation=held_out, show_progress=False)
    assert (plain.metrics["train_examples"], plain.metrics["validation_examples"]) == (4, 2)
