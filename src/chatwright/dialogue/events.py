"""A conversation is the log of what happened in it; its current state is derived from the log and nothing else.

Storing events rather than state means a conversation can be replayed (after a restart, to debug, to test) and
every slot value can be traced to the message or action that set it. Events are JSON with a `type` field.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from chatwright.dialogue.types import Understanding


def to_jsonable(value: Any) -> Any:
    """Plain JSON data for a value: dataclasses and mappings become dicts, dates ISO text, enums their value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON data")


@dataclass(frozen=True, kw_only=True)
class Event:
    """Something that happened in a conversation, at `at` (seconds since the epoch)."""

    type: ClassVar[str]
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **to_jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})}


@dataclass(frozen=True, kw_only=True)
class UserMessage(Event):
    type = "user_message"
    text: str
    understanding: dict[str, Any] | None = None

    @classmethod
    def of(cls, text: str, understanding: Understanding | None) -> UserMessage:
        return cls(text=text, understanding=None if understanding is None else to_jsonable(understanding))


@dataclass(frozen=True, kw_only=True)
class BotMessage(Event):
    type = "bot_message"
    text: str


@dataclass(frozen=True, kw_only=True)
class SlotSet(Event):
    """A slot got a value (None clears it); `corrected` when the user replaced a value they had given."""

    type = "slot_set"
    slot: str
    value: Any
    previous: Any = None
    corrected: bool = False


@dataclass(frozen=True, kw_only=True)
class SlotRejected(Event):
    """A value the user gave for a slot was unknown or malformed; `reason` is what they were told."""

    type = "slot_rejected"
    slot: str
    text: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class FlowStarted(Event):
    type = "flow_started"
    flow: str


@dataclass(frozen=True, kw_only=True)
class FlowStep(Event):
    """The active flow stopped at `step` (an index into its compiled steps), waiting for `awaiting`."""

    type = "flow_step"
    flow: str
    step: int
    awaiting: str | None = None


@dataclass(frozen=True, kw_only=True)
class FlowInterrupted(Event):
    type = "flow_interrupted"
    flow: str


@dataclass(frozen=True, kw_only=True)
class FlowResumed(Event):
    type = "flow_resumed"
    flow: str


@dataclass(frozen=True, kw_only=True)
class FlowCompleted(Event):
    type = "flow_completed"
    flow: str


@dataclass(frozen=True, kw_only=True)
class FlowCancelled(Event):
    type = "flow_cancelled"
    flow: str


@dataclass(frozen=True, kw_only=True)
class ActionCalled(Event):
    """An action ran with `args`: `result` when it succeeded, `error` when it raised or timed out."""

    type = "action_called"
    action: str
    args: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    duration_ms: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Handoff(Event):
    """The conversation goes to a person; `summary` is what they read first."""

    type = "handoff"
    reason: str
    summary: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (UserMessage, BotMessage, SlotSet, SlotRejected, FlowStarted, FlowStep, FlowInterrupted, FlowResumed,
                FlowCompleted, FlowCancelled, ActionCalled, Handoff)
}


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """The event `to_dict` wrote; an unknown type or field raises ValueError."""
    fields = dict(data)
    kind = fields.pop("type", None)
    cls = EVENT_TYPES.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ValueError(f"malformed {kind} event: {exc}") from exc


# --- state --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowFrame:
    """A flow on the stack: where it stopped, and whether a digression interrupted it."""

    flow: str
    step: int = 0
    awaiting: str | None = None
    interrupted: bool = False


@dataclass(frozen=True)
class DialogueState:
    """Everything a policy needs to decide the next move, folded from the events.

    `stack` holds the flows in progress, the newest last; `failures` counts rejected answers and failed actions
    since the last accepted value or successful action; `negative_streak` counts consecutive negative messages.
    """

    slots: Mapping[str, Any] = field(default_factory=dict)
    stack: tuple[FlowFrame, ...] = ()
    failures: int = 0
    negative_streak: int = 0
    handoff: bool = False
    turns: int = 0

    @property
    def active(self) -> FlowFrame | None:
        """The flow that handles the next message: the top of the stack, unless a digression interrupted it."""
        return self.stack[-1] if self.stack and not self.stack[-1].interrupted else None

    @property
    def interrupted(self) -> FlowFrame | None:
        """The flow waiting to resume, when nothing is active."""
        return self.stack[-1] if self.stack and self.stack[-1].interrupted else None


def apply(state: DialogueState, event: Event) -> DialogueState:
    """The state after `event`; pure, so folding the same events always gives the same state."""
    match event:
        case UserMessage(understanding=understanding):
            sentiment = (understanding or {}).get("sentiment") or {}
            streak = state.negative_streak + 1 if sentiment.get("label") == "negative" else 0
            return dataclasses.replace(state, turns=state.turns + 1, negative_streak=streak)
        case SlotSet(slot=slot, value=value):
            slots = {**state.slots, slot: value}
            if value is None:
                del slots[slot]
            return dataclasses.replace(state, slots=slots, failures=0 if value is not None else state.failures)
        case SlotRejected():
            return dataclasses.replace(state, failures=state.failures + 1)
        case ActionCalled(error=error):
            return dataclasses.replace(state, failures=0 if error is None else state.failures + 1)
        case FlowStarted(flow=flow):
            return dataclasses.replace(state, stack=(*state.stack, FlowFrame(flow)))
        case FlowStep(flow=flow, step=step, awaiting=awaiting):
            return _with_top(state, flow, lambda frame: dataclasses.replace(frame, step=step, awaiting=awaiting))
        case FlowInterrupted(flow=flow):
            return _with_top(state, flow, lambda frame: dataclasses.replace(frame, interrupted=True))
        case FlowResumed(flow=flow):
            return _with_top(state, flow, lambda frame: dataclasses.replace(frame, interrupted=False))
        case FlowCompleted(flow=flow) | FlowCancelled(flow=flow):
            return dataclasses.replace(state, stack=_without(state.stack, flow))
        case Handoff():
            return dataclasses.replace(state, handoff=True)
    return state


def replay(events: Iterable[Event]) -> DialogueState:
    state = DialogueState()
    for event in events:
        state = apply(state, event)
    return state


def _with_top(state: DialogueState, flow: str, change: Any) -> DialogueState:
    if not state.stack or state.stack[-1].flow != flow:
        return state
    return dataclasses.replace(state, stack=(*state.stack[:-1], change(state.stack[-1])))


def _without(stack: tuple[FlowFrame, ...], flow: str) -> tuple[FlowFrame, ...]:
    """The stack less its newest frame of `flow`."""
    for index in range(len(stack) - 1, -1, -1):
        if stack[index].flow == flow:
            return stack[:index] + stack[index + 1 :]
    return stack


class EventRecorder:
    """Events emitted so far, with the state they lead to, so each later move sees the earlier ones."""

    def __init__(self, state: DialogueState) -> None:
        self.state = state
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)
        self.state = apply(self.state, event)

    def say(self, text: str) -> None:
        self.emit(BotMessage(text=text))
