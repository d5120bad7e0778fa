"""When the NLU is unsure, the language model may propose a flow (one marked `llm: true`) and its slot values.

A message like "someone took my wallet, make sure nobody can pay with my card" may be close to no intent example,
yet a flow's description says what to do. The model answers grammar-constrained JSON, and nothing in it is
trusted: the flow must exist and be proposable, the slot names must be that flow's, and a value is kept only
when it is copied from the message and parses as the slot's type (otherwise the flow asks for it).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from chatwright.dialogue.flow_spec import Flow, FlowBook
from chatwright.dialogue.slot_values import parse_value
from chatwright.errors import GenerationUnavailable
from chatwright.generation.llm import LLM, ChatMessage, complete

log = structlog.get_logger(__name__)

NO_FLOW = "none"
MAX_TOKENS = 160
_INSTRUCTIONS = (
    "You decide whether a customer's message asks the assistant to carry out one of these tasks:\n{tasks}\n"
    'Answer in JSON. "flow": the task\'s name only if the message clearly asks for that task, otherwise '
    '"none" (for questions about information and for anything else). "slots": each detail the message states, '
    "copied word for word from the message, or null."
)


@dataclass(frozen=True)
class FlowProposal:
    """A checked proposal: `values` maps slot names to the words of the message that give them."""

    flow: str
    values: dict[str, str] = field(default_factory=dict)


class FlowProposer:
    def __init__(self, llm: LLM, book: FlowBook, *, today: Callable[[], datetime.date] = datetime.date.today) -> None:
        self._llm = llm
        self._book = book
        self._today = today

    def propose(self, message: str) -> FlowProposal | None:
        """The flow the model proposes for `message`, checked; None when it proposes none or nothing valid."""
        flows = self._book.proposable()
        if not flows:
            return None
        tasks = "\n".join(_task(flow) for flow in flows)
        prompt = [ChatMessage("system", _INSTRUCTIONS.format(tasks=tasks)), ChatMessage("user", message)]
        try:
            answer = complete(self._llm, prompt, max_tokens=MAX_TOKENS, json_schema=proposal_schema(flows))
        except GenerationUnavailable as exc:
            log.warning("flow proposal unavailable", error=str(exc))
            return None
        return self.check(answer, message)

    def check(self, answer: str, message: str) -> FlowProposal | None:
        """The model's JSON `answer` checked against the flows; invalid values are dropped, not guessed."""
        try:
            data = json.loads(answer)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        flow = self._book.flows.get(str(data.get("flow")))
        slots = data.get("slots") or {}
        if flow is None or not flow.llm or not isinstance(slots, dict):
            return None
        stated = {name: str(value).strip() for name, value in slots.items() if value not in (None, "")}
        if not set(stated) <= set(flow.slots):
            return None  # a value for a slot the flow does not have: the model misunderstood the flow
        values: dict[str, str] = {}
        for name, text in stated.items():
            rules = self._book.slots[name].rules
            if text.casefold() in message.casefold() and parse_value(rules, text, today=self._today()).ok:
                values[name] = text
        return FlowProposal(flow.name, values)


def proposal_schema(flows: Sequence[Flow]) -> dict[str, Any]:
    """Every property required (null when not stated), as strict structured-output APIs demand."""
    slots = sorted({name for flow in flows for name in flow.slots})
    return {
        "type": "object",
        "properties": {
            "flow": {"enum": [NO_FLOW, *(flow.name for flow in flows)]},
            "slots": {"type": "object", "properties": {name: {"type": ["string", "null"]} for name in slots},
                      "required": slots, "additionalProperties": False},
        },
        "required": ["flow", "slots"],
        "additionalProperties": False,
    }


def _task(flow: Flow) -> str:
    details = f" (details: {', '.join(flow.slots)})" if flow.slots else ""
    return f"- {flow.name}: {flow.description}{details}"
