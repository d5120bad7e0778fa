"""Intent and slot predictions from a trained joint model, with out-of-scope decided by the calibrated threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chatwright.dialogue.types import IntentScore
from chatwright.errors import ModelLoadError
from chatwright.nlu.markup import EntitySpan
from chatwright.nlu.ranking import rank_intents
from chatwright.nlu.trained_model import TrainedModel

DEFAULT_OOS_INTENT = "out_of_scope"


@dataclass(frozen=True)
class IntentSlotPrediction:
    intent: str
    confidence: float
    ranking: tuple[IntentScore, ...]  # best first, out-of-scope decision not applied
    entities: tuple[EntitySpan, ...]
    out_of_scope: bool


class IntentSlotClassifier:
    def __init__(self, model: TrainedModel) -> None:
        if model.card.kind != "intent_slots":
            raise ModelLoadError(f"expected an intent and slot model, got a {model.card.kind} model")
        self.model = model
        self.oos_intent = model.card.oos_intent or DEFAULT_OOS_INTENT

    @classmethod
    def load(cls, directory: Path, *, root: Path | None = None) -> IntentSlotClassifier:
        return cls(TrainedModel.load(directory, root=root))

    @property
    def intents(self) -> list[str]:
        return self.model.card.labels

    def predict(self, texts: Sequence[str]) -> list[IntentSlotPrediction]:
        labels = self.model.card.labels
        predictions = []
        for raw in self.model.predict(texts):
            ranking = rank_intents(labels, raw.probabilities)
            best = ranking[0]
            out_of_scope = best.intent == self.oos_intent or best.confidence < self.model.card.oos_threshold
            predictions.append(IntentSlotPrediction(
                intent=self.oos_intent if out_of_scope else best.intent, confidence=best.confidence,
                ranking=ranking, entities=raw.entities, out_of_scope=out_of_scope))
        return predictions
