"""YAML loading that remembers the line of every value, so validation errors can point at file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from chatwright.errors import ConfigError

Loc = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)


class LocatedYaml:
    """Parsed YAML data plus the 1-based line of every node, addressed by its key path."""

    def __init__(self, data: Any, lines: dict[Loc, int], path: Path) -> None:
        self.data = data
        self.lines = lines
        self.path = path

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest known node on the path `loc` (falls back to parents)."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None

    def error(self, message: str, loc: Loc = (), field: str | None = None) -> ConfigError:
        return ConfigError(message, path=self.path, line=self.line_of(loc),
                           field=field if field is not None else ".".join(str(p) for p in loc) or None)


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*loc, key), lines)
            lines[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), lines)


def load_yaml(path: Path) -> LocatedYaml:
    """Read a YAML file; syntax errors become ConfigError with the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file ({exc.strerror})", path=path) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise ConfigError(f"invalid YAML: {exc.problem}", path=path, line=line) from exc
    lines: dict[Loc, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return LocatedYaml({} if data is None else data, lines, path)


def validate(model: type[ModelT], doc: LocatedYaml, loc: Loc = ()) -> ModelT:
    """Validate `doc.data` (or the part at `loc`) against a pydantic model; the first error names file:line."""
    data: Any = doc.data
    for part in loc:
        data = data[part]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        err_loc: Loc = (*loc, *first["loc"])
        raise doc.error(first["msg"], err_loc) from exc
