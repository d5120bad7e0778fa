"""Running flows end to end on hand-built understandings: slot filling, re-asking, corrections, actions (Python
and HTTP, failing and hanging), links, digressions, and rebuilding a conversation from its stored events."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import pytest

from chatwright.dialogue.actions import ActionRegistry, HttpAction
from chatwright.dialogue.events import (
    ActionCalled,
    BotMessage,
    DialogueState,
    Event,
    FlowCancelled,
    FlowCompleted,
    FlowResumed,
    FlowStarted,
    Handoff,
    SlotRejected,
    SlotSet,
    UserMessage,
    apply,
    event_from_dict,
    replay,
)
from chatwright.dialogue.flow_runner import DEFAULT_FAILURE, FlowRunner, FlowTurn
from chatwright.dialogue.flow_spec import load_flows
from chatwright.dialogue.slot_values import SlotType, ValueRules, parse_value
from chatwright.dialogue.types import EntityValue, Route, SentimentReading, Understanding
from chatwright.nlu.normalise import Amount

TODAY = datetime.date(2026, 3, 2)  # a Monday

ACTIONS = """\
import time
from datetime import date

from chatwright.dialogue.actions import action
from chatwright.nlu.normalise import Amount

attempts = {"flaky": 0}


@action
def send_transfer(recipient: str, amount: Amount, when: date) -> dict:
    if not isinstance(amount, Amount) or not isinstance(when, date):
        raise TypeError("arguments were not converted")
    if recipient == "Boom":
        raise RuntimeError("bank is down")
    status = "pending" if amount.value > 1000 else "sent"
    return {"status": status, "id": f"T-{recipient}-{amount.value:g}", "when": when}


@action(timeout_s=0.3)
def slow_lookup() -> dict:
    time.sleep(3)
    return {}


@action
def flaky() -> int:
    attempts["flaky"] += 1
    if attempts["flaky"] == 1:
        raise ConnectionError("first try fails")
    return attempts["flaky"]


def not_an_action() -> None:
    '''Undecorated, so not an action once the module uses @action.'''
"""

FLOWS = """\
slots:
  amount: {type: amount, entities: [amount, MONEY], validate: {min: 1, max: 10000},
           prompt: "How much would you like to send?"}
  recipient: {type: text, entities: [recipient, PERSON]}
  when: {type: date, entities: [DATE], default: today, validate: {min: today}}
  confirm: {type: choice, choices: [yes, no]}
  rating: {type: number, validate: {min: 1, max: 5}}
  reference: {type: pattern, pattern: '^T-\\w+$', invalid: A reference looks like T-123.}
actions:
  transfer_status: {url: "STATUS_URL", method: POST, timeout: 2}
flows:
  transfer_money:
    description: Send money to someone
    start: {intents: [transfer_money]}
    steps:
      - collect: recipient
        prompt: Who should receive the money?
      - collect: amount
      - collect: confirm
        prompt: "Send {amount} to {recipient} on {when}?"
      - if: {slot: confirm, equals: no}
        then: [{say: "OK, I won't send it."}, {end: cancelled}]
      - action: send_transfer
        result: transfer
        on_error: [{say: The transfer service is down.}, {handoff: transfer service down}]
      - if: {slot: transfer.status, equals: pending}
        then: [{say: "Your transfer {transfer.id} is pending."}]
        else: [{say: "Sent! Reference {transfer.id}."}]
      - set: {last_recipient: "{recipient}"}
      - link: feedback
  feedback:
    description: Ask how it went
    steps:
      - collect: rating
        prompt: How would you rate this, from 1 to 5?
      - say: Thanks for rating us {rating}!
  check_status:
    description: Check the status of a transfer
    start: {intents: [check_status], llm: true}
    steps:
      - collect: reference
        prompt: What's the transfer reference?
      - action: transfer_status
        args: [reference]
        result: status
      - say: "Transfer {reference} is {status.state}."
  slow:
    description: Calls an action that hangs
    steps:
      - action: slow_lookup
      - say: never said
  loop:
    description: Links to itself without ever waiting for the user
    steps:
      - link: loop
  flaky:
    description: Calls an action that fails once
    steps:
      - action: flaky
        retries: 1
        result: attempt
      - say: "Done after {attempt.value} attempts."
