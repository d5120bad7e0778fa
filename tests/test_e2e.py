"""End to end: `chatwright serve` on the bank demo with the real models, a conversation over HTTP with a
follow-up, an unanswerable question, feedback, and a server restart in the middle; and a flow that a restart
interrupts, which the new process finishes from the stored events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatwright.project import AssistantProject
from conftest import ingest
from database_urls import BACKENDS, database_url, postgres_schema_url
from flows_project import write_flows_project
from servers import RestartableServer

VISA_QUESTION = "What is the fee for topping up with a Visa card?"


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    at: float  # when it arrived (time.monotonic)


def client(server: RestartableServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=300)


def new_conversation(http: httpx.Client) -> str:
    response = http.post("/api/conversations")
    assert response.status_code == 201, response.text
    conversation_id: str = response.json()["id"]
    return conversation_id


def stream_message(http: httpx.Client, conversation_id: str, text: str) -> list[Event]:
    """The server-sent events of one turn, each stamped with its arrival time."""
    events: list[Event] = []
    name = ""
    with http.stream("POST", f"/api/conversations/{conversation_id}/messages", json={"text": text},
                     headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append(Event(name, json.loads(line.removeprefix("data: ")), time.monotonic()))
    return events


def send(http: httpx.Client, conversation_id: str, text: str) -> dict[str, Any]:
    """A turn as one JSON response: {user_turn_id, turn}."""
    response = http.post(f"/api/conversations/{conversation_id}/messages", json={"text": text})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def turns(http: httpx.Client, conversation_id: str) -> list[dict[str, Any]]:
    response = http.get(f"/api/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    stored: list[dict[str, Any]] = response.json()["turns"]
    return stored


@pytest.fixture(scope="module")
def responses(bank_project: Path) -> dict[str, list[str]]:
    replies: dict[str, list[str]] = AssistantProject.load(bank_project).config.responses
    return replies


def test_health_reports_the_assistant_and_its_database(bank_server: RestartableServer) -> None:
    with client(bank_server) as http:
        health = http.get("/api/health").json()
    assert health["status"] == "ok"
    assert health["assistant"] == "Northwind Bank Assistant"
    assert health["database"] == "sqlite"
    assert health["models"] == {"llm": "packaged:qwen2.5-coder-0.5b-instruct", "embedder": "packaged:all-minilm-l6-v2"}


def test_a_conversation_survives_a_restart_with_follow_up_abstention_and_feedback(
        bank_server: RestartableServer, bank_project: Path, responses: dict[str, list[str]]) -> None:
    with client(bank_server) as http:
        conversation_id = new_conversation(http)
        events = stream_message(http, conversation_id, VISA_QUESTION)

    tokens = [event for event in events if event.name == "token"]
    assert [event.name for event in events] == ["token"] * len(tokens) + ["done"]
    assert len(tokens) >= 5, "the answer streams in pieces"
    done = events[-1]
    assert done.at - tokens[0].at > 0.2, "the first piece arrives well before the end, not buffered"
    visa = done.data["turn"]
    assert "".join(event.data["text"] for event in tokens).strip() == visa["text"]
    assert visa["route"] == "knowledge" and not visa["abstained"] and visa["error"] is None
    assert visa["citations"] and "0.3%" in visa["text"]
    assert all((bank_project / "knowledge" / c["source"]).is_file() for c in visa["citations"])

    shutdowns = bank_server.log().count("Application shutdown complete")
    bank_server.stop()
    assert bank_server.log().count("Application shutdown complete") == shutdowns + 1, "a graceful shutdown"
    bank_server.start()

    with client(bank_server) as http:
        before = turns(http, conversation_id)
        assert [(t["role"], t["text"]) for t in before] == [("user", VISA_QUESTION), ("assistant", visa["text"])]
        assert before[1]["id"] == visa["id"] and before[1]["citations"] == visa["citations"]

        # The new process knows the conversation only from the store.
        mastercard = send(http, conversation_id, "and for Mastercard?")["turn"]
        rewritten = (mastercard["rewritten_query"] or "").lower()
        assert "mastercard" in rewritten and "top" in rewritten, mastercard
        assert mastercard["citations"] and not mastercard["abstained"]
        assert any("0.7%" in citation["text"] for citation in mastercard["citations"])

        mortgage = send(http, conversation_id, "Do you offer mortgages?")["turn"]
        assert mortgage["abstained"] is True and mortgage["citations"] == []
        assert mortgage["text"] in responses["dont_know"]

        down = http.post(f"/api/turns/{mortgage['id']}/feedback",
                         json={"rating": "down", "comment": "I really need a mortgage"})
        assert down.status_code == 201, down.text
        up = http.post(f"/api/turns/{visa['id']}/feedback", json={"rating": "up"})
        assert up.status_code == 201, up.text
        on_a_question = http.post(f"/api/turns/{before[0]['id']}/feedback", json={"rating": "up"})
        assert on_a_question.status_code == 422

        after = turns(http, conversation_id)
    assert [t["role"] for t in after] == ["user", "assistant"] * 3
    assert [t["text"] for t in after[2:]] == ["and for Mastercard?", mastercard["text"],
                                             "Do you offer mortgages?", mortgage["text"]]
    feedback = {t["id"]: [(f["rating"], f["comment"]) for f in t["feedback"]] for t in after}
    assert feedback[visa["id"]] == [("up", None)]
    assert feedback[mortgage["id"]] == [("down", "I really need a mortgage")]
    assert feedback[mastercard["id"]] == []


def test_empty_and_oversized_messages_are_rejected_with_a_reason(bank_server: RestartableServer) -> None:
    with client(bank_server) as http:
        limit = http.get("/api/health").json()["max_message_chars"]
        conversation_id = new_conversation(http)
        url = f"/api/conversations/{conversation_id}/messages"
        empty = http.post(url, json={"text": "   "})
        assert empty.status_code == 422
        assert empty.json() == {"detail": "The message is empty. Please type a question."}
        oversized = http.post(url, json={"text": "x" * (limit + 1)})
        assert oversized.status_code == 422
        assert oversized.json() == {
            "detail": f"The message is too long ({limit + 1} characters); the limit is {limit}."}
        assert turns(http, conversation_id) == [], "a rejected message is not stored"


@pytest.fixture
def postgres_server(bank_project: Path, tmp_path: Path) -> Iterator[RestartableServer]:
    with postgres_schema_url() as url:
        server = RestartableServer(bank_project, tmp_path, url)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.mark.postgres
def test_a_conversation_in_postgresql_survives_a_restart(postgres_server: RestartableServer,
                                                        responses: dict[str, list[str]]) -> None:
    with client(postgres_server) as http:
        assert http.get("/api/health").json()["database"] == "postgresql"
        conversation_id = new_conversation(http)
        first = send(http, conversation_id, "Hi!")["turn"]
    assert first["route"] == "greeting" and first["text"] == responses["greeting"][0]

    postgres_server.restart()

    with client(postgres_server) as http:
        assert [(t["role"], t["text"]) for t in turns(http, conversation_id)] == [
            ("user", "Hi!"), ("assistant", first["text"])]
        # Greeting variants rotate with the turn number, which the new process can only know from the store.
        second = send(http, conversation_id, "Hi!")["turn"]
    assert second["text"] == responses["greeting"][1]


@pytest.fixture(params=BACKENDS)
def flows_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RestartableServer]:
    project = write_flows_project(tmp_path / "acme")
    ingest(project)
    with database_url(request.param, tmp_path) as url:
        server = RestartableServer(project, tmp_path, url)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def test_a_flow_interrupted_by_a_restart_resumes_from_the_stored_events(flows_server: RestartableServer) -> None:
    with client(flows_server) as http:
        conversation_id = new_conversation(http)
        asked = send(http, conversation_id, "send 50 euros to Anna")["turn"]
    assert asked["text"].endswith("Send 50.00 EUR to Anna?")

    flows_server.restart()

    with client(flows_server) as http:
        # The new process knows the flow, its step and its slots only from the stored events.
        corrected = send(http, conversation_id, "no, make that 60")["turn"]
        assert corrected["text"].endswith("Send 60.00 EUR to Anna?")
        done = send(http, conversation_id, "yes")["turn"]
        assert done["text"].endswith("Done! 60.00 EUR is on its way to Anna, reference T-Anna-60.")
        conversation = http.get(f"/api/conversations/{conversation_id}").json()

    events = conversation["events"]
    assert [event["seq"] for event in events] == list(range(len(events)))
    assert [event["payload"]["text"] for event in events if event["type"] == "user_message"] == [
        "send 50 euros to Anna", "no, make that 60", "yes"]
    flows = [(event["type"], event["payload"]["flow"]) for event in events
             if event["type"] in ("flow_started", "flow_completed")]
    assert flows == [("flow_started", "transfer_money"), ("flow_completed", "transfer_money")]
    [called] = [event["payload"] for event in events if event["type"] == "action_called"]
    assert called["args"] == {"recipient": "Anna", "amount": {"amount": 60.0, "currency": "EUR"}}
    assert [turn["text"] for turn in conversation["turns"] if turn["role"] == "assistant"] == [
        asked["text"], corrected["text"], done["text"]]
