"""Numbers, amounts, dates and times as people write them, parsed into values; nonsense parses to None."""

from __future__ import annotations

import datetime

import pytest

from chatwright.nlu.normalise import (
    Amount,
    currency_around,
    number_value,
    parse_amount,
    parse_date,
    parse_number,
    parse_time,
)

TODAY = datetime.date(2026, 3, 18)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50", 50),
        ("-3", -3),
        ("1,200", 1200),
        ("1,200.50", 1200.5),
        ("12,50", 12.5),
        ("3.75", 3.75),
        ("1.5k", 1500),
        ("2m", 2_000_000),
        ("zero", 0),
        ("seven", 7),
        ("Nineteen", 19),
        ("twenty", 20),
        ("twenty five", 25),
        ("twenty-five", 25),
        ("ninety-nine", 99),
        ("a hundred", 100),
        ("one hundred and five", 105),
        ("a hundred and two", 102),
        ("three hundred forty two", 342),
        ("a thousand", 1000),
        ("two thousand and five", 2005),
        ("2 million", 2_000_000),
        ("1.5 million", 1_500_000),
        ("1st", 1),
        ("22nd", 22),
        ("3rd", 3),
        ("first", 1),
        ("twelfth", 12),
        ("twentieth", 20),
        ("twenty-first", 21),
        ("one hundredth", 100),
    ],
)
def test_parse_number(text: str, expected: float) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    "text", ["", "a", "one two", "ten five", "five twenty", "zero five", "hundred", "a few", "12abc", "1,2,3"]
)
def test_parse_number_rejects_what_is_not_a_number(text: str) -> None:
    assert parse_number(text) is None


@pytest.mark.parametrize(
    ("text", "value", "currency"),
    [
        ("50 euros", 50, "EUR"),
        ("1 euro", 1, "EUR"),
        ("€50", 50, "EUR"),
        ("€ 50", 50, "EUR"),
        ("50€", 50, "EUR"),
        ("EUR 50", 50, "EUR"),
        ("eur50", 50, "EUR"),
        ("5 EUR", 5, "EUR"),
        ("$1,200.50", 1200.5, "USD"),
        ("US$ 10", 10, "USD"),
        ("50 bucks", 50, "USD"),
        ("20 dollars", 20, "USD"),
        ("usd 1,000", 1000, "USD"),
        ("£20", 20, "GBP"),
        ("20 pounds", 20, "GBP"),
        ("two hundred quid", 200, "GBP"),
        ("100 CHF", 100, "CHF"),
        ("fifty euros", 50, "EUR"),
        ("a thousand euros", 1000, "EUR"),
        ("€1.5k", 1500, "EUR"),
        ("12,50 €", 12.5, "EUR"),
        ("1.5k", 1500, None),
        ("50", 50, None),
    ],
)
def test_parse_amount(text: str, value: float, currency: str | None) -> None:
    assert parse_amount(text) == Amount(value, currency)


@pytest.mark.parametrize("text", ["", "euros", "$50 euros", "3rd", "the first euro", "lots of money", "€"])
def test_parse_amount_rejects_what_is_not_an_amount(text: str) -> None:
    assert parse_amount(text) is None


def test_amount_json_is_what_slots_store() -> None:
    assert Amount(50.0, "EUR").to_json() == {"amount": 50.0, "currency": "EUR"}
    assert Amount(7.5, None).to_json() == {"amount": 7.5, "currency": None}


def test_number_value_keeps_whole_numbers_whole() -> None:
    assert number_value(3.0) == 3 and isinstance(number_value(3.0), int)
    assert number_value(2.5) == 2.5


