"""The chat model's own answerability judgement (abstention.min_answerability), on the real packaged model."""

from __future__ import annotations

import pytest

from chatwright.config import AbstentionConfig
from chatwright.generation.answer import AnswerResult, GroundedAnswerer
from chatwright.generation.llm import LLM
from chatwright.knowledge.passage import Passage
from chatwright.knowledge.support import SupportChecker, SupportDecision
from chatwright.models.registry import load_llm

FEES = [Passage("c1", "cards.md", "Card fees", ("Card fees",),
                "A second physical card costs EUR 6 on the Standard plan and is free on Plus and Premium. "
                "Replacement cards arrive within 5 working days.")]


@pytest.fixture(scope="module")
def answerer() -> GroundedAnswerer:
    llm: LLM = load_llm("packaged:qwen2.5-coder-0.5b-instruct")
    persona = "You are the support assistant of Northwind Bank. Answer in one or two sentences using only the sources."
    return GroundedAnswerer(llm, system_prompt=persona, max_tokens=40, temperature=0.0, history_tokens=256)


def _answer(answerer: GroundedAnswerer, question: str) -> str:
    return "".join(answerer.stream(question, FEES, [], AnswerResult()))


def test_the_model_is_surer_when_the_passage_holds_the_answer(answerer: GroundedAnswerer) -> None:
    answered = answerer.answerability("How much does a second physical card cost on Standard?", FEES, [])
    not_answered = answerer.answerability("What interest rate do savings accounts pay?", FEES, [])

    assert 0.0 <= not_answered < answered <= 1.0
    assert answered - not_answered > 0.1


def test_asking_first_leaves_the_answer_as_it_would_have_been(answerer: GroundedAnswerer) -> None:
    """The judgement reads the answer prompt plus a question into llama.cpp's cache; the answer that follows
    reuses the common prefix and must come out exactly as without it (greedy decoding)."""
    question = "How long does a replacement card take to arrive?"
    alone = _answer(answerer, question)
    answerer.answerability(question, FEES, [])

    assert _answer(answerer, question) == alone
    assert "5 working days" in alone


def test_the_judgement_only_counts_when_it_is_configured() -> None:
    cheap = SupportDecision(supported=True, similarity=0.6, coverage=1.0)

    assert not SupportChecker(AbstentionConfig()).asks_the_model
    checker = SupportChecker(AbstentionConfig(min_answerability=0.6))
    assert checker.asks_the_model
    assert checker.with_answerability(cheap, 0.7).supported
    declined = checker.with_answerability(cheap, 0.5)
    assert not declined.supported and declined.scores()["answerability"] == 0.5
    unsupported = SupportDecision(supported=False, similarity=0.1, coverage=0.2)
    assert not checker.with_answerability(unsupported, 0.9).supported
    assert "answerability" not in cheap.scores()
