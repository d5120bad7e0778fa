"""Turning what a user wrote (or an entity the NLU found) into a slot value, or into the reason to ask again.

Values are kept JSON-ready (an amount is `{"amount", "currency"}`, a date ISO text) because they go into the
event log as they are; `display_value` writes them back for people.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeVar

from chatwright.nlu.normalise import Amount, parse_amount, parse_date, parse_number

ParsedT = TypeVar("ParsedT")
DateBound = datetime.date | Literal["today"]

MAX_WINDOW_WORDS = 6
YES_NO_SYNONYMS: dict[str, tuple[str, ...]] = {
    "yes": ("yeah", "yep", "yup", "sure", "ok", "okay", "correct", "right", "y", "go ahead", "do it", "confirm",
            "absolutely", "of course", "please do", "that's right"),
    "no": ("nope", "nah", "n", "cancel", "stop", "no thanks", "not now", "wrong"),
}
_WORDS = re.compile(r"[^\w']+")
_EDGE_PUNCTUATION = ".,!?;:\"'()"


class SlotType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    AMOUNT = "amount"
    DATE = "date"
    CHOICE = "choice"
    PATTERN = "pattern"


@dataclass(frozen=True)
class ValueRules:
    """What a slot accepts. `choices` maps each canonical value to its synonyms; `invalid` replaces every reason."""

    type: SlotType = SlotType.TEXT
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pattern: re.Pattern[str] | None = None
    invalid: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    earliest: DateBound | None = None
    latest: DateBound | None = None


@dataclass(frozen=True)
class SlotParse:
    """A parsed value, or the sentence that tells the user why it was not accepted and asks again."""

    value: Any = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def parse_value(rules: ValueRules, raw: Any, *, today: datetime.date, prompt: str | None = None) -> SlotParse:
    """Parse an entity value or a whole message; a rejection's reason ends with `prompt` so it re-asks."""
    value, problem = _parse(rules, raw, today)
    if problem is None:
        return SlotParse(value)
    reason = rules.invalid or problem
    return SlotParse(reason=f"{reason} {prompt}" if prompt else reason)


def display_value(value: Any, kind: SlotType | None = None) -> str:
    """How a value reads in a reply: amounts with two decimals and their currency, dates spelled out."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if kind is SlotType.AMOUNT and isinstance(value, Mapping):
        number = f"{float(value['amount']):,.2f}"
        return f"{number} {value['currency']}" if value.get("currency") else number
    if kind is SlotType.DATE and isinstance(value, str):
        day = datetime.date.fromisoformat(value)
        return f"{day.day} {day:%B %Y}"
    if isinstance(value, float):
        return _number_text(value)
    return str(value)


def _parse(rules: ValueRules, raw: Any, today: datetime.date) -> tuple[Any, str | None]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, "I didn't catch that."
    match rules.type:
        case SlotType.NUMBER:
            number = _as_number(raw)
            return (None, "That doesn't look like a number.") if number is None else _bounded(rules, number, number)
        case SlotType.AMOUNT:
            amount = _as_amount(raw)
            if amount is None:
                return None, "That doesn't look like an amount."
            return _bounded(rules, amount.value, amount.to_json())
        case SlotType.DATE:
            day = _as_date(raw, today)
            return (None, "That doesn't look like a date.") if day is None else _date_bounded(rules, day, today)
        case SlotType.CHOICE:
            choice = _choose(rules.choices, str(raw))
            return (None, f"Please answer {_listed(list(rules.choices))}.") if choice is None else (choice, None)
        case SlotType.PATTERN:
            text = str(raw).strip()
            accepted = rules.pattern is None or rules.pattern.search(text)
            return (text, None) if accepted else (None, "That isn't in the expected format.")
        case _:
            return str(raw).strip(), None


def _as_number(raw: Any) -> float | None:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    return _find(str(raw), parse_number)


def _as_amount(raw: Any) -> Amount | None:
    if isinstance(raw, Amount):
        return raw
    if isinstance(raw, Mapping) and isinstance(raw.get("amount"), int | float):
        return Amount(float(raw["amount"]), raw.get("currency"))
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return Amount(float(raw), None)
    return _find(str(raw), parse_amount)


def _as_date(raw: Any, today: datetime.date) -> datetime.date | None:
    if isinstance(raw, datetime.datetime):
        return raw.date()
    if isinstance(raw, datetime.date):
        return raw
    text = str(raw)
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        return _find(text, lambda part: parse_date(part, today))


def _find(text: str, parse: Callable[[str], ParsedT | None]) -> ParsedT | None:
    """The whole text if it parses, else its longest (then leftmost) run of words that does: 'send 50 euros now'."""
    whole = parse(text.strip(_EDGE_PUNCTUATION + " "))
    if whole is not None:
        return whole
    words = text.split()
    for size in range(min(len(words), MAX_WINDOW_WORDS), 0, -1):
        for start in range(len(words) - size + 1):
            part = " ".join(words[start : start + size]).strip(_EDGE_PUNCTUATION)
            if part and (found := parse(part)) is not None:
                return found
    return None


def _bounded(rules: ValueRules, number: float, value: Any) -> tuple[Any, str | None]:
    if rules.minimum is not None and number < rules.minimum:
        return None, f"That's less than the minimum of {_number_text(rules.minimum)}."
    if rules.maximum is not None and number > rules.maximum:
        return None, f"That's more than the maximum of {_number_text(rules.maximum)}."
    return value, None


def _date_bounded(rules: ValueRules, day: datetime.date, today: datetime.date) -> tuple[Any, str | None]:
    earliest = today if rules.earliest == "today" else rules.earliest
    latest = today if rules.latest == "today" else rules.latest
    if isinstance(earliest, datetime.date) and day < earliest:
        return None, "That date is in the past." if rules.earliest == "today" else (
            f"That date is before {display_value(earliest.isoformat(), SlotType.DATE)}.")
    if isinstance(latest, datetime.date) and day > latest:
        return None, "That date is in the future." if rules.latest == "today" else (
            f"That date is after {display_value(latest.isoformat(), SlotType.DATE)}.")
    return day.isoformat(), None


def _choose(choices: Mapping[str, tuple[str, ...]], text: str) -> str | None:
    """The one choice the text names: exactly, as its first words ('yes please'), or anywhere for the owner's own
    choices ('the visa card'); naming two is no answer. Yes and no only match at the start, so 'not sure' is not
    read as 'sure'."""
    said = _words(text)
    starts: set[str] = set()
    anywhere: set[str] = set()
    for canonical, synonyms in choices.items():
        built_in = YES_NO_SYNONYMS.get(canonical.casefold(), ())
        for phrase in (canonical, *synonyms, *built_in):
            words = _words(phrase)
            if not words:
                continue
            if said == words:
                return canonical
            if said.startswith(words + " "):
                starts.add(canonical)
            elif canonical.casefold() not in YES_NO_SYNONYMS and f" {words} " in f" {said} ":
                anywhere.add(canonical)
    found = starts | anywhere
    return next(iter(found)) if len(found) == 1 else None


def _words(text: str) -> str:
    return " ".join(_WORDS.sub(" ", text.casefold()).split())


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _number_text(number: float) -> str:
    return f"{int(number):,}" if number == int(number) else f"{number:,}"
