"""Conversation tests: whole conversations written as YAML, and what it means for a reply to meet a turn's expectations.

A test is a list of user turns, each with what the assistant must have understood and done by the end of it:

    tests:
      - name: transfer with all details in one message
        turns:
          - user: send 50 euros to Anna
            expect: {intent: transfer_money, flow: transfer_money, slots: {amount: {amount: 50}}, says: Send}
          - user: yes
            expect: {actions: [{name: send_transfer, args: {recipient: Anna Berg}}], flow: null, says: Sent}

Expectations are partial, so a test states only what it is about: `slots` and action `args`/`result` must contain
the given values (others may be there too), `actions` lists calls that must appear in this order (`[]`: none at
all), `says` and `not_says` are pieces of the reply text (any case), and `flow: null` means no flow is active.
Mistakes in a test file are reported as file:line, like those in the assistant's own files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chatwright.dialogue.events import ActionCalled
from chatwright.dialogue.types import Reply
from chatwright.errors import ConfigError
from chatwright.yaml_lines import Loc, LocatedYaml, load_yaml, validate

# --- what a loaded test is ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedCall:
    """An action call: `error` is text the failure must contain, True for any failure, False for success."""

    name: str
    args: Mapping[str, Any]
    result: Mapping[str, Any] | None = None
    error: str | bool | None = None


@dataclass(frozen=True)
class Expectation:
    """What must hold after one turn; None (and `checks_flow` False) leaves a part unchecked."""

    intent: str | None = None
    decision: str | None = None
    flow: str | None = None
    checks_flow: bool = False
    slots: Mapping[str, Any] | None = None
    actions: tuple[ExpectedCall, ...] | None = None
    says: tuple[str, ...] = ()
    not_says: tuple[str, ...] = ()
    handoff: bool | None = None


@dataclass(frozen=True)
class TestTurn:
    user: str
    expect: Expectation
    line: int | None


@dataclass(frozen=True)
class ConversationTest:
    name: str
    turns: tuple[TestTurn, ...]
    source: Path
    line: int | None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else str(self.source)


# --- the file's schema --------------------------------------------------------------------------------


def _text(value: Any) -> Any:
    """YAML reads `yes`, `no` and numbers as other types; a user's message and reply pieces are always text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if isinstance(value, int | float) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _CallEntry(_Strict):
    name: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | bool | None = None


class _ExpectEntry(_Strict):
    intent: str | None = None
    decision: str | None = None
    flow: str | None = None
    slots: dict[str, Any] | None = None
    actions: list[_CallEntry] | None = None
    says: list[str] = Field(default_factory=list)
    not_says: list[str] = Field(default_factory=list)
    handoff: bool | None = None

    @field_validator("says", "not_says", mode="before")
    @classmethod
    def _pieces(cls, value: Any) -> Any:
        pieces = value if isinstance(value, list) else [value]
        return [_text(piece) for piece in pieces]


class _TurnEntry(_Strict):
    user: str = Field(min_length=1)
    expect: _ExpectEntry = Field(default_factory=_ExpectEntry)

    @field_validator("user", mode="before")
    @classmethod
    def _message(cls, value: Any) -> Any:
        return _text(value)


class _TestEntry(_Strict):
    name: str = Field(min_length=1)
    turns: list[_TurnEntry] = Field(min_length=1)


class _TestsFile(_Strict):
    tests: list[_TestEntry] = Field(min_length=1)


# --- loading ------------------------------------------------------------------------------------------


def load_conversation_tests(path: Path) -> list[ConversationTest]:
    """The tests of one file; the first mistake raises ConfigError naming its file and line."""
    doc = load_yaml(path)
    parsed = validate(_TestsFile, doc)
    return [_test(doc, index, entry) for index, entry in enumerate(parsed.tests)]


