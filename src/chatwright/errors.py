"""Errors that name what went wrong and where, so users can fix their input without reading tracebacks."""

from __future__ import annotations

from pathlib import Path


class ChatwrightError(Exception):
    """Base class for errors meant to be shown to a user."""


class ConfigError(ChatwrightError):
    """A configuration or data file is invalid; carries the file, line and field at fault."""

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class ModelLoadError(ChatwrightError):
    """A model reference could not be turned into a loaded model."""


class GenerationUnavailable(ChatwrightError):
    """The language model could not produce text (endpoint unreachable, timed out, crashed)."""


class InputError(ChatwrightError):
    """A user message or request is unacceptable (empty, too long, unknown conversation)."""
