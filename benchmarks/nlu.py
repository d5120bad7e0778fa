"""NLU benchmarks on public data: BANKING77 (full and 10-shot), SNIPS (intent + slots) and SST-2 (sentiment).

    python -m benchmarks.nlu --data ../shared/data --task banking77 [--mode full|lora|quick]

Each task trains with chatwright's own trainer on the official train split (validation split off it, or the
dataset's own validation split), then measures on the official test (or dev) split: accuracy figures, training
time, model load time, per-message latency at batch 1 and peak RSS. Results go to results/nlu_TASK[_MODE]...json,
named after the settings that differ from the defaults and the --tag (`result_name`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Target, write_results
from chatwright.config import NluTrainingConfig
from chatwright.evaluation.nlu_evaluation import predict_intents
from chatwright.evaluation.nlu_metrics import evaluate_nlu
from chatwright.nlu.importers import import_banking77, import_bio, import_sst2
from chatwright.nlu.intent_classifier import IntentSlotClassifier
from chatwright.nlu.model_files import METRICS_FILE, publish, read_card, staging_dir
from chatwright.nlu.sentiment_classifier import SentimentClassifier
from chatwright.nlu.sentiment_data import Sentiment, SentimentExample, load_sentiment_data
from chatwright.nlu.splits import split_data
from chatwright.nlu.training_data import Example, NluData, nlu_data_from_examples
from chatwright.training.distillation import teacher_directory
from chatwright.training.train_nlu import split_sentiment_examples, train_intent_model, train_sentiment_model

TASKS = ("banking77", "banking77_10shot", "snips", "sst2")
_LATENCY_MESSAGES = 200
_CUSTOMER_DATA = Path(__file__).parent / "data"


def main() -> None:
    args = parse_arguments()
    overrides = {"epochs": args.epochs, "min_steps": args.min_steps, "word_dropout": args.word_dropout,
                 "lora_rank": args.lora_rank, "base_model": args.base_model, "learning_rate": args.learning_rate,
                 "teacher": str(args.teacher.resolve()) if args.teacher else None,
                 "distillation_weight": args.distillation_weight}
    settings = NluTrainingConfig(mode=args.mode, seed=args.seed, augment_copies=args.augment,
                                 precision=args.precision, weight_averaging=not args.no_weight_averaging,
                                 intent_names_as_examples=not args.no_intent_names, vote_weight=args.vote_weight,
                                 lexicon_weight=args.lexicon_weight,
                                 crf=not args.no_crf, joint_decoding=not args.no_joint_decoding,
                                 distillation_phrases=args.distillation_phrases,
                                 **{key: value for key, value in overrides.items() if value is not None})
    work = args.work or Path(tempfile.mkdtemp(prefix="chatwright-nlu-"))
    if args.task == "sst2":
        metrics, targets = _sst2(args.data, settings, work, args.save_to, args.neutral,
                                 (args.customer_data, args.customer_heldout), args.customer_copies, args.evaluate)
    else:
        metrics, targets = _intents(args.task, args.data, settings, work, args.train_fraction, args.evaluate)
    metrics["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    notes = _notes(args.task, settings)
    if args.evaluate is not None:
        notes += (" This run scored an existing model directory, trained before with these settings: the training "
                  "time is its card's, and the peak RSS is the scoring's alone.")
    path = write_results(result_name(args), metrics, targets, notes=notes)
    print(path.read_text())


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked: a bad value stops here with a usage error, before any training."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder holding banking77/, snips/, sst2/")
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--mode", choices=("full", "lora", "quick", "contrastive"), default="full")
    parser.add_argument("--epochs", type=int, default=None, help="override the configured upper bound")
    parser.add_argument("--min-steps", type=int, default=None,
                        help="override the configured optimiser steps small data is stretched to")
    parser.add_argument("--augment", type=int, default=0, help="augmented copies per annotated example")
    parser.add_argument("--train-fraction", type=float, default=1.0,
                        help="train on a seeded, stratified share of the training data (e.g. to measure augmentation)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), default="auto")
    parser.add_argument("--no-weight-averaging", action="store_true",
                        help="keep the last step's weights (the comparison for weight averaging)")
    parser.add_argument("--no-intent-names", action="store_true",
                        help="do not add intent names as examples (the comparison for them)")
    parser.add_argument("--no-crf", action="store_true",
                        help="tag each word alone, without learned moves between tags (the comparison for the CRF)")
    parser.add_argument("--no-joint-decoding", action="store_true",
                        help="decide the intent first, then its slots (the comparison for joint decoding)")
    parser.add_argument("--word-dropout", type=float, default=None,
                        help="override the configured dropout of word states before the slot tagger")
    parser.add_argument("--vote-weight", type=float, default=None,
                        help="fixed share of the nearest training examples' vote (0: the head alone, the "
                        "comparison for it); default: fitted on validation data")
    parser.add_argument("--lexicon-weight", type=float, default=None,
                        help="fixed weight of the slot lexicon's bonus (0: none, the comparison for it); default: "
                        "fitted on validation data")
    parser.add_argument("--work", type=Path, default=None, help="where to keep the trained model")
    parser.add_argument("--lora-rank", type=int, default=None)
    parser.add_argument("--base-model", default=None,
                        help="encoder to fine-tune instead of the configured one (e.g. a larger teacher's)")
    parser.add_argument("--learning-rate", type=float, default=None, help="override the encoder's learning rate")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="a model trained on the same task (e.g. with --base-model) to distil from")
    parser.add_argument("--distillation-phrases", type=int, default=0,
                        help="phrases of each training message the teacher labels as extra training examples")
    parser.add_argument("--distillation-weight", type=float, default=None,
                        help="override the configured share of the loss that follows the teacher")
    parser.add_argument("--evaluate", type=Path, default=None,
                        help="score this already trained model (its card gives the training time) instead of training")
    parser.add_argument("--neutral", type=int, default=3000,
                        help="sst2: neutral customer requests added to the training data")
    parser.add_argument("--customer-data", type=Path, default=_CUSTOMER_DATA / "customer_sentiment_train.jsonl",
                        help="sst2: labelled customer-service messages added to the training data")
    parser.add_argument("--customer-copies", type=int, default=1,
                        help="sst2: times each customer-service message of the training part is seen per epoch "
                        "(the validation part keeps one copy)")
    parser.add_argument("--customer-heldout", type=Path, default=_CUSTOMER_DATA / "customer_sentiment_heldout.jsonl",
                        help="sst2: labelled customer-service messages to measure on (written apart from the above)")
    parser.add_argument("--tag", default=None,
                        help="added to the result name, so a run whose settings the name does not show (epochs, "
                        "learning rate, which teacher) keeps its own result file")
    parser.add_argument("--save-to", type=Path, default=None,
                        help="publish the trained model here too (how the packaged sentiment model is made)")
    args = parser.parse_args(argv)
    if args.customer_copies < 1:
        parser.error("--customer-copies must be at least 1")
    if args.learning_rate is not None and (
            unused := NluTrainingConfig(mode=args.mode, learning_rate=args.learning_rate).unused_learning_rate):
        parser.error(f"--learning-rate: {unused}")
    if args.tag is not None and not re.fullmatch(r"[a-z0-9_]+", args.tag):
        parser.error(f"--tag {args.tag!r}: use lower-case letters, digits and underscores (it becomes a file name)")
    return args


def result_name(args: argparse.Namespace) -> str:
    """The results file's name: the task, the compared settings that differ from their defaults, and the tag for
    what the name does not show, so runs that differ do not overwrite each other's results."""
    return f"nlu_{args.task}" + ("" if args.mode == "full" else f"_{args.mode}") + (
        f"_{round(100 * args.train_fraction)}pct" if args.train_fraction < 1 else "") + (
        f"_augment{args.augment}" if args.augment else "") + ("_int8" if args.precision == "int8" else "") + (
        "_no_averaging" if args.no_weight_averaging else "") + ("_no_intent_names" if args.no_intent_names else "") + (
        "_no_vote" if args.vote_weight == 0 else "") + ("_no_lexicon" if args.lexicon_weight == 0 else "") + (
        "_no_crf" if args.no_crf else "") + (
        "_no_joint" if args.no_joint_decoding and args.task == "snips" else "") + (
        f"_word_dropout{round(100 * args.word_dropout)}" if args.word_dropout is not None else "") + (
        f"_customer{args.customer_copies}" if args.customer_copies != 1 else "") + (
        f"_seed{args.seed}" if args.seed != NluTrainingConfig().seed else "") + (
        f"_base_{_short_name(args.base_model)}" if args.base_model else "") + (
        "_distilled" if args.teacher else "") + (
        f"_phrases{args.distillation_phrases}" if args.distillation_phrases else "") + (
        f"_weight{round(100 * args.distillation_weight)}" if args.distillation_weight is not None else "") + (
        f"_{args.tag}" if args.tag else "")


