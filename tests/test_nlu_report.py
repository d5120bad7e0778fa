"""NLU test metrics on hand-scored predictions, the report files they produce, and cross-validation folds."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from chatwright.evaluation.nlu_metrics import (
    Confusion,
    IntentPrediction,
    LabelScores,
    SentimentPrediction,
    average_folds,
    error_kind,
    evaluate_nlu,
)
from chatwright.evaluation.nlu_report import write_nlu_report
from chatwright.nlu.markup import EntitySpan
from chatwright.nlu.sentiment_data import Sentiment, SentimentExample
from chatwright.nlu.splits import cross_validation_folds
from chatwright.nlu.training_data import Example, nlu_data_from_examples, normalised_text

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def predict(
    text: str,
    gold: str,
    predicted: str,
    confidence: float,
    gold_spans: tuple[EntitySpan, ...] = (),
    predicted_spans: tuple[EntitySpan, ...] = (),
) -> IntentPrediction:
    ranking = ((predicted, confidence), ("other", round(1 - confidence, 3)))
    return IntentPrediction(Example(text, gold, gold_spans), predicted, confidence, ranking, predicted_spans)


# Hand-scored: intents right on 1, 2, 3, 4, 7; slots right on 1, 2, 4, 5; sentences right on 1, 2, 4.
PREDICTIONS = (
    predict("hi there", "greeting", "greeting", 0.9),
    predict(
        "top up 20 euros", "top_up", "top_up", 0.8,
        (EntitySpan(7, 15, "20 euros", "amount"),), (EntitySpan(7, 15, "20 euros", "amount"),),
    ),
    predict("top up with my Visa", "top_up", "top_up", 0.7, (EntitySpan(15, 19, "Visa", "card_type"),)),
    predict("what is the weather", "out_of_scope", "out_of_scope", 0.4),
    predict("sing me a song", "out_of_scope", "greeting", 0.55),
    predict("hello", "greeting", "out_of_scope", 0.3, (), (EntitySpan(0, 5, "hello", "card_type"),)),
    predict(
        "send 5 euros", "top_up", "top_up", 0.6,
        (EntitySpan(5, 12, "5 euros", "amount"),), (EntitySpan(5, 6, "5", "amount"),),
    ),
)

SENTIMENT = (
    SentimentPrediction(SentimentExample("awful service", Sentiment.NEGATIVE), Sentiment.NEGATIVE, 0.9),
    SentimentPrediction(SentimentExample("great, thanks", Sentiment.POSITIVE), Sentiment.POSITIVE, 0.8),
    SentimentPrediction(SentimentExample("it is ok", Sentiment.NEUTRAL), Sentiment.POSITIVE, 0.6),
)


# --- metrics --------------------------------------------------------------------------------------------


def test_intent_accuracy_macro_f1_and_sentence_accuracy() -> None:
    metrics = evaluate_nlu(PREDICTIONS)
    assert (metrics.count, metrics.correct_intents, metrics.correct_sentences) == (7, 5, 3)
    assert metrics.intent_accuracy == pytest.approx(5 / 7)
    assert metrics.sentence_accuracy == pytest.approx(3 / 7)
    assert metrics.per_intent["greeting"] == LabelScores(0.5, 0.5, 0.5, 2)
    assert metrics.per_intent["top_up"] == LabelScores(1.0, 1.0, 1.0, 3)
    assert metrics.intent_macro_f1 == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert metrics.confusions == (Confusion("greeting", "out_of_scope", 1), Confusion("out_of_scope", "greeting", 1))


def test_slot_scores_are_entity_level() -> None:
    slots = evaluate_nlu(PREDICTIONS).slots
    assert slots is not None
    # 3 gold entities, 3 predicted; only "20 euros" matches: the truncated "5" and the spurious "hello" do not.
    assert (slots.precision, slots.recall, slots.f1) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert slots.per_slot["amount"] == LabelScores(0.5, 0.5, 0.5, 2)
    assert slots.per_slot["card_type"] == LabelScores(0.0, 0.0, 0.0, 1)


def test_out_of_scope_precision_recall_and_in_scope_accuracy() -> None:
    oos = evaluate_nlu(PREDICTIONS).out_of_scope
    assert oos is not None
    assert (oos.precision, oos.recall, oos.f1) == pytest.approx((0.5, 0.5, 0.5))
    assert (oos.support, oos.predicted) == (2, 2)
    assert oos.in_scope_accuracy == pytest.approx(4 / 5)


def test_sentiment_accuracy_and_per_class_scores() -> None:
    sentiment = evaluate_nlu(PREDICTIONS, SENTIMENT).sentiment
    assert sentiment is not None
    assert sentiment.accuracy == pytest.approx(2 / 3)
    positive = sentiment.per_class["positive"]
    assert (positive.precision, positive.recall, positive.f1, positive.support) == (0.5, 1.0, pytest.approx(2 / 3), 1)
    assert sentiment.per_class["neutral"] == LabelScores(0.0, 0.0, 0.0, 1)
    assert sentiment.macro_f1 == pytest.approx((1 + 0 + 2 / 3) / 3)


def test_blocks_that_do_not_apply_are_left_out() -> None:
    metrics = evaluate_nlu(PREDICTIONS[:1])
    assert (metrics.slots, metrics.out_of_scope, metrics.sentiment) == (None, None, None)
    assert metrics.headline() == {"intent_accuracy": 1.0, "intent_macro_f1": 1.0, "sentence_accuracy": 1.0}
    with pytest.raises(ValueError, match="no intent predictions"):
        evaluate_nlu(())


def test_error_kinds() -> None:
    assert [error_kind(p) for p in PREDICTIONS] == [None, None, "slot", None, "intent", "both", "slot"]


def test_average_folds_gives_mean_and_std_of_headline_numbers() -> None:
    summary = average_folds([evaluate_nlu(PREDICTIONS[:2]), evaluate_nlu(PREDICTIONS[4:6])])
    assert summary["intent_accuracy"] == {"mean": 0.5, "std": 0.5, "folds": 2}
    assert summary["oos_recall"] == {"mean": 0.0, "std": 0.0, "folds": 1}  # only the second fold has OOS
    assert "sentiment_accuracy" not in summary


# --- report ---------------------------------------------------------------------------------------------


def png_width(path: Path) -> int:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    return int.from_bytes(data[16:20], "big")  # IHDR: width follows the signature and chunk header


def test_report_writes_every_file(tmp_path: Path) -> None:
    metrics = evaluate_nlu(PREDICTIONS, SENTIMENT)
    folds = average_folds([evaluate_nlu(PREDICTIONS[:4]), evaluate_nlu(PREDICTIONS[4:])])
    files = write_nlu_report(metrics, PREDICTIONS, SENTIMENT, tmp_path / "report", title="Bank <test>", folds=folds)

    for png in (files.confusion_matrix, files.confidence_histogram):
        assert png.read_bytes().startswith(PNG_SIGNATURE) and png.stat().st_size > 5_000

    document = json.loads(files.metrics.read_text(encoding="utf-8"))
    assert document["intent_accuracy"] == pytest.approx(5 / 7)
    assert document["slots"]["per_slot"]["amount"]["support"] == 2
    assert document["cross_validation"]["intent_accuracy"]["folds"] == 2

    html = files.html.read_text(encoding="utf-8")
    assert "<h1>Bank &lt;test&gt;</h1>" in html
    assert 'src="intent_confusion.png"' in html and 'src="confidence_histogram.png"' in html
    for name in ("greeting", "top_up", "out_of_scope", "card_type", "neutral", "± "):
        assert name in html
    assert html.index("<td>greeting</td>") < html.index("<td>top_up</td>")  # worst F1 first

    errors = [json.loads(line) for line in files.errors.read_text(encoding="utf-8").splitlines()]
    assert [e["kind"] for e in errors] == ["slot", "intent", "both", "slot", "sentiment"]
    both = errors[2]
    assert (both["text"], both["gold_intent"], both["predicted_intent"], both["confidence"]) == (
        "hello", "greeting", "out_of_scope", 0.3,
    )
    assert both["ranking"][0] == {"intent": "out_of_scope", "confidence": 0.3}
    assert both["gold_slots"] == [] and both["predicted_slots"][0]["slot"] == "card_type"
    assert errors[4]["gold_sentiment"] == "neutral" and errors[4]["predicted_sentiment"] == "positive"


def test_confusion_matrix_grows_with_the_label_count(tmp_path: Path) -> None:
    labels = [f"intent_{i:02d}" for i in range(77)]
    predictions = [
        predict(f"{label} example {n}", label, labels[(i + 1) % 77] if n == 0 else label, 0.5 + n / 10)
        for i, label in enumerate(labels)
        for n in range(3)
    ]
    many = write_nlu_report(evaluate_nlu(predictions), predictions, (), tmp_path / "many", title="77 intents")
    few = write_nlu_report(evaluate_nlu(PREDICTIONS), PREDICTIONS, (), tmp_path / "few", title="3 intents")
    assert png_width(many.confusion_matrix) > 2 * png_width(few.confusion_matrix)
    assert "intent_76" in many.html.read_text(encoding="utf-8")


# --- cross-validation folds -----------------------------------------------------------------------------


def fold_data() -> list[Example]:
    many = [Example(f"check balance {i}", "balance") for i in range(12)]
    duplicates = [Example("Hello there!", "balance"), Example("hello there", "balance")]
    return [
        *many[:5], *duplicates, *many[5:],
        *(Example(f"block card {i}", "block") for i in range(7)),
        *(Example(f"close account {i}", "close") for i in range(3)),
        Example("talk to a person", "handoff"),
    ]


def test_folds_are_disjoint_cover_every_example_and_keep_order() -> None:
    examples = fold_data()
    folds = cross_validation_folds(nlu_data_from_examples(examples), k=5)
    assert len(folds) == 5
    tested: list[Example] = []
    for train, test in folds:
        assert Counter(train.examples()) + Counter(test.examples()) == Counter(examples)
        assert not set(train.examples()) & set(test.examples())
        for part in (train, test):
            for intent in part.intents.values():
                assert list(intent.examples) == [e for e in examples if e in intent.examples]
        tested += test.examples()
    # Each testable example is tested exactly once; the single-example intent never leaves train.
    assert Counter(tested) == Counter(e for e in examples if e.intent != "handoff")


def test_folds_are_stratified_and_keep_every_intent_in_train() -> None:
    folds = cross_validation_folds(nlu_data_from_examples(fold_data()), k=5)
    for train, test in folds:
        assert set(train.intents) == {"balance", "block", "close", "handoff"}
        groups = {name: {normalised_text(e.text) for e in intent.examples} for name, intent in test.intents.items()}
        assert len(groups.get("balance", ())) in (2, 3)  # 13 distinct texts over 5 folds
        assert len(groups.get("block", ())) in (1, 2)  # 7 over 5
        assert len(groups.get("close", ())) in (0, 1)  # 3 over 5: tested in some folds, trained on in all
        texts = [e.text for e in test.examples()]
        assert ("Hello there!" in texts) == ("hello there" in texts)  # same normalised text stays together
    sizes = [sum(len({normalised_text(e.text) for e in i.examples}) for i in t.intents.values()) for _, t in folds]
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == 13 + 7 + 3


def test_folds_are_deterministic_per_seed() -> None:
    data = nlu_data_from_examples(fold_data())
    assert cross_validation_folds(data, 5) == cross_validation_folds(data, 5, seed=42)
    assert cross_validation_folds(data, 5) != cross_validation_folds(data, 5, seed=7)
    with pytest.raises(ValueError, match="at least 2 folds"):
        cross_validation_folds(data, 1)

