"""flows.yaml: the owner's flows, their typed slots and HTTP actions, checked completely when loaded.

A mistake in a flow (an unknown slot, a missing action, a step that can never run) is reported as file:line
before the assistant starts, not discovered by a customer halfway through a conversation. Steps are compiled
into a flat list with jumps, so where a flow stands is one number that the event log can store.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chatwright.dialogue.actions import ActionRegistry, HttpAction, PythonAction
from chatwright.dialogue.slot_values import SlotType, ValueRules, parse_value
from chatwright.errors import ConfigError
from chatwright.yaml_lines import Loc, LocatedYaml, load_yaml, validate

NAME = re.compile(r"[A-Za-z_]\w*")
PATH = re.compile(r"[A-Za-z_]\w*(?:\.\w+)*")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
Outcome = Literal["completed", "cancelled"]

# --- what a loaded flow is ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A typed slot; `entities` are the NLU entity types that fill it; `persist` keeps it after its flows end."""

    name: str
    rules: ValueRules
    entities: tuple[str, ...]
    prompt: str | None = None
    default: Any = None
    persist: bool = False


@dataclass(frozen=True)
class Condition:
    """A test on a slot (`transfer.status` reads into an action result); exactly one test is set."""

    slot: str
    equals: str | float | None = None
    one_of: tuple[str | float, ...] | None = None
    filled: bool | None = None
    above: float | None = None
    below: float | None = None


@dataclass(frozen=True)
class Collect:
    slot: str
    prompt: str


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class SetSlots:
    """Values are templates; exactly `{slot}` copies the slot's value with its type. Set slots outlive the flow
    (unlike collected slots and action results, which are cleared when it ends), so they can carry things on."""

    values: Mapping[str, Any]


@dataclass(frozen=True)
class CallAction:
    """Arguments are templates like SetSlots; on failure the flow jumps to `on_error` (None: a polite failure
    message and the flow is cancelled) after `retries` further attempts."""

    action: str
    args: Mapping[str, Any]
    result: str | None = None
    retries: int = 0
    on_error: int | None = None


@dataclass(frozen=True)
class Branch:
    """Go on with the next step when the condition holds, else jump to `otherwise`."""

    condition: Condition
    otherwise: int


@dataclass(frozen=True)
class Jump:
    to: int


@dataclass(frozen=True)
class Link:
    """End this flow and start another."""

    flow: str


@dataclass(frozen=True)
class End:
    outcome: Outcome = "completed"


@dataclass(frozen=True)
class HandoffStep:
    reason: str


Step = Collect | Say | SetSlots | CallAction | Branch | Jump | Link | End | HandoffStep


@dataclass(frozen=True)
class Flow:
    """A compiled flow; `slots` are the declared slots it uses, which its messages' entities may fill."""

    name: str
    description: str
    steps: tuple[Step, ...]
    intents: tuple[str, ...] = ()
    llm: bool = False
    slots: tuple[str, ...] = ()
    results: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlowBook:
    """All flows of an assistant with the slots and HTTP actions they share."""

    flows: Mapping[str, Flow]
    slots: Mapping[str, Slot] = field(default_factory=dict)
    http_actions: tuple[HttpAction, ...] = ()

    def flow_for_intent(self, intent: str) -> Flow | None:
        return next((flow for flow in self.flows.values() if intent in flow.intents), None)

    def proposable(self) -> tuple[Flow, ...]:
        """Flows a language model may propose from their descriptions (`start: {llm: true}`)."""
        return tuple(flow for flow in self.flows.values() if flow.llm)


# --- the file's schema --------------------------------------------------------------------------------


def _yaml_word(value: Any) -> Any:
    """YAML reads unquoted yes/no as booleans; in choices and comparisons they mean the words."""
    return ("yes" if value else "no") if isinstance(value, bool) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Bounds(_Strict):
    min: float | datetime.date | Literal["today"] | None = None
    max: float | datetime.date | Literal["today"] | None = None


