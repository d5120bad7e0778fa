"""A trained NLU model on disk: a directory with its configuration, label maps, weights, metrics and data hash.

    nlu.json            what the model is: kind, training mode, base encoder, labels, tags, calibration
    heads.safetensors   the intent (or sentiment) and tagging heads
    encoder/            full and contrastive training: the encoder and its tokenizer (safetensors)
    adapter/            LoRA: the adapter weights only; the base encoder comes from `base_model`
    neighbours.safetensors  the training examples' sentence vectors, when their vote counts (`vote_weight`)
    slot_lexicon.json   the slot values seen in training, when their bonus counts (`lexicon_weight`)
    metrics.json        validation figures from training

A new model is written beside the old one and swapped in with renames, so an interrupted run never leaves a
half-written model where the last good one was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from chatwright.config import TrainingMode
from chatwright.errors import ModelLoadError
from chatwright.nlu.training_data import NluData

FORMAT_VERSION = 1
CONFIG_FILE = "nlu.json"
HEADS_FILE = "heads.safetensors"
ENCODER_DIR = "encoder"
ADAPTER_DIR = "adapter"
METRICS_FILE = "metrics.json"
ENCODER_SAVED = ("full", "contrastive")
"""Training modes that change the encoder's own weights, so the model directory carries the encoder."""
FROZEN_ENCODER = ("quick", "contrastive")
"""Training modes whose heads are fit on fixed encoder features, after any change to the encoder."""


class ModelCard(BaseModel):
    """Everything needed to rebuild and trust a trained model, stored as nlu.json."""

    model_config = ConfigDict(extra="forbid")
    format: int = FORMAT_VERSION
    kind: Literal["intent_slots", "sentiment"]
    mode: TrainingMode
    base_model: str
    max_tokens: int
    precision: Literal["fp32", "bf16", "int8"] = Field(
        default="fp32", description="arithmetic the model was calibrated in and runs in (bf16 where supported)")
    labels: list[str]
    tags: list[str]
    temperature: float = 1.0
    oos_intent: str | None = None
    oos_threshold: float = 0.0
    neutral_below: float | None = Field(
        default=None, description="binary sentiment: a top confidence below this reads as neutral")
    intent_slots: dict[str, list[str]] | None = Field(
        default=None, description="slots each intent may be tagged with; null: every slot for every intent")
    word_context: int = Field(default=0, description="units a direction of the LSTM before the tag classifier; 0: none")
    crf: bool = Field(default=False, description="the tagger has learned tag-to-tag scores (nlu/crf.py)")
    joint_decoding: bool = Field(
        default=False, description="intent and tags are decided together (TagDecoder.decode_jointly), and the "
        "out-of-scope threshold was calibrated on those probabilities")
    vote_weight: float = Field(
        default=0.0, ge=0.0, le=1.0, description="share of the nearest training examples' vote in the label "
        "probabilities (fitted on validation data); 0: the head alone")
    lexicon_weight: float = Field(
        default=0.0, ge=0.0, description="weight of the bonus that slot values seen in training add to the tag "
        "log-probabilities (nlu/slot_lexicon.py; fitted on validation data); 0: no bonus")
    distilled_from: str | None = Field(default=None, description="the teacher model it also learned from, if any")
    data_hash: str
    trained_at: str
    epochs_run: int
    training_seconds: float


def data_hash(lines: Iterable[str]) -> str:
    """sha256 over the training data in a canonical order: tells whether a model is stale for its data."""
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def intent_data_hash(data: NluData) -> str:
    """The hash of an intents.yaml's content as the trainer saw it, independent of example order."""
    return data_hash(f"{example.intent}\t{example.markup}" for example in data.examples())


def read_card(directory: Path) -> ModelCard:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelLoadError(f"no trained model at {directory} (missing {CONFIG_FILE}); "
                             "train one with `chatwright train nlu`")
    try:
        card = ModelCard.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ModelLoadError(f"{path} is not a valid model card: {error}") from error
    if card.format != FORMAT_VERSION:
        raise ModelLoadError(f"{path} has format {card.format}; this version reads format {FORMAT_VERSION}")
    return card


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def staging_dir(target: Path) -> Path:
    """An empty directory beside `target` to write a new model into."""
    staging = target.with_name(f".{target.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def publish(staging: Path, target: Path) -> None:
    """Swap a completely written model into place; the previous one survives until the new one is there."""
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
