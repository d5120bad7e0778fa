"""The files an NLU test run leaves behind: metrics JSON, confusion and confidence plots, an HTML report, errors.

The JSON is for comparing runs by machine, the HTML for a person deciding what to fix next (worst intents and
most common confusions first), and errors.jsonl for reading the actual misses with their confidences. Plots are
drawn on matplotlib's Agg canvas without pyplot, so no display or global figure state is involved.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from chatwright.evaluation.nlu_metrics import (
    FoldStat,
    IntentPrediction,
    LabelScores,
    NluMetrics,
    SentimentPrediction,
    error_kind,
)
from chatwright.nlu.markup import EntitySpan

ANNOTATE_ALL_UP_TO = 15  # labels; a bigger confusion matrix only gets its top confusions written in
TOP_CONFUSIONS = 20
_CELL_INCHES = 0.25

_HEADLINE_NAMES = {
    "intent_accuracy": "Intent accuracy",
    "intent_macro_f1": "Intent macro-F1",
    "sentence_accuracy": "Sentence accuracy (intent and all slots right)",
    "slot_precision": "Slot precision (entity level)",
    "slot_recall": "Slot recall (entity level)",
    "slot_f1": "Slot F1 (entity level)",
    "oos_precision": "Out-of-scope precision",
    "oos_recall": "Out-of-scope recall",
    "oos_f1": "Out-of-scope F1",
    "in_scope_accuracy": "In-scope accuracy",
    "sentiment_accuracy": "Sentiment accuracy",
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


@dataclass(frozen=True)
class NluReportFiles:
    metrics: Path
    confusion_matrix: Path
    confidence_histogram: Path
    html: Path
    errors: Path


def write_nlu_report(
    metrics: NluMetrics,
    predictions: Sequence[IntentPrediction],
    sentiment: Sequence[SentimentPrediction],
    out_dir: Path,
    *,
    title: str,
    folds: Mapping[str, FoldStat] | None = None,
) -> NluReportFiles:
    """Write every report file into `out_dir` (created if needed); `folds` adds cross-validation mean ± std."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = NluReportFiles(
        metrics=out_dir / "metrics.json",
        confusion_matrix=out_dir / "intent_confusion.png",
        confidence_histogram=out_dir / "confidence_histogram.png",
        html=out_dir / "report.html",
        errors=out_dir / "errors.jsonl",
    )
    document = metrics.to_dict() | ({"cross_validation": dict(folds)} if folds else {})
    files.metrics.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _plot_confusion(metrics, predictions).savefig(files.confusion_matrix, dpi=100)
    _plot_confidences(predictions).savefig(files.confidence_histogram, dpi=100)
    errors = _errors(predictions, sentiment)
    files.errors.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors), encoding="utf-8")
    files.html.write_text(_html(metrics, title, folds, files, len(errors)), encoding="utf-8")
    return files


# --- plots ----------------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _plot_confusion(metrics: NluMetrics, predictions: Sequence[IntentPrediction]) -> Figure:
    """Rows are gold intents normalised to 1, so small intents' mistakes are as visible as big ones'."""
    labels = sorted(metrics.per_intent)
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for prediction in predictions:
        counts[index[prediction.example.intent], index[prediction.intent]] += 1
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    side = max(6.0, 2.5 + _CELL_INCHES * len(labels))
    figure = _figure(side + 1.5, side)
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, shrink=0.6, label="share of the gold intent")
    font = 9 if len(labels) <= 30 else 7  # 7-point text still fits a quarter-inch cell
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=font)
    axes.set_yticks(range(len(labels)), labels, fontsize=font)
    axes.set_xlabel("predicted intent")
    axes.set_ylabel("gold intent")
    if len(labels) <= ANNOTATE_ALL_UP_TO:
        cells = list(zip(*np.nonzero(counts), strict=True))
        axes.set_title("Intent confusion (colour: row share; numbers: counts)")
    else:
        top = metrics.confusions[:TOP_CONFUSIONS]
        cells = [(index[c.gold], index[c.predicted]) for c in top]
        axes.set_title(f"Intent confusion (colour: row share; numbers: the {len(top)} most common confusions)")
    for row, col in cells:
        colour = "white" if share[row, col] > 0.5 else "black"
        axes.text(col, row, str(counts[row, col]), ha="center", va="center", fontsize=font, color=colour)
    return figure


def _plot_confidences(predictions: Sequence[IntentPrediction]) -> Figure:
    """Where right and wrong predictions' confidences overlap is where no threshold separates them."""
    right = [p.confidence for p in predictions if p.intent == p.example.intent]
    wrong = [p.confidence for p in predictions if p.intent != p.example.intent]
    everything = right + wrong
    bins = np.linspace(min(0.0, *everything), max(1.0, *everything), 21).tolist()
    figure = _figure(7, 4.5)
    axes = figure.add_subplot()
    axes.hist(right, bins=bins, alpha=0.6, color="tab:green", label=f"correct intent ({len(right)})")
    axes.hist(wrong, bins=bins, alpha=0.6, color="tab:red", label=f"wrong intent ({len(wrong)})")
    axes.set_xlabel("confidence of the predicted intent")
    axes.set_ylabel("predictions")
    axes.set_title("Intent confidence")
    axes.legend()
    return figure


