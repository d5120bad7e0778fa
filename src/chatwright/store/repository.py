"""Conversation storage: every turn is committed on its own (a reply together with the dialogue events it
added), so a crash or restart loses nothing and a conversation's state can always be rebuilt from the store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, selectinload, sessionmaker

from chatwright.dialogue.events import Event, event_from_dict
from chatwright.dialogue.types import Citation, HistoryTurn, Reply, Route
from chatwright.errors import InputError
from chatwright.store.engine import create_store_engine, is_postgresql
from chatwright.store.migrate import upgrade_database
from chatwright.store.models import Conversation, ConversationEvent, Feedback, Turn, utc_now
from chatwright.store.records import ConversationRecord, EventRecord, FeedbackRecord, Rating, Role, TurnRecord

# First key of the two-key advisory lock, so conversation locks never collide with other advisory locks.
CONVERSATION_LOCK_NAMESPACE = 7301


class RecordNotFound(InputError):
    """A conversation or turn id that the store does not know."""


class ConversationStore:
    """Reads and writes conversations in SQLite or PostgreSQL; the schema is upgraded on open."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self._engine = create_store_engine(url)
        if migrate:
            upgrade_database(url, self._engine)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self._engine.dialect.name

    def check(self) -> None:
        """Raise if the database cannot be reached."""
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        self._engine.dispose()

    def create_conversation(self, assistant: str) -> ConversationRecord:
        with self._sessions.begin() as session:
            conversation = Conversation(id=str(uuid.uuid4()), assistant=assistant)
            session.add(conversation)
            session.flush()
            return _conversation_record(conversation, turns=[], events=[])

    def conversation_exists(self, conversation_id: str) -> bool:
        with self._sessions() as session:
            return session.get(Conversation, conversation_id) is not None

    def get_conversation(self, conversation_id: str) -> ConversationRecord:
        with self._sessions() as session:
            conversation = session.scalar(
                select(Conversation).where(Conversation.id == conversation_id)
                .options(selectinload(Conversation.turns).selectinload(Turn.feedback),
                         selectinload(Conversation.events)))
            if conversation is None:
                raise RecordNotFound(f"no conversation {conversation_id}")
            return _conversation_record(conversation, turns=conversation.turns, events=conversation.events)

    def history(self, conversation_id: str, limit: int = 20) -> list[HistoryTurn]:
        """The last `limit` turns, oldest first, as the dialogue pipeline wants them."""
        with self._sessions() as session:
            rows = session.execute(
                select(Turn.role, Turn.text).where(Turn.conversation_id == conversation_id)
                .order_by(Turn.position.desc()).limit(limit)).all()
        return [HistoryTurn(role=cast(Role, role), text=turn_text) for role, turn_text in reversed(rows)]

    def events(self, conversation_id: str) -> list[Event]:
        """The conversation's dialogue events, oldest first: replaying them gives its dialogue state."""
        with self._sessions() as session:
            rows = session.execute(
                select(ConversationEvent.type, ConversationEvent.payload)
                .where(ConversationEvent.conversation_id == conversation_id).order_by(ConversationEvent.seq)).all()
        return [event_from_dict({**payload, "type": kind}) for kind, payload in rows]

    def add_user_turn(self, conversation_id: str, message: str) -> TurnRecord:
        return self._add_turn(conversation_id, role="user", text=message)

    def add_assistant_turn(self, conversation_id: str, reply: Reply, *,
                           timings_ms: Mapping[str, float] | None = None) -> TurnRecord:
        """Store a reply and the dialogue events of its turn (`reply.events`) in one transaction; `timings_ms`
        measured by the caller (the server) are merged over the reply's."""
        return self._add_turn(
            conversation_id, reply.events, role="assistant", text=reply.text, route=reply.route.value,
            understanding=reply.to_dict()["understanding"], rewritten_query=reply.rewritten_query,
            citations=[asdict(citation) for citation in reply.citations], abstained=reply.abstained,
            handoff=reply.handoff, error=reply.error, support=reply.support or None,
            timings={**reply.timings_ms, **(timings_ms or {})})

    def add_feedback(self, turn_id: str, rating: Rating, comment: str | None = None) -> FeedbackRecord:
        with self._sessions.begin() as session:
            turn = session.get(Turn, turn_id)
            if turn is None:
                raise RecordNotFound(f"no turn {turn_id}")
            if turn.role != "assistant":
                raise InputError("feedback applies to the assistant's replies, not to user messages")
            feedback = Feedback(turn_id=turn_id, rating=rating, comment=comment or None)
            session.add(feedback)
            session.flush()
            return _feedback_record(feedback)

    @contextmanager
    def hold_conversation(self, conversation_id: str) -> Iterator[None]:
        """Serialise turn production across processes: a PostgreSQL advisory lock held by a transaction.

        SQLite has no such lock; SQLite deployments run a single server worker, which serialises in-process.
        """
        if not is_postgresql(self._engine):
            yield
            return
        with self._engine.connect() as connection, connection.begin():
            connection.execute(
                text(f"SELECT pg_advisory_xact_lock({CONVERSATION_LOCK_NAMESPACE}, hashtext(:id))"),
                {"id": conversation_id})
            yield

    def _add_turn(self, conversation_id: str, events: Sequence[Mapping[str, Any]] = (), **fields: Any) -> TurnRecord:
        with self._sessions.begin() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise RecordNotFound(f"no conversation {conversation_id}")
            position = _next_position(session, conversation_id)
            turn = Turn(id=str(uuid.uuid4()), conversation_id=conversation_id, position=position, **fields)
            session.add(turn)
            seq = _next_seq(session, conversation_id)
            for offset, data in enumerate(events):
                payload = {key: value for key, value in data.items() if key != "type"}
                session.add(ConversationEvent(conversation_id=conversation_id, seq=seq + offset, type=data["type"],
                                              payload=payload))
            conversation.updated_at = utc_now()
            session.flush()
            return _turn_record(turn, feedback=[])