class _SlotEntry(_Strict):
    type: SlotType = SlotType.TEXT
    prompt: str | None = None
    entities: list[str] | None = None
    choices: list[str] | dict[str, list[str]] | None = None
    pattern: str | None = None
    invalid: str | None = Field(default=None, description="what to tell the user when a value is not accepted")
    bounds: _Bounds | None = Field(default=None, alias="validate")
    default: str | float | datetime.date | None = None
    persist: bool = False

    @model_validator(mode="before")
    @classmethod
    def _words(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        choices = data.get("choices")
        if isinstance(choices, list):
            data["choices"] = [_yaml_word(choice) for choice in choices]
        elif isinstance(choices, dict):
            data["choices"] = {_yaml_word(key): value for key, value in choices.items()}
        if "default" in data:
            data["default"] = _yaml_word(data["default"])
        return data

    @field_validator("pattern")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
        return pattern


class _ConditionEntry(_Strict):
    slot: str
    equals: str | float | None = None
    one_of: list[str | float] | None = None
    filled: bool | None = None
    above: float | None = None
    below: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _words(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "equals" in data:
            data["equals"] = _yaml_word(data["equals"])
        if isinstance(data.get("one_of"), list):
            data["one_of"] = [_yaml_word(item) for item in data["one_of"]]
        return data

    @model_validator(mode="after")
    def _one_test(self) -> _ConditionEntry:
        tests = self.model_fields_set - {"slot"}
        if len(tests) != 1:
            raise ValueError("a condition needs exactly one of equals, one_of, filled, above, below")
        return self


_STEP_KINDS: dict[str, frozenset[str]] = {
    "collect": frozenset({"prompt"}),
    "action": frozenset({"args", "result", "retries", "on_error"}),
    "if": frozenset({"then", "else"}),
    "say": frozenset(),
    "set": frozenset(),
    "link": frozenset(),
    "end": frozenset(),
    "handoff": frozenset(),
}


class _StepEntry(_Strict):
    collect: str | None = None
    prompt: str | None = None
    action: str | None = None
    args: dict[str, Any] | list[str] | None = None
    result: str | None = None
    retries: int = Field(default=0, ge=0)
    on_error: list[_StepEntry] | None = None
    condition: _ConditionEntry | None = Field(default=None, alias="if")
    then: list[_StepEntry] | None = None
    otherwise: list[_StepEntry] | None = Field(default=None, alias="else")
    say: str | None = None
    assign: dict[str, Any] | None = Field(default=None, alias="set")
    link: str | None = None
    end: Outcome | None = None
    handoff: Literal[True] | str | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_words(cls, data: Any) -> Any:
        """`- end` and `- handoff` need no value."""
        if data == "end":
            return {"end": "completed"}
        if data == "handoff":
            return {"handoff": True}
        if isinstance(data, str):
            raise ValueError(f"unknown step {data!r}: a step is `end`, `handoff` or a mapping such as `say: ...`")
        return data

    @property
    def keys(self) -> set[str]:
        fields = type(self).model_fields
        return {fields[name].alias or name for name in self.model_fields_set}

    @property
    def kind(self) -> str:
        return next(key for key in self.keys if key in _STEP_KINDS)

    @model_validator(mode="after")
    def _one_kind(self) -> _StepEntry:
        kinds = sorted(self.keys & set(_STEP_KINDS))
        if len(kinds) != 1:
            found = f"; found {' and '.join(kinds)}" if kinds else ""
            raise ValueError(f"a step needs exactly one of {', '.join(_STEP_KINDS)}{found}")
        stray = sorted(self.keys - {kinds[0]} - _STEP_KINDS[kinds[0]])
        if stray:
            raise ValueError(f"{', '.join(stray)} does not belong in a {kinds[0]} step")
        if kinds[0] == "if" and self.then is None:
            raise ValueError("an if step needs then: (and may have else:)")
        return self


class _StartEntry(_Strict):
    intents: list[str] = Field(default_factory=list)
    llm: bool = Field(default=False, description="a language model may propose the flow from its description")


class _FlowEntry(_Strict):
    description: str = Field(min_length=1)
    start: _StartEntry = Field(default_factory=_StartEntry)
    steps: list[_StepEntry] = Field(min_length=1)


class _HttpActionEntry(_Strict):
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    timeout: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)


class _FlowsFile(_Strict):
    slots: dict[str, _SlotEntry] = Field(default_factory=dict)
    actions: dict[str, _HttpActionEntry] = Field(default_factory=dict)
    flows: dict[str, _FlowEntry]


# --- loading ------------------------------------------------------------------------------------------


def load_flows(path: Path, actions: ActionRegistry | None = None) -> FlowBook:
    """Read and check flows.yaml against the owner's actions (None: there is no actions.py)."""
    doc = load_yaml(path)
    _reject_duplicate_keys(doc)
    parsed = validate(_FlowsFile, doc)
    registry = actions or ActionRegistry()
    http: list[HttpAction] = []
    for name, entry in parsed.actions.items():
        if not NAME.fullmatch(name):
            raise doc.error(f"invalid action name {name!r}", ("actions", name))
        if name in registry:
            raise doc.error(f"action {name!r} is defined both in actions.py and here", ("actions", name))
        http.append(HttpAction(name, entry.url, entry.method, entry.timeout, entry.headers))
    slots = {name: _slot(doc, name, entry) for name, entry in parsed.slots.items()}
    names = set(slots) | _assigned(parsed.flows)
    compiler_context = _Context(doc, slots, names, set(parsed.flows), registry.with_actions(http))
    flows = {name: _FlowCompiler(compiler_context, name).flow(entry) for name, entry in parsed.flows.items()}
    _check_start_intents(doc, flows)
    return FlowBook(flows, slots, tuple(http))


def _reject_duplicate_keys(doc: LocatedYaml) -> None:
    """YAML keeps the last of two equal keys silently; a second flow or slot with the same name is a mistake."""
    root = yaml.compose(doc.path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    pending = [root] if root is not None else []
    while pending:
        node = pending.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise ConfigError(f"duplicate key {key.value!r} (first at line {seen[key.value]})", path=doc.path,
                                      line=line)
                seen[key.value] = line
                pending.append(value)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)


def _slot(doc: LocatedYaml, name: str, entry: _SlotEntry) -> Slot:
    loc: Loc = ("slots", name)
    if not NAME.fullmatch(name):
        raise doc.error(f"invalid slot name {name!r}: letters, digits and _, not starting with a digit", loc)
    if (entry.type is SlotType.CHOICE) != bool(entry.choices):
        message = "needs choices:" if entry.type is SlotType.CHOICE else "has choices: but is not of type choice"
        raise doc.error(f"slot {name!r} {message}", loc)
    if (entry.type is SlotType.PATTERN) != (entry.pattern is not None):
        message = "needs pattern:" if entry.type is SlotType.PATTERN else "has pattern: but is not of type pattern"
        raise doc.error(f"slot {name!r} {message}", loc)
    choices = entry.choices if isinstance(entry.choices, dict) else {choice: [] for choice in entry.choices or []}
    rules = ValueRules(
        type=entry.type,
        choices={choice: tuple(synonyms) for choice, synonyms in choices.items()},
        pattern=re.compile(entry.pattern) if entry.pattern is not None else None,
        invalid=entry.invalid,
        **_bounds(doc, loc, entry),
    )
    if entry.default is not None:
        parsed = parse_value(rules, entry.default, today=datetime.date.today())
        if parsed.reason is not None:
            raise doc.error(f"default {entry.default!r} is not a valid {entry.type}: {parsed.reason}",
                            (*loc, "default"))
    return Slot(name, rules, tuple(entry.entities or [name]), entry.prompt, entry.default, entry.persist)


def _bounds(doc: LocatedYaml, loc: Loc, entry: _SlotEntry) -> dict[str, Any]:
    """validate: {min, max} are numbers for number and amount slots, dates or `today` for date slots."""
    if entry.bounds is None:
        return {}
    low, high = entry.bounds.min, entry.bounds.max
    if entry.type in (SlotType.NUMBER, SlotType.AMOUNT):
        if all(bound is None or isinstance(bound, float) for bound in (low, high)):
            return {"minimum": low, "maximum": high}
        raise doc.error(f"min and max of a {entry.type} slot are numbers", (*loc, "validate"))
    if entry.type is SlotType.DATE:
        if not any(isinstance(bound, float) for bound in (low, high)):
            return {"earliest": low, "latest": high}
        raise doc.error("min and max of a date slot are dates or today", (*loc, "validate"))
    raise doc.error(f"a {entry.type} slot has no min or max", (*loc, "validate"))


def _assigned(flows: Mapping[str, _FlowEntry]) -> set[str]:
    """Slot names that flows create without declaring them: action results and `set` targets."""
    names: set[str] = set()
    pending = [step for entry in flows.values() for step in entry.steps]
    while pending:
        step = pending.pop()
        if step.result is not None:
            names.add(step.result)
        names.update(step.assign or {})
        pending.extend([*(step.on_error or []), *(step.then or []), *(step.otherwise or [])])
    return names


def _check_start_intents(doc: LocatedYaml, flows: Mapping[str, Flow]) -> None:
    owners: dict[str, str] = {}
    for flow in flows.values():
        for index, intent in enumerate(flow.intents):
            if intent in owners:
                raise doc.error(f"intent {intent!r} already starts flow {owners[intent]!r}",
                                ("flows", flow.name, "start", "intents", index))
            owners[intent] = flow.name


@dataclass(frozen=True)
class _Context:
    doc: LocatedYaml
    slots: Mapping[str, Slot]
    names: set[str]  # every slot name a template or condition may read
    flows: set[str]
    actions: ActionRegistry


class _FlowCompiler:
    """Checks one flow's steps and flattens them; `if` and `on_error` become jumps."""

    def __init__(self, context: _Context, name: str) -> None:
        self.context = context
        self.doc = context.doc
        self.name = name
        self.steps: list[Step] = []
        self.used: list[str] = []
        self.results: list[str] = []

    def flow(self, entry: _FlowEntry) -> Flow:
        loc: Loc = ("flows", self.name)
        if not NAME.fullmatch(self.name):
            raise self.doc.error(f"invalid flow name {self.name!r}", loc)
        self.block(entry.steps, (*loc, "steps"))
        return Flow(self.name, entry.description, tuple(self.steps), tuple(entry.start.intents), entry.start.llm,
                    tuple(dict.fromkeys(self.used)), tuple(dict.fromkeys(self.results)))

    def block(self, entries: list[_StepEntry], loc: Loc) -> bool:
        """Compile a list of steps; True when it always ends the flow."""
        ends = False
        for index, entry in enumerate(entries):
            if ends:
                raise self.doc.error("unreachable step: the step before it always ends the flow", (*loc, index))
            ends = self.step(entry, (*loc, index))
        return ends

    def step(self, entry: _StepEntry, loc: Loc) -> bool:
        match entry.kind:
            case "collect":
                self.steps.append(self.collect(entry, loc))
            case "say":
                self.steps.append(Say(self.template(str(entry.say), (*loc, "say"))))
            case "set":
                self.steps.append(SetSlots(self.assignments(entry.assign or {}, (*loc, "set"))))
            case "action":
                self.action(entry, loc)
            case "if":
                return self.branch(entry, loc)
            case "link":
                if entry.link not in self.context.flows:
                    known = ", ".join(sorted(self.context.flows))
                    raise self.doc.error(f"unknown flow {entry.link!r} in link; known: {known}", (*loc, "link"))
                self.steps.append(Link(str(entry.link)))
                return True
            case "end":
                self.steps.append(End(entry.end or "completed"))
                return True
            case "handoff":
                self.steps.append(HandoffStep(entry.handoff if isinstance(entry.handoff, str) else self.name))
                return True
        return False

    def collect(self, entry: _StepEntry, loc: Loc) -> Collect:
        slot = self.context.slots.get(str(entry.collect))
        if slot is None:
            raise self.doc.error(f"unknown slot {entry.collect!r}: declare it under slots:", (*loc, "collect"))
        prompt = entry.prompt or slot.prompt
        if prompt is None:
            raise self.doc.error(f"collect {slot.name!r} needs a prompt: here or on the slot", loc)
        self.used.append(slot.name)
        return Collect(slot.name, self.template(prompt, (*loc, "prompt") if entry.prompt else loc))

    def action(self, entry: _StepEntry, loc: Loc) -> None:
        name = str(entry.action)
        target = self.context.actions.get(name)
        if target is None:
            raise self.doc.error(f"unknown action {name!r}: define it in actions.py or declare it under actions:",
                                 (*loc, "action"))
        args = self.arguments(target, entry.args, loc)
        if entry.result is not None:
            if not NAME.fullmatch(entry.result):
                raise self.doc.error(f"invalid slot name {entry.result!r}", (*loc, "result"))
            self.results.append(entry.result)
        at = len(self.steps)
        self.steps.append(Jump(-1))
        on_error = None
        if entry.on_error is not None:
            skip = len(self.steps)
            self.steps.append(Jump(-1))
            on_error = len(self.steps)
            self.block(entry.on_error, (*loc, "on_error"))
            self.steps[skip] = Jump(len(self.steps))
        self.steps[at] = CallAction(name, args, entry.result, entry.retries, on_error)

    def arguments(self, target: PythonAction | HttpAction, given: dict[str, Any] | list[str] | None,
                  loc: Loc) -> dict[str, Any]:
        """`args` maps parameters to slot names or templates; a list passes slots of the same name; without
        args a function gets the slots named like its parameters and an endpoint the slots collected so far."""
        if given is None:
            if isinstance(target, HttpAction):
                names = [name for name in self.used if name in self.context.slots]
            else:
                names = [name for name in target.parameters() if name in self.context.names]
            given = names
        args: dict[str, Any] = {}
        if isinstance(given, list):
            for index, name in enumerate(given):
                args[name] = self.template(f"{{{name}}}", (*loc, "args", index))
        for name, value in (given.items() if isinstance(given, dict) else ()):
            if isinstance(value, str):
                value = self.template(f"{{{value}}}" if PATH.fullmatch(value) else value, (*loc, "args", name))
            args[name] = value
        if isinstance(target, PythonAction):
            self.check_parameters(target, args, loc)
        return args

    def check_parameters(self, target: PythonAction, args: Mapping[str, Any], loc: Loc) -> None:
        parameters = target.parameters()
        open_keywords = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        for name in args:
            if name not in parameters and not open_keywords:
                raise self.doc.error(f"action {target.name!r} has no parameter {name!r}", (*loc, "args", name))
        for name, parameter in parameters.items():
            required = parameter.default is parameter.empty and parameter.kind not in (
                parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
            if required and name not in args:
                raise self.doc.error(f"action {target.name!r} needs argument {name!r}: add it under args:", loc)

    def branch(self, entry: _StepEntry, loc: Loc) -> bool:
        assert entry.condition is not None and entry.then is not None  # guaranteed by _StepEntry
        condition = entry.condition
        self.reference(condition.slot, (*loc, "if", "slot"))
        at = len(self.steps)
        self.steps.append(Jump(-1))
        then_ends = self.block(entry.then, (*loc, "then"))
        else_ends = False
        if entry.otherwise is not None:
            skip = len(self.steps)
            self.steps.append(Jump(-1))
            otherwise = len(self.steps)
            else_ends = self.block(entry.otherwise, (*loc, "else"))
            self.steps[skip] = Jump(len(self.steps))
        else:
            otherwise = len(self.steps)
        test = Condition(condition.slot, condition.equals,
                         tuple(condition.one_of) if condition.one_of is not None else None,
                         condition.filled, condition.above, condition.below)
        self.steps[at] = Branch(test, otherwise)
        return then_ends and entry.otherwise is not None and else_ends

    def assignments(self, values: Mapping[str, Any], loc: Loc) -> dict[str, Any]:
        for name, value in values.items():
            if not NAME.fullmatch(name):
                raise self.doc.error(f"invalid slot name {name!r}", (*loc, name))
            if isinstance(value, str):
                self.template(value, (*loc, name))
        return dict(values)

    def template(self, text: str, loc: Loc) -> str:
        for match in PLACEHOLDER.finditer(text):
            self.reference(match[1].strip(), loc)
        return text

    def reference(self, path: str, loc: Loc) -> None:
        if not PATH.fullmatch(path):
            raise self.doc.error(f"{{{path}}} is not a slot name (letters, digits, _ and . between parts)", loc)
        head = path.split(".")[0]
        if head not in self.context.names:
            raise self.doc.error(f"unknown slot {head!r}; known: {', '.join(sorted(self.context.names))}", loc)
        if head in self.context.slots:
            self.used.append(head)
