"""Sentiment of every message: negative, neutral or positive with a score.

A binary model (trained on negative/positive data such as SST-2) reads an unsure prediction as neutral, so
"what is the fee for a transfer?" is not forced into praise or complaint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, cast

from chatwright.dialogue.types import SentimentReading
from chatwright.errors import ModelLoadError
from chatwright.nlu.trained_model import TrainedModel

PACKAGED_SENTIMENT_DIR = Path(__file__).with_name("packaged_sentiment")
"""The default model (LoRA adapter on the packaged MiniLM), shipped with the package: trained on SST-2, neutral
customer requests and labelled customer-service messages (`python -m benchmarks.nlu --task sst2 --save-to`)."""

SentimentLabel = Literal["negative", "neutral", "positive"]


class SentimentClassifier:
    def __init__(self, model: TrainedModel) -> None:
        if model.card.kind != "sentiment":
            raise ModelLoadError(f"expected a sentiment model, got a {model.card.kind} model")
        self.model = model

    @classmethod
    def load(cls, directory: Path = PACKAGED_SENTIMENT_DIR, *, root: Path | None = None) -> SentimentClassifier:
        return cls(TrainedModel.load(directory, root=root))

    def predict(self, texts: Sequence[str]) -> list[SentimentReading]:
        labels = self.model.card.labels
        neutral_below = self.model.card.neutral_below
        readings = []
        for raw in self.model.predict(texts):
            best = int(raw.probabilities.argmax())
            score = float(raw.probabilities[best])
            label = labels[best]
            if neutral_below is not None and score < neutral_below:
                label, score = "neutral", 2.0 - 2.0 * score  # 1 at a coin flip, falling to the margin
            readings.append(SentimentReading(label=cast(SentimentLabel, label), score=round(score, 4)))
        return readings