def _short_name(reference: str) -> str:
    """A result-name suffix for an encoder reference: its last path or name component."""
    return reference.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].replace("-", "_").replace(".", "_")


def _intents(task: str, data: Path, settings: NluTrainingConfig, work: Path, fraction: float,
             existing: Path | None) -> tuple[dict[str, Any], list[Target]]:
    validation: NluData | None = None
    if task == "snips":
        train, validation, test = (import_bio(data / "snips" / part) for part in ("train", "valid", "test"))
    else:
        train, test = import_banking77(data / "banking77" / "train.csv"), import_banking77(
            data / "banking77" / "test.csv")
        if task == "banking77_10shot":
            train, validation = _few_shot(train, 10, settings.seed)
    if fraction < 1:
        _, _, train = split_data(train, validation=0.0, test=fraction, seed=settings.seed)
    if existing is None:
        train_intent_model(train, settings, work / "model", validation=validation)
    model_dir = existing or work / "model"
    classifier = IntentSlotClassifier.load(model_dir)
    card = classifier.model.card
    if existing is not None and len(card.tags) > 1 and card.joint_decoding != settings.joint_decoding:
        # the notes describe the flags; a trained model's card follows them by construction
        raise SystemExit(f"{model_dir} has joint_decoding {card.joint_decoding}; pass --no-joint-decoding to match")
    examples = test.examples()
    predictions = predict_intents(classifier, examples)
    # these datasets have no out-of-scope class: score the classifier's own choice, as published results do,
    # and report apart what the calibrated out-of-scope threshold would set aside
    scores = evaluate_nlu([replace(p, intent=p.ranking[0][0]) for p in predictions])
    with_rejection = evaluate_nlu(predictions)
    served = _fresh_process_timings("intent_slots", model_dir, [e.text for e in examples])
    metrics: dict[str, Any] = {
        "intent_accuracy": round(100 * scores.intent_accuracy, 2),
        "intent_macro_f1": round(100 * scores.intent_macro_f1, 2),
        "test_examples": len(examples), "train_examples": len(train.examples()),
        "epochs": card.epochs_run, "vote_weight": card.vote_weight, "lexicon_weight": card.lexicon_weight,
        "training_seconds": card.training_seconds,
        **validation_metrics(model_dir), "precision": card.precision, **served,
        "oos_threshold": round(card.oos_threshold, 4),
        "rejected_as_out_of_scope": round(100 * sum(p.intent != p.ranking[0][0] for p in predictions)
                                          / len(examples), 2),
        "intent_accuracy_with_oos_rejection": round(100 * with_rejection.intent_accuracy, 2),
    }
    if scores.slots is not None:
        metrics["slot_f1"] = round(100 * scores.slots.f1, 2)
        metrics["sentence_accuracy"] = round(100 * scores.sentence_accuracy, 2)
    return metrics, _intent_targets(task, settings)


