"""An assistant's NLU training data: intents.yaml (examples in `[value](slot)` markup) and entities.yaml.

Loading checks everything a trainer would otherwise trip over later (unknown slots, broken markup, an intent
with a single example, bad regexes) and reports it as file:line. Writing is deterministic so imported data
diffs cleanly under version control.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from chatwright.dialogue.types import Route
from chatwright.errors import ConfigError
from chatwright.nlu.markup import SLOT_NAME, EntitySpan, MarkupError, parse_markup, render_markup
from chatwright.yaml_lines import LocatedYaml, load_yaml, validate

if TYPE_CHECKING:
    from chatwright.project import AssistantProject

MIN_EXAMPLES = 2
_INTENT_NAME = re.compile(r"\S+")
_PUNCTUATION = re.compile(r"[^\w\s]")


@dataclass(frozen=True)
class Example:
    """One training utterance; `source`/`line` say where it came from so checks can point back at it."""

    text: str
    intent: str
    entities: tuple[EntitySpan, ...] = ()
    source: str | None = None
    line: int | None = None

    @property
    def markup(self) -> str:
        return render_markup(self.text, self.entities)


@dataclass(frozen=True)
class IntentSpec:
    name: str
    examples: tuple[Example, ...]
    description: str | None = None
    route: Route = Route.KNOWLEDGE
    source: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class SlotSpec:
    """How to recognise a slot's values besides the trained extractor: synonyms, a lookup list, regexes."""

    name: str
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)  # canonical value -> variants
    lookup: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()


@dataclass(frozen=True)
class NluData:
    intents: dict[str, IntentSpec]
    slots: dict[str, SlotSpec] = field(default_factory=dict)

    def examples(self) -> list[Example]:
        """All examples, intent by intent in insertion order."""
        return [example for intent in self.intents.values() for example in intent.examples]

    @property
    def labels(self) -> list[str]:
        """Intent names, sorted: the label set a classifier is trained on."""
        return sorted(self.intents)

    def used_slots(self) -> set[str]:
        return {span.slot for example in self.examples() for span in example.entities}


def normalised_text(text: str) -> str:
    """Casefolded, punctuation and extra spaces removed: examples with the same key say the same thing."""
    return " ".join(_PUNCTUATION.sub(" ", text.casefold()).split())


def implicit_slots(names: Iterable[str]) -> dict[str, SlotSpec]:
    """Slot specs with no recogniser hints, for slots that are only known from annotated examples."""
    return {name: SlotSpec(name) for name in sorted(names)}


def nlu_data_from_examples(examples: Iterable[Example], routes: Mapping[str, Route] | None = None) -> NluData:
    """Group examples by intent (in order of first appearance); slots are those the examples use."""
    grouped: dict[str, list[Example]] = {}
    for example in examples:
        grouped.setdefault(example.intent, []).append(example)
    intents = {
        name: IntentSpec(name, tuple(items), route=(routes or {}).get(name, Route.KNOWLEDGE))
        for name, items in grouped.items()
    }
    used = {span.slot for items in grouped.values() for example in items for span in example.entities}
    return NluData(intents, implicit_slots(used))


# --- loading ------------------------------------------------------------------------------------------


class _IntentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = None
    route: Route = Route.KNOWLEDGE
    examples: list[str] = Field(default_factory=list)


class _IntentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intents: dict[str, _IntentEntry]


class _SlotEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    synonyms: dict[str, list[str]] = Field(default_factory=dict)
    lookup: list[str] = Field(default_factory=list)
    regex: str | list[str] = Field(default_factory=list)


class _EntitiesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slots: dict[str, _SlotEntry | None] = Field(default_factory=dict)


def load_nlu_data(
    intents_path: Path, entities_path: Path | None = None, *, min_examples: int = MIN_EXAMPLES
) -> NluData:
    """Read and check intents.yaml and (optionally) entities.yaml; the first problem raises ConfigError.

    With an entities file, every slot used in markup must be declared there; without one, the slots used in
    markup are declared implicitly. `min_examples=0` skips the per-intent minimum so `validate_data` can list
    every small intent at once instead of stopping at the first.
    """
    slots = _load_slots(load_yaml(entities_path)) if entities_path is not None else None
    doc = load_yaml(intents_path)
    _require_text_examples(doc)
    parsed = validate(_IntentsFile, doc)
    if not parsed.intents:
        raise doc.error("no intents defined", ("intents",))
    intents: dict[str, IntentSpec] = {}
    for name, entry in parsed.intents.items():
        loc = ("intents", name)
        if not _INTENT_NAME.fullmatch(name):
            raise doc.error(f"invalid intent name {name!r}: it must be one word without spaces", loc)
        if len(entry.examples) < min_examples:
            raise doc.error(
                f"intent {name!r} has {len(entry.examples)} example(s); at least {min_examples} are "
                "needed to learn and to test it",
                loc,
            )
        examples = tuple(_example(doc, name, index, markup) for index, markup in enumerate(entry.examples))
        intents[name] = IntentSpec(
            name, examples, entry.description, entry.route, str(doc.path), doc.line_of(loc)
        )
    if slots is None:
        return NluData(intents, implicit_slots(NluData(intents).used_slots()))
    data = NluData(intents, slots)
    _check_declared_slots(doc, data, entities_path)
    return data


