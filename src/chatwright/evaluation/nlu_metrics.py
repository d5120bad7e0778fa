"""Scores for an NLU model's predictions on held-out examples: intents, slots, out-of-scope and sentiment.

The numbers follow the conventions people compare against: sklearn's per-label precision/recall/F1 (macro over
every label seen in gold or predictions), seqeval's entity-level slot scores on whitespace tokens (an entity
counts only when its type and every token match), and the CLINC150 out-of-scope figures. Sentence accuracy asks
for the intent and every slot to be right at once, which is what a dialogue actually needs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypedDict

import numpy as np
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as entity_scores
from sklearn.metrics import precision_recall_fscore_support

from chatwright.nlu.markup import EntitySpan, to_bio
from chatwright.nlu.sentiment_data import Sentiment, SentimentExample
from chatwright.nlu.training_data import Example

ErrorKind = Literal["intent", "slot", "both"]


@dataclass(frozen=True)
class IntentPrediction:
    """What the model said about one gold example; out-of-scope is predicted as the out-of-scope label."""

    example: Example
    intent: str
    confidence: float
    ranking: tuple[tuple[str, float], ...]  # top intents with their confidences, best first
    entities: tuple[EntitySpan, ...]  # character offsets into example.text


@dataclass(frozen=True)
class SentimentPrediction:
    example: SentimentExample
    label: Sentiment
    score: float


@dataclass(frozen=True)
class LabelScores:
    precision: float
    recall: float
    f1: float
    support: int  # gold examples (intents, sentiment) or gold entities (slots) of this label


@dataclass(frozen=True)
class Confusion:
    gold: str
    predicted: str
    count: int


@dataclass(frozen=True)
class SlotMetrics:
    """Entity-level micro averages over all slots, and each slot's own figures."""

    precision: float
    recall: float
    f1: float
    per_slot: dict[str, LabelScores]


@dataclass(frozen=True)
class OutOfScopeMetrics:
    """Out-of-scope detection as a binary task; in-scope accuracy is intent accuracy on the other examples."""

    precision: float
    recall: float
    f1: float
    support: int  # gold out-of-scope examples
    predicted: int  # examples predicted out of scope
    in_scope_accuracy: float | None  # None when every example is out of scope


@dataclass(frozen=True)
class SentimentMetrics:
    accuracy: float
    macro_f1: float
    per_class: dict[str, LabelScores]
    count: int


@dataclass(frozen=True)
class NluMetrics:
    """Everything `evaluate_nlu` measured; blocks that do not apply to the data are None."""

    count: int
    correct_intents: int
    correct_sentences: int
    intent_accuracy: float
    intent_macro_f1: float
    sentence_accuracy: float
    per_intent: dict[str, LabelScores]
    confusions: tuple[Confusion, ...]  # gold/predicted pairs that differ, most frequent first
    slots: SlotMetrics | None  # None when neither gold nor predictions have entities
    out_of_scope: OutOfScopeMetrics | None  # None when no gold example is out of scope
    sentiment: SentimentMetrics | None  # None without sentiment predictions

    def headline(self) -> dict[str, float]:
        """The few numbers a run is judged by, flat, for tables and for averaging cross-validation folds."""
        numbers = {
            "intent_accuracy": self.intent_accuracy,
            "intent_macro_f1": self.intent_macro_f1,
            "sentence_accuracy": self.sentence_accuracy,
        }
        if self.slots is not None:
            slots = self.slots
            numbers |= {"slot_precision": slots.precision, "slot_recall": slots.recall, "slot_f1": slots.f1}
        if self.out_of_scope is not None:
            oos = self.out_of_scope
            numbers |= {"oos_precision": oos.precision, "oos_recall": oos.recall, "oos_f1": oos.f1}
            if oos.in_scope_accuracy is not None:
                numbers["in_scope_accuracy"] = oos.in_scope_accuracy
        if self.sentiment is not None:
            numbers["sentiment_accuracy"] = self.sentiment.accuracy
        return numbers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FoldStat(TypedDict):
    mean: float
    std: float
    folds: int  # folds that had this number (slot or out-of-scope figures can be missing from some)


def bio_tags(example: Example, entities: Sequence[EntitySpan]) -> list[str]:
    """BIO tags of `entities` on the example's whitespace tokens: the view every slot score here is taken on."""
    return to_bio(example.text, entities)[1]


