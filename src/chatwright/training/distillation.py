"""Knowledge distillation: the small, fast model learns from a larger, slower teacher as well as from the labels.

The teacher is a chatwright model trained on the same labels and tags, usually on a bigger encoder that is too
slow to serve. Its predictions spread belief over every label and tag, which tells the student how alike two
intents are and how sure to be of an example where a one-hot label cannot; the student keeps its own speed.
The teacher runs once over the training examples before training, so an epoch costs no more than without it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
import torch
from torch import nn
from tqdm import tqdm

from chatwright.errors import ConfigError
from chatwright.nlu.model_files import CONFIG_FILE
from chatwright.nlu.trained_model import TrainedModel
from chatwright.project import INTENT_MODEL_DIR, SENTIMENT_MODEL_DIR

log = structlog.get_logger(__name__)

_TEACHER_BATCH = 64
_SHORTEST_CUT_MESSAGE = 4


@dataclass(frozen=True)
class TeacherOutputs:
    """The teacher's raw (uncalibrated) scores for one message: a logit per label and per word a logit per tag,
    for the words within its token budget."""

    intent: torch.Tensor  # labels
    tags: torch.Tensor  # words × tags


def teacher_directory(configured: Path, kind: Literal["intent_slots", "sentiment"]) -> Path:
    """The trained model that teaches a model of `kind`: `configured` itself when it is a model directory, else
    its `nlu/` or `sentiment/` (a teacher project's models directory, which teaches both)."""
    if (configured / CONFIG_FILE).is_file():
        return configured
    inside = configured / (INTENT_MODEL_DIR if kind == "intent_slots" else SENTIMENT_MODEL_DIR)
    if (inside / CONFIG_FILE).is_file():
        return inside
    raise ConfigError(f"teacher {configured} is neither a trained model directory nor a models directory "
                      f"holding {inside.name}/ (no {CONFIG_FILE} in either)")


class Teacher:
    """A trained model's scores for the training messages, looked up by their words."""

    def __init__(self, outputs: dict[tuple[str, ...], TeacherOutputs]) -> None:
        self._outputs = outputs

    @classmethod
    def run(cls, directory: Path, labels: Sequence[str], tags: Sequence[str], messages: Sequence[tuple[str, ...]],
            *, root: Path | None = None, show_progress: bool = True) -> Teacher:
        """Load the teacher at `directory`, check it predicts `labels` and `tags`, and score `messages`."""
        model = TrainedModel.load(directory, root=root)
        card = model.card
        if card.labels != list(labels) or card.tags != list(tags):
            raise ConfigError(f"teacher {directory} was trained on other labels or tags than this data "
                              f"({len(card.labels)} labels and {len(card.tags)} tags, against {len(labels)} and "
                              f"{len(tags)}); train the teacher on the same data first")
        unique = sorted(dict.fromkeys(messages), key=len)  # batches of similar length: little padding
        outputs: dict[tuple[str, ...], TeacherOutputs] = {}
        chunks = range(0, len(unique), _TEACHER_BATCH)
        for first in tqdm(chunks, desc="teacher", unit="batch", disable=not show_progress, leave=False):
            chunk = unique[first:first + _TEACHER_BATCH]
            for words, (intent, word_tags) in zip(chunk, model.logits(chunk), strict=True):
                outputs[words] = TeacherOutputs(torch.from_numpy(intent), torch.from_numpy(word_tags))
        log.info("teacher scored the training messages", teacher=str(directory), messages=len(outputs))
        return cls(outputs)

    def label_of(self, words: tuple[str, ...]) -> int:
        """The label the teacher ranks first for a message it scored."""
        return int(self._outputs[words].intent.argmax())

    def loss(self, messages: Sequence[tuple[str, ...]], intent_logits: torch.Tensor, tag_logits: torch.Tensor,
             word_mask: torch.Tensor, temperature: float) -> torch.Tensor:
        """How far the student's softened label (and, where there are tags, per-word tag) distributions are from
        the teacher's: KL divergence at `temperature`, scaled by its square so the gradients keep their size
        whatever the temperature (Hinton et al., 2015)."""
        taught = [self._outputs[words] for words in messages]
        loss = _softened_kl(intent_logits.float(), torch.stack([t.intent for t in taught]), temperature)
        if tag_logits.size(-1) <= 1:
            return loss
        words = tag_logits.size(1)
        teacher_tags = tag_logits.new_zeros(tag_logits.shape, dtype=torch.float32)
        both = torch.zeros(word_mask.shape, dtype=torch.bool)  # words each model scored
        for row, outputs in enumerate(taught):
            kept = min(words, outputs.tags.size(0))
            teacher_tags[row, :kept] = outputs.tags[:kept]
            both[row, :kept] = True
        both &= word_mask
        if not both.any():
            return loss
        return loss + _softened_kl(tag_logits.float()[both], teacher_tags[both], temperature)


def phrases(messages: Sequence[tuple[str, ...]], copies: int, rng: random.Random) -> list[tuple[str, ...]]:
    """Up to `copies` shorter phrases of each message, each a run of at least half its words (messages of four
    words or more), none repeating a message or another phrase. A phrase can carry another label than its
    message ("not bad at all" holds "bad at all"), so only a teacher can label them."""
    seen = set(messages)
    found: list[tuple[str, ...]] = []
    for words in messages:
        if len(words) < _SHORTEST_CUT_MESSAGE:
            continue
        for _ in range(copies):
            length = rng.randint(-(-len(words) // 2), len(words) - 1)
            start = rng.randint(0, len(words) - length)
            phrase = words[start:start + length]
            if phrase not in seen:
                seen.add(phrase)
                found.append(phrase)
    return found


def _softened_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    divergence = nn.functional.kl_div(nn.functional.log_softmax(student / temperature, dim=-1),
                                      nn.functional.log_softmax(teacher / temperature, dim=-1),
                                      reduction="batchmean", log_target=True)
    return divergence * temperature ** 2
