"""Clarifying: when the NLU cannot tell two things apart, ask which one the user meant, in the owner's words.

Options are flows (phrased from their descriptions) and knowledge intents that have a description; asking only
makes sense when at least one option starts a flow, since knowledge questions are answered either way. The
answer is matched by ordinals ("the first one"), by the words of the options ("block it") and by the NLU's
reading of it. A pending question is recognised from the stored events alone, the options being rebuilt from
the unclear message's ranking, so it survives a restart without an event type of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatwright.config import DialogueConfig
from chatwright.dialogue.events import BotMessage, Event, UserMessage
from chatwright.dialogue.flow_spec import FlowBook
from chatwright.dialogue.types import EntityValue, IntentScore, Route, Understanding

ORDINALS = {"first": 0, "1": 0, "1st": 0, "former": 0, "second": 1, "2": 1, "2nd": 1, "latter": 1, "last": 1}
_STOP_WORDS = frozenset({"the", "and", "about", "ask", "want", "would", "like", "you", "your", "my", "mine", "please",
                         "for", "with", "that", "this", "one", "just", "yes", "yeah", "not", "it's", "its"})
_WORDS = re.compile(r"[^\w']+")


@dataclass(frozen=True)
class Option:
    """One answer to a clarifying question: the flow an intent starts, or (flow None) a knowledge question."""

    intent: str
    flow: str | None
    label: str  # "block your card", "ask about fees for cards"


@dataclass(frozen=True)
class Clarification:
    options: tuple[Option, Option]

    @property
    def choices(self) -> str:
        return f"{self.options[0].label} or {self.options[1].label}"


@dataclass(frozen=True)
class PendingClarification:
    """A clarifying question the assistant asked last turn, with the unclear message it was about."""

    clarification: Clarification
    text: str
    understanding: Understanding


class Clarifier:
    def __init__(self, book: FlowBook, knowledge_intents: Mapping[str, str], config: DialogueConfig) -> None:
        """`knowledge_intents` maps the intents answered from knowledge to their descriptions."""
        self._book = book
        self._knowledge_intents = dict(knowledge_intents)
        self._config = config

    def clarification(self, understanding: Understanding) -> Clarification | None:
        """A question to ask when the best intent is not sure or the runner-up is close behind, provided the
        runner-up is plausible too: two weak guesses are no reason to ask, the knowledge may answer instead."""
        if len(understanding.ranking) < 2:
            return None
        top, second = understanding.ranking[:2]
        close = top.confidence - second.confidence < self._config.clarify_margin
        unsure = top.confidence < self._config.min_confidence
        plausible = second.confidence >= self._config.clarify_min_confidence
        return self._between(top.intent, second.intent) if (close or unsure) and plausible else None

    def pending(self, events: Sequence[Event]) -> PendingClarification | None:
        """The question asked in the last turn of `events`, if it was a clarifying one."""
        asked = next((index for index in range(len(events) - 1, -1, -1) if isinstance(events[index], UserMessage)),
                     None)
        if asked is None:
            return None
        message = events[asked]
        assert isinstance(message, UserMessage)
        understanding = _restored(message.understanding)
        if understanding is None or len(understanding.ranking) < 2:
            return None
        clarification = self._between(understanding.ranking[0].intent, understanding.ranking[1].intent)
        said = [event.text for event in events[asked + 1:] if isinstance(event, BotMessage)]
        if clarification is None or not any(clarification.choices in text for text in said):
            return None
        return PendingClarification(clarification, message.text, understanding)

    def _between(self, first: str, second: str) -> Clarification | None:
        one, other = self._option(first), self._option(second)
        if one is None or other is None or one.flow == other.flow:
            return None  # unknown, both knowledge (answered either way), or two intents of the same flow
        return Clarification((one, other))

    def _option(self, intent: str) -> Option | None:
        flow = self._book.flow_for_intent(intent)
        if flow is not None:
            return Option(intent, flow.name, _phrase(flow.description))
        description = self._knowledge_intents.get(intent)
        return Option(intent, None, f"ask about {_phrase(description)}") if description else None


def pick(clarification: Clarification, text: str, understanding: Understanding) -> Option | None:
    """The option the answer names, or None when it names neither (or both)."""
    words = _WORDS.sub(" ", text.casefold()).split()
    ordinals = {ORDINALS[word] for word in words if word in ORDINALS}
    if len(ordinals) == 1:
        return clarification.options[ordinals.pop()]
    said = _stems(words)
    overlap = [len(said & _stems(_WORDS.sub(" ", f"{option.label} {option.intent.replace('_', ' ')}".casefold())
                                 .split())) for option in clarification.options]
    if overlap[0] != overlap[1]:
        return clarification.options[overlap.index(max(overlap))]
    return next((option for option in clarification.options if option.intent == understanding.intent), None)


def _stems(words: Sequence[str]) -> set[str]:
    """Crude stems, enough for "blocking" to match "block" and "stolen" "stole"."""
    return {word[:5] for word in words if len(word) > 2 and word not in _STOP_WORDS}


def _phrase(description: str) -> str:
    """A description as the middle of a sentence: "Block your card." -> "block your card" (acronyms kept)."""
    text = description.strip().rstrip(".")
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _restored(data: Mapping[str, Any] | None) -> Understanding | None:
    """The parts of a stored understanding a clarification needs: its ranking and entities."""
    if not data:
        return None
    return Understanding(
        intent=data["intent"], confidence=data["confidence"], route=Route(data["route"]),
        ranking=tuple(IntentScore(**score) for score in data.get("ranking") or ()),
        entities=tuple(EntityValue(**entity) for entity in data.get("entities") or ()))
