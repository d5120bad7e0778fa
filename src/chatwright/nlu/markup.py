"""The `[value](slot)` example markup and BIO tags: the two ways training data marks entities in text.

Markup is what people write in intents.yaml; BIO tags are what slot-filling datasets ship and what token
classifiers train on. Both convert to plain text plus character spans, so the rest of the code sees one form.
Literal brackets in text are written `\\[` and `\\]` (and a literal backslash `\\\\`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SLOT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_SPECIAL = "[]\\"
_TOKEN = re.compile(r"\S+")
_WORD = re.compile(r"\w+(?:['’.,:/-]\w+)*|[^\w\s]")

# A tokenizer returns the (start, end) character offsets of each token of a text.
Tokenizer = Callable[[str], list[tuple[int, int]]]


@dataclass(frozen=True)
class EntitySpan:
    """One entity mention: `text[start:end] == value`, filling `slot`."""

    start: int
    end: int
    value: str
    slot: str


class MarkupError(ValueError):
    """Malformed markup; `column` (1-based) points at the offending character of the marked-up string."""

    def __init__(self, message: str, column: int) -> None:
        self.message = message
        self.column = column
        super().__init__(f"{message} (column {column})")


def parse_markup(markup: str) -> tuple[str, tuple[EntitySpan, ...]]:
    """Split `how much on my [Visa](card_type)` into plain text and entity spans."""
    text: list[str] = []
    spans: list[EntitySpan] = []
    open_at: int | None = None  # index in `markup` of the '[' of the entity being read
    entity_start = 0  # offset in the plain text where that entity starts
    i = 0
    while i < len(markup):
        char = markup[i]
        if char == "\\" and i + 1 < len(markup) and markup[i + 1] in _SPECIAL:
            text.append(markup[i + 1])
            i += 2
            continue
        if char == "[":
            if open_at is not None:
                raise MarkupError("'[' inside another entity; entities cannot nest", i + 1)
            open_at, entity_start = i, len(text)
        elif char == "]":
            if open_at is None:
                raise MarkupError("unbalanced ']' without a matching '['", i + 1)
            slot, i = _read_slot(markup, i)
            if entity_start == len(text):
                raise MarkupError(f"empty entity value for slot {slot!r}", open_at + 1)
            spans.append(EntitySpan(entity_start, len(text), "".join(text[entity_start:]), slot))
            open_at = None
            continue
        else:
            text.append(char)
        i += 1
    if open_at is not None:
        raise MarkupError("unbalanced '[': the entity is never closed with '](slot)'", open_at + 1)
    return "".join(text), tuple(spans)


def _read_slot(markup: str, close_at: int) -> tuple[str, int]:
    """Read the `(slot)` after the ']' at `close_at`; return the slot and the index after ')'."""
    if not markup.startswith("(", close_at + 1):
        raise MarkupError("']' must be followed by '(slot)'", close_at + 2)
    close_paren = markup.find(")", close_at + 2)
    if close_paren < 0:
        raise MarkupError("unbalanced '(': the slot name is never closed with ')'", close_at + 2)
    slot = markup[close_at + 2 : close_paren].strip()
    if not slot:
        raise MarkupError("empty slot name in '[value]()'", close_at + 2)
    if not SLOT_NAME.fullmatch(slot):
        raise MarkupError(f"invalid slot name {slot!r} (letters, digits, '_', '.', '-')", close_at + 3)
    return slot, close_paren + 1


def escape_markup(text: str) -> str:
    """Escape the characters that markup gives a meaning to, so plain text survives a round trip."""
    return "".join(f"\\{char}" if char in _SPECIAL else char for char in text)


def render_markup(text: str, spans: Sequence[EntitySpan]) -> str:
    """Inverse of parse_markup: write spans back into the text as `[value](slot)`."""
    parts: list[str] = []
    position = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < position:
            raise ValueError(f"entity spans overlap at character {span.start} of {text!r}")
        parts.append(escape_markup(text[position : span.start]))
        parts.append(f"[{escape_markup(text[span.start : span.end])}]({span.slot})")
        position = span.end
    parts.append(escape_markup(text[position:]))
    return "".join(parts)


def whitespace_tokens(text: str) -> list[tuple[int, int]]:
    """Character offsets of whitespace-separated tokens: how SNIPS and ATIS tokenise."""
    return [match.span() for match in _TOKEN.finditer(text)]


def word_tokens(text: str) -> list[tuple[int, int]]:
    """Character offsets of words, with punctuation split off ("Anna," → "Anna", ","): how the slot tagger reads
    text, so an entity never absorbs the comma or question mark after it. Pre-tokenised data is unchanged."""
    return [match.span() for match in _WORD.finditer(text)]


def to_bio(
    text: str, spans: Sequence[EntitySpan], tokenizer: Tokenizer = whitespace_tokens
) -> tuple[list[str], list[str]]:
    """Tokens of `text` and their BIO tags; a token overlapping an entity is tagged with its slot."""
    tokens: list[str] = []
    tags: list[str] = []
    previous: EntitySpan | None = None
    for start, end in tokenizer(text):
        tokens.append(text[start:end])
        span = next((s for s in spans if s.start < end and start < s.end), None)
        if span is None:
            tags.append("O")
        else:
            tags.append(f"{'I' if span is previous else 'B'}-{span.slot}")
        previous = span
    return tokens, tags


def from_bio(tokens: Sequence[str], tags: Sequence[str]) -> tuple[str, tuple[EntitySpan, ...]]:
    """Join tokens with single spaces and turn BIO tags into spans.

    An `I-x` that does not continue an `x` entity starts a new one, the usual reading of imperfect data.
    Raises ValueError naming the token for a tag count mismatch or a tag that is not O, B-x or I-x.
    """
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    text = " ".join(tokens)
    pieces: list[tuple[int, int, str]] = []
    inside: str | None = None  # slot of the entity the previous token belonged to
    offset = 0
    for index, (token, tag) in enumerate(zip(tokens, tags, strict=True)):
        start, end = offset, offset + len(token)
        offset = end + 1
        if tag == "O":
            inside = None
            continue
        prefix, _, slot = tag.partition("-")
        if prefix not in ("B", "I") or not SLOT_NAME.fullmatch(slot):
            raise ValueError(
                f"invalid tag {tag!r} for token {index + 1} ({token!r}); expected O, B-slot or I-slot"
            )
        if prefix == "I" and inside == slot:
            pieces[-1] = (pieces[-1][0], end, slot)
        else:
            pieces.append((start, end, slot))
        inside = slot
    return text, tuple(EntitySpan(start, end, text[start:end], slot) for start, end, slot in pieces)
