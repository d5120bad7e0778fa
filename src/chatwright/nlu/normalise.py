"""Turn how people write numbers, amounts, dates and times into values a flow can compute with.

Slots are filled from free text ("fifty euros", "next friday", "3pm"); actions need 50.0 EUR, a date and a
time. Each parser returns None for text it does not understand rather than guessing, so a caller can keep
the raw text instead. Dates are resolved against an explicit `today`, which keeps them testable.
"""

from __future__ import annotations

import calendar
import datetime
import re
from dataclasses import dataclass

_UNIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
               "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TEN_WORDS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_UNITS = {word: value for value, word in enumerate(_UNIT_WORDS)}
_TENS = {word: 10 * value for value, word in enumerate(_TEN_WORDS, 2)}
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9}
_IRREGULAR_ORDINALS = {"first": "one", "second": "two", "third": "three", "fifth": "five", "eighth": "eight",
                       "ninth": "nine", "twelfth": "twelve"}
_DIGITS = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\d+,\d{1,2}")
_DIGITS_WITH_SUFFIX = re.compile(rf"(?P<number>{_DIGITS.pattern})\s*(?P<suffix>k|m|bn|st|nd|rd|th)?")
_SUFFIX_SCALES = {"k": 1e3, "m": 1e6, "bn": 1e9}


def parse_number(text: str) -> float | None:
    """'1,200.5', '1,5', '1.5k', 'twenty-five', 'a hundred and two', 'two million', '3rd', 'twelfth' -> float."""
    return _number(text, ordinals=True)


def _number(text: str, *, ordinals: bool) -> float | None:
    cleaned = text.strip().lower()
    match = _DIGITS_WITH_SUFFIX.fullmatch(cleaned)
    if match:
        suffix = match["suffix"] or ""
        if suffix in ("st", "nd", "rd", "th") and not ordinals:
            return None
        return _digits(match["number"]) * _SUFFIX_SCALES.get(suffix, 1)
    words = cleaned.replace("-", " ").split()
    if ordinals and words:
        words[-1] = _cardinal_of_ordinal(words[-1])
    return _number_words(words)


def number_value(number: float) -> int | float:
    """A whole number as int, so 3 people is 3 in a slot and in JSON, not 3.0."""
    return int(number) if number.is_integer() else number


def _digits(text: str) -> float:
    """A comma followed by three digits groups thousands; followed by one or two it is a decimal comma."""
    if re.fullmatch(r"[+-]?\d+,\d{1,2}", text):
        return float(text.replace(",", "."))
    return float(text.replace(",", ""))


def _number_words(words: list[str]) -> float | None:
    """Spelled-out numbers; a word sequence that no one would say ('five five', 'hundred twenty one two') fails."""
    words = [word for word in words if word != "and"]
    if not words:
        return None
    total, current, needs_scale = 0.0, 0.0, False
    for word in words:
        if word in ("a", "an") and current == 0 and not needs_scale:
            current, needs_scale = 1, True
        elif word == "hundred" and 0 < current < 100:
            current, needs_scale = current * 100, False
        elif word in _SCALES and current > 0:
            total, current, needs_scale = total + current * _SCALES[word], 0, False
        elif needs_scale:
            return None
        elif (value := _UNITS.get(word, _TENS.get(word))) is not None:
            if value == 0 and len(words) > 1:
                return None
            group = current % 100
            if group and not (value < 10 and group >= 20 and group % 10 == 0):
                return None
            current += value
        elif _DIGITS.fullmatch(word) and current == 0:
            current = _digits(word)
        else:
            return None
    return None if needs_scale else total + current


def _cardinal_of_ordinal(word: str) -> str:
    if word in _IRREGULAR_ORDINALS:
        return _IRREGULAR_ORDINALS[word]
    if word.endswith("ieth"):
        return word[:-4] + "y"
    if word.endswith("th") and word[:-2] in (*_UNITS, "hundred", *_SCALES):
        return word[:-2]
    return word


# --- amounts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Amount:
    """A sum of money; `currency` is an ISO 4217 code, or None when the text named no currency."""

    value: float
    currency: str | None

    def to_json(self) -> dict[str, float | str | None]:
        return {"amount": self.value, "currency": self.currency}


_CODES = frozenset(("EUR", "USD", "GBP", "CHF", "JPY", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF",
                    "INR", "CNY"))