def error_kind(prediction: IntentPrediction) -> ErrorKind | None:
    """What the prediction got wrong, or None when intent and every slot are right."""
    intent_wrong = prediction.intent != prediction.example.intent
    gold = bio_tags(prediction.example, prediction.example.entities)
    slot_wrong = bio_tags(prediction.example, prediction.entities) != gold
    if intent_wrong and slot_wrong:
        return "both"
    if intent_wrong:
        return "intent"
    return "slot" if slot_wrong else None


def evaluate_nlu(
    predictions: Sequence[IntentPrediction],
    sentiment: Sequence[SentimentPrediction] = (),
    *,
    oos_label: str = "out_of_scope",
) -> NluMetrics:
    """Score intent and slot predictions (and sentiment ones, when given) against their gold examples."""
    if not predictions:
        raise ValueError("no intent predictions to evaluate")
    gold = [p.example.intent for p in predictions]
    predicted = [p.intent for p in predictions]
    per_intent = _label_scores(gold, predicted)
    kinds = [error_kind(p) for p in predictions]
    correct = sum(g == p for g, p in zip(gold, predicted, strict=True))
    pairs = Counter((g, p) for g, p in zip(gold, predicted, strict=True) if g != p)
    return NluMetrics(
        count=len(predictions),
        correct_intents=correct,
        correct_sentences=kinds.count(None),
        intent_accuracy=correct / len(predictions),
        intent_macro_f1=float(np.mean([scores.f1 for scores in per_intent.values()])),
        sentence_accuracy=kinds.count(None) / len(predictions),
        per_intent=per_intent,
        confusions=tuple(
            Confusion(g, p, n) for (g, p), n in sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
        ),
        slots=_slot_metrics(predictions),
        out_of_scope=_out_of_scope(gold, predicted, oos_label),
        sentiment=_sentiment_metrics(sentiment) if sentiment else None,
    )


def _label_scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, LabelScores]:
    """Per-label figures over the labels in gold or predictions, sorted by name (sklearn's label set)."""
    labels = sorted(set(gold) | set(predicted))
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, average=None, zero_division=0
    )
    return {
        label: LabelScores(float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }


def _slot_metrics(predictions: Sequence[IntentPrediction]) -> SlotMetrics | None:
    gold = [bio_tags(p.example, p.example.entities) for p in predictions]
    predicted = [bio_tags(p.example, p.entities) for p in predictions]
    slots = sorted({entity[0] for tags in (gold, predicted) for entity in get_entities(tags)})
    if not slots:
        return None
    precision, recall, f1, _ = entity_scores(gold, predicted, average="micro", zero_division=0)
    per_precision, per_recall, per_f1, support = entity_scores(gold, predicted, average=None, zero_division=0)
    return SlotMetrics(
        float(precision),
        float(recall),
        float(f1),
        {  # seqeval orders per-type figures by sorted type name, as `slots` is
            slot: LabelScores(float(p), float(r), float(f), int(s))
            for slot, p, r, f, s in zip(slots, per_precision, per_recall, per_f1, support, strict=True)
        },
    )


def _out_of_scope(gold: Sequence[str], predicted: Sequence[str], oos_label: str) -> OutOfScopeMetrics | None:
    support = gold.count(oos_label)
    if not support:
        return None
    flagged = predicted.count(oos_label)
    caught = sum(g == p == oos_label for g, p in zip(gold, predicted, strict=True))
    precision = caught / flagged if flagged else 0.0
    recall = caught / support
    in_scope = [(g, p) for g, p in zip(gold, predicted, strict=True) if g != oos_label]
    return OutOfScopeMetrics(
        precision=precision,
        recall=recall,
        f1=2 * precision * recall / (precision + recall) if caught else 0.0,
        support=support,
        predicted=flagged,
        in_scope_accuracy=sum(g == p for g, p in in_scope) / len(in_scope) if in_scope else None,
    )


def _sentiment_metrics(predictions: Sequence[SentimentPrediction]) -> SentimentMetrics:
    gold = [p.example.label.value for p in predictions]
    predicted = [p.label.value for p in predictions]
    per_class = _label_scores(gold, predicted)
    return SentimentMetrics(
        accuracy=sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(predictions),
        macro_f1=float(np.mean([scores.f1 for scores in per_class.values()])),
        per_class=per_class,
        count=len(predictions),
    )


def average_folds(metrics: Sequence[NluMetrics]) -> dict[str, FoldStat]:
    """Mean and population standard deviation of each headline number over cross-validation folds."""
    values: dict[str, list[float]] = {}
    for fold in metrics:
        for name, value in fold.headline().items():
            values.setdefault(name, []).append(value)
    return {
        name: FoldStat(mean=float(np.mean(numbers)), std=float(np.std(numbers)), folds=len(numbers))
        for name, numbers in values.items()
    }
