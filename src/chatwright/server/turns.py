"""Producing a turn: store the message, stream the assistant's reply from a worker thread, store the reply with
the dialogue events it added (the next turn, in this process or after a restart, continues from them).

A turn runs as its own task, not as part of the request: a client that disconnects mid-stream does not
stop generation, and the finished reply is stored all the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from chatwright.config import AssistantConfig
from chatwright.dialogue.events import Event
from chatwright.dialogue.types import HistoryTurn, Reply, ReplyEvent, Route, Token, Understanding
from chatwright.server.locks import ConversationLocks
from chatwright.store.records import TurnRecord
from chatwright.store.repository import ConversationStore

log = structlog.get_logger(__name__)

UNAVAILABLE_TEXT = "Sorry, I cannot answer right now. Please try again in a little while."
# Tokens are sent in batches at most this often (the first at once): waking the event loop and the client for
# every token preempts llama.cpp's compute threads on a small machine and slows decoding by a third.
STREAM_FLUSH_INTERVAL_S = 0.1


class ChatAssistant(Protocol):
    """What the server needs from the dialogue pipeline (`chatwright.dialogue.assistant.Assistant`)."""

    name: str
    config: AssistantConfig

    def respond(self, history: Sequence[HistoryTurn], message: str,
                events: Sequence[Event] = ()) -> Iterator[ReplyEvent]: ...


@dataclass(frozen=True)
class TurnDone:
    user_turn: TurnRecord
    assistant_turn: TurnRecord


@dataclass(frozen=True)
class TurnFailed:
    detail: str


TurnOutcome = TurnDone | TurnFailed
TurnEvent = Token | TurnOutcome


class PendingTurn:
    """The events of one turn in production, handed from the worker thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[TurnEvent] = asyncio.Queue()

    def publish(self, event: TurnEvent) -> None:
        """Callable from any thread."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def events(self) -> AsyncIterator[TurnEvent]:
        """Tokens as they come, ending with the outcome."""
        while True:
            event = await self._queue.get()
            yield event
            if not isinstance(event, Token):
                return

    async def outcome(self) -> TurnOutcome:
        async for event in self.events():
            if not isinstance(event, Token):
                return event
        raise RuntimeError("turn ended without an outcome")


class TurnRunner:
    """Runs turns one at a time per conversation: in-process by lock, across workers by the store's lock."""

    def __init__(self, assistant: ChatAssistant, store: ConversationStore, *,
                 history_limit: int = 20) -> None:
        self._assistant = assistant
        self._store = store
        self._history_limit = history_limit
        self._locks = ConversationLocks()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, conversation_id: str, message: str) -> PendingTurn:
        pending = PendingTurn(asyncio.get_running_loop())
        task = asyncio.create_task(self._run(conversation_id, message, pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return pending

    async def drain(self) -> None:
        """Wait for turns in production, so a graceful shutdown stores every reply it started."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, conversation_id: str, message: str, pending: PendingTurn) -> None:
        requested = time.perf_counter()
        try:
            async with self._locks.hold(conversation_id):
                await asyncio.to_thread(self._produce, conversation_id, message, pending.publish, requested)
        except Exception:
            log.exception("turn.failed", conversation_id=conversation_id)
            pending.publish(TurnFailed("The reply could not be stored. Please try again."))

    def _produce(self, conversation_id: str, message: str, publish: Callable[[TurnEvent], None],
                 requested: float) -> None:
        with self._store.hold_conversation(conversation_id):
            wait_ms = _ms_since(requested)
            history = self._store.history(conversation_id, self._history_limit)
            events = self._store.events(conversation_id)
            user_turn = self._store.add_user_turn(conversation_id, message)
            reply = self._generate(history, message, events, publish)
            assistant_turn = self._store.add_assistant_turn(
                conversation_id, reply, timings_ms={"wait_ms": wait_ms, "turn_ms": _ms_since(requested)})
        log.info("turn.completed", conversation_id=conversation_id, route=reply.route.value,
                 decision=reply.decision, flow=reply.flow, abstained=reply.abstained, error=reply.error,
                 timings_ms=assistant_turn.timings_ms)
        publish(TurnDone(user_turn=user_turn, assistant_turn=assistant_turn))

    def _generate(self, history: Sequence[HistoryTurn], message: str, events: Sequence[Event],
                  publish: Callable[[TurnEvent], None]) -> Reply:
        """The assistant's reply; a polite fallback (with the error recorded, and no events) if the pipeline fails."""
        batch = _TokenBatcher(publish)
        try:
            for event in self._assistant.respond(history, message, events):
                if isinstance(event, Reply):
                    batch.flush()
                    return event
                batch.add(event.text)
            batch.flush()
            error = "the assistant finished without a reply"
        except Exception as exc:  # the turn must be stored and the server stay up, whatever went wrong
            log.exception("turn.generation_failed")
            error = f"{type(exc).__name__}: {exc}"
        publish(Token(UNAVAILABLE_TEXT))
        understanding = Understanding(intent="unknown", confidence=0.0, route=Route.KNOWLEDGE)
        return Reply(text=UNAVAILABLE_TEXT, route=Route.KNOWLEDGE, understanding=understanding, error=error)


class _TokenBatcher:
    """Publishes the first piece at once, then the pieces gathered over each flush interval as one Token."""

    def __init__(self, publish: Callable[[TurnEvent], None]) -> None:
        self._publish = publish
        self._pieces: list[str] = []
        self._last_flush: float | None = None

    def add(self, piece: str) -> None:
        self._pieces.append(piece)
        now = time.perf_counter()
        if self._last_flush is None or now - self._last_flush >= STREAM_FLUSH_INTERVAL_S:
            self.flush()
            self._last_flush = now

    def flush(self) -> None:
        if self._pieces:
            self._publish(Token("".join(self._pieces)))
            self._pieces.clear()


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)
