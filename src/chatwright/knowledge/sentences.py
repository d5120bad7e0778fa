"""Sentence splitting for chunking and for trimming passages, robust to abbreviations, decimals and lists."""

from __future__ import annotations

import re

# Words that end with a period without ending the sentence ("e.g. Mr. Smith").
_ABBREVIATIONS = frozenset({
    "e.g", "i.e", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "approx", "dept", "est", "fig",
    "inc", "ltd", "co", "corp", "min", "max", "mt", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "a.m", "p.m", "u.s", "u.k", "cf", "al", "ca", "vol", "ed",
})
# "No. 5" and "Art. 3" abbreviate only before a number; "The answer is no. We ..." ends a sentence.
_NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "art", "p", "pp", "nr", "ch", "sec"})

_BLOCK_BREAK = re.compile(r"\n\s*\n")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
# Terminal punctuation, optional closing quotes/brackets, then space and a plausible sentence start.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])")
_LAST_WORD = re.compile(r"(\S+)$")
_SPACES = re.compile(r"\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences in order; each list item and each paragraph starts a new one, wrapped lines are joined."""
    sentences: list[str] = []
    for block in _BLOCK_BREAK.split(text):
        for unit in _units(block):
            sentences.extend(_split_unit(unit))
    return sentences


def _units(block: str) -> list[str]:
    """Lines of a block joined back into paragraphs, except that every list item stands alone."""
    units: list[str] = []
    for line in block.splitlines():
        line = line.strip()
        if not line:
            continue
        if units and not _LIST_ITEM.match(line):
            units[-1] = f"{units[-1]} {line}"
        else:
            units.append(line)
    return units


def _split_unit(unit: str) -> list[str]:
    unit = _SPACES.sub(" ", unit).strip()
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(unit):
        if _is_abbreviation(unit, match):
            continue
        sentences.append(unit[start:match.end()].strip())
        start = match.end()
    rest = unit[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def _is_abbreviation(unit: str, match: re.Match[str]) -> bool:
    if match.group().rstrip("\"'”’)]") != ".":
        return False  # "?", "!" and "..." always end a sentence
    word_match = _LAST_WORD.search(unit, 0, match.start())
    if word_match is None:
        return False
    word = word_match.group(1).lstrip("\"'“‘([").lower()
    if len(word) == 1 and word.isalpha():
        return True  # an initial, as in "J. Smith"
    if word in _ABBREVIATIONS:
        return True
    return word in _NUMBER_ABBREVIATIONS and unit[match.end():].lstrip()[:1].isdigit()


def join_sentences(sentences: list[str]) -> str:
    """Inverse of `split_sentences` for a run of sentences: list items (and table rows) keep their own lines."""
    text = ""
    previous = ""
    for sentence in sentences:
        separator = "\n" if _LIST_ITEM.match(sentence) or _LIST_ITEM.match(previous) else " "
        text = f"{text}{separator}{sentence}" if text else sentence
        previous = sentence
    return text
