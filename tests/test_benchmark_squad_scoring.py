"""The SQuAD 2.0 benchmark's scoring, on rows made here: its figures rest on this replay of the abstention rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from benchmarks.rag_squad2 import apply_thresholds, auc, calibrate, operating_point, plot_tradeoff, squad_metrics


def _row(answers: list[str], prediction: str, similarity: float, answerability: float) -> dict[str, Any]:
    return {"answers": answers, "prediction_raw": prediction,
            "support": {"similarity": similarity, "coverage": 1.0, "answerability": answerability}}


ROWS = [
    _row(["Paris"], "Paris", 0.7, 0.9),
    _row(["the Seine"], "Seine river", 0.6, 0.8),
    _row(["1889"], "1890", 0.5, 0.3),
    _row([], "Lyon", 0.2, 0.6),
    _row([], "Marseille", 0.3, 0.2),
]


def test_calibrated_thresholds_decline_what_only_loses_f1_and_the_metrics_count_declines_as_empty() -> None:
    thresholds = calibrate(ROWS, with_answerability=False)
    assert 0.3 < thresholds.min_similarity <= 0.5  # the wrong "1890" scores 0 either way, so 0.5 is kept
    apply_thresholds(ROWS, thresholds)
    assert [r["prediction"] for r in ROWS] == ["Paris", "Seine river", "1890", "", ""]
    metrics = squad_metrics(ROWS, "prediction")
    assert metrics["no_ans_accuracy"] == 100.0
    assert metrics["exact"] == 100 * 3 / 5  # Paris and the two declines
    assert np.isclose(metrics["has_ans_f1"], 100 * (1 + 2 / 3) / 3)  # "Seine river" against "the Seine": F1 2/3


def test_operating_points_run_from_answering_everything_to_declining_everything() -> None:
    assert operating_point(ROWS, np.ones(5, dtype=bool)) == (0.0, 100 * (1 + 2 / 3) / 3)
    assert operating_point(ROWS, np.zeros(5, dtype=bool)) == (100.0, 0.0)
    answerable = [bool(r["answers"]) for r in ROWS]
    assert auc([r["support"]["similarity"] for r in ROWS], answerable) == 1.0
    assert auc([r["support"]["answerability"] for r in ROWS], answerable) == 5 / 6  # only 0.3 < 0.6 is out of order


def test_the_trade_off_plot_is_written_as_a_png(tmp_path: Path) -> None:
    thresholds = calibrate(ROWS, with_answerability=True)
    path = plot_tradeoff(ROWS, thresholds, tmp_path / "tradeoff.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
