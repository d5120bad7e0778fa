"""Fine-tuning the joint network: full, LoRA, quick (frozen encoder, heads trained on cached features), or
contrastive (the encoder first learns from pairs of same-intent messages, then quick heads).

Seeded, class-weighted (so a rare intent is not drowned out), early-stopped on the validation split, with a
checkpoint after every epoch so an interrupted run resumes where it stopped. The finished model is calibrated
on validation data and published atomically: the last good model stays until the new one is complete.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import structlog
import torch
from safetensors.torch import save_file
from seqeval.metrics import f1_score
from torch import nn
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from chatwright.config import NluTrainingConfig, TrainingMode
from chatwright.models.onnx_encoder import served_encoder
from chatwright.models.registry import available_cpus, encoder_location, local_path
from chatwright.nlu.bio import TagDecoder
from chatwright.nlu.joint_model import EncodedBatch, JointHeads, JointModel, JointOutput, encode_words
from chatwright.nlu.model_files import (
    ADAPTER_DIR,
    ENCODER_DIR,
    ENCODER_SAVED,
    FROZEN_ENCODER,
    HEADS_FILE,
    METRICS_FILE,
    ModelCard,
    publish,
    staging_dir,
    write_json,
)
from chatwright.nlu.neighbours import NeighbourVote, fit_vote_weight, kept_rows, mix
from chatwright.nlu.precision import autocast, resolve, served
from chatwright.nlu.slot_lexicon import SlotLexicon, fit_lexicon_weight
from chatwright.nlu.trained_model import load_encoder
from chatwright.training.calibration import fit_temperature, oos_threshold, softmax
from chatwright.training.contrastive import in_batch_contrastive_loss, pair_batches
from chatwright.training.distillation import Teacher, phrases, teacher_directory

log = structlog.get_logger(__name__)

_MAX_EPOCHS = 100  # for small data stretched to `min_steps`
_QUICK_EPOCHS = 60
_QUICK_MAX_EPOCHS = 300
_QUICK_MIN_STEPS = 400
_QUICK_LEARNING_RATE = 1e-2  # with the averaged weights: SNIPS quick's slot F1 levels off in half the epochs
_QUICK_PATIENCE_STEPS = 300  # quick mode stops after this many steps (and `patience` epochs) without gain
_QUICK_BATCH = 128  # heads on cached features: few large steps beat many small ones on a CPU
_BUCKET_BATCHES = 50  # batches sorted by length together: less padding, still shuffled
_WORD_CONTEXT = 64  # LSTM units a direction between frozen word states and the tag classifier


@dataclass(frozen=True)
class TaggedExample:
    """A message as the network sees it: words, a tag id per word and a label id."""

    words: tuple[str, ...]
    tags: tuple[int, ...]
    label: int


@dataclass(frozen=True)
class TrainingTask:
    kind: Literal["intent_slots", "sentiment"]
    labels: list[str]
    tags: list[str]
    data_hash: str
    oos_intent: str | None = None
    neutral_below: float | None = None
    intent_slots: dict[str, list[str]] | None = None  # slots each intent's examples use; None: any slot anywhere


@dataclass(frozen=True)
class TrainingOutcome:
    card: ModelCard
    metrics: dict[str, float]
    directory: Path


@dataclass
class _Scores:
    """Validation outputs of one pass: logits, sentence vectors, each message's tag log-probabilities (words ×
    tags; none without tags), and the headline score."""

    logits: npt.NDArray[np.float32]
    pooled: npt.NDArray[np.float32]
    accuracy: float
    slot_f1: float | None
    tag_log_probs: list[npt.NDArray[np.float32]] | None = None

    @property
    def score(self) -> float:
        return self.accuracy if self.slot_f1 is None else (self.accuracy + self.slot_f1) / 2


class JointTrainer:
    def __init__(self, settings: NluTrainingConfig, *, root: Path | None = None, show_progress: bool = True) -> None:
        self.settings = settings
        self._root = root
        self._show_progress = show_progress

    def train(self, task: TrainingTask, train: Sequence[TaggedExample], validation: Sequence[TaggedExample],
              target: Path) -> TrainingOutcome:
        """Train, calibrate and publish a model to `target`; resumes from a checkpoint for the same data."""
        if not train:
            raise ValueError("no training examples")
        settings = self.settings
        if unused := settings.unused_learning_rate:  # the command line refuses it; a configuration file is told
            log.warning(unused, mode=settings.mode, learning_rate=settings.learning_rate)
        _seed(settings.seed)
        torch.set_num_threads(available_cpus())
        started = time.perf_counter()
        tokenizer, encoder = load_encoder(encoder_location(settings.base_model, root=self._root))
        if settings.mode == "lora":
            encoder = _with_lora(encoder, settings.lora_rank)
        else:
            # the vocabulary table is half the weights and rarely worth moving on small data; freezing it
            # also saves a third of each optimiser step
            encoder.get_input_embeddings().weight.requires_grad = False
        word_context = _WORD_CONTEXT if settings.mode in FROZEN_ENCODER and len(task.tags) > 1 else 0
        heads = JointHeads(encoder.config.hidden_size, len(task.labels), task.tags, word_context=word_context,
                           word_dropout=settings.word_dropout, crf=settings.crf)
        network = JointModel(encoder, heads)
        teacher = None
        if settings.teacher is not None:
            # messages without slots also lend the teacher their phrases to label (a phrase would cut slots)
            extra = phrases([example.words for example in train], settings.distillation_phrases,
                            random.Random(settings.seed)) if len(task.tags) <= 1 else []
            teacher = Teacher.run(teacher_directory(local_path(settings.teacher, self._root), task.kind),
                                  task.labels, task.tags, [*(example.words for example in train), *extra],
                                  root=self._root, show_progress=self._show_progress)
            train = [*train, *(TaggedExample(words, (0,) * len(words), teacher.label_of(words)) for words in extra)]
        loop = _Loop(network, tokenizer, task, train, validation, settings, self._show_progress, teacher)
        checkpoint = target.with_name(f".{target.name}.checkpoint")
        if settings.mode == "contrastive":
            if len(task.tags) > 1:
                log.warning("contrastive mode tags slots with a head on the tuned encoder's fixed features, which "
                            "finds fewer slots than full fine-tuning (SNIPS at 5 %: slot F1 75 against 86); "
                            "use it for intents with few examples, and full where slots matter",
                            slots=len(task.tags) // 2)
            loop.run_contrastive(checkpoint)
        precision = served(settings.precision)
        wants_vote = settings.vote_weight != 0
        if settings.mode in FROZEN_ENCODER:
            with _encoder_as_served(network, tokenizer, precision, settings.mode):  # heads learn what they will see
                scores, epochs, vote = loop.run_quick(wants_vote)
        else:
            scores, epochs = loop.run_fine_tuning(checkpoint)
            with _encoder_as_served(network, tokenizer, precision, settings.mode):
                if precision != "bf16":
                    scores = loop.evaluate()  # calibrated on what the model will compute
                vote = loop.neighbour_vote() if wants_vote else None
        validation_labels = np.array([example.label for example in loop.validation], dtype=np.int64)
        temperature = fit_temperature(scores.logits, validation_labels)
        probabilities = head = softmax(scores.logits, temperature)
        vote_weight = 0.0
        if vote is not None:
            votes = vote.votes(scores.pooled)
            vote_weight = (fit_vote_weight(head, votes, validation_labels) if settings.vote_weight is None
                           else settings.vote_weight)
            probabilities = mix(head, votes, vote_weight)
        log_probs = scores.tag_log_probs
        jointly = settings.joint_decoding and task.intent_slots is not None and log_probs is not None
        decoder = heads.tag_decoder(task.labels, task.intent_slots)
        lexicon, lexicon_weight = None, 0.0
        if log_probs is not None and settings.lexicon_weight != 0:
            lexicon = SlotLexicon.of([(example.words, [task.tags[tag] for tag in example.tags]) for example in train])
            lexicon_weight, log_probs = _weigh_lexicon(lexicon, settings.lexicon_weight, task.tags, loop.validation,
                                                       log_probs, probabilities, decoder, jointly=jointly)
        if jointly and log_probs is not None:  # the threshold is then calibrated on what serving will compare with it
            probabilities = np.stack([decoder.decode_jointly(words, row)[0]
                                      for words, row in zip(log_probs, probabilities, strict=True)])
        threshold = self._threshold(task, probabilities, validation_labels)
        seconds = time.perf_counter() - started
        card = ModelCard(kind=task.kind, mode=settings.mode, base_model=settings.base_model,
                         max_tokens=settings.max_tokens, precision=precision, labels=task.labels, tags=task.tags,
                         temperature=temperature, oos_intent=task.oos_intent, oos_threshold=threshold,
                         neutral_below=task.neutral_below, intent_slots=task.intent_slots,
                         word_context=heads.word_context, crf=heads.crf is not None,
                         joint_decoding=jointly, vote_weight=vote_weight,
                         lexicon_weight=lexicon_weight, distilled_from=settings.teacher,
                         data_hash=task.data_hash,
                         trained_at=datetime.now(UTC).isoformat(timespec="seconds"), epochs_run=epochs,
                         training_seconds=round(seconds, 1))
        metrics = {"validation_accuracy": round(scores.accuracy, 4),
                   "validation_accuracy_as_served": round(float((probabilities.argmax(axis=1)  # vote, joint decoding
                                                                 == validation_labels).mean()), 4),
                   "training_seconds": round(seconds, 1), "epochs": epochs, "temperature": round(temperature, 3),
                   "vote_weight": vote_weight, "lexicon_weight": lexicon_weight, "oos_threshold": round(threshold, 4),
                   "train_examples": len(train), "validation_examples": len(validation)}
        if scores.slot_f1 is not None:
            metrics["validation_slot_f1"] = round(scores.slot_f1, 4)
        _write_model(network, tokenizer, card, metrics, target, vote, lexicon)
        _remove(checkpoint)
        log.info("model trained", kind=task.kind, mode=settings.mode, target=str(target), **metrics)
        return TrainingOutcome(card, metrics, target)

    def _threshold(self, task: TrainingTask, probabilities: npt.NDArray[np.float32],
                   labels: npt.NDArray[np.int64]) -> float:
        if task.kind != "intent_slots":
            return 0.0
        if self.settings.oos_threshold is not None:
            return self.settings.oos_threshold
        oos = task.labels.index(task.oos_intent) if task.oos_intent in task.labels else None
        return oos_threshold(probabilities.max(axis=1), probabilities.argmax(axis=1), labels, oos)


class _Loop:
    """The optimisation itself, separate from loading, calibrating and writing."""

    def __init__(self, network: JointModel, tokenizer: PreTrainedTokenizerBase, task: TrainingTask,
                 train: Sequence[TaggedExample], validation: Sequence[TaggedExample], settings: NluTrainingConfig,
                 show_progress: bool, teacher: Teacher | None = None) -> None:
        self.network = network
        self.teacher = teacher
        self.tokenizer = tokenizer
        self.task = task
        # kept in length order: batches read in order (features, validation) then need little padding
        self.train = sorted(train, key=lambda example: len(example.words))
        self.validation = sorted(validation, key=lambda example: len(example.words))
        self.settings = settings
        self.show_progress = show_progress
        self.has_tags = len(task.tags) > 1
        self.precision = resolve(settings.precision)
        counts = np.bincount([example.label for example in train], minlength=len(task.labels)).astype(np.float64)
        weights = 1.0 / np.sqrt(np.maximum(counts, 1.0))  # inverse square root: helps rare intents, stays stable
        self.intent_loss = nn.CrossEntropyLoss(weight=torch.tensor(weights / weights.mean(), dtype=torch.float32),
                                               label_smoothing=settings.label_smoothing)
        self.tag_loss = nn.CrossEntropyLoss()
        self.rng = random.Random(settings.seed)

    def run_fine_tuning(self, checkpoint: Path) -> tuple[_Scores, int]:
        settings = self.settings
        encoder_lr = settings.lora_learning_rate if settings.mode == "lora" else settings.learning_rate
        trainable = [p for p in self.network.encoder.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW([{"params": trainable, "lr": encoder_lr},
                                       {"params": self.network.heads.parameters(), "lr": settings.head_learning_rate}],
                                      weight_decay=0.01)
        steps_per_epoch = -(-len(self.train) // settings.batch_size)
        # small data takes few steps per epoch: it gets more epochs, up to a cap, to reach `min_steps`, and a
        # patience stretched alike, or noise in a small validation set would stop it while the rate is still high
        epochs = _stretched_epochs(settings.epochs, settings.min_steps, steps_per_epoch, _MAX_EPOCHS)
        patience = -(-settings.patience * epochs // settings.epochs)
        steps = epochs * steps_per_epoch
        scheduler = _warmup_then_linear_decay(optimizer, steps)
        average = _WeightAverage(self.network, steps_per_epoch if settings.weight_averaging else 0)
        state = self._resume(checkpoint, optimizer, scheduler, "fine-tuning", average)
        while state.epoch < epochs and state.best.stale < patience:
            self.network.train()
            batches = list(self._batches(self.train, settings.batch_size, shuffle=True))
            progress = tqdm(batches, desc=f"epoch {state.epoch + 1}/{epochs}", unit="batch",
                            disable=not self.show_progress, leave=False)
            for examples in progress:
                with autocast(self.precision):
                    encoded = self._encode(examples)
                    outputs = self.network(encoded)
                loss = self._loss(outputs.intent, outputs.tags, encoded.word_mask, *self._targets(examples))
                if self.teacher is not None:
                    share = settings.distillation_weight
                    taught = self.teacher.loss([example.words for example in examples], outputs.intent,
                                               outputs.tags, encoded.word_mask, settings.distillation_temperature)
                    loss = (1 - share) * loss + share * taught
                _step(loss, optimizer, scheduler)
                average.update()
                progress.set_postfix(loss=f"{loss.item():.3f}")
            state.epoch += 1
            with average.applied():
                scores = self.evaluate()
                state.best.observe(scores.score, self.network)
            log.info("epoch done", epoch=state.epoch, validation_accuracy=round(scores.accuracy, 4),
                     validation_slot_f1=scores.slot_f1, best=round(state.best.score, 4))
            state.save(checkpoint, self.network, optimizer, scheduler, self.rng, average)
        if state.best.weights is not None:
            self.network.load_state_dict(state.best.weights)
        return self.evaluate(), state.epoch

    def run_contrastive(self, checkpoint: Path) -> None:
        """Pull same-intent messages together in the encoder's sentence space, a checkpoint after every pass."""
        settings = self.settings
        labels = [example.label for example in self.train]
        batches_per_epoch = len(pair_batches(labels, settings.batch_size, random.Random(0)))
        if not batches_per_epoch:
            log.warning("no intent has two training examples to pair; the encoder stays as it is")
            return
        trainable = [p for p in self.network.encoder.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=settings.contrastive_learning_rate, weight_decay=0.01)
        steps = settings.contrastive_epochs * batches_per_epoch
        scheduler = _warmup_then_linear_decay(optimizer, steps)
        # the pairs keep their last weights: averaging them did not help (10-shot BANKING77 85.36 vs 85.42 %)
        average = _WeightAverage(self.network, 0)
        state = self._resume(checkpoint, optimizer, scheduler, "contrastive", average)
        self.network.train()
        while state.epoch < settings.contrastive_epochs:
            batches = pair_batches(labels, settings.batch_size, self.rng)
            progress = tqdm(batches, desc=f"contrastive {state.epoch + 1}/{settings.contrastive_epochs}",
                            unit="batch", disable=not self.show_progress, leave=False)
            for pairs in progress:
                with autocast(self.precision):
                    anchors, _ = self.network.features(self._encode([self.train[a] for a, _ in pairs]))
                    positives, _ = self.network.features(self._encode([self.train[b] for _, b in pairs]))
                loss = in_batch_contrastive_loss(anchors, positives)
                _step(loss, optimizer, scheduler)
                progress.set_postfix(loss=f"{loss.item():.3f}")
            state.epoch += 1
            log.info("contrastive epoch done", epoch=state.epoch, loss=round(loss.item(), 4))
            state.save(checkpoint, self.network, optimizer, scheduler, self.rng, average)

    def _resume(self, checkpoint: Path, optimizer: torch.optim.Optimizer, scheduler: Any, stage: str,
                average: _WeightAverage) -> _Checkpoint:
        """The run's state from `checkpoint` when it is for this data and these settings, else a fresh start."""
        state = _Checkpoint.load(checkpoint, self.task.data_hash, self.settings)
        if state is None:
            return _Checkpoint(epoch=0, best=_Best(), data_hash=self.task.data_hash,
                               settings=self.settings.model_dump_json())
        self.network.load_state_dict(state.saved["weights"])
        optimizer.load_state_dict(state.saved["optimizer"])
        scheduler.load_state_dict(state.saved["scheduler"])
        self.rng.setstate(state.saved["rng"])
        average.load(state.saved["average"])
        log.info("resuming training", stage=stage, checkpoint=str(checkpoint), after_epoch=state.epoch)
        return state

    def run_quick(self, with_vote: bool) -> tuple[_Scores, int, NeighbourVote | None]:
        """Heads only, on encoder features computed and batched once: seconds instead of minutes (and, when
        asked, the neighbour vote from the same features)."""
        for parameter in self.network.encoder.parameters():
            parameter.requires_grad = False
        train_batches = self._feature_batches(self.train, _QUICK_BATCH, shuffle=True)
        validation_batches = self._feature_batches(self.validation, 64)
        heads = self.network.heads
        optimizer = torch.optim.AdamW(heads.parameters(), lr=_QUICK_LEARNING_RATE, weight_decay=0.01)
        average = _WeightAverage(heads, len(train_batches) if self.settings.weight_averaging else 0)
        best, epoch = _Best(), 0
        # small data has one step per epoch, so the epoch budget grows until the heads get enough steps, and
        # patience counts steps too: a few epochs of SNIPS, dozens of a 10-shot set's
        epochs = _stretched_epochs(_QUICK_EPOCHS, _QUICK_MIN_STEPS, len(train_batches), _QUICK_MAX_EPOCHS)
        stale_limit = max(self.settings.patience, -(-_QUICK_PATIENCE_STEPS // len(train_batches)))
        for epoch in range(1, epochs + 1):  # noqa: B007 - the count of epochs run is reported
            heads.train()
            for batch in self.rng.sample(train_batches, len(train_batches)):
                intent_logits, tag_logits = heads(batch.pooled, batch.words, batch.word_mask)
                loss = self._loss(intent_logits, tag_logits, batch.word_mask, batch.labels, batch.tags)
                torch.autograd.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
                average.update()
            with average.applied():
                best.observe(self._scores(self._head_outputs(validation_batches)).score, heads, margin=1e-4)
            if best.stale >= stale_limit:
                break
        if best.weights is not None:
            heads.load_state_dict(best.weights)
        vote = None
        if with_vote:
            pooled = torch.cat([batch.pooled for batch in train_batches])
            labels = torch.cat([batch.labels for batch in train_batches])
            rows = torch.from_numpy(kept_rows(labels.numpy()))
            vote = NeighbourVote.of(pooled[rows], labels[rows], len(self.task.labels))
        return self._scores(self._head_outputs(validation_batches)), epoch, vote

    @torch.inference_mode()
    def neighbour_vote(self) -> NeighbourVote:
        """The kept training examples' sentence vectors as the trained network computes them."""
        self.network.eval()
        rows = kept_rows(np.array([example.label for example in self.train], dtype=np.int64))
        kept = [self.train[row] for row in rows]  # still in length order: batches need little padding
        with autocast(self.precision):
            pooled = [self.network.features(self._encode(examples))[0].float()
                      for examples in self._batches(kept, 64, shuffle=False)]
        labels = torch.tensor([example.label for example in kept])
        return NeighbourVote.of(torch.cat(pooled), labels, len(self.task.labels))

    @torch.inference_mode()
    def evaluate(self) -> _Scores:
        self.network.eval()
        with autocast(self.precision):
            outputs = [self.network(self._encode(examples))
                       for examples in self._batches(self.validation, 64, shuffle=False)]
        return self._scores(outputs)

    def _scores(self, outputs: list[JointOutput]) -> _Scores:
        if not self.validation:
            hidden = self.network.heads.intent.in_features
            return _Scores(np.zeros((0, len(self.task.labels)), dtype=np.float32),
                           np.zeros((0, hidden), dtype=np.float32), 0.0, None)
        logits = np.concatenate([output.intent.float().numpy() for output in outputs])
        pooled = np.concatenate([output.pooled.float().numpy() for output in outputs])
        gold = np.array([example.label for example in self.validation])
        accuracy = float((logits.argmax(axis=1) == gold).mean())
        if not self.has_tags:
            return _Scores(logits, pooled, accuracy, None)
        tag_names = self.task.tags
        decoder = self.network.heads.tag_decoder(self.task.labels, self.task.intent_slots)
        log_probs = [rows[:len(example.tags)] for rows, example in zip(
            (rows for output in outputs for rows in torch.log_softmax(output.tags.float(), dim=-1).numpy()),
            self.validation, strict=True)]
        predicted = [[tag_names[i] for i in decoder.decode(rows, int(intent))]
                     for rows, intent in zip(log_probs, logits.argmax(axis=1), strict=True)]
        expected = [[tag_names[t] for t in example.tags] for example in self.validation]
        slot_f1 = float(f1_score(expected, predicted)) if any(t != "O" for seq in expected for t in seq) else 1.0
        return _Scores(logits, pooled, accuracy, slot_f1, log_probs)

    def _loss(self, intent_logits: torch.Tensor, tag_logits: torch.Tensor, word_mask: torch.Tensor,
              labels: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        intent_logits, tag_logits = intent_logits.float(), tag_logits.float()  # bf16 under autocast
        loss: torch.Tensor = self.intent_loss(intent_logits, labels)
        if not self.has_tags:
            return loss
        words = tag_logits.shape[1]
        gold = nn.functional.pad(tags[:, :words], (0, max(words - tags.shape[1], 0)), value=-100)
        gold = gold.masked_fill(~word_mask, -100)  # words past the token budget have no state of their own
        crf = self.network.heads.crf
        if crf is None:
            words_loss: torch.Tensor = self.tag_loss(tag_logits.reshape(-1, tag_logits.size(-1)), gold.reshape(-1))
            return loss + words_loss
        # per word, as the word classifier's loss is, so the balance against the intent loss stays the same
        sequences: torch.Tensor = crf.negative_log_likelihood(tag_logits, gold)
        return loss + sequences / (gold >= 0).sum().clamp(min=1)

    @staticmethod
    def _targets(examples: Sequence[TaggedExample]) -> tuple[torch.Tensor, torch.Tensor]:
        """Label ids, and tag ids padded with -100 (ignored by the loss) to the longest message."""
        labels = torch.tensor([example.label for example in examples])
        tags = torch.full((len(examples), max(len(example.tags) for example in examples)), -100, dtype=torch.long)
        for row, example in enumerate(examples):
            tags[row, :len(example.tags)] = torch.tensor(example.tags, dtype=torch.long)
        return labels, tags

    def _encode(self, examples: Sequence[TaggedExample]) -> EncodedBatch:
        return encode_words(self.tokenizer, [example.words for example in examples], self.settings.max_tokens)

    def _batches(self, examples: list[TaggedExample], size: int, *, shuffle: bool) -> Iterator[list[TaggedExample]]:
        """Batches of similar length; shuffled buckets when training, input order when evaluating."""
        if not shuffle:
            for first in range(0, len(examples), size):
                yield examples[first:first + size]
            return
        order = examples[:]
        self.rng.shuffle(order)
        batches: list[list[TaggedExample]] = []
        bucket = size * _BUCKET_BATCHES
        for first in range(0, len(order), bucket):
            chunk = sorted(order[first:first + bucket], key=lambda example: len(example.words))
            batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
        self.rng.shuffle(batches)
        yield from batches

    @torch.no_grad()  # not inference mode: the heads train on these tensors
    def _feature_batches(self, examples: list[TaggedExample], size: int, *,
                         shuffle: bool = False) -> list[_FeatureBatch]:
        """Encoder features of `examples` stacked into batches of similar length, with their targets."""
        self.network.eval()
        batches = list(self._batches(examples, size, shuffle=shuffle))
        stacked: list[_FeatureBatch] = []
        for batch in tqdm(batches, desc="encoding", unit="batch", disable=not self.show_progress, leave=False):
            with autocast(self.precision):
                encoded = self._encode(batch)
                pooled, words = self.network.features(encoded)
            stacked.append(_FeatureBatch(pooled.float(), words.float(), encoded.word_mask, *self._targets(batch)))
        return stacked

    def _head_outputs(self, batches: list[_FeatureBatch]) -> list[JointOutput]:
        self.network.heads.eval()
        with torch.inference_mode():
            return [JointOutput(batch.pooled, *self.network.heads(batch.pooled, batch.words, batch.word_mask))
                    for batch in batches]


@dataclass(frozen=True)
class _FeatureBatch:
    """A quick-mode batch: frozen-encoder features and the targets they are trained towards."""

    pooled: torch.Tensor  # batch × hidden
    words: torch.Tensor  # batch × words × hidden
    word_mask: torch.Tensor  # batch × words
    labels: torch.Tensor
    tags: torch.Tensor


class _WeightAverage:
    """An exponential moving average of the trainable weights over about `horizon` optimiser steps.

    The weights after any one step carry that step's noise, and early stopping picks an epoch while the learning
    rate is still high; their average over the last epoch sits nearer the middle of the region the optimiser
    explores and generalises a little better. A horizon of 0 keeps the plain weights.
    """

    def __init__(self, network: nn.Module, horizon: int) -> None:
        self.weights = [p for p in network.parameters() if p.requires_grad] if horizon else []
        self.rate = 1.0 / max(horizon, 1)
        self.averaged = [weight.detach().clone() for weight in self.weights]

    @torch.no_grad()
    def update(self) -> None:
        if self.weights:
            torch._foreach_lerp_(self.averaged, [weight.detach() for weight in self.weights], self.rate)

    def load(self, averaged: list[torch.Tensor]) -> None:
        for mine, saved in zip(self.averaged, averaged, strict=True):
            mine.copy_(saved)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the network holds the averaged weights; its own come back afterwards."""
        current = [weight.detach().clone() for weight in self.weights]
        self._put(self.averaged)
        try:
            yield
        finally:
            self._put(current)

    @torch.no_grad()
    def _put(self, values: list[torch.Tensor]) -> None:
        for weight, value in zip(self.weights, values, strict=True):
            weight.copy_(value)


def _stretched_epochs(epochs: int, min_steps: int, steps_per_epoch: int, cap: int) -> int:
    """`epochs`, or more (up to `cap`) when that many epochs of `steps_per_epoch` fall short of `min_steps`."""
    return max(epochs, min(cap, -(-min_steps // max(steps_per_epoch, 1))))


@dataclass
class _Best:
    """Early stopping's memory: the best validation score so far, the weights that scored it, and the epochs
    since; a score must beat the best by more than `margin` to count as a gain."""

    score: float = -1.0
    weights: dict[str, torch.Tensor] | None = None
    stale: int = 0

    def observe(self, score: float, module: nn.Module, *, margin: float = 0.0) -> None:
        if score > self.score + margin:
            self.score, self.weights, self.stale = score, _copy(module), 0
        else:
            self.stale += 1


@dataclass
class _Checkpoint:
    """Everything needed to continue an interrupted run exactly."""

    epoch: int
    best: _Best
    data_hash: str
    settings: str
    saved: dict[str, Any] = field(default_factory=dict)  # weights, optimizer, scheduler and rng of a resumed run

    @classmethod
    def load(cls, path: Path, data_hash: str, settings: NluTrainingConfig) -> _Checkpoint | None:
        """The checkpoint at `path` when it belongs to this data and these settings; None otherwise."""
        file = path / "state.pt"
        if not file.is_file():
            return None
        try:
            saved = torch.load(file, weights_only=False)
        except (OSError, RuntimeError, EOFError) as error:
            log.warning("ignoring unreadable checkpoint", path=str(file), error=str(error))
            return None
        if saved["data_hash"] != data_hash or saved["settings"] != settings.model_dump_json():
            log.info("checkpoint is for other data or settings; starting afresh", path=str(file))
            return None
        best = _Best(saved.pop("best_score"), saved.pop("best_weights"), saved.pop("stale"))
        progress = {key: saved.pop(key) for key in ("epoch", "data_hash", "settings")}
        return cls(**progress, best=best, saved=saved)

    def save(self, path: Path, network: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
             rng: random.Random, average: _WeightAverage) -> None:
        path.mkdir(parents=True, exist_ok=True)
        state = {"epoch": self.epoch, "best_score": self.best.score, "best_weights": self.best.weights,
                 "stale": self.best.stale, "data_hash": self.data_hash, "settings": self.settings,
                 "weights": network.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "rng": rng.getstate(),
                 "average": average.averaged}
        partial = path / "state.pt.partial"
        torch.save(state, partial)
        partial.replace(path / "state.pt")


def _with_lora(encoder: Any, rank: int) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05,
                        target_modules=["query", "key", "value", "dense"])
    return get_peft_model(encoder, config)


@contextmanager
def _encoder_as_served(network: JointModel, tokenizer: PreTrainedTokenizerBase,
                       precision: Literal["fp32", "bf16", "int8"], mode: TrainingMode) -> Iterator[None]:
    """Within the block the network computes with the encoder it will run with once published, for fp32 and
    int8 models the ONNX Runtime graph of the merged encoder (made here, so the model's first load finds it);
    the trained encoder is put back afterwards, to be saved."""
    trained = network.encoder
    if precision != "bf16":
        adapted: Any = copy.deepcopy(trained) if mode == "lora" else None  # a PeftModel: merged as at load time
        network.encoder = served_encoder(adapted.merge_and_unload() if adapted is not None else trained,
                                         tokenizer, precision)
    try:
        yield
    finally:
        network.encoder = trained


def _weigh_lexicon(lexicon: SlotLexicon, weight: float | None, tags: Sequence[str],
                   validation: Sequence[TaggedExample], log_probs: Sequence[npt.NDArray[np.float32]],
                   probabilities: npt.NDArray[np.float32], decoder: TagDecoder, *, jointly: bool
                   ) -> tuple[float, list[npt.NDArray[np.float32]]]:
    """The lexicon's weight (`weight`, or fitted on the validation messages as they will be decoded when None)
    and the validation tag log-probabilities with its bonus added at that weight."""
    bonuses = [lexicon.bonus(example.words, tags) for example in validation]  # a row of scores per word

    def decode(candidate: float) -> list[tuple[int, list[int]]]:
        decided = (decoder.decide(rows + candidate * bonus, row, jointly=jointly)
                   for rows, bonus, row in zip(log_probs, bonuses, probabilities, strict=True))
        return [(int(label_probabilities.argmax()), tag_ids) for label_probabilities, tag_ids in decided]

    if weight is None:
        weight = fit_lexicon_weight(decode, [(example.label, list(example.tags)) for example in validation])
    return weight, [rows + weight * bonus for rows, bonus in zip(log_probs, bonuses, strict=True)]


def _write_model(network: JointModel, tokenizer: PreTrainedTokenizerBase, card: ModelCard,
                 metrics: dict[str, float], target: Path, vote: NeighbourVote | None,
                 lexicon: SlotLexicon | None) -> None:
    staging = staging_dir(target)
    if vote is not None and card.vote_weight > 0:
        vote.save(staging)
    if lexicon is not None and card.lexicon_weight > 0:
        lexicon.save(staging)
    save_file({name: tensor.contiguous() for name, tensor in network.heads.state_dict().items()},
              str(staging / HEADS_FILE))
    encoder: Any = network.encoder  # the trained transformers or peft model: each saves itself
    if card.mode in ENCODER_SAVED:
        encoder.save_pretrained(str(staging / ENCODER_DIR), safe_serialization=True)
        tokenizer.save_pretrained(str(staging / ENCODER_DIR))
    elif card.mode == "lora":
        # the adapter names its base as configured ("packaged:..."), not as a path on the training machine
        encoder.peft_config["default"].base_model_name_or_path = card.base_model
        encoder.save_pretrained(str(staging / ADAPTER_DIR))
    write_json(staging / "nlu.json", card.model_dump())
    write_json(staging / METRICS_FILE, metrics)
    publish(staging, target)


def _step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """One optimiser step on the parameters `optimizer` holds, gradients clipped to norm 1."""
    torch.autograd.backward(loss)
    nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


def _warmup_then_linear_decay(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The usual fine-tuning schedule: 6 % linear warm-up, then linear decay to zero."""
    warmup = max(1, int(0.06 * steps))

    def factor(step: int) -> float:
        return step / warmup if step < warmup else max(0.0, (steps - step) / max(1, steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _copy(network: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in network.state_dict().items()}


def _remove(checkpoint: Path) -> None:
    for file in checkpoint.glob("*"):
        file.unlink()
    if checkpoint.exists():
        checkpoint.rmdir()


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
