"""Sentiment training data: text with a negative/neutral/positive label, kept as JSONL or CSV.

Sentiment has no place in intents.yaml (it is orthogonal to intent), so it lives in its own flat file that
`chatwright data import` writes from SST-2 and the sentiment trainer reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from chatwright.errors import ConfigError
from chatwright.nlu.data_files import read_csv, read_text


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


@dataclass(frozen=True)
class SentimentExample:
    text: str
    label: Sentiment
    source: str | None = None
    line: int | None = None


def sentiment_label(raw: str, path: Path, line: int) -> Sentiment:
    """Parse a label name; anything else is a ConfigError at `path:line` listing the valid names."""
    try:
        return Sentiment(raw.strip().lower())
    except ValueError:
        valid = ", ".join(label.value for label in Sentiment)
        raise ConfigError(
            f"unknown sentiment label {raw!r}; expected one of {valid}", path=path, line=line
        ) from None


def write_sentiment_jsonl(examples: Iterable[SentimentExample], path: Path) -> None:
    """One `{"text": ..., "label": ...}` object per line, in the given order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(
                json.dumps({"text": example.text, "label": example.label.value}, ensure_ascii=False) + "\n"
            )


def load_sentiment_data(path: Path) -> list[SentimentExample]:
    """Read a `.jsonl` (text, label objects) or `.csv` (text,label header) sentiment file."""
    if path.suffix.lower() == ".csv":
        return _load_csv(path)
    if path.suffix.lower() == ".jsonl":
        return _load_jsonl(path)
    raise ConfigError("sentiment data must be a .jsonl or .csv file", path=path)


def _example(text: object, label: object, path: Path, line: int) -> SentimentExample:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("missing or empty 'text'", path=path, line=line)
    if not isinstance(label, str):
        raise ConfigError("missing 'label'", path=path, line=line)
    return SentimentExample(text.strip(), sentiment_label(label, path, line), str(path), line)


def _load_jsonl(path: Path) -> list[SentimentExample]:
    examples: list[SentimentExample] = []
    for number, raw in enumerate(read_text(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid JSON: {exc.msg}", path=path, line=number) from exc
        if not isinstance(record, dict):
            raise ConfigError(
                "each line must be a JSON object with 'text' and 'label'", path=path, line=number
            )
        examples.append(_example(record.get("text"), record.get("label"), path, number))
    return examples


def _load_csv(path: Path) -> list[SentimentExample]:
    return [
        _example(row["text"], row["label"], path, line)
        for line, row in read_csv(path, required=("text", "label"))
    ]
