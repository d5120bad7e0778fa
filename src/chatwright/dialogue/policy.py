"""The dialogue policy: one decision per turn, from the dialogue state and what the message means.

In order: hand off when the user asks for a person or stays upset; cancel on "forget it" or the cancel intent.
Inside a flow: take a correction, switch to another flow the user clearly asks for, answer a digression (small
talk, a question, or something out of scope where any text would fit; then the flow asks its question again),
hand off after too many answers that were not accepted, or else take the message as the answer. Outside a flow:
take the answer to last turn's clarifying question, then small talk, out of scope, a clarifying question when
two intents are close (unless the message asks for information its likeliest intent answers), the flow the
intent starts, or a knowledge answer (for which the LLM may first propose a flow when the NLU was unsure).

The policy only decides: it calls neither the LLM nor an action, so deciding takes microseconds and its time is
measured apart from the work it leads to. Without flows it routes as the assistant always has.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from chatwright.config import DialogueConfig
from chatwright.dialogue.cancellation import is_cancel_phrase
from chatwright.dialogue.clarification import Clarification, Clarifier, pick
from chatwright.dialogue.corrections import find_correction
from chatwright.dialogue.events import DialogueState, Event, FlowFrame, Handoff, UserMessage
from chatwright.dialogue.flow_runner import FlowRunner
from chatwright.dialogue.slot_entities import with_entities
from chatwright.dialogue.slot_values import SlotType
from chatwright.dialogue.types import Route, Understanding


class Decision(StrEnum):
    CONTINUE_FLOW = "continue_flow"
    START_FLOW = "start_flow"
    KNOWLEDGE = "knowledge"
    CLARIFY = "clarify"
    SMALL_TALK = "small_talk"
    OUT_OF_SCOPE = "out_of_scope"
    CANCEL = "cancel"
    HANDOFF = "handoff"


SMALL_TALK_ROUTES = frozenset({Route.GREETING, Route.THANKS, Route.GOODBYE})
_QUESTION_START = re.compile(r"^\W*(?:what|how|why|when|where|which|who|whose|can|could|do|does|did|is|are|will|"
                             r"would|should|may|tell me|explain)\b", re.IGNORECASE)
_QUESTION_MIN_WORDS = 4  # "Anna?" is an unsure answer; "is there a fee?" a question
# asks for information rather than for something to be done, so no flow is proposed for it
_INFORMATION_QUESTION = re.compile(r"^\W*(?:what|how|why|when|where|which|who|whose|is|are|do|does)\b",
                                   re.IGNORECASE)


@dataclass(frozen=True)
class Choice:
    """A decision with what carrying it out needs.

    `understanding` and `text` are what the decision acts on: the message, with entities the policy added (a
    correction), or the unclear message a clarifying answer resolved. `digression`: answered while a flow waits,
    which then asks its question again. `propose`: the NLU was unsure, so the LLM may propose a flow first.
    """

    decision: Decision
    understanding: Understanding
    text: str
    flow: str | None = None
    reason: str | None = None
    clarification: Clarification | None = None
    digression: bool = False
    propose: bool = False
    apologise: bool = False


class DialoguePolicy:
    def __init__(self, runner: FlowRunner, clarifier: Clarifier, config: DialogueConfig) -> None:
        self._runner = runner
        self._book = runner.book
        self._clarifier = clarifier
        self._config = config

    def decide(self, state: DialogueState, understanding: Understanding, text: str,
               events: Sequence[Event] = ()) -> Choice:
        """The move for `text`; `state` already includes its UserMessage, `events` are the ones before it."""
        if not self._book.flows:
            return self._routed(understanding, text)
        choice = self._decide(state, understanding, text, events)
        return dataclasses.replace(choice, apologise=self._upset(understanding))

    def _upset(self, understanding: Understanding) -> bool:
        sentiment = understanding.sentiment
        return sentiment is not None and self._negative(sentiment.label, sentiment.score)

    def _negative(self, label: str | None, score: float) -> bool:
        return label == "negative" and score >= self._config.negative_score

    def _upset_streak(self, understanding: Understanding, events: Sequence[Event]) -> int:
        """Upset messages in a row, ending with this one and counted since the last hand-off.

        Stricter than the state's `negative_streak`, which counts every negative label: a sentiment model is
        often unsure of a short message, and only readings above `negative_score` count here.
        """
        if not self._upset(understanding):
            return 0
        streak = 1
        for event in reversed(events):
            if isinstance(event, Handoff):
                break
            if isinstance(event, UserMessage):
                sentiment = (event.understanding or {}).get("sentiment") or {}
                if not self._negative(sentiment.get("label"), sentiment.get("score", 0.0)):
                    break
                streak += 1
        return streak

    def _confident(self, understanding: Understanding) -> bool:
        return understanding.confidence >= self._config.min_confidence and not understanding.out_of_scope

    def _decide(self, state: DialogueState, understanding: Understanding, text: str,
                events: Sequence[Event]) -> Choice:
        routed = self._routed(understanding, text)
        if routed.decision is Decision.HANDOFF:
            return routed
        limit = self._config.handoff_negative_turns
        if limit is not None and (streak := self._upset_streak(understanding, events)) >= limit:
            return Choice(Decision.HANDOFF, understanding, text,
                          reason=f"the customer was upset for {streak} messages in a row")
        if is_cancel_phrase(text) or (understanding.intent == self._config.cancel_intent
                                      and self._confident(understanding)):
            return Choice(Decision.CANCEL, understanding, text)
        if state.active is not None:
            return self._in_flow(state, state.active, understanding, text, events)
        pending = self._clarifier.pending(events)
        picked = pick(pending.clarification, text, understanding) if pending is not None else None
        if pending is not None and picked is not None:
            unclear = with_entities(pending.understanding, *understanding.entities)
            if picked.flow is not None:
                return Choice(Decision.START_FLOW, unclear, pending.text, flow=picked.flow)
            return Choice(Decision.KNOWLEDGE, unclear, pending.text)
        return self._outside_flows(understanding, text)

    def _in_flow(self, state: DialogueState, frame: FlowFrame, understanding: Understanding, text: str,
                 events: Sequence[Event]) -> Choice:
        correction = find_correction(self._book, state, events, text, self._runner.today())
        if correction is not None:
            return Choice(Decision.CONTINUE_FLOW, with_entities(understanding, correction), text)
        values = self._runner.values_in(state, understanding, text)
        awaited = self._book.slots.get(frame.awaiting) if frame.awaiting is not None else None
        free_text = awaited is not None and awaited.rules.type is SlotType.TEXT
        # a free-text slot takes any message, so only a value for a typed slot proves the message is an answer;
        # an entity the awaited slot takes answers it even when rejected ("20000 euros" over the limit): the
        # flow asks again with the reason instead of switching to whatever the words resemble
        offered = awaited is not None and any(entity.entity in awaited.entities for entity in understanding.entities)
        answered = (any(parsed.ok for parsed in values.values()) or offered) and not free_text
        other = self._book.flow_for_intent(understanding.intent)
        if other is not None and other.name != frame.flow and self._confident(understanding) and not answered:
            return Choice(Decision.START_FLOW, understanding, text, flow=other.name)
        if not answered:
            if understanding.route in SMALL_TALK_ROUTES:
                return Choice(Decision.SMALL_TALK, understanding, text, digression=True)
            if _is_question(text):
                return Choice(Decision.KNOWLEDGE, understanding, text, digression=True)
            if free_text and understanding.route is Route.OUT_OF_SCOPE:
                return Choice(Decision.OUT_OF_SCOPE, understanding, text, digression=True)
        limit = self._config.handoff_after_failures
        if limit is not None and any(not parsed.ok for parsed in values.values()) and state.failures + 1 >= limit:
            return Choice(Decision.HANDOFF, understanding, text,
                          reason=f"{state.failures + 1} answers in a row were not accepted")
        return Choice(Decision.CONTINUE_FLOW, understanding, text)

    def _outside_flows(self, understanding: Understanding, text: str) -> Choice:
        routed = self._routed(understanding, text)
        if routed.decision is not Decision.KNOWLEDGE:
            return routed
        flow = self._book.flow_for_intent(understanding.intent)
        asks_information = bool(_INFORMATION_QUESTION.search(text))
        # a question for information whose likeliest reading is answered from knowledge gets that answer: asking
        # whether "How much does a SWIFT transfer cost?" meant sending money only delays it
        clarification = None if asks_information and flow is None else self._clarifier.clarification(understanding)
        if clarification is not None:
            return Choice(Decision.CLARIFY, understanding, text, clarification=clarification)
        if flow is not None and self._confident(understanding):
            return Choice(Decision.START_FLOW, understanding, text, flow=flow.name)
        propose = (self._config.llm_flow_proposals and not self._confident(understanding)
                   and bool(self._book.proposable()) and not asks_information)
        return Choice(Decision.KNOWLEDGE, understanding, text, propose=propose)

    @staticmethod
    def _routed(understanding: Understanding, text: str) -> Choice:
        """The decision the NLU's route alone makes: how an assistant without flows answers."""
        route = understanding.route
        if route is Route.HUMAN:
            return Choice(Decision.HANDOFF, understanding, text, reason="the customer asked for a person")
        if route in SMALL_TALK_ROUTES:
            return Choice(Decision.SMALL_TALK, understanding, text)
        if route is Route.OUT_OF_SCOPE:
            return Choice(Decision.OUT_OF_SCOPE, understanding, text)
        return Choice(Decision.KNOWLEDGE, understanding, text)


def _is_question(text: str) -> bool:
    """Asked rather than answered: a question word first, or a question mark after a few words."""
    return bool(_QUESTION_START.search(text)) or (
        text.rstrip().endswith("?") and len(text.split()) >= _QUESTION_MIN_WORDS)