# --- errors ---------------------------------------------------------------------------------------------


def _span(span: EntitySpan) -> dict[str, Any]:
    return {"slot": span.slot, "value": span.value, "start": span.start, "end": span.end}


def _errors(
    predictions: Sequence[IntentPrediction], sentiment: Sequence[SentimentPrediction]
) -> list[dict[str, Any]]:
    """Every miss in input order: intent/slot misses, then sentiment misses."""
    errors: list[dict[str, Any]] = []
    for prediction in predictions:
        kind = error_kind(prediction)
        if kind is None:
            continue
        example = prediction.example
        errors.append(
            {
                "kind": kind,
                "text": example.text,
                "gold_intent": example.intent,
                "predicted_intent": prediction.intent,
                "confidence": prediction.confidence,
                "ranking": [{"intent": name, "confidence": value} for name, value in prediction.ranking],
                "gold_slots": [_span(span) for span in example.entities],
                "predicted_slots": [_span(span) for span in prediction.entities],
                "source": example.source,
                "line": example.line,
            }
        )
    errors.extend(
        {
            "kind": "sentiment",
            "text": p.example.text,
            "gold_sentiment": p.example.label.value,
            "predicted_sentiment": p.label.value,
            "score": p.score,
            "source": p.example.source,
            "line": p.example.line,
        }
        for p in sentiment
        if p.label != p.example.label
    )
    return errors


# --- HTML -----------------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f'<td class="n">{value:.3f}</td>'
    if isinstance(value, int):
        return f'<td class="n">{value}</td>'
    return f"<td>{escape(str(value))}</td>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>\n" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def _scores_table(label: str, scores: Mapping[str, LabelScores], worst_first: bool) -> str:
    names = sorted(scores, key=lambda name: (scores[name].f1, name)) if worst_first else sorted(scores)
    rows = [(name, *astuple(scores[name])) for name in names]
    return _table([label, "precision", "recall", "F1", "support"], rows)


def _headline(metrics: NluMetrics, folds: Mapping[str, FoldStat] | None) -> str:
    numbers = metrics.headline()
    if not folds:
        return _table(["metric", "value"], [(_HEADLINE_NAMES[name], value) for name, value in numbers.items()])
    rows = [
        (
            _HEADLINE_NAMES[name],
            value,
            f"{folds[name]['mean']:.3f} ± {folds[name]['std']:.3f} ({folds[name]['folds']} folds)"
            if name in folds
            else "",
        )
        for name, value in numbers.items()
    ]
    return _table(["metric", "all folds pooled", "mean ± std over folds"], rows)


def _confusions(metrics: NluMetrics) -> str:
    if not metrics.confusions:
        return "<p>No intent was confused with another.</p>\n"
    rows = [
        (c.gold, c.predicted, c.count, c.count / metrics.per_intent[c.gold].support)
        for c in metrics.confusions[:TOP_CONFUSIONS]
    ]
    return _table(["gold intent", "predicted intent", "count", "share of gold"], rows)


def _html(
    metrics: NluMetrics,
    title: str,
    folds: Mapping[str, FoldStat] | None,
    files: NluReportFiles,
    error_count: int,
) -> str:
    parts = [
        f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{escape(title)}</title>\n",
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n",
        f"<p>{metrics.count} examples: {metrics.correct_intents} with the right intent, "
        f"{metrics.correct_sentences} with the right intent and slots. {error_count} misses are listed in "
        f'<a href="{escape(files.errors.name)}">{escape(files.errors.name)}</a>.</p>\n',
        _headline(metrics, folds),
        "<h2>Intents, worst first</h2>\n",
        _scores_table("intent", metrics.per_intent, worst_first=True),
        f"<h2>Most common confusions</h2>\n{_confusions(metrics)}",
        f'<img src="{escape(files.confusion_matrix.name)}" alt="intent confusion matrix">\n',
        f'<h2>Confidence</h2>\n<img src="{escape(files.confidence_histogram.name)}" alt="confidence histogram">\n',
    ]
    if metrics.slots is not None:
        parts += ["<h2>Slots (entity level)</h2>\n", _scores_table("slot", metrics.slots.per_slot, worst_first=True)]
    if metrics.out_of_scope is not None:
        oos = metrics.out_of_scope
        in_scope = "n/a" if oos.in_scope_accuracy is None else oos.in_scope_accuracy
        rows = [
            ("precision", oos.precision),
            ("recall", oos.recall),
            ("F1", oos.f1),
            ("gold out-of-scope examples", oos.support),
            ("predicted out of scope", oos.predicted),
            ("in-scope accuracy", in_scope),
        ]
        parts += ["<h2>Out of scope</h2>\n", _table(["metric", "value"], rows)]
    if metrics.sentiment is not None:
        sentiment = metrics.sentiment
        parts += [
            "<h2>Sentiment</h2>\n",
            _table(
                ["metric", "value"],
                [("accuracy", sentiment.accuracy), ("macro-F1", sentiment.macro_f1), ("examples", sentiment.count)],
            ),
            _scores_table("sentiment", sentiment.per_class, worst_first=False),
        ]
    parts.append("</body>\n</html>\n")
    return "".join(parts)
