"""Knowledge distillation: a student model learns from a trained teacher's predictions as well as its labels."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from structlog.testing import capture_logs

from chatwright.config import NluTrainingConfig
from chatwright.errors import ConfigError
from chatwright.nlu.intent_classifier import IntentSlotClassifier
from chatwright.nlu.model_files import read_card
from chatwright.nlu.sentiment_data import Sentiment, SentimentExample
from chatwright.nlu.training_data import load_project_nlu_data
from chatwright.project import AssistantProject
from chatwright.training.distillation import Teacher, TeacherOutputs, phrases, teacher_directory
from chatwright.training.train_nlu import train_intent_model, train_project, train_sentiment_model
from nlu_samples import INTENTS_YAML, write_nlu_project


def test_the_teaching_loss_is_zero_when_the_student_agrees_and_ignores_words_only_one_model_scored() -> None:
    intent = torch.tensor([2.0, -1.0, 0.5])
    tags = torch.tensor([[3.0, 0.0], [0.0, 3.0]])  # the teacher kept two words of three
    teacher = Teacher({("a", "b", "c"): TeacherOutputs(intent, tags)})
    agreeing_tags = torch.tensor([[[3.0, 0.0], [0.0, 3.0], [9.0, -9.0]]])  # the third word is the student's alone
    mask = torch.tensor([[True, True, True]])
    agrees = teacher.loss([("a", "b", "c")], intent.unsqueeze(0), agreeing_tags, mask, 2.0)
    assert agrees.item() == pytest.approx(0.0, abs=1e-6)
    disagrees = teacher.loss([("a", "b", "c")], torch.tensor([[-1.0, 2.0, 0.5]]), agreeing_tags, mask, 2.0)
    assert disagrees.item() > 0.1
    unmasked_tags = agreeing_tags.clone()
    unmasked_tags[0, 1] = torch.tensor([3.0, 0.0])  # the student now disagrees on a word it did not score
    masked = torch.tensor([[True, False, True]])
    assert teacher.loss([("a", "b", "c")], intent.unsqueeze(0), unmasked_tags, masked, 2.0).item() == pytest.approx(
        0.0, abs=1e-6)


def test_phrases_are_new_runs_of_at_least_half_a_message_and_short_messages_give_none() -> None:
    messages = [("a", "truly", "wonderful", "film", "to", "watch"), ("not", "bad"), ("a", "truly", "wonderful")]
    found = phrases(messages, 4, random.Random(0))
    assert found == phrases(messages, 4, random.Random(0))  # seeded
    assert found and len(found) == len(set(found))
    long = messages[0]
    for phrase in found:
        assert phrase not in messages and 3 <= len(phrase) < len(long)
        assert any(long[start:start + len(phrase)] == phrase for start in range(len(long)))  # a run of its words


def test_a_sentiment_student_trains_on_phrases_its_teacher_labels(tmp_path: Path) -> None:
    examples = [SentimentExample(text, label) for text, label in [
        ("this was a truly wonderful and helpful experience", Sentiment.POSITIVE),
        ("the staff were kind and solved my problem quickly", Sentiment.POSITIVE),
        ("great service, I am very happy with the result", Sentiment.POSITIVE),
        ("thank you so much, that was excellent support", Sentiment.POSITIVE),
        ("a lovely, fast and friendly answer to my question", Sentiment.POSITIVE),
        ("this is terrible, nobody has answered me for days", Sentiment.NEGATIVE),
        ("I am furious that my card was blocked again today", Sentiment.NEGATIVE),
        ("the worst support I have ever had from a bank", Sentiment.NEGATIVE),
        ("my money is gone and you keep ignoring my messages", Sentiment.NEGATIVE),
        ("awful, slow and rude, I want to close my account", Sentiment.NEGATIVE),
    ] * 2]
    quick = NluTrainingConfig(mode="quick", min_steps=0, epochs=5, validation_fraction=0.2)
    teacher = train_sentiment_model(examples, quick, tmp_path / "teacher", show_progress=False)
    student_settings = NluTrainingConfig(mode="full", min_steps=0, epochs=1, validation_fraction=0.2,
                                         teacher=str(teacher.directory), distillation_phrases=2)
    student = train_sentiment_model(examples, student_settings, tmp_path / "student", show_progress=False)
    # 16 training messages (10 different ones) of 8 to 10 words, each lending up to two new phrases
    assert 16 < student.metrics["train_examples"] <= 16 + 32
    assert student.card.distilled_from == str(teacher.directory)


def test_a_teacher_needs_a_mode_that_trains_the_encoder() -> None:
    with pytest.raises(ValidationError, match="mode full or lora"):
        NluTrainingConfig(mode="quick", teacher="models/teacher")
    assert NluTrainingConfig(mode="lora", teacher="models/teacher").teacher == "models/teacher"


def _swapped(yaml: str, first: str, second: str) -> str:
    """The sample intents with two intents' names exchanged: same labels and slots, different meaning."""
    return yaml.replace(f"  {first}:", "  @@:").replace(f"  {second}:", f"  {first}:").replace("  @@:", f"  {second}:")