def _require_text_examples(doc: LocatedYaml) -> None:
    """YAML reads unquoted yes/no/on/off and numbers as non-text; say so instead of a generic type error."""
    intents = doc.data.get("intents") if isinstance(doc.data, dict) else None
    if not isinstance(intents, dict):
        return
    for name, entry in intents.items():
        examples = entry.get("examples") if isinstance(entry, dict) else None
        for index, example in enumerate(examples if isinstance(examples, list) else []):
            if not isinstance(example, str):
                raise doc.error(
                    f"example {example!r} is not text; put it in quotes (YAML reads yes, no, on, off "
                    "and numbers as other types)",
                    ("intents", name, "examples", index),
                )


def _example(doc: LocatedYaml, intent: str, index: int, markup: str) -> Example:
    loc = ("intents", intent, "examples", index)
    try:
        text, spans = parse_markup(markup)
    except MarkupError as exc:
        raise doc.error(f"{exc.message} in {markup!r} at column {exc.column}", loc) from exc
    if not text.strip():
        raise doc.error("empty example", loc)
    return Example(text, intent, spans, str(doc.path), doc.line_of(loc))


def _check_declared_slots(doc: LocatedYaml, data: NluData, entities_path: Path | None) -> None:
    for example in data.examples():
        for span in example.entities:
            if span.slot not in data.slots:
                known = ", ".join(sorted(data.slots)) or "none"
                raise ConfigError(
                    f"unknown slot {span.slot!r} in {example.markup!r}; {entities_path} declares: {known}",
                    path=doc.path,
                    line=example.line,
                )


def _load_slots(doc: LocatedYaml) -> dict[str, SlotSpec]:
    parsed = validate(_EntitiesFile, doc)
    slots: dict[str, SlotSpec] = {}
    for name, raw_entry in parsed.slots.items():
        loc: tuple[str | int, ...] = ("slots", name)
        if not SLOT_NAME.fullmatch(name):
            raise doc.error(f"invalid slot name {name!r} (letters, digits, '_', '.', '-')", loc)
        entry = raw_entry or _SlotEntry()
        regexes = [entry.regex] if isinstance(entry.regex, str) else entry.regex
        for index, pattern in enumerate(regexes):
            try:
                re.compile(pattern)
            except re.error as exc:
                where = (*loc, "regex") if isinstance(entry.regex, str) else (*loc, "regex", index)
                raise doc.error(f"invalid regular expression {pattern!r}: {exc}", where) from exc
        _check_synonyms(doc, loc, entry.synonyms)
        slots[name] = SlotSpec(
            name,
            {value: tuple(variants) for value, variants in entry.synonyms.items()},
            tuple(entry.lookup),
            tuple(regexes),
        )
    return slots


def _check_synonyms(doc: LocatedYaml, loc: tuple[str | int, ...], synonyms: dict[str, list[str]]) -> None:
    """A variant listed under two canonical values would make normalisation depend on dictionary order."""
    owner: dict[str, str] = {}
    for value, variants in synonyms.items():
        for variant in variants:
            key = variant.casefold()
            if key in owner and owner[key] != value:
                raise doc.error(
                    f"synonym {variant!r} is listed under both {owner[key]!r} and {value!r}",
                    (*loc, "synonyms", value),
                )
            owner[key] = value


# --- writing ------------------------------------------------------------------------------------------


class _ReadableDumper(yaml.SafeDumper):
    """Indents list items under their key, as people write YAML by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _dump(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(
        data,
        Dumper=_ReadableDumper,
        sort_keys=False,
        allow_unicode=True,
        width=10_000,
        default_flow_style=False,
    )
    path.write_text(text, encoding="utf-8")


def write_intents_yaml(data: NluData, path: Path) -> None:
    """Write intents sorted by name, examples in their order; defaults (route knowledge) are left out."""
    intents: dict[str, Any] = {}
    for name in data.labels:
        intent = data.intents[name]
        entry: dict[str, Any] = {}
        if intent.description:
            entry["description"] = intent.description
        if intent.route is not Route.KNOWLEDGE:
            entry["route"] = intent.route.value
        entry["examples"] = [example.markup for example in intent.examples]
        intents[name] = entry
    _dump({"intents": intents}, path)


def write_entities_yaml(data: NluData, path: Path) -> None:
    """Write slots sorted by name; a slot with no synonyms, lookup or regex is written as `{}`."""
    slots: dict[str, Any] = {}
    for name in sorted(data.slots):
        slot = data.slots[name]
        entry: dict[str, Any] = {}
        if slot.synonyms:
            entry["synonyms"] = {value: list(slot.synonyms[value]) for value in sorted(slot.synonyms)}
        if slot.lookup:
            entry["lookup"] = list(slot.lookup)
        if slot.regex:
            entry["regex"] = slot.regex[0] if len(slot.regex) == 1 else list(slot.regex)
        slots[name] = entry
    _dump({"slots": slots}, path)


def load_project_nlu_data(project: AssistantProject) -> NluData | None:
    """The project's intents.yaml (with entities.yaml when present); None for a project without intents."""
    if not project.intents_path.is_file():
        return None
    entities = project.entities_path if project.entities_path.is_file() else None
    return load_nlu_data(project.intents_path, entities)
