"""SQuAD 2.0 through the real pipeline, against a naive RAG baseline on the same model.

Every article becomes a knowledge base; questions (a seeded sample) go through `Assistant.respond`. The pipeline
runs once with abstention disabled while recording its support scores; because the abstention decision is taken
before generation and changes nothing else, any threshold can then be applied exactly, offline. Thresholds are
calibrated on a seeded subset of articles and reported on the other, held-out articles, so the figures are not
tuned on the data they are reported on. The naive baseline uses the same model and answer prompt with the top-3
dense chunks, no rewriting, no sentence selection and no abstention.

    python -m benchmarks.rag_squad2 --data ../shared/data/squad2 [--sample 1000]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import shutil
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm import tqdm

from benchmarks.common import RESULTS_DIR, Target, write_results
from chatwright.config import AbstentionConfig
from chatwright.dialogue.assistant import Assistant
from chatwright.dialogue.types import Reply
from chatwright.generation.answer import answer_system_prompt, build_answer_messages
from chatwright.generation.llm import complete
from chatwright.knowledge.support import supported
from chatwright.project import AssistantProject

WORK_DIR = Path(__file__).parent / ".work" / "squad2"
PERSONA = "You answer questions about encyclopedia articles."
# SQuAD scores short answer spans, so this assistant is configured to answer with a phrase, not sentences.
INSTRUCTIONS = ("Reply with only the shortest phrase copied from the sources that answers the question, "
                "not a full sentence.")
CITATION_MARKERS = re.compile(r"\s*\[\d{1,2}\]")


@dataclass(frozen=True)
class Question:
    qid: str
    article: str
    paragraph: int
    question: str
    answers: tuple[str, ...]  # empty for unanswerable questions

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def load_squad(path: Path) -> tuple[dict[str, list[str]], list[Question]]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    articles: dict[str, list[str]] = {}
    questions: list[Question] = []
    for article in data:
        title = article["title"].replace("_", " ")
        articles[title] = [paragraph["context"] for paragraph in article["paragraphs"]]
        for number, paragraph in enumerate(article["paragraphs"]):
            for qa in paragraph["qas"]:
                answers = () if qa.get("is_impossible") else tuple(a["text"] for a in qa["answers"])
                questions.append(Question(qa["id"], title, number, qa["question"], answers))
    return articles, questions


# The official SQuAD 2.0 answer normalisation and scores.
def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: Sequence[str]) -> float:
    golds = [normalize_answer(g) for g in gold] or [""]
    return float(normalize_answer(prediction) in golds)


def f1_score(prediction: str, gold: Sequence[str]) -> float:
    def f1(pred: str, ref: str) -> float:
        pred_tokens, ref_tokens = normalize_answer(pred).split(), normalize_answer(ref).split()
        if not pred_tokens or not ref_tokens:
            return float(pred_tokens == ref_tokens)
        common = sum((collections.Counter(pred_tokens) & collections.Counter(ref_tokens)).values())
        if common == 0:
            return 0.0
        precision, recall = common / len(pred_tokens), common / len(ref_tokens)
        return 2 * precision * recall / (precision + recall)

    return max(f1(prediction, g) for g in (gold or [""]))


def squad_metrics(rows: Sequence[dict[str, Any]], prediction_key: str) -> dict[str, float]:
    has = [r for r in rows if r["answers"]]
    no = [r for r in rows if not r["answers"]]
    em = [exact_match(r[prediction_key], r["answers"]) for r in rows]
    f1 = [f1_score(r[prediction_key], r["answers"]) for r in rows]
    return {"exact": 100 * float(np.mean(em)), "f1": 100 * float(np.mean(f1)),
            "has_ans_f1": 100 * float(np.mean([f1_score(r[prediction_key], r["answers"]) for r in has])),
            "no_ans_accuracy": 100 * float(np.mean([r[prediction_key] == "" for r in no])),
            "questions": len(rows)}


def clean_prediction(text: str) -> str:
    return CITATION_MARKERS.sub("", text).strip().rstrip(".").strip()


def build_project(articles: dict[str, list[str]], threads: int | None, llm: str | None) -> AssistantProject:
    """A fresh assistant whose knowledge is one Markdown file per article; abstention off (applied offline),
    the model's answerability asked for every question but never deciding."""
    if WORK_DIR.exists():
        shutil.rmtree(WORK_DIR)
    knowledge = WORK_DIR / "knowledge"
    knowledge.mkdir(parents=True)
    for title, paragraphs in articles.items():
        slug = re.sub(r"\W+", "-", title.lower()).strip("-")
        (knowledge / f"{slug}.md").write_text(f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
    config = {"name": "SQuAD reader", "persona": PERSONA, "tone": "neutral",
              "generation": {"answer_instructions": INSTRUCTIONS, "max_answer_tokens": 32,
                             "rewrite_follow_ups": False},
              "abstention": {"min_similarity": -1.0, "min_coverage": 0.0, "min_answerability": 0.0},
              "models": {**({"threads": threads} if threads else {}), **({"llm": llm} if llm else {})}}
    (WORK_DIR / "assistant.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "chatwright.cli", "ingest", str(WORK_DIR)], check=True)
    return AssistantProject.load(WORK_DIR)


def answer_contained(passages_text: Iterable[str], answers: Sequence[str]) -> bool:
    joined = normalize_answer(" ".join(passages_text))
    return any(normalize_answer(a) in joined for a in answers)


def _resumable(path: Path, questions: Sequence[Question], answer: Callable[[Question], dict[str, Any]],
               desc: str) -> dict[str, dict[str, Any]]:
    """Answers per question id, appended to a JSONL file as they come so an interrupted run resumes."""
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[row["qid"]] = row
    with path.open("a", encoding="utf-8") as out:
        for question in tqdm([q for q in questions if q.qid not in done], desc=desc, unit="q"):
            row = {"qid": question.qid, **answer(question)}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            done[question.qid] = row
    return done


def run_questions(assistant: Assistant, questions: Sequence[Question], baseline_questions: Sequence[Question],
                  work_dir: Path) -> list[dict[str, Any]]:
    """Pipeline answers for every question, then baseline answers (only where they are compared): one system at a
    time, so consecutive prompts on the same paragraph share their prefix in llama.cpp's cache."""
    knowledge, llm, retrieval = assistant.knowledge, assistant.llm, assistant.config.retrieval

    def pipeline(q: Question) -> dict[str, Any]:
        started = time.perf_counter()
        reply = next(event for event in assistant.respond([], q.question) if isinstance(event, Reply))
        elapsed = time.perf_counter() - started
        hybrid = knowledge.search(q.question, top_k=retrieval.top_k, candidates=retrieval.candidates,
                                  rrf_k=retrieval.rrf_k)
        return {"prediction_raw": clean_prediction(reply.text), "support": reply.support,
                "hybrid_hit": answer_contained((p.text for p in hybrid), q.answers) if q.answers else None,
                "pipeline_s": round(elapsed, 3)}

    def baseline(q: Question) -> dict[str, Any]:
        started = time.perf_counter()
        dense = knowledge.search(q.question, top_k=3, candidates=retrieval.candidates, mode="dense")
        prompt = build_answer_messages(answer_system_prompt(assistant.config), q.question, dense, [])
        text = complete(llm, prompt, max_tokens=32)
        return {"baseline": clean_prediction(text), "baseline_s": round(time.perf_counter() - started, 3),
                "dense_hit": answer_contained((p.text for p in dense), q.answers) if q.answers else None}

    pipeline_rows = _resumable(work_dir / "pipeline_answers.jsonl", questions, pipeline, "pipeline")
    baseline_rows = _resumable(work_dir / "baseline_answers.jsonl", baseline_questions, baseline, "baseline")
    return [{"qid": q.qid, "article": q.article, "question": q.question, "answers": list(q.answers),
             **pipeline_rows[q.qid], **baseline_rows.get(q.qid, {})} for q in questions]


def answered_under(rows: Sequence[dict[str, Any]], thresholds: AbstentionConfig) -> np.ndarray:
    """The pipeline's abstention decision (knowledge/support.py), replayed exactly for given thresholds: which
    questions it answers."""
    return np.array([supported(thresholds, r["support"]["similarity"], r["support"]["coverage"],
                               r["support"].get("answerability")) for r in rows], dtype=bool)


def apply_thresholds(rows: Sequence[dict[str, Any]], thresholds: AbstentionConfig) -> None:
    for row, answers in zip(rows, answered_under(rows, thresholds), strict=True):
        row["prediction"] = row["prediction_raw"] if answers else ""


def metrics_when_answering(rows: Sequence[dict[str, Any]], answers: np.ndarray) -> dict[str, float]:
    """SQuAD metrics when the questions where `answers` is true are answered and the others declined."""
    return squad_metrics([{**r, "swept": r["prediction_raw"] if answered else ""}
                          for r, answered in zip(rows, answers, strict=True)], "swept")


def calibrate(rows: Sequence[dict[str, Any]], *, with_answerability: bool) -> AbstentionConfig:
    """Thresholds that maximise F1 on the calibration questions (the SQuAD 2.0 'best threshold' rule); the
    model's answerability is searched too when `with_answerability`. Each question scores either its answer's
    F1 or the empty answer's, so the search compares precomputed scores, with `supported`'s rule as masks."""
    answered = np.array([f1_score(r["prediction_raw"], r["answers"]) for r in rows])
    declined = np.array([f1_score("", r["answers"]) for r in rows])
    similarity = np.array([r["support"]["similarity"] for r in rows])
    coverage = np.array([r["support"]["coverage"] for r in rows])
    answerability = np.array([r["support"].get("answerability", 1.0) for r in rows])
    best, best_f1 = AbstentionConfig(min_similarity=-1.0, min_coverage=0.0), -1.0
    for min_answerability in np.round(np.arange(0.0, 1.0, 0.02), 2) if with_answerability else [None]:
        judged = answerability >= (min_answerability or 0.0)
        for min_coverage in np.round(np.arange(0.0, 1.01, 0.05), 2):
            covered = judged & (coverage >= min_coverage)
            for min_similarity in np.round(np.arange(0.0, 0.8, 0.02), 2):
                f1 = float(np.where(covered & (similarity >= min_similarity), answered, declined).mean())
                if f1 > best_f1:
                    best = AbstentionConfig(
                        min_similarity=float(min_similarity), min_coverage=float(min_coverage),
                        min_answerability=None if min_answerability is None else float(min_answerability))
                    best_f1 = f1
    return best


def operating_point(rows: Sequence[dict[str, Any]], answers: np.ndarray) -> tuple[float, float]:
    """NoAns accuracy and HasAns F1 (both in %) when the questions where `answers` is true are answered."""
    metrics = metrics_when_answering(rows, answers)
    return metrics["no_ans_accuracy"], metrics["has_ans_f1"]


def plot_tradeoff(rows: Sequence[dict[str, Any]], chosen: AbstentionConfig, path: Path) -> Path:
    """What each support score buys: HasAns F1 against NoAns accuracy as its threshold sweeps the held-out
    questions, beside abstaining at random (the straight line) and the calibrated thresholds (the star)."""
    figure = Figure(figsize=(6.5, 5))
    axes = figure.add_subplot()
    for score in ("similarity", "coverage", "answerability"):
        values = np.array([r["support"][score] for r in rows])
        cuts = np.unique(np.quantile(values, np.linspace(0, 1, 41)))
        curve = [operating_point(rows, values >= cut) for cut in [-np.inf, *cuts, np.inf]]
        axes.plot(*zip(*curve, strict=True), marker=".", label=f"{score} alone")
    everything = operating_point(rows, np.ones(len(rows), dtype=bool))
    axes.plot([everything[0], 100], [everything[1], 0], color="grey", linestyle="--",
              label="abstaining at random")
    axes.plot(*operating_point(rows, answered_under(rows, chosen)), marker="*", markersize=14, color="black",
              linestyle="", label="calibrated thresholds")
    axes.set_xlabel("NoAns accuracy (%): unanswerable questions declined")
    axes.set_ylabel("HasAns F1 (%)")
    axes.set_title(f"Abstention trade-off on {len(rows)} held-out SQuAD 2.0 questions")
    axes.grid(alpha=0.3)
    axes.legend()
    FigureCanvasAgg(figure).print_png(str(path))
    return path


def auc(scores: Sequence[float], positives: Sequence[bool]) -> float:
    """Probability that an answerable question scores above an unanswerable one."""
    pos = np.array([s for s, p in zip(scores, positives, strict=True) if p])
    neg = np.array([s for s, p in zip(scores, positives, strict=True) if not p])
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding dev-v2.0*.json")
    parser.add_argument("--sample", type=int, default=1000, help="seeded sample size (0: every question)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--calibration-articles", type=int, default=4,
                        help="articles whose questions calibrate the abstention thresholds")
    parser.add_argument("--baseline-sample", type=int, default=300,
                        help="held-out questions also put to the baseline (0: all); the gain is measured on them")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--llm", default=None, help="chat model reference (models.llm); default: the packaged one")
    parser.add_argument("--resume", action="store_true", help="keep the index and earlier answers")
    parser.add_argument("--name", default="rag_squad2", help="results file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()

    squad_file = next(iter(sorted(args.data.glob("dev-v2.0*.json"))), None)
    if squad_file is None:
        parser.error(f"no dev-v2.0*.json in {args.data}")
    articles, questions = load_squad(squad_file)
    rng = random.Random(args.seed)
    sample = questions if args.sample <= 0 else rng.sample(questions, min(args.sample, len(questions)))
    # Grouped by paragraph so consecutive prompts share a prefix that llama.cpp keeps cached.
    sample.sort(key=lambda q: (q.article, q.paragraph, q.qid))
    calibration_articles = set(rng.sample(sorted(articles), args.calibration_articles))

    answers_dir = WORK_DIR.parent
    if not args.resume or not (WORK_DIR / ".chatwright").exists():
        for old in answers_dir.glob("*_answers.jsonl"):
            old.unlink()
        project = build_project(articles, args.threads, args.llm)
    else:
        project = AssistantProject.load(WORK_DIR)
    assistant = Assistant.from_project(project)
    held_out_questions = [q for q in sample if q.article not in calibration_articles]
    baseline_questions = held_out_questions if args.baseline_sample <= 0 else sorted(
        rng.sample(held_out_questions, min(args.baseline_sample, len(held_out_questions))),
        key=lambda q: (q.article, q.paragraph, q.qid))
    rows = run_questions(assistant, sample, baseline_questions, answers_dir)

    calibration = [r for r in rows if r["article"] in calibration_articles]
    held_out = [r for r in rows if r["article"] not in calibration_articles]
    two_scores = calibrate(calibration, with_answerability=False)
    apply_thresholds(rows, two_scores)
    pipeline_two_scores = squad_metrics(held_out, "prediction")
    thresholds = calibrate(calibration, with_answerability=True)
    apply_thresholds(rows, thresholds)
    pipeline = squad_metrics(held_out, "prediction")
    compared = [r for r in held_out if "baseline" in r]
    pipeline_compared = squad_metrics(compared, "prediction")
    baseline = squad_metrics(compared, "baseline")
    defaults = AbstentionConfig()  # the documented defaults, for comparison
    apply_thresholds(rows, defaults)
    pipeline_defaults = squad_metrics(held_out, "prediction")
    answerable = [r for r in held_out if r["answers"]]
    labels = [bool(r["answers"]) for r in held_out]
    metrics: dict[str, Any] = {
        "questions_asked": len(rows), "held_out_questions": len(held_out),
        "exact": round(pipeline["exact"], 2), "f1": round(pipeline["f1"], 2),
        "has_ans_f1": round(pipeline["has_ans_f1"], 2), "no_ans_accuracy": round(pipeline["no_ans_accuracy"], 2),
        "baseline_exact": round(baseline["exact"], 2), "baseline_f1": round(baseline["f1"], 2),
        "baseline_has_ans_f1": round(baseline["has_ans_f1"], 2),
        "baseline_no_ans_accuracy": round(baseline["no_ans_accuracy"], 2),
        "baseline_questions": len(compared),
        "has_ans_f1_without_abstention_on_baseline_questions": round(
            squad_metrics(compared, "prediction_raw")["has_ans_f1"], 2),
        "f1_on_baseline_questions": round(pipeline_compared["f1"], 2),
        "no_ans_accuracy_on_baseline_questions": round(pipeline_compared["no_ans_accuracy"], 2),
        "f1_gain_over_baseline": round(pipeline_compared["f1"] - baseline["f1"], 2),
        "answerable_share": round(len(answerable) / len(held_out), 3),
        "f1_declining_every_question": round(
            metrics_when_answering(held_out, np.zeros(len(held_out), dtype=bool))["f1"], 2),
        "recall_at_3_hybrid": round(float(np.mean([r["hybrid_hit"] for r in answerable])), 4),
        "recall_at_3_dense": round(float(np.mean([r["dense_hit"] for r in compared if r["answers"]])), 4),
        "calibrated_min_similarity": thresholds.min_similarity, "calibrated_min_coverage": thresholds.min_coverage,
        "calibrated_min_answerability": thresholds.min_answerability,
        "f1_without_answerability": round(pipeline_two_scores["f1"], 2),
        "has_ans_f1_without_answerability": round(pipeline_two_scores["has_ans_f1"], 2),
        "no_ans_accuracy_without_answerability": round(pipeline_two_scores["no_ans_accuracy"], 2),
        "f1_default_thresholds": round(pipeline_defaults["f1"], 2),
        "no_ans_accuracy_default_thresholds": round(pipeline_defaults["no_ans_accuracy"], 2),
        "support_auc_similarity": round(auc([r["support"]["similarity"] for r in held_out], labels), 3),
        "support_auc_coverage": round(auc([r["support"]["coverage"] for r in held_out], labels), 3),
        "support_auc_answerability": round(auc([r["support"]["answerability"] for r in held_out], labels), 3),
        "pipeline_turn_p50_s": round(float(np.median([r["pipeline_s"] for r in rows])), 3),
        "baseline_turn_p50_s": round(float(np.median([r["baseline_s"] for r in compared])), 3),
    }
    targets = [Target("f1_gain_over_baseline", ">=", 15.0), Target("no_ans_accuracy", ">=", 70.0)]
    notes = (f"Seeded sample of {len(rows)} questions (seed {args.seed}) from {squad_file.name}, answered by "
             f"{project.config.models.llm}; abstention "
             f"thresholds calibrated on the questions of {len(calibration_articles)} articles "
             f"({', '.join(sorted(calibration_articles))}), with and without the model's answerability "
             "(abstention.min_answerability), and all scores reported on the "
             f"{len(held_out)} questions of the other articles. Baseline: same model and answer prompt, top-3 dense "
             f"chunks, no rewriting, no sentence selection, no abstention, on a seeded {len(compared)}-question "
             "subset of the held-out questions; the gain compares both systems on that subset. "
             f"{args.name}_tradeoff.png plots HasAns F1 against NoAns accuracy for each support score alone.")
    plot_tradeoff(held_out, thresholds, RESULTS_DIR / f"{args.name}_tradeoff.png")
    write_results(args.name, metrics, targets, notes=notes)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
