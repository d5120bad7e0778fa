"""Calibration fitted on validation data after training: a softmax temperature and the out-of-scope threshold.

Fine-tuned classifiers are over-confident; a single temperature fitted on held-out data makes a confidence of
0.8 mean "right about 80 % of the time", which the out-of-scope threshold and the dialogue policy's
clarification rule both rely on.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
IN_SCOPE_REJECTION = 0.01  # without out-of-scope examples, the share of correct in-scope answers we may lose
MAX_UNSUPERVISED_THRESHOLD = 0.5


def softmax(logits: npt.NDArray[np.float32], temperature: float = 1.0) -> npt.NDArray[np.float32]:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    result: npt.NDArray[np.float32] = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return result


def fit_temperature(logits: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> float:
    """The temperature (on a log grid) with the lowest validation negative log-likelihood."""
    if len(labels) == 0:
        return 1.0
    rows = np.arange(len(labels))

    def nll(temperature: float) -> float:
        return float(-np.log(softmax(logits, temperature)[rows, labels] + 1e-12).mean())

    return float(min(_TEMPERATURES, key=nll))


def oos_threshold(confidences: npt.NDArray[np.float32], predicted: npt.NDArray[np.int64],
                  gold: npt.NDArray[np.int64], oos_label: int | None) -> float:
    """Confidence below which a message counts as out of scope.

    With out-of-scope examples in validation, the threshold that maximises validation accuracy (a message is
    out of scope when predicted so or below the threshold), placed midway between neighbouring confidences.
    Without them, only the cost side can be measured: the threshold rejects about 1 % of correctly classified
    validation messages, capped at 0.5.
    """
    if oos_label is not None and np.any(gold == oos_label):
        values = np.unique(confidences)
        candidates = np.concatenate([[0.0], (values[:-1] + values[1:]) / 2])  # midway: robust to small shifts

        def accuracy(threshold: float) -> float:
            final = np.where(confidences < threshold, oos_label, predicted)
            return float((final == gold).mean())

        best = max(candidates, key=lambda t: (accuracy(float(t)), -float(t)))
        return float(best)
    correct = confidences[predicted == gold]
    if len(correct) == 0:
        return 0.0
    return float(min(np.quantile(correct, IN_SCOPE_REJECTION), MAX_UNSUPERVISED_THRESHOLD))
