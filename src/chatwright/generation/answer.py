"""Writes an answer from retrieved passages only, streamed, and attributes it to the passages it came from."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from chatwright.config import AssistantConfig
from chatwright.dialogue.types import HistoryTurn
from chatwright.generation.history import fit_history
from chatwright.generation.llm import LLM, ChatMessage
from chatwright.knowledge.passage import Passage
from chatwright.knowledge.terms import terms

_CITATION = re.compile(r"\s*\[(\d{1,2})\]")
# A passage is cited when it holds at least this share of the answer's terms that the best passage holds.
_ATTRIBUTION_RATIO = 0.8
# Asked after the question, in the answer prompt itself, so the answer that may follow reuses the cached prompt.
_ANSWERABILITY_QUESTION = "Can this question be answered from the sources above? Reply yes or no."


@dataclass
class AnswerResult:
    text: str = ""
    cited: list[int] = field(default_factory=list)  # 1-based numbers of the passages the answer rests on


def format_sources(passages: Sequence[Passage]) -> str:
    # "Source N:" rather than "[N]": small models copy bracketed labels into their answers.
    return "\n\n".join(f"Source {number}: {passage.title}\n{passage.text}"
                       for number, passage in enumerate(passages, start=1))


def build_answer_messages(system_prompt: str, question: str, passages: Sequence[Passage],
                          history: Sequence[HistoryTurn], *, ask: str = "") -> list[ChatMessage]:
    """Constant system prompt first, so llama.cpp reuses its cached prefix across turns; `ask` follows the
    question when the model is asked about it rather than asked to answer it."""
    messages = [ChatMessage("system", system_prompt)]
    messages += [ChatMessage(turn.role, turn.text) for turn in history]
    user = f"{format_sources(passages)}\n\nCustomer question: {question}"
    messages.append(ChatMessage("user", f"{user}\n\n{ask}" if ask else user))
    return messages


def answer_system_prompt(config: AssistantConfig) -> str:
    """Persona, tone and answering instructions: the part of every answer prompt that never changes."""
    return f"{config.persona} Your tone is {config.tone}. {config.generation.answer_instructions}"


def cited_numbers(text: str, passage_count: int) -> list[int]:
    """Passage numbers the text cites explicitly, in first-use order, ignoring numbers with no passage."""
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= passage_count and number not in seen:
            seen.append(number)
    return seen


def without_citations(text: str) -> str:
    """`text` without its "[n]" citation markers (and the space before each)."""
    return _CITATION.sub("", text)


def attribute(answer: str, passages: Sequence[Passage]) -> list[int]:
    """The passages the answer's content comes from, measured by shared terms.

    Small models cite unreliably, so attribution is measured rather than taken from the model's markers.
    """
    answer_terms = set(terms(without_citations(answer)))
    if not answer_terms or not passages:
        return []
    overlaps = [len(answer_terms & set(terms(p.text))) / len(answer_terms) for p in passages]
    best = max(overlaps)
    if best == 0.0:
        return []
    return [number for number, overlap in enumerate(overlaps, start=1) if overlap >= _ATTRIBUTION_RATIO * best]


class GroundedAnswerer:
    def __init__(self, llm: LLM, *, system_prompt: str, max_tokens: int, temperature: float,
                 history_tokens: int) -> None:
        self._llm = llm
        self._system_prompt = system_prompt
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._history_tokens = history_tokens

    def answerability(self, question: str, passages: Sequence[Passage], history: Sequence[HistoryTurn]) -> float:
        """The model's probability that the passages answer the question: P(yes) / (P(yes) + P(no)) over its
        likeliest first tokens; 0.5 when it would say neither."""
        messages = build_answer_messages(self._system_prompt, question, passages, self._history(history),
                                         ask=_ANSWERABILITY_QUESTION)
        probabilities = self._llm.first_token_logprobs(messages)

        def mass(word: str) -> float:
            return sum(math.exp(logprob) for token, logprob in probabilities.items()
                       if token.strip().lower().startswith(word))

        yes, no = mass("yes"), mass("no")
        return yes / (yes + no) if yes + no > 0 else 0.5

    def stream(self, question: str, passages: Sequence[Passage], history: Sequence[HistoryTurn],
               result: AnswerResult) -> Iterator[str]:
        """Yield the answer as it is generated, then its citation markers; fill `result` when done."""
        messages = build_answer_messages(self._system_prompt, question, passages, self._history(history))
        for piece in self._llm.stream(messages, max_tokens=self._max_tokens, temperature=self._temperature):
            result.text += piece
            yield piece
        result.text = result.text.strip()
        explicit = cited_numbers(result.text, len(passages))
        measured = attribute(result.text, passages)
        result.cited = explicit or measured
        if not explicit and measured:
            markers = " " + "".join(f"[{number}]" for number in measured)
            result.text += markers
            yield markers

    def _history(self, history: Sequence[HistoryTurn]) -> list[HistoryTurn]:
        return fit_history(history, self._history_tokens, self._llm.count_tokens)
