"""A parsed knowledge file: its title and its text split into sections under headings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """Text under one heading path; chunks never cross sections so each keeps a single context."""

    heading_path: tuple[str, ...]  # outermost first; empty before the first heading
    text: str  # blocks separated by blank lines, list items as "- " lines


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the knowledge directory, with "/" separators
    title: str
    sections: list[Section]
