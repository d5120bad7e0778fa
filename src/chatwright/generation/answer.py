"""Writes an answer from retrieved passages only, streamed, with [n] citations that map back to the passages."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from chatwright.dialogue.types import HistoryTurn
from chatwright.generation.history import fit_history
from chatwright.generation.llm import LLM, ChatMessage
from chatwright.knowledge.passage import Passage

NOT_FOUND = "NOT_FOUND"
_CITATION = re.compile(r"\[(\d{1,2})\]")

_RULES = (
    "Answer the customer's question using only the numbered help-centre passages in their message. "
    "Cite the passages you use with their numbers in square brackets, for example [1]. "
    "Do not add facts, fees, numbers or steps that are not in the passages. "
    "If the passages do not answer the question, reply with exactly NOT_FOUND and nothing else."
)


@dataclass
class AnswerResult:
    """The finished answer; `found` is False when the model said the passages hold no answer."""

    text: str = ""
    found: bool = True
    cited: list[int] = field(default_factory=list)  # 1-based passage numbers cited in the text


def format_passages(passages: Sequence[Passage]) -> str:
    blocks = []
    for number, passage in enumerate(passages, start=1):
        heading = " > ".join((passage.title, *passage.heading_path))
        blocks.append(f"[{number}] {heading}\n{passage.text}")
    return "\n\n".join(blocks)


def build_answer_messages(persona: str, tone: str, question: str, passages: Sequence[Passage],
                          history: Sequence[HistoryTurn]) -> list[ChatMessage]:
    messages = [ChatMessage("system", f"{persona} Your tone is {tone}. {_RULES}")]
    messages += [ChatMessage(turn.role, turn.text) for turn in history]
    messages.append(ChatMessage("user", f"Help-centre passages:\n\n{format_passages(passages)}\n\n"
                                        f"Customer question: {question}"))
    return messages


def cited_numbers(text: str, passage_count: int) -> list[int]:
    """Passage numbers cited in `text`, in first-use order, ignoring numbers with no passage."""
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= passage_count and number not in seen:
            seen.append(number)
    return seen


class GroundedAnswerer:
    def __init__(self, llm: LLM, *, persona: str, tone: str, max_tokens: int, temperature: float,
                 history_tokens: int) -> None:
        self._llm = llm
        self._persona = persona
        self._tone = tone
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._history_tokens = history_tokens

    def stream(self, question: str, passages: Sequence[Passage], history: Sequence[HistoryTurn],
               result: AnswerResult) -> Iterator[str]:
        """Yield answer text as it is generated and fill `result` when done.

        The first characters are held back until they cannot be the NOT_FOUND marker, so an abstention is never
        half-streamed to the user.
        """
        kept_history = fit_history(history, self._history_tokens, self._llm.count_tokens)
        messages = build_answer_messages(self._persona, self._tone, question, passages, kept_history)
        pieces = self._llm.stream(messages, max_tokens=self._max_tokens, temperature=self._temperature)
        held = ""
        released = False
        for piece in pieces:
            if released:
                result.text += piece
                yield piece
                continue
            held += piece
            stripped = held.lstrip()
            if NOT_FOUND.startswith(stripped) or stripped.startswith(NOT_FOUND):
                continue
            released = True
            result.text = stripped
            yield stripped
        if not released:
            result.found = not held.strip().startswith(NOT_FOUND) and bool(held.strip())
            if result.found:
                result.text = held.strip()
                yield result.text
        result.text = result.text.strip()
        if NOT_FOUND in result.text and len(result.text) <= len(NOT_FOUND) + 2:
            result.found = False
        result.cited = cited_numbers(result.text, len(passages))
