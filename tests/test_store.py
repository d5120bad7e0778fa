"""Conversation storage on real SQLite files and the real PostgreSQL, including the dialogue's event log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, StatementError

from chatwright.dialogue.events import BotMessage, FlowStarted, FlowStep, SlotSet, UserMessage, replay
from chatwright.dialogue.types import Citation, HistoryTurn, Reply, Route, Understanding
from chatwright.errors import InputError
from chatwright.store.engine import create_store_engine
from chatwright.store.migrate import alembic_config
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
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
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
    assert turn.understanding == {"intent": "ask_fees", "confidence": 0.82, "route": "knowledge", "ranking": [],
                                  "entities": [], "sentiment": None, "out_of_scope": False}
    assert turn.citations == [CITATION]
    assert turn.rewritten_query == "overdraft fee"
    assert turn.timings_ms == {"generate_ms": 812.5, "turn_ms": 900.0}
    assert (turn.abstained, turn.handoff, turn.error) == (False, False, None)
    assert [(item.id, item.rating, item.comment) for item in turn.feedback] == [
        (feedback.id, "down", "too short")]
    assert turn.created_at.tzinfo is not None


def test_a_turns_events_are_stored_with_it_in_order_and_rebuild_the_dialogue_state(
        store: ConversationStore) -> None:
    conversation = store.create_conversation("Northwind Bank")
    understanding = Understanding(intent="transfer_money", confidence=0.8, route=Route.KNOWLEDGE)
    first = [UserMessage.of("send 50 euros", understanding), FlowStarted(flow="transfer_money"),
             SlotSet(slot="amount", value={"amount": 50.0, "currency": "EUR"}),
             BotMessage(text="Who should receive the money?"),
             FlowStep(flow="transfer_money", step=0, awaiting="recipient")]
    second = [UserMessage.of("Anna", None), SlotSet(slot="recipient", value="Anna"),
              BotMessage(text="Send 50.00 EUR to Anna?"), FlowStep(flow="transfer_money", step=2, awaiting="confirm")]
    for message, events in (("send 50 euros", first), ("Anna", second)):
        store.add_user_turn(conversation.id, message)
        reply = answer(events[-2].text)
        reply.events = [event.to_dict() for event in events]
        store.add_assistant_turn(conversation.id, reply)

    stored = store.events(conversation.id)
    assert stored == first + second
    state = replay(stored)
    assert state.active is not None and (state.active.flow, state.active.awaiting) == ("transfer_money", "confirm")
    assert state.slots == {"amount": {"amount": 50.0, "currency": "EUR"}, "recipient": "Anna"}

    records = store.get_conversation(conversation.id).events
    assert [(record.seq, record.type) for record in records] == [
        (0, "user_message"), (1, "flow_started"), (2, "slot_set"), (3, "bot_message"), (4, "flow_step"),
        (5, "user_message"), (6, "slot_set"), (7, "bot_message"), (8, "flow_step")]
    assert records[6].payload == {key: value for key, value in second[1].to_dict().items() if key != "type"}
    assert store.events(store.create_conversation("Northwind Bank").id) == []


def test_a_reply_whose_events_cannot_be_stored_is_not_stored_either(store: ConversationStore) -> None:
    conversation = store.create_conversation("Northwind Bank")
    store.add_user_turn(conversation.id, "hello")
    reply = answer()
    reply.events = [{"type": "bot_message", "text": object()}]  # not JSON
    with pytest.raises((StatementError, TypeError)):  # raised by SQLAlchemy's or psycopg's JSON encoding
        store.add_assistant_turn(conversation.id, reply)
    assert [turn.role for turn in store.get_conversation(conversation.id).turns] == ["user"]
    assert store.events(conversation.id) == []


def test_a_database_from_before_the_event_log_is_upgraded_keeping_its_conversations(url: str) -> None:
    engine = create_store_engine(url)
    with engine.begin() as connection:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text("INSERT INTO conversations (id, assistant, created_at, updated_at) "
                                "VALUES ('old', 'Northwind Bank', '2025-01-01', '2025-01-01')"))
    engine.dispose()
    upgraded = ConversationStore(url)
    assert upgraded.events("old") == [] and upgraded.get_conversation("old").events == []
    upgraded.add_user_turn("old", "still here?")
    reply = answer("Yes.")
    reply.events = [UserMessage.of("still here?", None).to_dict(), BotMessage(text="Yes.").to_dict()]
    upgraded.add_assistant_turn("old", reply)
    assert [event.type for event in upgraded.events("old")] == ["user_message", "bot_message"]
    upgraded.close()


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
