"""`chatwright test nlu`: score the project's models on held-out data, or cross-validate the training recipe.

Held-out data is an intents.yaml (and optionally a sentiment.jsonl beside it) the models never trained on.
Cross-validation trains K models on K-1 folds each and pools their predictions on the remaining fold, so every
example is predicted by a model that did not see it; the spread over folds shows how stable the figures are.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import track

from chatwright.config import NluTrainingConfig
from chatwright.evaluation.nlu_evaluation import predict_intents, predict_sentiment
from chatwright.evaluation.nlu_metrics import (
    IntentPrediction,
    NluMetrics,
    SentimentPrediction,
    average_folds,
    evaluate_nlu,
)
from chatwright.evaluation.nlu_report import NluReportFiles, write_nlu_report
from chatwright.nlu.intent_classifier import IntentSlotClassifier
from chatwright.nlu.sentiment_classifier import SentimentClassifier
from chatwright.nlu.sentiment_data import SentimentExample
from chatwright.nlu.splits import cross_validation_folds
from chatwright.nlu.training_data import NluData
from chatwright.training.train_nlu import train_intent_model


@dataclass(frozen=True)
class NluTestResult:
    metrics: NluMetrics
    files: NluReportFiles
    folds: dict[str, Any] | None = None


def score_held_out(intents: IntentSlotClassifier, sentiment: SentimentClassifier | None, data: NluData,
                  sentiment_examples: list[SentimentExample], out_dir: Path, *, title: str) -> NluTestResult:
    """Score trained models on data they did not train on."""
    predictions = predict_intents(intents, data.examples())
    sentiment_predictions = predict_sentiment(sentiment, sentiment_examples) if sentiment else []
    return _report(predictions, sentiment_predictions, intents.oos_intent, out_dir, title=title)


def cross_validate(data: NluData, settings: NluTrainingConfig, k: int, out_dir: Path, *, title: str,
                   root: Path | None = None) -> NluTestResult:
    """Train K models with the project's settings and report on their pooled out-of-fold predictions."""
    pooled: list[IntentPrediction] = []
    per_fold: list[NluMetrics] = []
    oos_intent = settings.oos_intent
    with tempfile.TemporaryDirectory(prefix="chatwright-cv-") as work:
        folds = cross_validation_folds(data, k, seed=settings.seed)
        for number, (train, test) in enumerate(track(folds, description="cross-validation"), start=1):
            outcome = train_intent_model(train, settings, Path(work) / f"fold{number}", root=root,
                                         show_progress=False)
            predictions = predict_intents(IntentSlotClassifier.load(outcome.directory, root=root), test.examples())
            per_fold.append(evaluate_nlu(predictions, oos_label=oos_intent))
            pooled += predictions
    return _report(pooled, [], oos_intent, out_dir, title=title, folds=average_folds(per_fold))


def _report(predictions: list[IntentPrediction], sentiment: list[SentimentPrediction], oos_intent: str,
            out_dir: Path, *, title: str, folds: dict[str, Any] | None = None) -> NluTestResult:
    metrics = evaluate_nlu(predictions, sentiment, oos_label=oos_intent)
    files = write_nlu_report(metrics, predictions, sentiment, out_dir, title=title, folds=folds)
    return NluTestResult(metrics, files, folds)