@pytest.mark.parametrize(
    ("text", "number", "expected"),
    [
        ("Send 50 euros to Anna", "50", "50 euros"),
        ("Pay $1,200.50 now", "1,200.50", "$1,200.50"),
        ("Pay US$ 30", "30", "US$ 30"),
        ("EUR 50 please", "50", "EUR 50"),
        ("£20 to Bob", "20", "£20"),
        ("20€ to Bob", "20", "20€"),
        ("50 pounds sterling", "50", "50 pounds sterling"),
        ("50 eurozone states", "50", "50"),
        ("tabeur 5", "5", "5"),
        ("3 people", "3", "3"),
    ],
)
def test_currency_around_widens_a_number_over_its_currency(text: str, number: str, expected: str) -> None:
    start = text.index(number)
    wide_start, wide_end = currency_around(text, start, start + len(number))
    assert text[wide_start:wide_end] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", "2026-03-18"),
        ("Tomorrow", "2026-03-19"),
        ("yesterday", "2026-03-17"),
        ("day after tomorrow", "2026-03-20"),
        ("the day after tomorrow", "2026-03-20"),
        ("the day before yesterday", "2026-03-16"),
        ("friday", "2026-03-20"),
        ("on Friday", "2026-03-20"),
        ("this friday", "2026-03-20"),
        ("next friday", "2026-03-20"),
        ("monday", "2026-03-23"),
        ("wednesday", "2026-03-18"),
        ("next wednesday", "2026-03-25"),
        ("last wednesday", "2026-03-11"),
        ("last friday", "2026-03-13"),
        ("next tues", "2026-03-24"),
        ("in 3 days", "2026-03-21"),
        ("in two weeks", "2026-04-01"),
        ("in a week", "2026-03-25"),
        ("in 2 months", "2026-05-18"),
        ("in a year", "2027-03-18"),
        ("3 days ago", "2026-03-15"),
        ("a week ago", "2026-03-11"),
        ("ten days from now", "2026-03-28"),
        ("12 March 2026", "2026-03-12"),
        ("March 12th, 2026", "2026-03-12"),
        ("12th of March 2027", "2027-03-12"),
        ("20 March", "2026-03-20"),
        ("March 20th", "2026-03-20"),
        ("sept 3", "2026-09-03"),
        ("12 March", "2027-03-12"),
        ("Friday, 20 March", "2026-03-20"),
        ("12/03/2026", "2026-03-12"),
        ("12.03.26", "2026-03-12"),
        ("1-4-2026", "2026-04-01"),
        ("25/12", "2026-12-25"),
        ("2026-12-01", "2026-12-01"),
        ("the 5th", "2026-04-05"),
        ("the 18th", "2026-03-18"),
        ("on the 31st", "2026-03-31"),
        ("the fifth", "2026-04-05"),
        ("29 February", "2028-02-29"),
    ],
)
def test_parse_date(text: str, expected: str) -> None:
    assert parse_date(text, TODAY) == datetime.date.fromisoformat(expected)


def test_relative_month_keeps_to_the_end_of_a_short_month() -> None:
    assert parse_date("in a month", datetime.date(2026, 1, 31)) == datetime.date(2026, 2, 28)


def test_day_of_month_skips_months_too_short_for_it() -> None:
    assert parse_date("the 31st", datetime.date(2026, 4, 2)) == datetime.date(2026, 5, 31)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "soon",
        "the weekend",
        "next week",
        "31/02/2026",
        "13/13/2026",
        "the 32nd",
        "monthly",
        "in x days",
        "in 1.5 days",
        "in 99999999 days",
        "in 9000 years",
    ],
)
def test_parse_date_rejects_what_it_cannot_place(text: str) -> None:
    assert parse_date(text, TODAY) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3pm", "15:00"),
        ("3 PM", "15:00"),
        ("3:30 p.m.", "15:30"),
        ("at 9am", "09:00"),
        ("12am", "00:00"),
        ("12pm", "12:00"),
        ("15:30", "15:30"),
        ("15h30", "15:30"),
        ("9.15", "09:15"),
        ("around 08:05", "08:05"),
        ("3 o'clock", "03:00"),
        ("7 in the evening", "19:00"),
        ("10 in the morning", "10:00"),
        ("noon", "12:00"),
        ("midnight", "00:00"),
    ],
)
def test_parse_time(text: str, expected: str) -> None:
    assert parse_time(text) == datetime.time.fromisoformat(expected)


@pytest.mark.parametrize("text", ["", "3", "25:00", "13pm", "0am", "12:75", "later", "this morning"])
def test_parse_time_rejects_what_is_not_a_clock_time(text: str) -> None:
    assert parse_time(text) is None