_SYMBOLS = {"€": "EUR", "$": "USD", "us$": "USD", "£": "GBP", "¥": "JPY", "c$": "CAD", "a$": "AUD"}
_CURRENCY_WORDS = {
    "EUR": ("euro", "euros"),
    "USD": ("dollar", "dollars", "buck", "bucks", "us dollars"),
    "GBP": ("pound", "pounds", "quid", "pounds sterling"),
    "CHF": ("franc", "francs", "swiss francs"),
    "JPY": ("yen",),
    "CAD": ("canadian dollars",),
    "AUD": ("australian dollars",),
}
_SUFFIXES = sorted(
    [(word, code) for code, words in _CURRENCY_WORDS.items() for word in words]
    + [(code.lower(), code) for code in _CODES]
    + list(_SYMBOLS.items()),
    key=lambda item: -len(item[0]),
)
_PREFIX = re.compile(r"(?P<symbol>us\$|c\$|a\$|[€$£¥])\s*|(?P<code>[a-z]{3})(?:\s+|(?=\d))")
_CODE_ALTERNATIVES = "|".join(sorted(_CODES))
_WORD_ALTERNATIVES = "|".join(re.escape(word) for word, _ in _SUFFIXES if word[0].isalpha())
_CURRENCY_BEFORE = re.compile(rf"(?:(?<![a-z])(?:us\$|c\$|a\$|{_CODE_ALTERNATIVES})|[€$£¥])\s?$", re.IGNORECASE)
_CURRENCY_AFTER = re.compile(rf"^\s?(?:[€$£¥]|(?:{_WORD_ALTERNATIVES})(?![a-z]))", re.IGNORECASE)


def currency_around(text: str, start: int, end: int) -> tuple[int, int]:
    """`text[start:end]` widened over a currency sign, code or word right before or after it.

    Entity recognisers often tag only the number of '€50' or '50 euros'; widening recovers the currency.
    """
    before = _CURRENCY_BEFORE.search(text[:start])
    after = _CURRENCY_AFTER.match(text[end:])
    return (before.start() if before else start, end + after.end() if after else end)


def parse_amount(text: str) -> Amount | None:
    """'50 euros', '€50', 'EUR 50', '$1,200.50', '50 bucks', 'fifty euros', '1.5k' -> Amount; a bare number has
    no currency. A text naming two different currencies ('$50 euros') is not an amount."""
    rest = text.strip().lower()
    prefix_currency: str | None = None
    prefix = _PREFIX.match(rest)
    if prefix and (prefix["symbol"] or prefix["code"].upper() in _CODES):
        prefix_currency = _SYMBOLS[prefix["symbol"]] if prefix["symbol"] else prefix["code"].upper()
        rest = rest[prefix.end() :]
    suffix_currency: str | None = None
    for word, code in _SUFFIXES:
        if rest.endswith(word) and (not word[-1].isalpha() or not rest[: -len(word)][-1:].isalpha()):
            suffix_currency, rest = code, rest[: -len(word)].strip()
            break
    if prefix_currency and suffix_currency and prefix_currency != suffix_currency:
        return None
    value = _number(rest, ordinals=False)
    return None if value is None else Amount(value, prefix_currency or suffix_currency)


# --- dates --------------------------------------------------------------------------------------------

_WEEKDAYS = {name: index for index, name in enumerate(calendar.day_name[i].lower() for i in range(7))}
_WEEKDAYS.update({"mon": 0, "tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3, "fri": 4, "sat": 5,
                  "sun": 6})
_MONTHS = {calendar.month_name[i].lower(): i for i in range(1, 13)}
_MONTHS.update({calendar.month_abbr[i].lower(): i for i in range(1, 13)})
_MONTHS["sept"] = 9
_FIXED = {"today": 0, "tonight": 0, "tomorrow": 1, "yesterday": -1, "day after tomorrow": 2,
          "the day after tomorrow": 2, "day before yesterday": -2, "the day before yesterday": -2}
_MONTH = "(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:\s+(?P<year>\d{4}))?"
_WEEKDAY = re.compile(r"(?:(?P<which>this|coming|next|last)\s+)?(?P<weekday>" + "|".join(_WEEKDAYS) + r")\b")
_RELATIVE = re.compile(r"in\s+(?P<n>.+?)\s+(?P<unit>day|week|month|year)s?(?:\s+time)?"
                       r"|(?P<n2>.+?)\s+(?P<unit2>day|week|month|year)s?\s+(?P<direction>ago|from now)")
_ABSOLUTE = (
    re.compile(rf"{_DAY}(?:\s+of)?\s+{_MONTH}{_YEAR}"),
    re.compile(rf"{_MONTH}\s+{_DAY}{_YEAR}"),
    re.compile(r"(?P<day>\d{1,2})[/.-](?P<month>\d{1,2})(?:[/.-](?P<year>\d{4}|\d{2}))?"),
    re.compile(r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})"),
)
_DAY_OF_MONTH = re.compile(r"(?:the\s+)?(?P<day>\d{1,2})(?:st|nd|rd|th)|the\s+(?P<word>[a-z -]+)")
_FILLER = re.compile(r"^(?:on|by|for|until|till)\s+|[.!?]+$")


