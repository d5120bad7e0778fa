"""Reading text and CSV data files so that every failure is a ConfigError naming the file and line."""

from __future__ import annotations

import csv
from collections.abc import Collection
from pathlib import Path

from chatwright.errors import ConfigError

CsvRecord = tuple[int, dict[str, str]]  # (line where the record starts, column -> value)


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", path=path) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read file ({exc.strerror})", path=path) from exc


def read_lines(path: Path) -> list[str]:
    """Lines without their line breaks; blank lines at the end of the file are dropped."""
    lines = read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def read_csv(path: Path, *, delimiter: str = ",", required: Collection[str] = ()) -> list[CsvRecord]:
    """Rows of a CSV file with a header, keyed by column name; blank rows are skipped.

    Missing `required` columns are reported at line 1, a row with the wrong number of fields at its own line.
    """
    read_text(path)  # fail early, with a clear message, on unreadable or non-UTF-8 files
    records: list[CsvRecord] = []
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter=delimiter)
        try:
            header = [name.strip() for name in next(rows, [])]
            missing = [name for name in required if name not in header]
            if missing:
                raise ConfigError(
                    f"missing column(s) {', '.join(missing)} in the header {delimiter.join(header)!r} "
                    f"(fields separated by {delimiter!r})",
                    path=path,
                    line=1,
                )
            start = rows.line_num + 1
            for row in rows:
                if any(field.strip() for field in row):
                    if len(row) != len(header):
                        raise ConfigError(
                            f"expected {len(header)} fields separated by {delimiter!r}, found {len(row)}",
                            path=path,
                            line=start,
                        )
                    records.append((start, dict(zip(header, row, strict=True))))
                start = rows.line_num + 1
        except csv.Error as exc:
            raise ConfigError(f"malformed CSV: {exc}", path=path, line=rows.line_num) from exc
    return records
