"""Decides, from measured scores, whether the retrieved passages can support an answer at all.

A small model asked to answer from unrelated passages will answer anyway, so the decision to abstain is made
before generation: the best passage must be semantically close to the question and must contain most of the
question's content terms. Optionally the chat model is then asked whether the passages answer the question, and
its probability of "yes" is a third score (its sampled answer is not: a small model rarely declines).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from chatwright.config import AbstentionConfig
from chatwright.knowledge.passage import Passage
from chatwright.knowledge.terms import terms


@dataclass(frozen=True)
class SupportDecision:
    supported: bool
    similarity: float  # best question-to-passage cosine
    coverage: float  # share of the question's terms found in the best-covering passage
    answerability: float | None = None  # the chat model's P(yes) that the passages answer; None: not asked

    def scores(self) -> dict[str, float]:
        scores = {"similarity": round(self.similarity, 4), "coverage": round(self.coverage, 4)}
        if self.answerability is not None:
            scores["answerability"] = round(self.answerability, 4)
        return scores


def term_coverage(question: str, passage: Passage) -> float:
    """Share of the question's distinct terms that occur in the passage, its title or its headings."""
    question_terms = set(terms(question))
    if not question_terms:
        return 1.0
    passage_terms = set(terms(" ".join((passage.title, *passage.heading_path, passage.text))))
    return len(question_terms & passage_terms) / len(question_terms)


def supported(config: AbstentionConfig, similarity: float, coverage: float,
              answerability: float | None = None) -> bool:
    """The abstention rule in one place: the checker applies it live, the SQuAD benchmark replays it on stored
    scores. An answerability not asked for (or not yet asked) does not count."""
    judged = config.min_answerability is None or answerability is None or answerability >= config.min_answerability
    return similarity >= config.min_similarity and coverage >= config.min_coverage and judged


class SupportChecker:
    def __init__(self, config: AbstentionConfig) -> None:
        self._config = config

    def check(self, question: str, passages: Sequence[Passage]) -> SupportDecision:
        if not passages:
            return SupportDecision(False, 0.0, 0.0)
        similarity = max(passage.dense_score for passage in passages)
        coverage = max(term_coverage(question, passage) for passage in passages)
        return SupportDecision(supported(self._config, similarity, coverage), similarity, coverage)

    @property
    def asks_the_model(self) -> bool:
        """Whether a supported decision still waits for the model's answerability (`with_answerability`)."""
        return self._config.min_answerability is not None

    def with_answerability(self, decision: SupportDecision, answerability: float) -> SupportDecision:
        return replace(decision, answerability=answerability,
                       supported=supported(self._config, decision.similarity, decision.coverage, answerability))
