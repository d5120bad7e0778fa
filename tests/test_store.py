"""Conversation storage on real SQLite files and the real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from chatwright.dialogue.types import Citation, HistoryTurn, Reply, Route, Understanding
from chatwright.errors import InputError
from chatwright.store.engine import create_store_engine
from chatwright.store.models import Base
from chatwright.store.repository import ConversationStore, RecordNotFound
from database_urls import BACKENDS, database_url, postgres_schema_url

CITATION = Citation(index=1, source="fees.md", title="Fees and charges", heading_path=["Fees", "Overdraft"],
                    text="An unarranged overdraft costs a one-off fee of 15 EUR.", score=0.91)


def answer(text: str = "It costs 15 EUR [1].") -> Reply:
    return Reply(text=text, route=Route.KNOWLEDGE,
                 understanding=Understanding(intent="ask_fees", confidence=0.82, route=Route.KNOWLEDGE),
                 citations=[CITATION], rewritten_query="overdraft fee", timings_ms={"generate_ms": 812.5})


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(url: str) -> Iterator[ConversationStore]:
    store = ConversationStore(url)
    yield store
    store.close()


def test_migrations_create_exactly_the_modelled_schema(url: str, store: ConversationStore) -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()
    ConversationStore(url).close()  # upgrading an up-to-date database is a no-op


def test_a_conversation_round_trips_with_reply_details_and_feedback(store: ConversationStore) -> None:
    conversation = store.create_conversation("Northwind Bank")
    question = store.add_user_turn(conversation.id, "What does an overdraft cost?")
    reply = store.add_assistant_turn(conversation.id, answer(), timings_ms={"turn_ms": 900.0})
    feedback = store.add_feedback(reply.id, "down", "too short")

    stored = store.get_conversation(conversation.id)
    assert stored.assistant == "Northwind Bank"
    assert stored.updated_at >= stored.created_at
    assert [(turn.position, turn.role, turn.text) for turn in stored.turns] == [
        (0, "user", "What does an overdraft cost?"), (1, "assistant", "It costs 15 EUR [1].")]
    assert stored.turns[0].id == question.id and stored.turns[0].route is None
    turn = stored.turns[1]
    assert turn.route is Route.KNOWLEDGE
    assert turn.understanding == {"intent": "ask_fees", "confidence": 0.82, "route": "knowledge"}
    assert turn.citations == [CITATION]
    assert turn.rewritten_query == "overdraft fee"
    assert turn.timings_ms == {"generate_ms": 812.5, "turn_ms": 900.0}
    assert (turn.abstained, turn.handoff, turn.error) == (False, False, None)
    assert [(item.id, item.rating, item.comment) for item in turn.feedback] == [
        (feedback.id, "down", "too short")]
    assert turn.created_at.tzinfo is not None


def test_history_is_the_last_turns_oldest_first(store: ConversationStore) -> None:
    conversation = store.create_conversation("Northwind Bank")
    for number in range(3):
        store.add_user_turn(conversation.id, f"question {number}")
        store.add_assistant_turn(conversation.id, answer(f"answer {number}"))
    assert store.history(conversation.id, limit=3) == [
        HistoryTurn("assistant", "answer 1"), HistoryTurn("user", "question 2"),
        HistoryTurn("assistant", "answer 2")]
    assert store.history(store.create_conversation("Northwind Bank").id) == []


def test_a_reopened_store_has_everything_committed_before(url: str) -> None:
    first = ConversationStore(url)
    conversation = first.create_conversation("Northwind Bank")
    first.add_user_turn(conversation.id, "Is the app free?")
    reply = first.add_assistant_turn(conversation.id, answer("Yes [1]."))
    first.add_feedback(reply.id, "up")
    first.close()

    reopened = ConversationStore(url)
    turns = reopened.get_conversation(conversation.id).turns
    reopened.close()
    assert [turn.text for turn in turns] == ["Is the app free?", "Yes [1]."]
    assert turns[1].feedback[0].rating == "up"


def test_unknown_ids_and_feedback_on_user_messages_are_refused(store: ConversationStore) -> None:
    conversation = store.create_conversation("Northwind Bank")
    question = store.add_user_turn(conversation.id, "hello")
    with pytest.raises(RecordNotFound, match="no conversation"):
        store.get_conversation("not-a-conversation")
    with pytest.raises(RecordNotFound, match="no conversation"):
        store.add_user_turn("not-a-conversation", "hello")
    with pytest.raises(RecordNotFound, match="no turn"):
        store.add_feedback("not-a-turn", "up")
    with pytest.raises(InputError, match="assistant's replies"):
        store.add_feedback(question.id, "up")
    assert not store.conversation_exists("not-a-conversation")
    assert store.conversation_exists(conversation.id)


def test_sqlite_runs_in_wal_mode_with_foreign_keys_enforced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'chat.db'}"
    ConversationStore(url).close()  # creates the missing folder and the schema
    engine = create_store_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            connection.execute(text(
                "INSERT INTO turns (id, conversation_id, position, role, text, citations, abstained, handoff,"
                " timings, created_at) VALUES ('t', 'gone', 0, 'user', 'x', '[]', 0, 0, '{}', '2025-01-01')"))
    engine.dispose()


@pytest.mark.postgres
def test_postgres_advisory_lock_serialises_one_conversation_across_processes() -> None:
    """Two stores stand in for two server workers: the second waits while the first holds the conversation."""
    with postgres_schema_url() as url:
        worker_a, worker_b = ConversationStore(url), ConversationStore(url)
        busy = worker_a.create_conversation("Northwind Bank").id
        other = worker_a.create_conversation("Northwind Bank").id
        held, events = threading.Event(), []

        def hold_busy_conversation() -> None:
            with worker_a.hold_conversation(busy):
                held.set()
                time.sleep(0.5)
                events.append("a released")

        holder = threading.Thread(target=hold_busy_conversation)
        holder.start()
        assert held.wait(10)
        started = time.monotonic()
        with worker_b.hold_conversation(other):
            assert time.monotonic() - started < 0.3, "another conversation must not wait"
        with worker_b.hold_conversation(busy):
            events.append("b acquired")
        holder.join()
        worker_a.close()
        worker_b.close()
    assert events == ["a released", "b acquired"]