def _next_position(session: Session, conversation_id: str) -> int:
    last = session.scalar(select(func.max(Turn.position)).where(Turn.conversation_id == conversation_id))
    return 0 if last is None else last + 1


def _next_seq(session: Session, conversation_id: str) -> int:
    last = session.scalar(select(func.max(ConversationEvent.seq))
                          .where(ConversationEvent.conversation_id == conversation_id))
    return 0 if last is None else last + 1


def _aware(moment: datetime) -> datetime:
    """SQLite drops the time zone; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _conversation_record(conversation: Conversation, turns: list[Turn],
                         events: list[ConversationEvent]) -> ConversationRecord:
    return ConversationRecord(
        id=conversation.id, assistant=conversation.assistant, created_at=_aware(conversation.created_at),
        updated_at=_aware(conversation.updated_at),
        turns=[_turn_record(turn, feedback=turn.feedback) for turn in turns],
        events=[EventRecord(seq=event.seq, type=event.type, payload=event.payload,
                            created_at=_aware(event.created_at)) for event in events])


def _turn_record(turn: Turn, feedback: list[Feedback]) -> TurnRecord:
    return TurnRecord(
        id=turn.id, conversation_id=turn.conversation_id, position=turn.position, role=cast(Role, turn.role),
        text=turn.text, route=Route(turn.route) if turn.route else None, understanding=turn.understanding,
        rewritten_query=turn.rewritten_query, citations=[Citation(**item) for item in turn.citations or []],
        abstained=turn.abstained, handoff=turn.handoff, error=turn.error, support=turn.support or {},
        timings_ms=turn.timings or {},
        created_at=_aware(turn.created_at), feedback=[_feedback_record(item) for item in feedback])


def _feedback_record(feedback: Feedback) -> FeedbackRecord:
    return FeedbackRecord(id=feedback.id, turn_id=feedback.turn_id, rating=cast(Rating, feedback.rating),
                          comment=feedback.comment, created_at=_aware(feedback.created_at))
