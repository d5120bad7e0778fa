"""Running conversation tests through the real pipeline: NLU, policy, flows, actions and the language model.

Each test is a fresh conversation whose events live in memory and pass through their stored JSON form between
turns, exactly as a server replays them from its database, so every test also checks that a conversation
continues correctly from its log. Actions that keep state (the bank demo's fake core bank) find a fresh, empty
directory in $CHATWRIGHT_ACTION_STATE_DIR for every test, so no test sees what another one changed. A test stops
at its first failing turn: the turns after it would be answering a conversation the test never meant.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from chatwright.dialogue.events import Event, event_from_dict
from chatwright.dialogue.types import HistoryTurn, Reply, ReplyEvent
from chatwright.evaluation.conversation_tests import ConversationTest, TestTurn, check_reply

ACTION_STATE_ENV = "CHATWRIGHT_ACTION_STATE_DIR"


class Responder(Protocol):
    """What the runner talks to: `chatwright.dialogue.assistant.Assistant`, or anything answering like it."""

    def respond(self, history: Sequence[HistoryTurn], message: str,
                events: Sequence[Event] = ()) -> Iterator[ReplyEvent]: ...


@dataclass(frozen=True)
class TurnOutcome:
    number: int  # 1-based, as people count turns
    turn: TestTurn
    reply: Reply
    failures: tuple[str, ...]


@dataclass(frozen=True)
class TestOutcome:
    """The turns that ran, up to and including the first failing one; `error` when the pipeline raised."""

    test: ConversationTest
    turns: tuple[TurnOutcome, ...]
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and len(self.turns) == len(self.test.turns) and not self.failed_turn

    @property
    def failed_turn(self) -> TurnOutcome | None:
        return next((turn for turn in self.turns if turn.failures), None)


@contextmanager
def fresh_action_state() -> Iterator[str]:
    """An empty directory in $CHATWRIGHT_ACTION_STATE_DIR for the duration, then the previous value back."""
    previous = os.environ.get(ACTION_STATE_ENV)
    with tempfile.TemporaryDirectory(prefix="chatwright-actions-") as directory:
        os.environ[ACTION_STATE_ENV] = directory
        try:
            yield directory
        finally:
            if previous is None:
                del os.environ[ACTION_STATE_ENV]
            else:
                os.environ[ACTION_STATE_ENV] = previous


def run_test(assistant: Responder, test: ConversationTest) -> TestOutcome:
    history: list[HistoryTurn] = []
    events: list[Event] = []
    outcomes: list[TurnOutcome] = []
    with fresh_action_state():
        for number, turn in enumerate(test.turns, 1):
            try:
                reply = _final_reply(assistant.respond(list(history), turn.user, list(events)))
            except Exception as exc:  # a broken pipeline fails this test, and the run goes on with the next
                return TestOutcome(test, tuple(outcomes), f"turn {number} raised {type(exc).__name__}: {exc}")
            events += [event_from_dict(event) for event in reply.events]
            history += [HistoryTurn("user", turn.user), HistoryTurn("assistant", reply.text)]
            outcomes.append(TurnOutcome(number, turn, reply, tuple(check_reply(turn.expect, reply))))
            if outcomes[-1].failures:
                break
    return TestOutcome(test, tuple(outcomes))


def run_tests(assistant: Responder, tests: Iterable[ConversationTest],
              progress: Callable[[TestOutcome], None] | None = None) -> list[TestOutcome]:
    """Run every test; `progress` hears of each one as it finishes."""
    outcomes = []
    for test in tests:
        outcomes.append(run_test(assistant, test))
        if progress is not None:
            progress(outcomes[-1])
    return outcomes


def _final_reply(stream: Iterator[ReplyEvent]) -> Reply:
    final = [event for event in stream if isinstance(event, Reply)]
    if len(final) != 1:
        raise RuntimeError(f"a turn must end with exactly one Reply, not {len(final)}")
    return final[0]
