"""Running flows: from a dialogue state and a message to the events that move the active flow on.

The runner only executes; which move to make (continue the flow, start another, answer a question, clarify,
hand off) is the policy's decision, taken before it calls one of the runner's methods. Every method is pure in
the sense that it reads a state and returns events: the caller appends them to the log, and the state they lead
to (`FlowTurn.state`) is what replaying the log gives.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chatwright.dialogue.actions import ActionFailed, ActionRegistry
from chatwright.dialogue.events import (
    ActionCalled,
    BotMessage,
    DialogueState,
    Event,
    EventRecorder,
    FlowCancelled,
    FlowCompleted,
    FlowFrame,
    FlowInterrupted,
    FlowResumed,
    FlowStarted,
    FlowStep,
    Handoff,
    SlotRejected,
    SlotSet,
)
from chatwright.dialogue.flow_spec import (
    PLACEHOLDER,
    Branch,
    CallAction,
    Collect,
    Condition,
    End,
    Flow,
    FlowBook,
    HandoffStep,
    Jump,
    Link,
    Outcome,
    Say,
    SetSlots,
)
from chatwright.dialogue.slot_values import SlotParse, display_value, parse_value
from chatwright.dialogue.types import Understanding

DEFAULT_FAILURE = "Sorry, something went wrong on our side, so I couldn't finish that. Please try again later."
MAX_STEPS_PER_TURN = 200  # more steps without waiting for the user means flows link to each other in a loop
_WHOLE_PLACEHOLDER = re.compile(r"\{\s*([^{}]*?)\s*\}")


@dataclass(frozen=True)
class FlowTurn:
    """What a runner call did: the events to append to the log, and the state they lead to."""

    events: tuple[Event, ...]
    state: DialogueState

    @property
    def messages(self) -> tuple[str, ...]:
        return tuple(event.text for event in self.events if isinstance(event, BotMessage))


class _Run(EventRecorder):
    """The events of one runner call."""

    def set(self, slot: str, value: Any, *, corrected: bool = False) -> None:
        self.emit(SlotSet(slot=slot, value=value, previous=self.state.slots.get(slot), corrected=corrected))

    def turn(self) -> FlowTurn:
        return FlowTurn(tuple(self.events), self.state)


class FlowRunner:
    """Executes the flows of a FlowBook, calling the owner's actions (those of actions.py; HTTP ones are added)."""

    def __init__(self, book: FlowBook, actions: ActionRegistry | None = None, *,
                 today: Callable[[], datetime.date] = datetime.date.today,
                 failure_message: str = DEFAULT_FAILURE) -> None:
        self.book = book
        self.actions = (actions or ActionRegistry()).with_actions(book.http_actions)
        self.today = today
        self.failure_message = failure_message

    # --- what the policy calls ----------------------------------------------------------------------------

    def start_flow(self, state: DialogueState, flow: str, understanding: Understanding | None = None,
                   text: str = "") -> FlowTurn:
        """Start `flow` (interrupting the active one), fill its slots from the message's entities, run it."""
        target = self._flow(flow)
        run = _Run(state)
        if state.active is not None:
            run.emit(FlowInterrupted(flow=state.active.flow))
        self._begin(run, target, understanding, text)
        self._advance(run, 0)
        return run.turn()

    def continue_flow(self, state: DialogueState, understanding: Understanding | None, text: str) -> FlowTurn:
        """The user answered (or corrected) the active flow: store the values, re-ask what was invalid, run on.

        A new value for a slot that was already filled is a correction; the flow goes back to where that slot
        was collected (unless an action ran since), so later steps such as a confirmation see the new value.
        """
        frame = self._active(state)
        flow = self._flow(frame.flow)
        values = self.values_in(state, understanding, text)
        run = _Run(state)
        corrections = self._store(run, values, text)
        awaited = values.get(frame.awaiting) if frame.awaiting is not None else None
        if awaited is not None and not awaited.ok:
            return run.turn()
        rewinds = [step for slot in corrections if (step := self._rewind(flow, frame.step, slot)) is not None]
        self._advance(run, min(rewinds, default=frame.step))
        return run.turn()

    def values_in(self, state: DialogueState, understanding: Understanding | None, text: str) -> dict[str, SlotParse]:
        """What a message would set in the active flow, valid or not: its entities for any of the flow's slots,
        and the whole text for the awaited slot when no entity filled another slot."""
        frame = self._active(state)
        flow = self._flow(frame.flow)
        prompt = self._prompt(flow, frame, state)
        values = self._from_entities(flow, understanding, state, frame.awaiting, prompt)
        if frame.awaiting is not None and not values:
            rules = self.book.slots[frame.awaiting].rules
            values[frame.awaiting] = parse_value(rules, text, today=self.today(), prompt=prompt)
        return values

    def cancel_active(self, state: DialogueState, message: str | None = None) -> FlowTurn:
        """Cancel the active flow (saying `message`), then resume the flow it had interrupted, if any."""
        frame = self._active(state)
        run = _Run(state)
        if message:
            run.say(message)
        self._advance(run, self._end(run, self._flow(frame.flow), "cancelled"))
        return run.turn()

    def interrupt(self, state: DialogueState) -> FlowTurn:
        """Set the active flow aside for a digression; `resume` picks it up at the same step."""
        run = _Run(state)
        run.emit(FlowInterrupted(flow=self._active(state).flow))
        return run.turn()

    def resume(self, state: DialogueState) -> FlowTurn:
        """Resume the interrupted flow at its step, asking its question again."""
        frame = state.interrupted
        if frame is None:
            raise ValueError("no interrupted flow to resume")
        run = _Run(state)
        run.emit(FlowResumed(flow=frame.flow))
        self._advance(run, frame.step)
        return run.turn()

    def hand_off(self, state: DialogueState, reason: str) -> FlowTurn:
        """Hand the conversation to a person: every flow in progress is cancelled, with a summary for them."""
        run = _Run(state)
        self._hand_off(run, reason)
        return run.turn()

    # --- running steps ------------------------------------------------------------------------------------

    def _advance(self, run: _Run, pointer: int) -> None:
        """Run the active flow from `pointer` until it waits for the user or no flow is active."""
        for _ in range(MAX_STEPS_PER_TURN):
            frame = run.state.active
            if frame is None:
                return
            flow = self._flow(frame.flow)
            if pointer >= len(flow.steps):
                pointer = self._end(run, flow, "completed")
                continue
            match flow.steps[pointer]:
                case Collect(slot=slot, prompt=prompt):
                    if slot not in run.state.slots:
                        run.say(self._render(prompt, run.state.slots))
                        run.emit(FlowStep(flow=flow.name, step=pointer, awaiting=slot))
                        return
                    pointer += 1
                case Say(text=text):
                    run.say(self._render(text, run.state.slots))
                    pointer += 1
                case SetSlots(values=values):
                    for name, value in values.items():
                        run.set(name, self._resolve(value, run.state.slots))
                    pointer += 1
                case CallAction() as call:
                    pointer = self._call(run, flow, pointer, call)
                case Branch(condition=condition, otherwise=otherwise):
                    pointer = pointer + 1 if _holds(condition, run.state.slots) else otherwise
                case Jump(to=to):
                    pointer = to
                case Link(flow=target):
                    self._end(run, flow, "completed", resume=False)
                    self._begin(run, self._flow(target), None, "")
                    pointer = 0
                case End(outcome=outcome):
                    pointer = self._end(run, flow, outcome)
                case HandoffStep(reason=reason):
                    self._hand_off(run, reason)
        run.say(self.failure_message)
        self._cancel_all(run)

    def _begin(self, run: _Run, flow: Flow, understanding: Understanding | None, text: str) -> None:
        """Start a flow: its slots from the message's entities first, then the defaults of those still empty."""
        run.emit(FlowStarted(flow=flow.name))
        self._store(run, self._from_entities(flow, understanding, run.state, None, None), text)
        for name in flow.slots:
            slot = self.book.slots[name]
            if slot.default is not None and name not in run.state.slots:
                run.set(name, parse_value(slot.rules, slot.default, today=self.today()).value)

    def _call(self, run: _Run, flow: Flow, pointer: int, call: CallAction) -> int:
        """Call an action (retrying as the step says); the next step on success, else the error path."""
        args = {name: self._resolve(value, run.state.slots) for name, value in call.args.items()}
        for _ in range(call.retries + 1):
            started = time.perf_counter()
            try:
                result, error = self.actions.call(call.action, args), None
            except ActionFailed as exc:
                result, error = None, exc.message
            run.emit(ActionCalled(action=call.action, args=args, result=result, error=error,
                                  duration_ms=(time.perf_counter() - started) * 1000))
            if result is not None:
                if call.result is not None:
                    run.set(call.result, result)
                return pointer + 1
        if call.on_error is not None:
            return call.on_error
        run.say(self.failure_message)
        return self._end(run, flow, "cancelled")

    def _end(self, run: _Run, flow: Flow, outcome: Outcome, *, resume: bool = True) -> int:
        """End the flow and clear its slots; resume the flow beneath and return its step (0 when none)."""
        run.emit(FlowCompleted(flow=flow.name) if outcome == "completed" else FlowCancelled(flow=flow.name))
        still_used = {name for frame in run.state.stack for name in self._flow(frame.flow).slots}
        for name in (*flow.slots, *flow.results):
            slot = self.book.slots.get(name)
            if name in run.state.slots and name not in still_used and not (slot is not None and slot.persist):
                run.set(name, None)
        beneath = run.state.interrupted
        if resume and beneath is not None:
            run.emit(FlowResumed(flow=beneath.flow))
            return beneath.step
        return 0

    def _hand_off(self, run: _Run, reason: str) -> None:
        run.emit(Handoff(reason=reason, summary=self._summary(run.state, reason)))
        self._cancel_all(run)

    def _cancel_all(self, run: _Run) -> None:
        while run.state.stack:
            self._end(run, self._flow(run.state.stack[-1].flow), "cancelled", resume=False)

    def _summary(self, state: DialogueState, reason: str) -> str:
        """What a person taking over reads first: why, the flow in progress, and what the user has told us."""
        parts = [f"Reason: {reason}."]
        if state.stack:
            flow = self._flow(state.stack[-1].flow)
            parts.append(f"Flow: {flow.name} ({flow.description}).")
        known = [f"{name}={self._show(name, value)}" for name, value in state.slots.items()]
        if known:
            parts.append(f"Known: {', '.join(known)}.")
        return " ".join(parts)

    # --- slot values ----------------------------------------------------------------------------------------

    def _from_entities(self, flow: Flow, understanding: Understanding | None, state: DialogueState,
                       awaited: str | None, prompt: str | None) -> dict[str, SlotParse]:
        """Entity values for the flow's slots: the awaited slot first, then empty slots, then filled ones."""
        values: dict[str, SlotParse] = {}
        for entity in understanding.entities if understanding is not None else ():
            candidates = [name for name in flow.slots
                          if entity.entity in self.book.slots[name].entities and name not in values]
            if not candidates:
                continue
            empty = [name for name in candidates if name not in state.slots]
            name = awaited if awaited in candidates else (empty or candidates)[0]
            rules = self.book.slots[name].rules
            ask = prompt if name == awaited else None
            parsed = parse_value(rules, entity.value, today=self.today(), prompt=ask)
            if not parsed.ok and entity.text != entity.value:
                from_text = parse_value(rules, entity.text, today=self.today(), prompt=ask)
                parsed = from_text if from_text.ok else parsed
            values[name] = parsed
        return values

    def _store(self, run: _Run, values: Mapping[str, SlotParse], text: str) -> list[str]:
        """Set the valid values and tell the user why the others were not accepted; returns the corrected slots."""
        corrected: list[str] = []
        for name, parsed in values.items():
            if parsed.reason is not None:
                run.emit(SlotRejected(slot=name, text=text, reason=parsed.reason))
                run.say(parsed.reason)
                continue
            previous = run.state.slots.get(name)
            if previous == parsed.value:
                continue
            run.set(name, parsed.value, corrected=previous is not None)
            if previous is not None:
                corrected.append(name)
        return corrected

    def _rewind(self, flow: Flow, pointer: int, slot: str) -> int | None:
        """Where to go back to after `slot` was corrected: its collect step, unless an action ran since."""
        for index in range(pointer - 1, -1, -1):
            step = flow.steps[index]
            if isinstance(step, CallAction):
                return None
            if isinstance(step, Collect) and step.slot == slot:
                return index
        return None

    def _prompt(self, flow: Flow, frame: FlowFrame, state: DialogueState) -> str | None:
        step = flow.steps[frame.step] if frame.awaiting is not None and frame.step < len(flow.steps) else None
        return self._render(step.prompt, state.slots) if isinstance(step, Collect) else None

    def _render(self, template: str, slots: Mapping[str, Any]) -> str:
        return PLACEHOLDER.sub(lambda match: self._show(match[1].strip(), _lookup(match[1].strip(), slots)),
                               template)

    def _show(self, path: str, value: Any) -> str:
        slot = self.book.slots.get(path)
        return display_value(value, slot.rules.type if slot is not None else None)

    def _resolve(self, value: Any, slots: Mapping[str, Any]) -> Any:
        """A template's text; exactly `{slot}` gives the slot's value itself, keeping amounts and numbers typed."""
        if not isinstance(value, str):
            return value
        whole = _WHOLE_PLACEHOLDER.fullmatch(value)
        return _lookup(whole[1], slots) if whole else self._render(value, slots)

    def _flow(self, name: str) -> Flow:
        flow = self.book.flows.get(name)
        if flow is None:
            raise ValueError(f"unknown flow {name!r}")
        return flow

    @staticmethod
    def _active(state: DialogueState) -> FlowFrame:
        if state.active is None:
            raise ValueError("no flow is active")
        return state.active


def _lookup(path: str, slots: Mapping[str, Any]) -> Any:
    """A slot's value, or a value inside it: `transfer.id` reads `id` from the result stored in `transfer`."""
    head, *rest = path.split(".")
    value = slots.get(head)
    for key in rest:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _holds(condition: Condition, slots: Mapping[str, Any]) -> bool:
    value = _lookup(condition.slot, slots)
    if condition.filled is not None:
        return (value not in (None, "")) == condition.filled
    if condition.equals is not None:
        return _same(value, condition.equals)
    if condition.one_of is not None:
        return any(_same(value, option) for option in condition.one_of)
    number = _number(value)
    if number is None:
        return False
    if condition.above is not None:
        return number > condition.above
    return condition.below is not None and number < condition.below


def _same(value: Any, expected: str | float) -> bool:
    if isinstance(expected, float):
        return _number(value) == expected
    if isinstance(value, bool):
        value = "yes" if value else "no"
    return value is not None and str(value).strip().casefold() == expected.strip().casefold()


def _number(value: Any) -> float | None:
    """Numbers, numeric text and amounts (compared by their value) as a float."""
    if isinstance(value, Mapping):
        value = value.get("amount")
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
