"""`chatwright train nlu`: the intent and slot model from intents.yaml, the sentiment model from sentiment.jsonl.

Validation data is split off the training data (seeded, stratified) unless given, and augmentation and the
intent names, when switched on, only ever add to the training part, so validation figures stay honest.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chatwright.config import NluTrainingConfig
from chatwright.errors import ConfigError
from chatwright.nlu.augmentation import augment
from chatwright.nlu.intent_names import with_intent_names
from chatwright.nlu.sentiment_data import SentimentExample, load_sentiment_data
from chatwright.nlu.splits import split_data
from chatwright.nlu.training_data import NluData, load_project_nlu_data
from chatwright.project import INTENT_MODEL_DIR, SENTIMENT_MODEL_DIR, AssistantProject
from chatwright.training.examples import (
    intent_task,
    sentiment_task,
    tagged_intent_examples,
    tagged_sentiment_examples,
)
from chatwright.training.joint_trainer import JointTrainer, TrainingOutcome


@dataclass(frozen=True)
class ProjectTraining:
    intent: TrainingOutcome
    sentiment: TrainingOutcome | None


def train_project(project: AssistantProject, settings: NluTrainingConfig | None = None, *,
                  models_dir: Path | None = None, show_progress: bool = True) -> ProjectTraining:
    """Train the project's models into PROJECT/models/, or into `models_dir` (a teacher's, which must not
    replace the served models); the sentiment model only when the project has sentiment data."""
    settings = settings or project.config.nlu.training
    models_dir = models_dir or project.models_dir
    data = load_project_nlu_data(project)
    if data is None:
        raise ConfigError("no intents.yaml to train on", path=project.intents_path)
    intent = train_intent_model(data, settings, models_dir / INTENT_MODEL_DIR, root=project.root,
                                show_progress=show_progress)
    sentiment = None
    if project.sentiment_path.is_file():
        sentiment = train_sentiment_model(load_sentiment_data(project.sentiment_path), settings,
                                          models_dir / SENTIMENT_MODEL_DIR, root=project.root,
                                          show_progress=show_progress)
    return ProjectTraining(intent, sentiment)


def train_intent_model(data: NluData, settings: NluTrainingConfig, target: Path, *, root: Path | None = None,
                       validation: NluData | None = None, show_progress: bool = True) -> TrainingOutcome:
    """Train on `data` (minus a validation split when `validation` is not given) and publish to `target`."""
    task = intent_task(data, settings.oos_intent, slots_by_intent=settings.slots_by_intent)
    if validation is None:
        data, validation, _ = split_data(data, validation=settings.validation_fraction, test=0.0, seed=settings.seed)
    if settings.augment_copies:
        data = augment(data, copies=settings.augment_copies, seed=settings.seed)
    if settings.intent_names_as_examples:
        data = with_intent_names(data, skip=settings.oos_intent, held_out=validation)
    trainer = JointTrainer(settings, root=root, show_progress=show_progress)
    return trainer.train(task, tagged_intent_examples(data.examples(), task),
                         tagged_intent_examples(validation.examples(), task), target)


def split_sentiment_examples(examples: Sequence[SentimentExample], settings: NluTrainingConfig
                             ) -> tuple[list[SentimentExample], list[SentimentExample]]:
    """(training part, validation part): a seeded `validation_fraction` of the examples held out."""
    cut = max(1, round(len(examples) * settings.validation_fraction))
    ordered = list(examples)
    random.Random(settings.seed).shuffle(ordered)
    return ordered[cut:], ordered[:cut]


def train_sentiment_model(examples: Sequence[SentimentExample], settings: NluTrainingConfig, target: Path, *,
                          root: Path | None = None, validation: Sequence[SentimentExample] | None = None,
                          show_progress: bool = True) -> TrainingOutcome:
    if validation is None:
        examples, validation = split_sentiment_examples(examples, settings)
    task = sentiment_task([*examples, *validation])
    trainer = JointTrainer(settings, root=root, show_progress=show_progress)
    return trainer.train(task, tagged_sentiment_examples(examples, task),
                         tagged_sentiment_examples(validation, task), target)
