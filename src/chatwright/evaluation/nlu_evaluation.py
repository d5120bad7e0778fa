"""Running trained NLU models over labelled examples to get the predictions the metrics and reports read."""

from __future__ import annotations

from collections.abc import Sequence

from chatwright.evaluation.nlu_metrics import IntentPrediction, SentimentPrediction
from chatwright.nlu.intent_classifier import IntentSlotClassifier
from chatwright.nlu.sentiment_classifier import SentimentClassifier
from chatwright.nlu.sentiment_data import Sentiment, SentimentExample
from chatwright.nlu.training_data import Example


def predict_intents(classifier: IntentSlotClassifier, examples: Sequence[Example]) -> list[IntentPrediction]:
    predictions = classifier.predict([example.text for example in examples])
    return [IntentPrediction(example=example, intent=prediction.intent, confidence=prediction.confidence,
                             ranking=tuple((score.intent, score.confidence) for score in prediction.ranking),
                             entities=prediction.entities)
            for example, prediction in zip(examples, predictions, strict=True)]


def predict_sentiment(classifier: SentimentClassifier,
                      examples: Sequence[SentimentExample]) -> list[SentimentPrediction]:
    readings = classifier.predict([example.text for example in examples])
    return [SentimentPrediction(example=example, label=Sentiment(reading.label), score=reading.score)
            for example, reading in zip(examples, readings, strict=True)]