def parse_date(text: str, today: datetime.date) -> datetime.date | None:
    """A date relative to `today`: 'tomorrow', 'next friday', 'in 3 weeks', '12 March', '12/03/2026', 'the 5th'.

    A weekday or day without a week, month or year is the next one that has not passed: 'friday' and 'this friday'
    are today on a Friday, 'next friday' is always after today. Numeric dates are read day first (12/03 is
    12 March), as in most of the world outside the US.
    """
    cleaned = " ".join(text.lower().replace(",", " ").split())
    cleaned = _FILLER.sub("", cleaned).strip()
    if cleaned in _FIXED:
        return today + datetime.timedelta(days=_FIXED[cleaned])
    if match := _WEEKDAY.fullmatch(cleaned):
        return _weekday(today, _WEEKDAYS[match["weekday"]], match["which"])
    if match := _RELATIVE.fullmatch(cleaned):
        return _relative(today, match)
    leading_weekday = _WEEKDAY.match(cleaned)
    if leading_weekday and leading_weekday["which"] is None:
        cleaned = cleaned[leading_weekday.end() :].strip()
    for pattern in _ABSOLUTE:
        if match := pattern.fullmatch(cleaned):
            return _absolute(today, match)
    if match := _DAY_OF_MONTH.fullmatch(cleaned):
        day = int(match["day"]) if match["day"] else parse_number(match["word"])
        return _next_day_of_month(today, int(day)) if day is not None and day == int(day) else None
    return None


def _weekday(today: datetime.date, weekday: int, which: str | None) -> datetime.date:
    ahead = (weekday - today.weekday()) % 7
    if which == "next" and ahead == 0:
        ahead = 7
    if which == "last":
        ahead = ahead - 7 if ahead else -7
    return today + datetime.timedelta(days=ahead)


def _relative(today: datetime.date, match: re.Match[str]) -> datetime.date | None:
    words = match["n"] or match["n2"]
    count = 1.0 if words in ("a", "an") else parse_number(words)
    if count is None or count != int(count):
        return None
    sign = -1 if match["direction"] == "ago" else 1
    unit = match["unit"] or match["unit2"]
    amount = sign * int(count)
    try:
        if unit in ("day", "week"):
            return today + datetime.timedelta(days=amount * (7 if unit == "week" else 1))
        months = amount * (12 if unit == "year" else 1)
        year, month = divmod(today.year * 12 + today.month - 1 + months, 12)
        return _clamped(year, month + 1, today.day)
    except (OverflowError, ValueError):  # beyond the years a date can hold
        return None


def _absolute(today: datetime.date, match: re.Match[str]) -> datetime.date | None:
    month_text = match["month"]
    month = int(month_text) if month_text.isdigit() else _MONTHS[month_text]
    day = int(match["day"])
    if match["year"]:
        year = int(match["year"])
        year += 2000 if year < 100 else 0
        return _valid(year, month, day)
    for year in range(today.year, today.year + 9):  # 9 years always reach a 29 February
        candidate = _valid(year, month, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


def _next_day_of_month(today: datetime.date, day: int) -> datetime.date | None:
    """The first date on or after today whose day of month is `day` (skipping months too short for it)."""
    if not 1 <= day <= 31:
        return None
    year, month = today.year, today.month
    for _ in range(13):
        candidate = _valid(year, month, day)
        if candidate is not None and candidate >= today:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _valid(year: int, month: int, day: int) -> datetime.date | None:
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


def _clamped(year: int, month: int, day: int) -> datetime.date:
    """'in a month' from 31 January is the last day of February, not an error."""
    return datetime.date(year, month, min(day, calendar.monthrange(year, month)[1]))


# --- times --------------------------------------------------------------------------------------------

_NAMED_TIMES = {"noon": datetime.time(12), "midday": datetime.time(12), "midnight": datetime.time(0)}
_TIME = re.compile(
    r"(?P<hour>\d{1,2})(?:[:.h](?P<minute>\d{2}))?\s*(?:(?P<meridiem>[ap])\.?m\.?|(?P<oclock>o'?clock))?"
    r"(?:\s+in\s+the\s+(?P<part>morning|afternoon|evening))?"
)
_TIME_FILLER = re.compile(r"^(?:at|around|about|by|before|after|from|until)\s+")


def parse_time(text: str) -> datetime.time | None:
    """'3pm', '3:30 p.m.', '15:30', '15h30', 'noon', '7 in the evening' -> time.

    A bare number ('3') is not a time: without minutes, am/pm or "o'clock" it is more likely a count.
    """
    cleaned = _TIME_FILLER.sub("", " ".join(text.lower().split())).rstrip(".!?,")
    if cleaned in _NAMED_TIMES:
        return _NAMED_TIMES[cleaned]
    match = _TIME.fullmatch(cleaned)
    if match is None:
        return None
    hour, minute = int(match["hour"]), int(match["minute"] or 0)
    afternoon = match["meridiem"] == "p" or match["part"] in ("afternoon", "evening")
    twelve_hour = bool(match["meridiem"] or match["part"])
    if not (match["minute"] or twelve_hour or match["oclock"]) or minute > 59:
        return None
    if twelve_hour:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if afternoon else 0)
    return datetime.time(hour, minute) if hour <= 23 else None
