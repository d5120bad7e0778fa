"""The HTTP API on a real uvicorn server and real databases, with the echoing stand-in for the pipeline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import chatwright
from chatwright.dialogue.events import BotMessage, UserMessage
from chatwright.server.app import create_app
from chatwright.server.turns import UNAVAILABLE_TEXT
from chatwright.store.repository import ConversationStore
from database_urls import BACKENDS, database_url, postgres_schema_url
from echo_assistant import ECHO_NAME, FAILING_WORD, REFUND_PASSAGE, EchoAssistant, echo_text
from servers import uvicorn_thread

MAX_CHARS = 300


@dataclass
class Server:
    client: httpx.Client
    assistant: EchoAssistant

    def new_conversation(self) -> str:
        response = self.client.post("/api/conversations")
        assert response.status_code == 201
        conversation_id: str = response.json()["id"]
        return conversation_id

    def send(self, conversation_id: str, text: str) -> httpx.Response:
        return self.client.post(f"/api/conversations/{conversation_id}/messages", json={"text": text})

    def turns(self, conversation_id: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/api/conversations/{conversation_id}")
        assert response.status_code == 200
        turns: list[dict[str, Any]] = response.json()["turns"]
        return turns


@contextmanager
def running_server(url: str, *, token_delay_s: float = 0.02) -> Iterator[Server]:
    store = ConversationStore(url)
    assistant = EchoAssistant(token_delay_s=token_delay_s)
    app = create_app(assistant, store, max_message_chars=MAX_CHARS)
    try:
        with uvicorn_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
            yield Server(client, assistant)
    finally:
        store.close()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with database_url(request.param, tmp_path_factory.mktemp("db")) as url, running_server(url) as server:
        yield server


def server_sent_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_health_names_the_assistant_its_models_and_database(server: Server) -> None:
    health = server.client.get("/api/health").json()
    assert health["status"] == "ok"
    assert health["version"] == chatwright.__version__
    assert health["assistant"] == ECHO_NAME
    assert health["models"]["llm"].startswith("packaged:")
    assert health["database"] in {"sqlite", "postgresql"}
    assert health["max_message_chars"] == MAX_CHARS


def test_a_message_gets_a_stored_json_reply(server: Server) -> None:
    conversation_id = server.new_conversation()
    response = server.send(conversation_id, "  How long do refunds take?  ")
    assert response.status_code == 200
    result = response.json()
    turn = result["turn"]
    assert turn["text"] == echo_text("How long do refunds take?", 0)
    assert turn["route"] == "knowledge"
    assert turn["citations"][0]["title"] == REFUND_PASSAGE.title
    assert turn["understanding"] == {"intent": "ask_question", "confidence": 0.9, "route": "knowledge",
                                     "ranking": [], "entities": [], "sentiment": None, "out_of_scope": False}
    assert {"generate_ms", "wait_ms", "turn_ms"} <= set(turn["timings_ms"])

    stored = server.turns(conversation_id)
    assert [(t["position"], t["role"], t["id"]) for t in stored] == [
        (0, "user", result["user_turn_id"]), (1, "assistant", turn["id"])]
    assert stored[0]["text"] == "How long do refunds take?"
    assert stored[1]["citations"] == turn["citations"]


@pytest.mark.parametrize("ask", ["query", "accept header"])
def test_a_streamed_reply_sends_tokens_then_the_stored_turn(server: Server, ask: str) -> None:
    conversation_id = server.new_conversation()
    response = server.client.post(
        f"/api/conversations/{conversation_id}/messages", json={"text": "Can I return shoes?"},
        params={"stream": "true"} if ask == "query" else {},
        headers={"Accept": "text/event-stream"} if ask == "accept header" else {})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = server_sent_events(response.text)
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"token"} and len(names) > 3
    streamed = "".join(data["text"] for name, data in events if name == "token")
    done = events[-1][1]
    assert streamed == done["turn"]["text"] == echo_text("Can I return shoes?", 0)
    assert [t["id"] for t in server.turns(conversation_id)] == [done["user_turn_id"], done["turn"]["id"]]


def test_each_turn_gets_the_stored_event_log_and_adds_its_own_events(server: Server) -> None:
    conversation_id = server.new_conversation()
    first = server.send(conversation_id, "Where is my card?").json()["turn"]
    failed = server.send(conversation_id, f"this will be {FAILING_WORD}").json()["turn"]
    server.send(conversation_id, "and my PIN?")

    given = server.assistant.received_events[-1]
    assert [(type(event), event.text) for event in given] == [
        (UserMessage, "Where is my card?"), (BotMessage, first["text"])]
    response = server.client.get(f"/api/conversations/{conversation_id}")
    stored = response.json()["events"]
    assert [(event["seq"], event["type"], event["payload"]["text"]) for event in stored] == [
        (0, "user_message", "Where is my card?"), (1, "bot_message", first["text"]),
        (2, "user_message", "and my PIN?"), (3, "bot_message", echo_text("and my PIN?", 4))]
    assert failed["text"] == UNAVAILABLE_TEXT, "a failed turn adds no events"


def test_feedback_is_recorded_on_replies_only(server: Server) -> None:
    conversation_id = server.new_conversation()
    result = server.send(conversation_id, "Where is my card?").json()
    reply_id = result["turn"]["id"]

    feedback_url = f"/api/turns/{reply_id}/feedback"
    response = server.client.post(feedback_url, json={"rating": "up", "comment": "clear"})
    assert response.status_code == 201
    assert (response.json()["rating"], response.json()["comment"]) == ("up", "clear")
    stored = server.turns(conversation_id)[1]["feedback"]
    assert [(item["rating"], item["comment"]) for item in stored] == [("up", "clear")]

    assert server.client.post(feedback_url, json={"rating": "meh"}).status_code == 422
    on_question = server.client.post(f"/api/turns/{result['user_turn_id']}/feedback", json={"rating": "down"})
    assert on_question.status_code == 422
    assert "assistant's replies" in on_question.json()["detail"]


def test_unknown_ids_give_404_with_a_reason(server: Server) -> None:
    for response in [server.client.get("/api/conversations/no-such-id"),
                     server.send("no-such-id", "hello"),
                     server.client.post("/api/turns/no-such-id/feedback", json={"rating": "up"})]:
        assert response.status_code == 404
        assert "no-such-id" in response.json()["detail"]


def test_empty_and_oversized_messages_are_refused_with_a_clear_reason(server: Server) -> None:
    conversation_id = server.new_conversation()
    empty = server.send(conversation_id, "  \n\t ")
    assert empty.status_code == 422
    assert empty.json()["detail"] == "The message is empty. Please type a question."

    too_long = server.send(conversation_id, "x" * (MAX_CHARS + 1))
    assert too_long.status_code == 422
    assert too_long.json()["detail"] == (
        f"The message is too long ({MAX_CHARS + 1} characters); the limit is {MAX_CHARS}.")

    assert server.client.post(f"/api/conversations/{conversation_id}/messages", json={}).status_code == 422
    assert server.turns(conversation_id) == []
    assert server.send(conversation_id, "x" * MAX_CHARS).status_code == 200


def test_messages_to_one_conversation_are_handled_one_at_a_time(server: Server) -> None:
    conversation_id = server.new_conversation()
    with ThreadPoolExecutor(max_workers=2) as pool:
        replies = list(pool.map(lambda text: server.send(conversation_id, text), ["first", "second"]))
    assert [reply.status_code for reply in replies] == [200, 200]
    assert_strictly_alternating(server.turns(conversation_id), count=4)


def assert_strictly_alternating(turns: list[dict[str, Any]], count: int) -> None:
    """Each reply directly follows its message and saw every earlier turn: no two turns overlapped."""
    assert [turn["position"] for turn in turns] == list(range(count))
    assert [turn["role"] for turn in turns] == ["user", "assistant"] * (count // 2)
    for position in range(0, count, 2):
        assert turns[position + 1]["text"] == echo_text(turns[position]["text"], position)


def test_failed_generation_stores_a_polite_turn_and_the_server_stays_up(server: Server) -> None:
    conversation_id = server.new_conversation()
    response = server.send(conversation_id, f"this will be {FAILING_WORD}")
    assert response.status_code == 200
    turn = response.json()["turn"]
    assert turn["text"] == UNAVAILABLE_TEXT
    assert "GenerationUnavailable" in turn["error"] and "unreachable" in turn["error"]
    stored = [t["text"] for t in server.turns(conversation_id)]
    assert stored == [f"this will be {FAILING_WORD}", UNAVAILABLE_TEXT]

    assert server.client.get("/api/health").json()["status"] == "ok"
    assert server.send(conversation_id, "and now?").json()["turn"]["text"] == echo_text("and now?", 2)


def test_a_client_leaving_mid_stream_does_not_lose_the_reply(server: Server) -> None:
    conversation_id = server.new_conversation()
    message = "please explain every fee on my account in detail"
    with server.client.stream("POST", f"/api/conversations/{conversation_id}/messages?stream=true",
                              json={"text": message}) as response:
        first_line = next(response.iter_lines())
    assert first_line == "event: token"

    deadline = time.monotonic() + 15
    while len(turns := server.turns(conversation_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [turn["text"] for turn in turns] == [message, echo_text(message, 0)]


@pytest.mark.postgres
def test_two_server_processes_serialise_one_conversation_through_postgres(tmp_path: Path) -> None:
    """Two apps, each with its own in-process locks, stand in for two workers sharing one database."""
    with postgres_schema_url() as url, running_server(url) as one, running_server(url) as two:
        conversation_id = one.new_conversation()
        with ThreadPoolExecutor(max_workers=4) as pool:
            sends = [pool.submit(server.send, conversation_id, f"message {n}")
                     for n, server in enumerate([one, two, one, two])]
            assert [send.result().status_code for send in sends] == [200] * 4
        assert_strictly_alternating(two.turns(conversation_id), count=8)