def _intent_targets(task: str, settings: NluTrainingConfig) -> list[Target]:
    budget = 60.0 if settings.mode == "quick" else 600.0
    common = [Target("training_seconds", "<=", budget), Target("load_seconds", "<=", 2.0),
              Target("latency_p50_ms", "<=", 10.0)]
    if task == "banking77":
        return [Target("intent_accuracy", ">=", 94.0), *common]
    if task == "banking77_10shot":
        return [Target("intent_accuracy", ">=", 87.0), *common]
    return [Target("intent_accuracy", ">=", 98.5), Target("slot_f1", ">=", 96.5),
            Target("sentence_accuracy", ">=", 92.0), *common]


def _few_shot(data: NluData, shots: int, seed: int) -> tuple[NluData, NluData]:
    """`shots` seeded examples per intent for training; the rest of the training data is not used, except
    `shots // 2` more per intent kept as validation (early stopping and calibration need held-out data)."""
    rng = random.Random(seed)
    train: list[Example] = []
    validation: list[Example] = []
    for intent in data.intents.values():
        chosen = rng.sample(list(intent.examples), min(len(intent.examples), shots + shots // 2))
        train += chosen[:shots]
        validation += chosen[shots:]
    return nlu_data_from_examples(train), nlu_data_from_examples(validation)


def _sst2(data: Path, settings: NluTrainingConfig, work: Path, save_to: Path | None, neutral: int,
          customer: tuple[Path, Path], customer_copies: int,
          existing: Path | None) -> tuple[dict[str, Any], list[Target]]:
    """SST-2 opinions, plus `neutral` requests from the intent datasets' training splits and labelled
    customer-service messages: customer messages are mostly neutral requests, which a model that only ever saw
    movie reviews reads as strongly negative, and customers show anger differently from film critics. The
    customer messages of the training part can be repeated (`customer_copies`), so a few hundred in-domain
    messages are not outweighed by thousands of film reviews written the same way."""
    train, dev = import_sst2(data / "sst2" / "train.tsv"), import_sst2(data / "sst2" / "dev.tsv")
    customer_train, customer_heldout = (load_sentiment_data(path) for path in customer)
    train += customer_train
    requests_train, requests_test = _requests(data, "train"), _requests(data, "test")
    rng = random.Random(settings.seed)
    train += [SentimentExample(text, Sentiment.NEUTRAL) for text in rng.sample(requests_train, neutral)]
    fitted, validation = split_sentiment_examples(train, settings)
    in_domain = set(customer_train)
    fitted += [example for example in fitted if example in in_domain] * (customer_copies - 1)
    model_dir = existing or work / "sentiment"
    if existing is None:
        train_sentiment_model(fitted, settings, model_dir, validation=validation)
    if save_to is not None:
        staging = staging_dir(save_to)
        shutil.copytree(model_dir, staging, dirs_exist_ok=True)
        publish(staging, save_to)
    classifier = SentimentClassifier.load(model_dir)
    card = classifier.model.card
    served = _fresh_process_timings("sentiment", model_dir, [e.text for e in dev])
    # SST-2 is binary: score negative against positive, whatever the model thinks of neutral
    labels = card.labels
    negative, positive = labels.index(Sentiment.NEGATIVE.value), labels.index(Sentiment.POSITIVE.value)
    raw = classifier.model.predict([example.text for example in dev])
    correct = sum((Sentiment.POSITIVE if r.probabilities[positive] > r.probabilities[negative] else Sentiment.NEGATIVE)
                  == example.label for r, example in zip(raw, dev, strict=True))
    held_out = rng.sample(requests_test, 1000)
    readings = classifier.predict(held_out)
    metrics: dict[str, Any] = {
        "accuracy": round(100 * correct / len(dev), 2), "dev_examples": len(dev), "train_examples": len(train),
        "neutral_train_examples": neutral, "customer_train_examples": len(customer_train),
        "customer_copies": customer_copies,
        "requests_read_neutral": round(100 * sum(r.label == "neutral" for r in readings) / len(readings), 2),
        "requests_read_upset": round(100 * sum(r.label == "negative" and r.score >= 0.9 for r in readings)
                                     / len(readings), 2),
        **_customer_scores(classifier, customer_heldout),
        "epochs": card.epochs_run, "vote_weight": card.vote_weight, "training_seconds": card.training_seconds,
        **validation_metrics(model_dir), "precision": card.precision, **served}
    return metrics, [Target("accuracy", ">=", 90.0), Target("load_seconds", "<=", 2.0),
                     Target("latency_p50_ms", "<=", 10.0)]


def validation_metrics(model_dir: Path) -> dict[str, float]:
    """The trained model's own scores on its validation split (what early stopping and settings are chosen on),
    in percent, from the metrics file training wrote beside the model."""
    trained = json.loads((model_dir / METRICS_FILE).read_text())
    return {key: round(100 * trained[key], 2) for key in ("validation_accuracy", "validation_slot_f1")
            if key in trained}


def _customer_scores(classifier: SentimentClassifier, heldout: list[SentimentExample]) -> dict[str, float]:
    """Three-class accuracy on held-out customer messages, and how the handoff rule (negative at >= 0.9) reads
    the upset ones and the calm ones."""
    readings = classifier.predict([example.text for example in heldout])
    pairs = list(zip(readings, heldout, strict=True))
    upset = [r for r, e in pairs if e.label == Sentiment.NEGATIVE]
    calm = [r for r, e in pairs if e.label != Sentiment.NEGATIVE]
    return {"customer_heldout_examples": len(heldout),
            "customer_heldout_accuracy": round(100 * sum(r.label == e.label.value for r, e in pairs) / len(pairs), 2),
            "customer_negative_recall": round(100 * sum(r.label == "negative" for r in upset) / len(upset), 2),
            "customer_upset_at_handoff_bar": round(100 * sum(r.label == "negative" and r.score >= 0.9 for r in upset)
                                                   / len(upset), 2),
            "customer_calm_read_upset": round(100 * sum(r.label == "negative" and r.score >= 0.9 for r in calm)
                                              / len(calm), 2)}


def _requests(data: Path, split: str) -> list[str]:
    """Customer requests (BANKING77 and SNIPS messages) of one split: the neutral side of sentiment."""
    banking = import_banking77(data / "banking77" / f"{split}.csv").examples()
    snips = import_bio(data / "snips" / split).examples()
    return [example.text for example in [*banking, *snips]]


def _fresh_process_timings(kind: str, model_dir: Path, texts: list[str]) -> dict[str, float]:
    """Load time and batch-1 latency in a new process, as a server sees them: the process that has just trained
    keeps allocator state and worker threads that inflate both."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result: dict[str, float] = pool.submit(_load_and_time, kind, model_dir, texts).result()
    return result


def _load_and_time(kind: str, model_dir: Path, texts: list[str]) -> dict[str, float]:
    started = time.perf_counter()
    model = IntentSlotClassifier.load(model_dir) if kind == "intent_slots" else SentimentClassifier.load(model_dir)
    load_seconds = time.perf_counter() - started
    return {"load_seconds": round(load_seconds, 2), **_latencies(lambda text: model.predict([text]), texts)}


def _latencies(predict: Any, texts: list[str]) -> dict[str, float]:
    sample = random.Random(0).sample(texts, min(_LATENCY_MESSAGES, len(texts)))
    for text in sample[:10]:
        predict(text)  # warm-up
    timings = []
    for text in sample:
        started = time.perf_counter()
        predict(text)
        timings.append((time.perf_counter() - started) * 1000)
    return {"latency_p50_ms": round(float(np.percentile(timings, 50)), 2),
            "latency_p95_ms": round(float(np.percentile(timings, 95)), 2)}


def _notes(task: str, settings: NluTrainingConfig) -> str:
    schedule = ("heads only on frozen-encoder features" if settings.mode == "quick" else
                f"{settings.contrastive_epochs} contrastive passes over same-intent pairs (learning rate "
                f"{settings.contrastive_learning_rate}, batch {settings.batch_size}), then heads on the tuned "
                "encoder's features" if settings.mode == "contrastive" else
                f"learning rate {settings.lora_learning_rate if settings.mode == 'lora' else settings.learning_rate}, "
                f"up to {settings.epochs} epochs (more for small data, to reach {settings.min_steps} steps) with "
                f"patience {settings.patience}, batch {settings.batch_size}, "
                f"label smoothing {settings.label_smoothing}, word-state dropout before the tagger "
                f"{settings.word_dropout}")
    if settings.weight_averaging:
        schedule += (", the heads' weights averaged over about the last epoch" if settings.mode == "contrastive"
                     else ", weights averaged over about the last epoch")
    names = ("" if task == "sst2" else "intent names as examples, " if settings.intent_names_as_examples
             else "no intent names as examples, ")
    if task == "snips":
        names += "slots tagged with a CRF, " if settings.crf else "slots tagged word by word (no CRF), "
        names += ("intent and slots decided jointly, " if settings.joint_decoding
                  else "intent decided first, then its slots, ")
        names += ("slot values seen in training as a bonus at the weight fitted on validation data (lexicon_weight), "
                  if settings.lexicon_weight is None else f"slot values seen in training as a bonus at weight "
                  f"{settings.lexicon_weight}, " if settings.lexicon_weight else "no slot lexicon, ")
    vote = ("the nearest training examples' vote mixed in at the share fitted on validation data (vote_weight)"
            if settings.vote_weight is None else f"the nearest training examples' vote at share {settings.vote_weight}")
    if settings.teacher is not None:
        teacher = read_card(teacher_directory(Path(settings.teacher),
                                              "sentiment" if task == "sst2" else "intent_slots")).base_model
        vote += (f", distilled from a model trained on {teacher} (share "
                 f"{settings.distillation_weight} of the loss, temperature {settings.distillation_temperature}, "
                 f"{settings.distillation_phrases} teacher-labelled phrases a message)")
    return (f"chatwright NLU trainer, mode {settings.mode}, base {settings.base_model}, seed {settings.seed}, "
            f"{schedule}, augmentation copies {settings.augment_copies}, {names}{vote}, "
            f"precision {settings.precision}. "
            "Load time and latency "
            "are measured in a fresh process after training; latency: one message per call (batch 1), "
            "intent + slots (or sentiment) only; entity extraction by spaCy is measured separately.")


if __name__ == "__main__":
    main()