def test_a_student_learns_what_its_teacher_predicts(tmp_path: Path) -> None:
    # the teacher learned balance questions as block_card and the other way round; a student that follows only
    # the teacher (share 1) must answer as the teacher does, against the labels of its own training data.
    # Validation follows the teacher too, so early stopping keeps the epoch that learned most from it.
    teacher_root = write_nlu_project(tmp_path / "teacher")
    (teacher_root / "intents.yaml").write_text(_swapped(INTENTS_YAML, "check_balance", "block_card"))
    teacher_project = AssistantProject.load(teacher_root)
    train_project(teacher_project, show_progress=False)
    teacher_dir = teacher_project.intent_model_dir

    project = AssistantProject.load(write_nlu_project(tmp_path / "student", mode="full", epochs=20))
    data = load_project_nlu_data(project)
    assert data is not None
    settings = project.config.nlu.training.model_copy(update={
        "teacher": str(teacher_dir), "distillation_weight": 1.0, "vote_weight": 0.0})
    taught = load_project_nlu_data(teacher_project)
    outcome = train_intent_model(data, settings, project.intent_model_dir, validation=taught, show_progress=False)
    assert outcome.card.distilled_from == str(teacher_dir)
    balance = [example.text for example in data.intents["check_balance"].examples]
    student = IntentSlotClassifier.load(outcome.directory, root=project.root)
    answers = [prediction.ranking[0].intent for prediction in student.predict(balance)]
    assert answers.count("block_card") >= 0.8 * len(balance), answers

    card = read_card(teacher_dir)
    with pytest.raises(ConfigError, match="other labels or tags"):
        Teacher.run(teacher_dir, card.labels[:-1], card.tags, [("hello",)], show_progress=False)
    assert teacher_directory(teacher_root / "models", "intent_slots") == teacher_dir  # a teacher project's models
    assert teacher_directory(teacher_dir, "sentiment") == teacher_dir  # a model directory teaches as it is
    with pytest.raises(ConfigError, match="neither a trained model directory"):
        teacher_directory(teacher_root / "models", "sentiment")


def test_the_cli_names_options_that_do_not_combine_instead_of_a_traceback(tmp_path: Path) -> None:
    root = write_nlu_project(tmp_path / "assistant")  # quick mode in assistant.yaml
    result = subprocess.run([sys.executable, "-m", "chatwright.cli", "train", "nlu", str(root), "--teacher", "x"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "assistant.yaml's nlu.training" in result.stderr and "mode full or lora" in result.stderr
    assert "Traceback" not in result.stderr
    ignored = subprocess.run([sys.executable, "-m", "chatwright.cli", "train", "nlu", str(root), "--learning-rate",
                              "4e-5"], capture_output=True, text=True, timeout=120, check=False)
    assert ignored.returncode == 2 and "mode quick does not use it" in ignored.stderr  # not silently ignored


def test_a_configured_learning_rate_that_the_mode_does_not_use_is_warned_of(tmp_path: Path) -> None:
    root = write_nlu_project(tmp_path / "assistant")  # quick mode: the encoder stays frozen
    config = root / "assistant.yaml"
    config.write_text(config.read_text().replace("  training:\n", "  training:\n    learning_rate: 4.0e-5\n"))
    with capture_logs() as logs:
        train_project(AssistantProject.load(root), show_progress=False)
    warned = [entry for entry in logs if "mode quick does not use it" in entry["event"]]
    assert len(warned) == 1 and warned[0]["mode"] == "quick" and warned[0]["learning_rate"] == 4e-5
    with capture_logs() as logs:
        train_project(AssistantProject.load(write_nlu_project(tmp_path / "plain")), show_progress=False)
    assert not [entry for entry in logs if "does not use it" in entry["event"]]


def test_the_cli_trains_a_teacher_beside_the_served_models_and_a_student_from_it(tmp_path: Path) -> None:
    root = write_nlu_project(tmp_path / "assistant", mode="full", epochs=2)
    cli = [sys.executable, "-m", "chatwright.cli", "train", "nlu", str(root)]
    taught = subprocess.run([*cli, "--base-model", "packaged:all-mpnet-base-v2", "--learning-rate", "4e-5",
                             "--epochs", "1", "--out", "teacher"], capture_output=True, text=True, timeout=900)
    assert taught.returncode == 0, taught.stderr
    teacher = read_card(root / "teacher" / "nlu")
    assert teacher.base_model == "packaged:all-mpnet-base-v2" and teacher.epochs_run == 1
    assert not (root / "models").exists()  # the teacher did not replace the served models

    student = subprocess.run([*cli, "--teacher", "teacher"], capture_output=True, text=True, timeout=900)
    assert student.returncode == 0, student.stderr
    card = read_card(root / "models" / "nlu")
    assert card.base_model == "packaged:all-minilm-l6-v2"
    assert card.distilled_from == "teacher"  # as given: read from the project directory, wherever it runs from
