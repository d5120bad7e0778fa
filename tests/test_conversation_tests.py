"""Conversation tests: the YAML format and its file:line errors, what a reply must have to meet a turn's
expectations, the runner's turn-by-turn conversation, the report, and `chatwright test conversations` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chatwright.dialogue.events import ActionCalled, BotMessage, UserMessage
from chatwright.dialogue.types import Reply, Route, Understanding
from chatwright.errors import ConfigError
from chatwright.evaluation.conversation_report import failure_lines, write_report
from chatwright.evaluation.conversation_runner import run_tests
from chatwright.evaluation.conversation_tests import (
    Expectation,
    ExpectedCall,
    check_reply,
    load_conversation_tests,
    load_test_folder,
    matches,
)
from echo_assistant import FAILING_WORD, EchoAssistant, echo_text
from flows_project import write_flows_project

VALID = """\
tests:
  - name: transfer in one message
    turns:
      - user: send 50 euros to Anna
        expect:
          intent: transfer_money
          flow: transfer_money
          slots: {amount: {amount: 50, currency: EUR}}
          says: "Send 50.00 EUR"
      - user: yes
        expect:
          flow: null
          actions: [{name: send_transfer, args: {recipient: Anna}, result: {id: T-1}}]
          says: [Done, T-1]
          not_says: sorry
  - name: a number as a message
    turns:
      - user: 60
