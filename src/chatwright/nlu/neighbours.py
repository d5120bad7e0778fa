"""A vote of the nearest training examples, mixed into the label head's probabilities.

A linear head keeps one weight vector per label, so a message worded like a few training examples of its label,
but unlike that label's average, can lose to a broader label. The labels of its nearest training examples (in
the sentence space the encoder ended training with) keep that evidence, as in kNN-augmented classifiers and
kNN-LM. How much the vote counts is fitted on validation data after training, and 0 switches it off wherever it
does not help.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from safetensors.torch import load_file, save_file
from torch.nn.functional import normalize

NEIGHBOURS_FILE = "neighbours.safetensors"
NEIGHBOURS = 10
MAX_PER_LABEL = 200  # the search reads every kept vector for every message (all 13,000 of SNIPS: 2 to 3 ms
# more a message); a label with more examples than this has a head that has seen plenty, so a sample serves
SIMILARITY_TEMPERATURE = 0.05  # cosine similarities are close together; a sharp softmax lets the nearest lead
_WEIGHTS = np.round(np.linspace(0.0, 0.7, 15), 2)  # candidate shares of the vote, from none up

FloatArray = npt.NDArray[np.float32]


def kept_rows(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Rows of the examples the vote keeps, in their order: at most MAX_PER_LABEL of each label (a seeded
    sample), so training computes vectors only for these."""
    rng = np.random.default_rng(0)
    rows = [rng.choice(chosen, MAX_PER_LABEL, replace=False) if len(chosen) > MAX_PER_LABEL else chosen
            for chosen in (np.flatnonzero(labels == label) for label in np.unique(labels))]
    kept: npt.NDArray[np.int64] = np.sort(np.concatenate(rows))
    return kept


@dataclass(frozen=True)
class NeighbourVote:
    """Unit-length sentence vectors of the training examples and their label ids.

    The search runs in PyTorch, under the thread policy the heads already serve with beside ONNX Runtime.
    """

    vectors: torch.Tensor  # examples × hidden, float32
    labels: torch.Tensor  # examples, int64
    label_count: int

    @classmethod
    def of(cls, vectors: torch.Tensor, labels: torch.Tensor, label_count: int) -> NeighbourVote:
        return cls(normalize(vectors.float(), dim=1), labels.long(), label_count)

    @torch.inference_mode()
    def votes(self, vectors: FloatArray) -> FloatArray:
        """Per message, the labels of its nearest training examples, each weighted by softmax of similarity."""
        similarity = normalize(torch.from_numpy(vectors).float(), dim=1) @ self.vectors.T  # messages × examples
        close, nearest = similarity.topk(min(NEIGHBOURS, similarity.shape[1]), dim=1)
        weights = torch.softmax(close / SIMILARITY_TEMPERATURE, dim=1)
        result = torch.zeros((len(vectors), self.label_count), dtype=torch.float32)
        result.scatter_add_(1, self.labels[nearest], weights)
        votes: FloatArray = result.numpy()
        return votes

    def save(self, directory: Path) -> None:
        """Half precision on disk: 10,000 examples of 384 dimensions take 7.7 MB."""
        save_file({"vectors": self.vectors.half(), "labels": self.labels}, str(directory / NEIGHBOURS_FILE))

    @classmethod
    def load(cls, directory: Path, label_count: int) -> NeighbourVote:
        saved = load_file(str(directory / NEIGHBOURS_FILE))
        return cls(saved["vectors"].float(), saved["labels"].long(), label_count)


def mix(head: FloatArray, votes: FloatArray, weight: float) -> FloatArray:
    mixed: FloatArray = ((1.0 - weight) * head + weight * votes).astype(np.float32)
    return mixed


def fit_vote_weight(head: FloatArray, votes: FloatArray, gold: npt.NDArray[np.int64]) -> float:
    """The share of the vote with the best validation accuracy; among equals, the lowest log-loss, then the
    smallest share (the head alone when the vote never helps)."""
    if len(gold) == 0:
        return 0.0
    rows = np.arange(len(gold))

    def quality(weight: float) -> tuple[float, float, float]:
        mixed = mix(head, votes, weight)
        accuracy = float((mixed.argmax(axis=1) == gold).mean())
        log_loss = float(-np.log(mixed[rows, gold] + 1e-12).mean())
        return accuracy, -log_loss, -weight

    return float(max(_WEIGHTS, key=lambda weight: quality(float(weight))))