"""


def understood(intent: str = "inform", *entities: tuple[str, Any, str],
               sentiment: Literal["negative", "neutral", "positive"] | None = None) -> Understanding:
    return Understanding(
        intent=intent, confidence=0.9, route=Route.KNOWLEDGE,
        entities=tuple(EntityValue(entity, value, text, 0, len(text), "test") for entity, value, text in entities),
        sentiment=SentimentReading(sentiment, 0.9) if sentiment else None,
    )


class Conversation:
    """A conversation as a server would keep it: an event log, with the state derived as it grows."""

    def __init__(self, runner: FlowRunner, events: list[Event] | None = None) -> None:
        self.runner = runner
        self.events: list[Event] = list(events or [])
        self.state = replay(self.events)

    def record(self, turn: FlowTurn) -> tuple[str, ...]:
        self.events.extend(turn.events)
        self.state = turn.state
        return turn.messages

    def start(self, flow: str, text: str = "", understanding: Understanding | None = None) -> tuple[str, ...]:
        self.user(text, understanding)
        return self.record(self.runner.start_flow(self.state, flow, understanding, text))

    def reply(self, text: str, *entities: tuple[str, Any, str]) -> tuple[str, ...]:
        understanding = understood("inform", *entities)
        self.user(text, understanding)
        return self.record(self.runner.continue_flow(self.state, understanding, text))

    def user(self, text: str, understanding: Understanding | None) -> None:
        event = UserMessage.of(text, understanding)
        self.events.append(event)
        self.state = apply(self.state, event)

    def of_type(self, kind: type[Event]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "actions.py").write_text(ACTIONS, encoding="utf-8")
    (tmp_path / "flows.yaml").write_text(FLOWS.replace("STATUS_URL", "http://127.0.0.1:9/status"), encoding="utf-8")
    return tmp_path


def make_runner(project: Path) -> FlowRunner:
    actions = ActionRegistry.from_file(project / "actions.py")
    return FlowRunner(load_flows(project / "flows.yaml", actions), actions, today=lambda: TODAY)


@pytest.fixture()
def talk(project: Path) -> Conversation:
    return Conversation(make_runner(project))


def test_one_message_fills_every_slot_it_mentions_then_the_flow_runs_to_its_link(talk: Conversation) -> None:
    message = "send 50 euros to Anna tomorrow"
    start = understood("transfer_money", ("amount", Amount(50.0, "EUR"), "50 euros"), ("PERSON", "Anna", "Anna"),
                       ("DATE", "tomorrow", "tomorrow"))

    assert talk.start("transfer_money", message, start) == ("Send 50.00 EUR to Anna on 3 March 2026?",)
    assert talk.state.slots == {"recipient": "Anna", "amount": {"amount": 50.0, "currency": "EUR"},
                                "when": "2026-03-03"}
    assert talk.state.active is not None and talk.state.active.awaiting == "confirm"

    assert talk.reply("yeah sure") == ("Sent! Reference T-Anna-50.", "How would you rate this, from 1 to 5?")
    [called] = talk.of_type(ActionCalled)
    assert called.args == {"recipient": "Anna", "amount": {"amount": 50.0, "currency": "EUR"}, "when": "2026-03-03"}
    assert called.result == {"status": "sent", "id": "T-Anna-50", "when": "2026-03-03"}
    assert called.error is None
    assert [frame.flow for frame in talk.state.stack] == ["feedback"]
    assert [(type(e).__name__, e.flow) for e in talk.events if isinstance(e, FlowStarted | FlowCompleted)] == [
        ("FlowStarted", "transfer_money"), ("FlowCompleted", "transfer_money"), ("FlowStarted", "feedback")]

    assert talk.reply("six") == ("That's more than the maximum of 5. How would you rate this, from 1 to 5?",)
    assert talk.reply("four") == ("Thanks for rating us 4!",)
    assert talk.state.stack == ()
    assert talk.state.slots == {"last_recipient": "Anna"}  # flow slots are cleared when their flow ends


def test_an_invalid_amount_is_asked_again_with_the_reason(talk: Conversation) -> None:
    assert talk.start("transfer_money") == ("Who should receive the money?",)
    assert talk.reply("Anna") == ("How much would you like to send?",)

    assert talk.reply("lots of money") == (
        "That doesn't look like an amount. How much would you like to send?",)
    assert talk.reply("20,000 euros") == (
        "That's more than the maximum of 10,000. How much would you like to send?",)
    assert [(event.slot, event.text) for event in talk.of_type(SlotRejected)] == [
        ("amount", "lots of money"), ("amount", "20,000 euros")]
    assert talk.state.failures == 2

    assert talk.reply("I'd like to send €75.50 please") == ("Send 75.50 EUR to Anna on 2 March 2026?",)
    assert talk.state.failures == 0
    assert talk.reply("hmm, not sure") == ("Please answer yes or no. Send 75.50 EUR to Anna on 2 March 2026?",)


def test_a_correction_replaces_the_value_and_asks_for_confirmation_again(talk: Conversation) -> None:
    talk.start("transfer_money", "send 50 euros to Anna",
               understood("transfer_money", ("amount", "50 euros", "50 euros"), ("recipient", "Anna", "Anna")))

    assert talk.reply("no, make it 60 euros", ("MONEY", "60 euros", "60 euros")) == (
        "Send 60.00 EUR to Anna on 2 March 2026?",)
    correction = talk.of_type(SlotSet)[-1]
    assert (correction.slot, correction.value, correction.previous, correction.corrected) == (
        "amount", {"amount": 60.0, "currency": "EUR"}, {"amount": 50.0, "currency": "EUR"}, True)
    assert "confirm" not in talk.state.slots  # the "no" was about the amount, not an answer

    assert talk.reply("no") == ("OK, I won't send it.",)
    assert talk.of_type(ActionCalled) == []
    assert talk.of_type(FlowCancelled)[-1].flow == "transfer_money"
    assert talk.state.stack == () and talk.state.slots == {}


def test_an_action_that_raises_runs_the_steps_on_error(talk: Conversation) -> None:
    talk.start("transfer_money", "send 5 euros to Boom",
               understood("transfer_money", ("amount", "5 euros", "5 euros"), ("PERSON", "Boom", "Boom")))

    assert talk.reply("yes") == ("The transfer service is down.",)
    [called] = talk.of_type(ActionCalled)
    assert (called.result, called.error) == (None, "RuntimeError: bank is down")
    [handoff] = talk.of_type(Handoff)
    assert handoff.reason == "transfer service down"
    assert "Flow: transfer_money (Send money to someone)" in handoff.summary
    assert "recipient=Boom" in handoff.summary and "amount=5.00 EUR" in handoff.summary
    assert talk.state.handoff and talk.state.stack == ()


def test_an_action_that_hangs_times_out_with_a_polite_failure(talk: Conversation) -> None:
    assert talk.start("slow") == (DEFAULT_FAILURE,)
    [called] = talk.of_type(ActionCalled)
    assert called.error == "no answer within 0.3 s"
    assert called.duration_ms < 2000
    assert talk.of_type(FlowCancelled)[-1].flow == "slow"


def test_flows_that_link_in_a_loop_are_stopped(talk: Conversation) -> None:
    assert talk.start("loop") == (DEFAULT_FAILURE,)
    assert talk.state.stack == ()


def test_only_decorated_functions_are_actions_once_one_is(project: Path) -> None:
    actions = ActionRegistry.from_file(project / "actions.py")
    assert [name in actions for name in ("send_transfer", "flaky", "not_an_action", "time")] == [
        True, True, False, False]
    (project / "plain.py").write_text("def refund(order: int) -> None: ...\ndef _helper() -> None: ...\n")
    assert [name in ActionRegistry.from_file(project / "plain.py") for name in ("refund", "_helper")] == [
        True, False]


def test_an_action_can_be_retried(talk: Conversation) -> None:
    assert talk.start("flaky") == ("Done after 2 attempts.",)
    assert [(event.result, event.error) for event in talk.of_type(ActionCalled)] == [
        (None, "ConnectionError: first try fails"), ({"value": 2}, None)]


@pytest.fixture()
def status_server() -> Iterator[tuple[str, list[Any]]]:
    """A real HTTP endpoint on a free localhost port that answers the status of the posted reference."""
    received: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            status = 404 if body["reference"] == "T-404" else 200
            answer = json.dumps({"state": "on its way"} if status == 200 else {"error": "unknown"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            received.append({"query": self.path.partition("?")[2], "token": self.headers["Authorization"]})
            answer = b'"ready"'
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/status", received
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_action_posts_json_and_reads_json(project: Path, status_server: tuple[str, list[Any]]) -> None:
    url, received = status_server
    (project / "flows.yaml").write_text(FLOWS.replace("STATUS_URL", url), encoding="utf-8")
    talk = Conversation(make_runner(project))

    assert talk.start("check_status") == ("What's the transfer reference?",)
    assert talk.reply("42") == ("A reference looks like T-123. What's the transfer reference?",)
    assert talk.reply("T-42") == ("Transfer T-42 is on its way.",)
    assert received == [{"reference": "T-42"}]

    talk.start("check_status")
    assert talk.reply("T-404") == (DEFAULT_FAILURE,)
    assert talk.of_type(ActionCalled)[-1].error.startswith(f"HTTP 404 from {url}")


def test_a_get_action_sends_query_parameters_and_headers_from_the_environment(
        status_server: tuple[str, list[Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, received = status_server
    monkeypatch.setenv("STATUS_TOKEN", "secret")
    registry = ActionRegistry([HttpAction("status", url, "GET", 2.0, {"Authorization": "Bearer ${STATUS_TOKEN}"})])
    assert registry.call("status", {"reference": "T-7"}) == {"value": "ready"}
    assert received == [{"query": "reference=T-7", "token": "Bearer secret"}]


def test_an_unreachable_http_action_fails_politely(talk: Conversation) -> None:
    talk.start("check_status")
    assert talk.reply("T-1") == (DEFAULT_FAILURE,)
    assert "ConnectError" in talk.of_type(ActionCalled)[-1].error


def test_a_digression_interrupts_the_flow_which_then_resumes_at_the_same_question(talk: Conversation) -> None:
    talk.start("transfer_money")
    talk.reply("Anna")
    talk.record(talk.runner.interrupt(talk.state))
    assert talk.state.active is None and talk.state.interrupted is not None

    assert talk.record(talk.runner.resume(talk.state)) == ("How much would you like to send?",)
    assert talk.state.active is not None and talk.state.active.flow == "transfer_money"

    assert talk.start("check_status") == ("What's the transfer reference?",)  # interrupts transfer_money
    assert talk.record(talk.runner.cancel_active(talk.state, "OK, let's leave that.")) == (
        "OK, let's leave that.", "How much would you like to send?")
    assert talk.of_type(FlowResumed)[-1].flow == "transfer_money"
    assert talk.state.slots == {"recipient": "Anna", "when": "2026-03-02"}
    assert talk.reply("50") == ("Send 50.00 to Anna on 2 March 2026?",)


def test_replaying_the_log_gives_the_same_state_and_a_restart_resumes_the_flow(project: Path) -> None:
    talk = Conversation(make_runner(project))
    talk.start("transfer_money", "I want to send money", understood("transfer_money", sentiment="negative"))
    assert talk.state.negative_streak == 1
    talk.reply("Anna")
    assert replay(talk.events) == talk.state
    assert talk.state.negative_streak == 0 and talk.state.turns == 2

    stored = [json.dumps(event.to_dict()) for event in talk.events]
    restored = [event_from_dict(json.loads(line)) for line in stored]
    assert restored == talk.events

    after_restart = Conversation(make_runner(project), restored)
    assert after_restart.state == talk.state
    assert after_restart.reply("50 euros") == ("Send 50.00 EUR to Anna on 2 March 2026?",)
    assert after_restart.reply("yes") == ("Sent! Reference T-Anna-50.", "How would you rate this, from 1 to 5?")
    assert replay(after_restart.events) == after_restart.state


def test_a_handoff_cancels_every_flow_and_summarises(talk: Conversation) -> None:
    talk.start("transfer_money", "send money to Anna", understood("transfer_money", ("PERSON", "Anna", "Anna")))
    assert talk.record(talk.runner.hand_off(talk.state, "the user asked for a person")) == ()
    [handoff] = talk.of_type(Handoff)
    assert handoff.summary == ("Reason: the user asked for a person. Flow: transfer_money (Send money to someone). "
                               "Known: recipient=Anna, when=2 March 2026.")
    assert talk.state.handoff and talk.state.stack == ()


def test_events_have_a_stable_json_form() -> None:
    event = SlotSet(slot="when", value="2026-03-03", previous=None, corrected=False, at=1.5)
    assert event.to_dict() == {"type": "slot_set", "at": 1.5, "slot": "when", "value": "2026-03-03",
                               "previous": None, "corrected": False}
    assert event_from_dict(event.to_dict()) == event
    assert isinstance(event_from_dict({"type": "bot_message", "text": "hi"}), BotMessage)
    with pytest.raises(ValueError, match="unknown event type"):
        event_from_dict({"type": "telepathy"})
    with pytest.raises(ValueError, match="malformed bot_message"):
        event_from_dict({"type": "bot_message", "words": "hi"})
    assert replay([]) == DialogueState()


YES_NO = ValueRules(SlotType.CHOICE, {"yes": (), "no": ()})
CARD = ValueRules(SlotType.CHOICE, {"visa": ("visa card",), "mastercard": ("master card", "mc")})


@pytest.mark.parametrize("rules, raw, value", [
    (YES_NO, "Yeah", "yes"), (YES_NO, "yes please", "yes"), (YES_NO, "nope", "no"), (YES_NO, "no thanks!", "no"),
    (YES_NO, "not sure", None), (CARD, "the master card please", "mastercard"), (CARD, "VISA", "visa"),
    (CARD, "visa or mc", None),
    (ValueRules(SlotType.NUMBER, minimum=1), "three cards", 3.0),
    (ValueRules(SlotType.DATE, earliest="today"), "yesterday", None),
    (ValueRules(SlotType.DATE, latest=datetime.date(2026, 3, 10)), "next friday", "2026-03-06"),
    (ValueRules(SlotType.AMOUNT), 12, {"amount": 12.0, "currency": None}),
    (ValueRules(SlotType.TEXT), "  Anna  ", "Anna"),
    (ValueRules(SlotType.TEXT), "  ", None),
])
def test_slot_values(rules: ValueRules, raw: Any, value: Any) -> None:
    parsed = parse_value(rules, raw, today=TODAY, prompt="Which one?")
    assert parsed.value == value
    assert parsed.ok == (value is not None)
    if not parsed.ok:
        assert parsed.reason is not None and parsed.reason.endswith(" Which one?")
