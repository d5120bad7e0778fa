"""The neighbour vote: which labels it votes for, how much it is allowed to count, and how a model keeps it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from chatwright.errors import ModelLoadError
from chatwright.nlu.model_files import read_card
from chatwright.nlu.neighbours import MAX_PER_LABEL, NEIGHBOURS_FILE, NeighbourVote, fit_vote_weight, kept_rows, mix
from chatwright.nlu.trained_model import TrainedModel
from chatwright.nlu.training_data import load_nlu_data
from chatwright.project import AssistantProject
from nlu_samples import trained_nlu_project


def _clusters(rng: np.random.Generator, labels: np.ndarray, spread: float = 0.1) -> np.ndarray:
    """One random direction per label, each example near its label's direction."""
    centres = rng.normal(size=(labels.max() + 1, 16))
    return (centres[labels] + spread * rng.normal(size=(len(labels), 16))).astype(np.float32)


def test_the_vote_follows_the_nearest_training_examples_whatever_their_length() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    vectors = _clusters(rng, labels)
    lengths = rng.uniform(0.5, 5.0, size=(60, 1)).astype(np.float32)
    vote = NeighbourVote.of(torch.from_numpy(vectors * lengths), torch.from_numpy(labels), 4)
    queries = vectors[[0, 25, 59]] + 0.05 * rng.normal(size=(3, 16)).astype(np.float32)
    votes = vote.votes(queries)
    assert votes.shape == (3, 4)
    assert list(votes.argmax(axis=1)) == [0, 1, 2]
    assert np.allclose(votes.sum(axis=1), 1.0)
    assert np.all(votes[:, 3] == 0.0)  # a label without training examples gets no votes


def test_a_large_label_keeps_a_sample_of_its_examples_in_their_order() -> None:
    labels = np.concatenate([np.zeros(3 * MAX_PER_LABEL, dtype=np.int64), np.ones(5, dtype=np.int64)])
    rows = kept_rows(labels)
    assert np.bincount(labels[rows]).tolist() == [MAX_PER_LABEL, 5]
    assert np.all(np.diff(rows) > 0) and set(range(3 * MAX_PER_LABEL, 3 * MAX_PER_LABEL + 5)) <= set(rows)
    assert np.array_equal(kept_rows(labels), rows)  # seeded: the same data keeps the same examples


def test_the_vote_counts_only_as_much_as_it_helps_on_validation() -> None:
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 5, size=200)
    right = np.eye(5, dtype=np.float32)[gold]
    noise = rng.dirichlet(np.ones(5), size=200).astype(np.float32)
    assert fit_vote_weight(0.6 * right + 0.4 * noise, noise, gold) == 0.0  # a useless vote is left out

    head = 0.5 * noise + 0.5 * right
    wrong = rng.random(200) < 0.3  # the head misses 30 % of the messages, which the vote gets right
    head[wrong] = np.eye(5, dtype=np.float32)[(gold[wrong] + 1) % 5]
    votes = 0.7 * right + 0.3 * noise
    weight = fit_vote_weight(head, votes, gold)
    assert weight > 0.0
    assert (mix(head, votes, weight).argmax(axis=1) == gold).mean() > (head.argmax(axis=1) == gold).mean()
    assert fit_vote_weight(head[:0], votes[:0], gold[:0]) == 0.0


def test_a_saved_vote_gives_the_same_votes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(4), 12)
    vote = NeighbourVote.of(torch.from_numpy(_clusters(rng, labels, spread=0.3)), torch.from_numpy(labels), 4)
    vote.save(tmp_path)
    queries = rng.normal(size=(8, 16)).astype(np.float32)
    assert np.allclose(NeighbourVote.load(tmp_path, 4).votes(queries), vote.votes(queries), atol=1e-2)


@pytest.fixture(scope="module")
def voting_model(tmp_path_factory: pytest.TempPathFactory) -> AssistantProject:
    """A quick model given a fixed share of the vote (a fitted share is whatever its small validation says)."""
    project = trained_nlu_project(tmp_path_factory.mktemp("vote") / "assistant", vote_weight=0.3)
    assert read_card(project.intent_model_dir).vote_weight == 0.3
    return project


def test_a_trained_model_keeps_its_vote_and_mixes_it_in(voting_model: AssistantProject, tmp_path: Path) -> None:
    directory = voting_model.intent_model_dir
    card = read_card(directory)
    assert (directory / NEIGHBOURS_FILE).is_file()
    metrics = json.loads((directory / "metrics.json").read_text())
    assert metrics["vote_weight"] == card.vote_weight
    texts = [e.text for e in load_nlu_data(voting_model.root / "tests" / "nlu" / "intents.yaml",
                                           min_examples=1).examples()]
    with_vote = TrainedModel.load(directory, root=voting_model.root).predict(texts)

    head_only = tmp_path / "head_only"
    shutil.copytree(directory, head_only)
    (head_only / NEIGHBOURS_FILE).unlink()
    (head_only / "nlu.json").write_text(card.model_copy(update={"vote_weight": 0.0}).model_dump_json())
    alone = TrainedModel.load(head_only, root=voting_model.root).predict(texts)

    # neighbours that all say "greeting" move exactly the vote's share of every message's probability there
    greeting = card.labels.index("greeting")
    all_greetings = tmp_path / "all_greetings"
    shutil.copytree(directory, all_greetings)
    saved = NeighbourVote.load(directory, len(card.labels))
    NeighbourVote(saved.vectors, torch.full_like(saved.labels, greeting), len(card.labels)).save(all_greetings)
    swayed = TrainedModel.load(all_greetings, root=voting_model.root).predict(texts)
    for head, voted, shifted in zip(alone, with_vote, swayed, strict=True):
        expected = 0.7 * head.probabilities
        expected[greeting] += 0.3
        assert np.allclose(shifted.probabilities, expected, atol=1e-4)
        assert abs(float(voted.probabilities.sum()) - 1.0) < 1e-4
        assert np.all(voted.probabilities >= 0.7 * head.probabilities - 1e-4)  # the head keeps its share


def test_a_model_whose_neighbours_file_is_damaged_fails_to_load_by_name(voting_model: AssistantProject,
                                                                       tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(voting_model.intent_model_dir, broken)
    (broken / NEIGHBOURS_FILE).write_bytes(b"not a tensor file")
    with pytest.raises(ModelLoadError, match="neighbours file"):
        TrainedModel.load(broken, root=voting_model.root)
