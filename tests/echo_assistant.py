"""A stand-in for the dialogue pipeline in server tests: it echoes the message word by word and cites one
passage, so HTTP, streaming and storage can be tested in seconds. The real pipeline has its own e2e test.
Like the real one it adds a user and a bot message to the event log, and it keeps the logs it was given."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from chatwright.config import AssistantConfig
from chatwright.dialogue.events import BotMessage, Event, UserMessage
from chatwright.dialogue.types import Citation, HistoryTurn, Reply, ReplyEvent, Route, Token, Understanding
from chatwright.errors import GenerationUnavailable

ECHO_NAME = "Echo Bank"
FAILING_WORD = "unavailable"  # a message containing it makes generation fail after the first token
REFUND_PASSAGE = Citation(index=1, source="policies.md", title="Refund policy",
                          heading_path=["Policies", "Refunds"],
                          text="Refunds reach your account within 14 days of the return.", score=0.87)


def echo_text(message: str, earlier_turns: int) -> str:
    return f"You said: {message} (after {earlier_turns} earlier turns) [1]"


class EchoAssistant:
    def __init__(self, *, token_delay_s: float = 0.0) -> None:
        self.name = ECHO_NAME
        self.config = AssistantConfig(name=ECHO_NAME)
        self.token_delay_s = token_delay_s
        self.received_events: list[list[Event]] = []

    def respond(self, history: Sequence[HistoryTurn], message: str,
                events: Sequence[Event] = ()) -> Iterator[ReplyEvent]:
        self.received_events.append(list(events))
        text = echo_text(message, len(history))
        for number, word in enumerate(text.split(" ")):
            if number == 1 and FAILING_WORD in message:
                raise GenerationUnavailable("generation endpoint http://127.0.0.1:9/v1 unreachable")
            time.sleep(self.token_delay_s)
            yield Token(word if number == 0 else f" {word}")
        understanding = Understanding(intent="ask_question", confidence=0.9, route=Route.KNOWLEDGE)
        new_events = [UserMessage.of(message, understanding), BotMessage(text=text)]
        yield Reply(text=text, route=Route.KNOWLEDGE, understanding=understanding, citations=[REFUND_PASSAGE],
                    rewritten_query=message, timings_ms={"generate_ms": 1.5}, decision="knowledge",
                    events=[event.to_dict() for event in new_events])