"""


def write(tmp_path: Path, text: str, name: str = "tests.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_loads_with_its_lines_and_yaml_words_as_text(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    first, second = load_conversation_tests(path)

    assert (first.name, first.line, first.where) == ("transfer in one message", 2, f"{path}:2")
    assert [(turn.user, turn.line) for turn in first.turns] == [("send 50 euros to Anna", 4), ("yes", 10)]
    assert first.turns[0].expect == Expectation(intent="transfer_money", flow="transfer_money", checks_flow=True,
                                                slots={"amount": {"amount": 50, "currency": "EUR"}},
                                                says=("Send 50.00 EUR",))
    assert first.turns[1].expect == Expectation(
        checks_flow=True, actions=(ExpectedCall("send_transfer", {"recipient": "Anna"}, {"id": "T-1"}),),
        says=("Done", "T-1"), not_says=("sorry",))
    assert second.turns[0].user == "60"
    assert second.turns[0].expect == Expectation(), "a turn without expectations checks nothing"


# Each case marks the line the error must name with `# <-`.
ERRORS = {
    "misspelt expectation": ("tests:\n  - name: t\n    turns:\n      - user: hi\n        expect:\n"
                             "          sayz: hello  # <-\n", "Extra inputs are not permitted"),
    "turn without a message": ("tests:\n  - name: t\n    turns:\n      - expect: {says: hi}  # <-\n",
                               "Field required"),
    "test without turns": ("tests:\n  - name: t\n    turns: []  # <-\n", "at least 1 item"),
    "action without a name": ("tests:\n  - name: t\n    turns:\n      - user: hi\n        expect:\n"
                              "          actions:\n            - {args: {card: visa}}  # <-\n", "Field required"),
    "slots that are not a mapping": ("tests:\n  - name: t\n    turns:\n      - user: hi\n"
                                     "        expect: {slots: [amount]}  # <-\n", "valid dictionary"),
    "broken YAML": ("tests:\n  - name: t\n    turns:\n      - user: hi\n        expect: {says: [a, b}  # <-\n",
                    "invalid YAML"),
    "no tests": ("tests: []  # <-\n", "at least 1 item"),
}


@pytest.mark.parametrize("text, message", list(ERRORS.values()), ids=list(ERRORS))
def test_each_mistake_names_its_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    expected_line = next(number for number, line in enumerate(text.splitlines(), 1) if "# <-" in line)
    with pytest.raises(ConfigError) as caught:
        load_conversation_tests(path)
    assert (caught.value.path, caught.value.line) == (path, expected_line), str(caught.value)
    assert message in str(caught.value)


def test_a_folder_loads_every_file_in_name_order_and_names_must_be_unique(tmp_path: Path) -> None:
    write(tmp_path, "tests:\n  - name: b\n    turns: [{user: hi}]\n", "b.yaml")
    write(tmp_path / "more", "tests:\n  - name: a\n    turns: [{user: hi}]\n", "a.yml")
    assert [test.name for test in load_test_folder(tmp_path)] == ["b", "a"]

    duplicate = write(tmp_path / "more", "tests:\n  - name: other\n    turns: [{user: hi}]\n"
                                         "  - name: b\n    turns: [{user: hi}]\n", "c.yaml")
    with pytest.raises(ConfigError, match=r"a second test named 'b' \(the first is at .*b\.yaml:2\)") as caught:
        load_test_folder(tmp_path)
    assert (caught.value.path, caught.value.line) == (duplicate, 4)
    with pytest.raises(ConfigError, match="no conversation test files"):
        load_test_folder(tmp_path / "empty")


def reply(text: str = "Send 50.00 EUR to Anna?", **fields: Any) -> Reply:
    understanding = Understanding(intent="transfer_money", confidence=0.83, route=Route.KNOWLEDGE)
    call = ActionCalled(action="send_transfer", args={"recipient": "Anna", "amount": {"amount": 50.0,
                                                                                     "currency": "EUR"}},
                        result={"id": "T-1", "status": "completed"})
    failed = ActionCalled(action="account_balance", args={}, error="RuntimeError: core bank down")
    events = [UserMessage.of("send", understanding), call, failed, BotMessage(text=text)]
    values: dict[str, Any] = {"decision": "start_flow", "flow": "transfer_money",
                              "slots": {"recipient": "Anna", "amount": {"amount": 50.0, "currency": "EUR"}},
                              "events": [event.to_dict() for event in events], **fields}
    return Reply(text=text, route=Route.KNOWLEDGE, understanding=understanding, **values)


def test_a_reply_meeting_every_expectation_has_no_reasons() -> None:
    expect = Expectation(intent="transfer_money", decision="start_flow", flow="transfer_money", checks_flow=True,
                         slots={"recipient": "anna", "amount": {"amount": 50}, "confirm": None},
                         actions=(ExpectedCall("send_transfer", {"amount": {"amount": 50}}, {"status": "completed"},
                                               error=False),
                                  ExpectedCall("account_balance", {}, error="core bank")),
                         says=("send 50.00 eur",), not_says=("sorry",), handoff=False)
    assert check_reply(expect, reply()) == []


def test_each_unmet_expectation_gives_its_own_reason() -> None:
    expect = Expectation(intent="block_card", decision="clarify", flow=None, checks_flow=True,
                         slots={"amount": {"amount": 60}}, says=("Sent",), not_says=("Anna",), handoff=True)
    assert check_reply(expect, reply()) == [
        "intent is 'transfer_money' (0.83), expected 'block_card'",
        "decision is 'start_flow', expected 'clarify'",
        "active flow is 'transfer_money', expected None",
        "slot amount is {'amount': 50.0, 'currency': 'EUR'}, expected {'amount': 60}",
        "reply does not say 'Sent': 'Send 50.00 EUR to Anna?'",
        "reply says 'Anna': 'Send 50.00 EUR to Anna?'",
        "handoff is False, expected True",
    ]


def test_expected_calls_must_appear_in_order_with_their_outcome() -> None:
    made = ("made: send_transfer(recipient='Anna', amount={'amount': 50.0, 'currency': 'EUR'}), "
            "account_balance() -> error 'RuntimeError: core bank down'")
    out_of_order = (ExpectedCall("account_balance", {}), ExpectedCall("send_transfer", {}))
    assert check_reply(Expectation(actions=out_of_order), reply()) == [
        f"no call of send_transfer with any args (in order); {made}"]
    assert check_reply(Expectation(actions=(ExpectedCall("send_transfer", {}, error=True),)), reply()) == [
        f"no call of send_transfer with any args, an error (in order); {made}"]
    assert check_reply(Expectation(actions=(ExpectedCall("send_transfer", {"recipient": "Tom"}),)), reply()) == [
        f"no call of send_transfer with args {{'recipient': 'Tom'}} (in order); {made}"]
    assert check_reply(Expectation(actions=()), reply()) == [f"no action calls expected, {made}"]
    assert check_reply(Expectation(actions=()), reply(events=[])) == []


@pytest.mark.parametrize("expected, actual, result", [
    (50, 50.0, True), (50, "50", False), (True, "yes", True), (False, "no", True), (True, 1, False),
    ("Anna Berg", "anna berg", True), ({"amount": 50}, {"amount": 50.0, "currency": "EUR"}, True),
    ({"currency": "EUR"}, {"amount": 50.0, "currency": None}, False), (None, None, True), (None, "x", False),
    ([1, "a"], [1.0, "A"], True), ([1], [1, 2], False), (["a"], "a", False),
])
def test_values_match_by_what_the_expectation_states(expected: Any, actual: Any, result: bool) -> None:
    assert matches(expected, actual) is result


def echo_tests(tmp_path: Path) -> Path:
    return write(tmp_path, f"""\