def load_test_folder(path: Path) -> list[ConversationTest]:
    """The tests of a file, or of every .yaml/.yml file under a folder (in name order); names must be unique."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
    if not files:
        raise ConfigError("no conversation test files (*.yaml) here", path=path)
    tests: list[ConversationTest] = []
    seen: dict[str, ConversationTest] = {}
    for file in files:
        for test in load_conversation_tests(file):
            if test.name in seen:
                raise ConfigError(f"a second test named {test.name!r} (the first is at {seen[test.name].where})",
                                  path=test.source, line=test.line)
            seen[test.name] = test
            tests.append(test)
    return tests


def _test(doc: LocatedYaml, index: int, entry: _TestEntry) -> ConversationTest:
    loc: Loc = ("tests", index)
    turns = tuple(TestTurn(turn.user, _expectation(turn.expect), doc.line_of((*loc, "turns", number)))
                  for number, turn in enumerate(entry.turns))
    return ConversationTest(entry.name, turns, doc.path, doc.line_of(loc))


def _expectation(entry: _ExpectEntry) -> Expectation:
    actions = None if entry.actions is None else tuple(
        ExpectedCall(call.name, call.args, call.result, call.error) for call in entry.actions)
    return Expectation(entry.intent, entry.decision, entry.flow, "flow" in entry.model_fields_set, entry.slots,
                       actions, tuple(entry.says), tuple(entry.not_says), entry.handoff)


# --- checking a reply ---------------------------------------------------------------------------------


def check_reply(expect: Expectation, reply: Reply) -> list[str]:
    """Why `reply` does not meet `expect`, one reason per unmet part; empty when it does."""
    reasons: list[str] = []
    understood = reply.understanding.intent
    if expect.intent is not None and understood != expect.intent:
        reasons.append(f"intent is {understood!r} ({reply.understanding.confidence:.2f}), expected {expect.intent!r}")
    if expect.decision is not None and reply.decision != expect.decision:
        reasons.append(f"decision is {reply.decision!r}, expected {expect.decision!r}")
    if expect.checks_flow and reply.flow != expect.flow:
        reasons.append(f"active flow is {reply.flow!r}, expected {expect.flow!r}")
    for name, wanted in (expect.slots or {}).items():
        actual = reply.slots.get(name)
        if not matches(wanted, actual):
            reasons.append(f"slot {name} is {actual!r}, expected {wanted!r}")
    if expect.actions is not None:
        reasons += _check_calls(expect.actions, action_calls(reply))
    text = reply.text.casefold()
    reasons += [f"reply does not say {piece!r}: {reply.text!r}" for piece in expect.says
                if piece.casefold() not in text]
    reasons += [f"reply says {piece!r}: {reply.text!r}" for piece in expect.not_says if piece.casefold() in text]
    if expect.handoff is not None and reply.handoff != expect.handoff:
        reasons.append(f"handoff is {reply.handoff}, expected {expect.handoff}")
    return reasons


def action_calls(reply: Reply) -> list[dict[str, Any]]:
    """The actions the turn called, as their logged events (action, args, result, error)."""
    return [event for event in reply.events if event.get("type") == ActionCalled.type]


def matches(expected: Any, actual: Any) -> bool:
    """Whether `actual` has what `expected` states: mappings may hold more keys, text matches in any case,
    numbers by value (50 is 50.0), and YAML's yes/no booleans match the words."""
    if expected is None:
        return actual is None
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(matches(value, actual.get(key)) for key, value in expected.items())
    if isinstance(expected, list):
        return (isinstance(actual, Sequence) and not isinstance(actual, str) and len(actual) == len(expected)
                and all(matches(e, a) for e, a in zip(expected, actual, strict=True)))
    if isinstance(expected, bool):
        return actual is expected or (isinstance(actual, str) and actual.casefold() == _text(expected))
    if isinstance(expected, int | float):
        return isinstance(actual, int | float) and not isinstance(actual, bool) and math.isclose(expected, actual)
    return isinstance(actual, str) and actual.casefold() == str(expected).casefold()


def _check_calls(expected: Sequence[ExpectedCall], calls: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each expected call must match a call made after the one matching the expected call before it."""
    made = ", ".join(_shown(call) for call in calls) or "none"
    if not expected:
        return [] if not calls else [f"no action calls expected, made: {made}"]
    position = 0
    for wanted in expected:
        found = next((index for index in range(position, len(calls)) if _call_matches(wanted, calls[index])), None)
        if found is None:
            return [f"no call of {wanted.name} with {_wanted(wanted)} (in order); made: {made}"]
        position = found + 1
    return []


def _call_matches(wanted: ExpectedCall, call: Mapping[str, Any]) -> bool:
    error = call.get("error")
    if (wanted.error is True and error is None) or (wanted.error is False and error is not None):
        return False
    if isinstance(wanted.error, str) and (error is None or wanted.error.casefold() not in str(error).casefold()):
        return False
    return (call.get("action") == wanted.name and matches(dict(wanted.args), call.get("args"))
            and (wanted.result is None or matches(dict(wanted.result), call.get("result"))))


def _wanted(call: ExpectedCall) -> str:
    parts = [f"args {dict(call.args)}"] if call.args else ["any args"]
    if call.result is not None:
        parts.append(f"result {dict(call.result)}")
    if call.error is not None:
        parts.append("success" if call.error is False else f"error {call.error!r}" if call.error is not True
                     else "an error")
    return ", ".join(parts)


def _shown(call: Mapping[str, Any]) -> str:
    args = ", ".join(f"{key}={value!r}" for key, value in (call.get("args") or {}).items())
    outcome = f" -> error {call['error']!r}" if call.get("error") else ""
    return f"{call.get('action')}({args}){outcome}"
