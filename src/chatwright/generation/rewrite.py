"""Turns a follow-up ("and for Mastercard?") into a standalone question before retrieval.

Retrieval sees one query, not the conversation, so a follow-up must carry its context with it. Rewriting costs a
model call, so it only runs when the message looks like it depends on earlier turns. A small model sometimes
rewrites a follow-up back into the previous question and drops what the follow-up asked about ("Mastercard"), so
a rewrite must keep every content word of the message; one that does not gives way to the previous question and
the message together, which retrieval reads just as well.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import structlog

from chatwright.dialogue.types import HistoryTurn
from chatwright.generation.answer import without_citations
from chatwright.generation.llm import LLM, ChatMessage, complete

log = structlog.get_logger(__name__)

_FOLLOW_UP_START = re.compile(
    r"^\s*(and|or|but|also|so|then|what about|how about|same|what if|ok(ay)?|and if|plus)\b", re.IGNORECASE)
_ANAPHORA = re.compile(
    r"\b(it|its|it's|that|this|those|these|they|them|their|there|one|ones|same|else|instead|either)\b",
    re.IGNORECASE)
_SHORT_MESSAGE_WORDS = 5
_CONTEXT_WORDS = 60
_WORD = re.compile(r"[\w'%€$£.,-]*\w")
_FUNCTION_WORDS = frozenset({
    "a", "an", "the", "of", "for", "to", "in", "on", "at", "by", "with", "from", "about", "is", "are", "was", "be",
    "do", "does", "did", "can", "could", "would", "should", "will", "i", "me", "my", "we", "our", "you", "your",
    "what", "which", "who", "when", "where", "why", "how", "much", "many", "any", "some", "not", "no", "yes",
    "please"})

_INSTRUCTIONS = (
    "Rewrite the user's last message as one standalone question that can be understood without the "
    "conversation. Replace pronouns and ellipsis with what they refer to. Keep the user's wording otherwise. "
    "Output only the rewritten question."
)
_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("User: How much does it cost to top up with a Visa card?\n"
     "Assistant: Topping up with a Visa card costs 0.5% of the amount.\n"
     "Last message: and for Mastercard?",
     "How much does it cost to top up with a Mastercard card?"),
    ("User: How do I order a new debit card?\n"
     "Assistant: You can order a card in the app under Cards > Order card.\n"
     "Last message: how long does it take to arrive?",
     "How long does a new debit card take to arrive?"),
)


def looks_like_follow_up(message: str, history: Sequence[HistoryTurn]) -> bool:
    """Cheap test for messages that lean on the conversation: a leading 'and', a pronoun, or very few words."""
    if not any(turn.role == "user" for turn in history):
        return False
    return bool(_FOLLOW_UP_START.search(message) or _ANAPHORA.search(message)
                or len(message.split()) <= _SHORT_MESSAGE_WORDS)


def _clip(text: str, words: int) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def _transcript(history: Sequence[HistoryTurn], message: str) -> str:
    recent = list(history)[-3:]
    lines = [f"{'User' if t.role == 'user' else 'Assistant'}: {_clip(without_citations(t.text), _CONTEXT_WORDS)}"
             for t in recent]
    lines.append(f"Last message: {message}")
    return "\n".join(lines)


class QueryRewriter:
    def __init__(self, llm: LLM) -> None:
        self._llm = llm

    def rewrite(self, history: Sequence[HistoryTurn], message: str) -> str | None:
        """A standalone version of `message`, or None when it needs none (or the rewrite is unusable)."""
        if not looks_like_follow_up(message, history):
            return None
        messages = [ChatMessage("system", _INSTRUCTIONS)]
        for prompt, answer in _EXAMPLES:
            messages += [ChatMessage("user", prompt), ChatMessage("assistant", answer)]
        messages.append(ChatMessage("user", _transcript(history, message)))
        # without citation markers: the model copies an answer's "[1]" into the query
        rewritten = without_citations(complete(self._llm, messages, max_tokens=48, stop=["\n"])).strip().strip('"')
        if not rewritten or len(rewritten.split()) > 3 * len(message.split()) + 30:
            return None
        if dropped := dropped_words(message, rewritten):
            previous = next(turn.text for turn in reversed(history) if turn.role == "user")
            log.info("rewrite dropped words of the follow-up; using the previous question with it",
                     dropped=dropped, rewritten=rewritten)
            return f"{previous} {message}"
        return rewritten


def dropped_words(message: str, rewritten: str) -> list[str]:
    """The message's content words (not pronouns, connectives or function words) missing from its rewrite."""
    kept = {word.lower() for word in _WORD.findall(rewritten)}
    return [word for word in _WORD.findall(message)
            if (lowered := word.lower()) not in kept and lowered not in _FUNCTION_WORDS
            and not _FOLLOW_UP_START.fullmatch(word) and not _ANAPHORA.fullmatch(word)]
