"""The slot lexicon: what it learns from training values, where its bonus lands, how much it is allowed to count,
and how a model keeps it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from chatwright.errors import ModelLoadError
from chatwright.nlu.bio import bio_tags
from chatwright.nlu.model_files import read_card
from chatwright.nlu.slot_lexicon import LEXICON_FILE, SlotLexicon, fit_lexicon_weight
from chatwright.nlu.trained_model import TrainedModel
from chatwright.project import AssistantProject
from nlu_samples import trained_nlu_project

TAGS = bio_tags(["album", "artist"])


TRAINING = [
    ("play Abbey Road by the Beatles", "O B-album I-album O B-artist I-artist"),
    ("add abbey road to my list", "O B-album I-album O O O"),
    ("walk down the abbey road", "O O O O O"),  # the same words, not a value here
    ("play the Beatles", "O B-artist I-artist"),
    ("play the radio", "O O O"),
]


def _lexicon() -> SlotLexicon:
    return SlotLexicon.of([(text.split(), tags.split()) for text, tags in TRAINING])


def test_a_value_counts_in_proportion_to_how_often_its_words_were_that_slot() -> None:
    shares = _lexicon().shares
    assert shares[("abbey", "road")] == {"album": pytest.approx(2 / 3)}
    assert shares[("the", "beatles")] == {"artist": 1.0}
    assert ("the",) not in shares and ("play",) not in shares  # only tagged values are kept


def test_the_bonus_lands_on_the_first_word_as_b_and_on_the_rest_as_i() -> None:
    message = "Put The Beatles and abbey road on"
    bonus = _lexicon().bonus(message.split(), TAGS)
    assert bonus.shape == (7, len(TAGS))
    artist_b, artist_i, album_b, album_i = (TAGS.index(tag) for tag in ("B-artist", "I-artist", "B-album", "I-album"))
    assert bonus[1, artist_b] == 1.0 and bonus[2, artist_i] == 1.0
    assert bonus[4, album_b] == pytest.approx(2 / 3) and bonus[5, album_i] == pytest.approx(2 / 3)
    expected = np.zeros_like(bonus)
    expected[[1, 2, 4, 5], [artist_b, artist_i, album_b, album_i]] = bonus[[1, 2, 4, 5],
                                                                           [artist_b, artist_i, album_b, album_i]]
    assert np.array_equal(bonus, expected)  # nowhere else, and never on O
    assert not _lexicon().bonus(["abbey", "road"], bio_tags(["artist"])).any()  # a slot the model lacks


def test_the_bonus_counts_only_as_much_as_it_helps_on_validation() -> None:
    gold = [(0, [1, 2, 0]), (1, [0, 0, 0]), (0, [0, 1, 0])]

    def helps(weight: float) -> list[tuple[int, list[int]]]:  # the bonus mends the first message from 1 on
        return [(0, [1, 2, 0] if weight >= 1.0 else [1, 0, 0]), (1, [0, 0, 0]), (0, [0, 1, 0])]

    def hurts(weight: float) -> list[tuple[int, list[int]]]:
        return [(0, [1, 2, 0]), (1, [0, 0, 0] if weight == 0 else [1, 0, 0]), (0, [0, 1, 0])]

    assert fit_lexicon_weight(helps, gold) == 1.0  # the smallest weight that gets most messages right
    assert fit_lexicon_weight(hurts, gold) == 0.0
    assert fit_lexicon_weight(hurts, []) == 0.0


def test_a_saved_lexicon_reads_back_the_same(tmp_path: Path) -> None:
    _lexicon().save(tmp_path)
    assert SlotLexicon.load(tmp_path) == _lexicon()


@pytest.fixture(scope="module")
def lexicon_model(tmp_path_factory: pytest.TempPathFactory) -> AssistantProject:
    """A quick model given a fixed lexicon weight (a fitted one is whatever its small validation says)."""
    return trained_nlu_project(tmp_path_factory.mktemp("lexicon") / "assistant", lexicon_weight=2.0)


def test_a_trained_model_keeps_its_lexicon_and_adds_its_bonus(lexicon_model: AssistantProject,
                                                              tmp_path: Path) -> None:
    directory = lexicon_model.intent_model_dir
    card = read_card(directory)
    assert card.lexicon_weight == 2.0
    assert json.loads((directory / "metrics.json").read_text())["lexicon_weight"] == 2.0
    lexicon = SlotLexicon.load(directory)
    assert lexicon.shares, "the sample project tags slots, so its lexicon has values"
    value, slots = next(iter(lexicon.shares.items()))
    slot = max(slots, key=slots.__getitem__)

    # a lexicon that holds the value as a different slot moves the tags there, given weight enough
    other = next(tag[2:] for tag in card.tags if tag.startswith("B-") and tag[2:] != slot)
    swayed = tmp_path / "swayed"
    shutil.copytree(directory, swayed)
    SlotLexicon({value: {other: 1.0}}).save(swayed)
    (swayed / "nlu.json").write_text(card.model_copy(update={"lexicon_weight": 50.0,
                                                             "intent_slots": None}).model_dump_json())
    text = f"tell me about {' '.join(value)} please"
    entities = TrainedModel.load(swayed, root=lexicon_model.root).predict([text])[0].entities
    assert [(text[entity.start:entity.end].lower(), entity.slot) for entity in entities] == [(" ".join(value), other)]


def test_a_model_whose_lexicon_file_is_damaged_fails_to_load_by_name(lexicon_model: AssistantProject,
                                                                    tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(lexicon_model.intent_model_dir, broken)
    (broken / LEXICON_FILE).write_text("[{\"value\": ")
    with pytest.raises(ModelLoadError, match="lexicon file"):
        TrainedModel.load(broken, root=lexicon_model.root)