tests:
  - name: echoes and keeps the log
    turns:
      - user: hello
        expect: {{decision: knowledge, says: "{echo_text('hello', 0)}"}}
      - user: again
        expect: {{says: "(after 2 earlier turns)"}}
  - name: stops at the first failing turn
    turns:
      - user: one
        expect: {{says: nothing like this}}
      - user: two
  - name: a pipeline that raises
    turns:
      - user: this is {FAILING_WORD}
""")


def test_the_runner_carries_history_and_events_between_turns_and_stops_at_a_failure(tmp_path: Path) -> None:
    path = echo_tests(tmp_path)
    assistant = EchoAssistant()
    heard: list[str] = []
    passing, failing, raising = run_tests(assistant, load_test_folder(path),
                                          progress=lambda outcome: heard.append(outcome.test.name))

    assert heard == ["echoes and keeps the log", "stops at the first failing turn", "a pipeline that raises"]
    assert passing.passed and [turn.number for turn in passing.turns] == [1, 2]
    second_turn_events = assistant.received_events[1]
    assert [(type(event).__name__, getattr(event, "text", None)) for event in second_turn_events] == [
        ("UserMessage", "hello"), ("BotMessage", echo_text("hello", 0))]
    assert assistant.received_events[2] == [], "each test is a new conversation"

    assert not failing.passed and len(failing.turns) == 1, "the turn after a failing one is not run"
    assert failing.failed_turn is failing.turns[0]
    assert failure_lines(failing) == [
        f"{path}:10: turn 1 ('one'): reply does not say 'nothing like this': '{echo_text('one', 0)}'"]

    assert not raising.passed and raising.turns == ()
    assert raising.error is not None and raising.error.startswith("turn 1 raised GenerationUnavailable:")
    assert failure_lines(raising) == [f"{path}:13: {raising.error}"]


def test_the_report_lists_failures_with_their_turn_and_reason(tmp_path: Path) -> None:
    path = echo_tests(tmp_path)
    outcomes = run_tests(EchoAssistant(), load_test_folder(path))
    files = write_report(outcomes, tmp_path / "report", title="Echo: conversation tests")

    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert data["summary"] == {"tests": 3, "passed": 1, "failed": 2, "turns": 3}
    failing = data["tests"][1]
    assert (failing["name"], failing["passed"], failing["not_run"]) == ("stops at the first failing turn", False, 1)
    assert failing["turns"][0]["failures"] == [f"reply does not say 'nothing like this': '{echo_text('one', 0)}'"]
    assert failing["turns"][0]["decision"] == "knowledge" and failing["turns"][0]["line"] == 10
    markdown = files.markdown.read_text(encoding="utf-8")
    assert markdown.startswith("# Echo: conversation tests\n\n1 of 3 tests passed (3 turns run).")
    assert f"- {path}:10: turn 1 ('one'): reply does not say 'nothing like this'" in markdown
    assert f"| a pipeline that raises | **failed** | 0/1 | {path}:13 |" in markdown


CONVERSATIONS = """\
tests:
  - name: a transfer in one message
    turns:
      - user: send 50 euros to Anna
        expect: {intent: transfer_money, decision: start_flow, flow: transfer_money, says: "Send 50.00 EUR to Anna?"}
      - user: yes
        expect:
          flow: null
          actions: [{name: send_transfer, args: {recipient: Anna, amount: {amount: 50, currency: EUR}}}]
          says: on its way to Anna
  - name: a test expecting the wrong flow
    turns:
      - user: block my visa card
        expect: {flow: report_stolen}
"""


def test_the_command_runs_the_tests_through_the_real_pipeline_and_exits_1_on_a_failure(tmp_path: Path) -> None:
    project = write_flows_project(tmp_path / "acme")
    tests = write(project / "tests" / "conversations", CONVERSATIONS, "transfers.yaml")
    result = subprocess.run([sys.executable, "-m", "chatwright.cli", "test", "conversations", str(project),
                             "--out", str(tmp_path / "report")], capture_output=True, text=True, timeout=600,
                            check=False)

    assert result.returncode == 1, result.stderr
    assert "pass a transfer in one message" in result.stdout
    assert "FAIL a test expecting the wrong flow" in result.stdout
    assert f"{tests}:13: turn 1 ('block my visa card'): active flow is None, expected 'report_stolen'" \
        in result.stderr
    assert "1 of 2 tests passed" in result.stdout
    report = json.loads((tmp_path / "report" / "conversations.json").read_text(encoding="utf-8"))
    transfer = report["tests"][0]["turns"][1]
    assert transfer["actions"][0]["result"] == {"id": "T-Anna-50"}
    assert isinstance(transfer["policy_ms"], float)
