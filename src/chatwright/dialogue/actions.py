"""Actions: what flows call to get things done, as the owner's Python functions (actions.py) or HTTP endpoints.

Slot values are JSON data; a function's type hints say what it wants (`amount: float`, `when: date`, `Amount`),
so arguments are converted to them before the call. Every call has a timeout, and every failure (an exception,
a timeout, a bad HTTP status, a result that isn't JSON) becomes `ActionFailed`, so a flow can tell the user
politely and log what happened instead of crashing the conversation.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import importlib.util
import inspect
import os
import sys
import threading
import traceback
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, overload

import httpx

from chatwright.dialogue.events import to_jsonable
from chatwright.dialogue.slot_values import SlotType, display_value
from chatwright.errors import ChatwrightError, ConfigError
from chatwright.nlu.normalise import Amount

DEFAULT_TIMEOUT_S = 10.0
_MARK = "__chatwright_action__"
P = ParamSpec("P")
R = TypeVar("R")


class ActionFailed(ChatwrightError):
    """An action raised, returned something unusable or could not be reached; `message` is for the log."""

    def __init__(self, action: str, message: str) -> None:
        self.action = action
        self.message = message
        super().__init__(f"action {action!r} failed: {message}")


class ActionTimeout(ActionFailed):
    """An action did not answer within its timeout."""


@dataclass(frozen=True)
class _Mark:
    name: str | None
    timeout_s: float | None


@overload
def action(function: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def action(*, name: str | None = None,
           timeout_s: float | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def action(function: Callable[P, R] | None = None, /, *, name: str | None = None,
           timeout_s: float | None = None) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a function in actions.py as an action, optionally renamed or with its own timeout.

    Once one function is marked, only marked ones are actions, so the module can keep undecorated helpers.
    """

    def mark(target: Callable[P, R]) -> Callable[P, R]:
        setattr(target, _MARK, _Mark(name, timeout_s))
        return target

    return mark(function) if function is not None else mark


@dataclass(frozen=True)
class PythonAction:
    name: str
    function: Callable[..., Any]
    timeout_s: float = DEFAULT_TIMEOUT_S

    def parameters(self) -> Mapping[str, inspect.Parameter]:
        return inspect.signature(self.function).parameters


@dataclass(frozen=True)
class HttpAction:
    """An endpoint that takes the arguments as JSON (as query parameters for GET) and answers JSON.

    `${NAME}` in a header value is read from the environment at call time, so secrets stay out of flows.yaml.
    """

    name: str
    url: str
    method: str = "POST"
    timeout_s: float = DEFAULT_TIMEOUT_S
    headers: Mapping[str, str] = field(default_factory=dict)


Action = PythonAction | HttpAction


class ActionRegistry:
    """The actions a flow may call, by name."""

    def __init__(self, actions: Iterable[Action] = ()) -> None:
        self._actions: dict[str, Action] = {}
        for item in actions:
            if item.name in self._actions:
                raise ValueError(f"two actions are named {item.name!r}")
            self._actions[item.name] = item

    @classmethod
    def from_file(cls, path: Path, *, default_timeout_s: float = DEFAULT_TIMEOUT_S) -> ActionRegistry:
        """The actions in the owner's actions.py; an error while importing it is a ConfigError at its line."""
        module = _import(path)
        functions = [value for key, value in vars(module).items()
                     if inspect.isfunction(value) and value.__module__ == module.__name__ and not key.startswith("_")]
        marked = [function for function in functions if hasattr(function, _MARK)]
        found: list[Action] = []
        for function in marked or functions:
            mark = getattr(function, _MARK, _Mark(None, None))
            found.append(PythonAction(mark.name or function.__name__, function, mark.timeout_s or default_timeout_s))
        return cls(found)

    def with_actions(self, more: Iterable[Action]) -> ActionRegistry:
        return ActionRegistry([*self._actions.values(), *more])

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def get(self, name: str) -> Action | None:
        return self._actions.get(name)

    def call(self, name: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Run an action and return its result as a JSON object (a scalar result becomes `{"value": ...}`)."""
        target = self._actions.get(name)
        if target is None:
            raise ActionFailed(name, "no such action")
        if isinstance(target, HttpAction):
            return _call_http(target, args)
        return _result(name, _call_python(target, args))


def _import(path: Path) -> types.ModuleType:
    if not path.is_file():
        raise ConfigError("file not found", path=path)
    module_name = "chatwright_actions_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError("cannot load this file as Python", path=path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        if isinstance(exc, SyntaxError):
            raise ConfigError(f"syntax error: {exc.msg}", path=path, line=exc.lineno) from exc
        frames = traceback.extract_tb(exc.__traceback__)
        lines = [frame.lineno for frame in frames if Path(frame.filename).resolve() == path.resolve()]
        raise ConfigError(f"importing it raised {type(exc).__name__}: {exc}", path=path,
                          line=lines[-1] if lines else None) from exc
    return module


def _call_python(target: PythonAction, args: Mapping[str, Any]) -> Any:
    """Run in a daemon thread: a stuck action is abandoned after its timeout and never blocks shutdown."""
    kwargs = _bind(target, args)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            result = target.function(**kwargs)
            outcome["result"] = asyncio.run(result) if inspect.iscoroutine(result) else result
        except BaseException as exc:  # reported to the caller below, whatever it was
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"action-{target.name}", daemon=True)
    worker.start()
    worker.join(target.timeout_s)
    if worker.is_alive():
        raise ActionTimeout(target.name, f"no answer within {target.timeout_s:g} s")
    if "error" in outcome:
        error = outcome["error"]
        raise ActionFailed(target.name, f"{type(error).__name__}: {error}") from error
    return outcome["result"]


def _bind(target: PythonAction, args: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments converted to the parameters' type hints; empty slots fall back to parameter defaults,
    and a `**kwargs` parameter takes the arguments no other parameter names."""
    try:
        hints = typing.get_type_hints(target.function)
    except Exception:  # unresolvable hints: pass the values as they are
        hints = {}
    parameters = target.parameters()
    kwargs: dict[str, Any] = {}
    for name, parameter in parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        value, hint = args.get(name), hints.get(name, Any)
        if value is None and parameter.default is not parameter.empty:
            continue
        if value is None and not _accepts_none(hint):
            raise ActionFailed(target.name, f"no value for argument {name!r}")
        try:
            kwargs[name] = _coerce(value, hint)
        except (TypeError, ValueError, InvalidOperation) as exc:
            raise ActionFailed(target.name, f"argument {name!r}: {exc}") from exc
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values()):
        kwargs.update({name: value for name, value in args.items() if name not in parameters})
    return kwargs


def _accepts_none(hint: Any) -> bool:
    return hint is Any or hint is None or type(None) in typing.get_args(hint)


def _coerce(value: Any, hint: Any) -> Any:
    """`value` as an instance of `hint`; raises TypeError or ValueError when it cannot be one."""
    if hint is Any or value is None:
        return value
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is not type(None):
                try:
                    return _coerce(value, option)
                except (TypeError, ValueError, InvalidOperation):
                    continue
        raise TypeError(f"{value!r} fits none of {hint}")
    origin = typing.get_origin(hint) or hint
    amount = value.get("amount") if isinstance(value, Mapping) else None
    if hint is str:
        kind = SlotType.AMOUNT if amount is not None else None
        return value if isinstance(value, str) else display_value(value, kind)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if str(value).casefold() in ("yes", "true", "1"):
            return True
        if str(value).casefold() in ("no", "false", "0"):
            return False
        raise ValueError(f"{value!r} is not yes or no")
    if hint in (int, float, Decimal):
        number = amount if amount is not None else value
        if isinstance(number, bool):
            raise TypeError(f"{value!r} is not a number")
        if hint is int:
            if float(number) != int(float(number)):
                raise ValueError(f"{value!r} is not a whole number")
            return int(float(number))
        return Decimal(str(number)) if hint is Decimal else float(number)
    if hint is Amount:
        if amount is None:
            raise TypeError(f"{value!r} is not an amount")
        return Amount(float(amount), value.get("currency"))
    if hint is datetime.date:
        return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(str(value))
    if isinstance(origin, type) and isinstance(value, origin):
        return value
    raise TypeError(f"{value!r} is not a {getattr(hint, '__name__', hint)}")


def _call_http(target: HttpAction, args: Mapping[str, Any]) -> dict[str, Any]:
    headers = {key: os.path.expandvars(value) for key, value in target.headers.items()}
    payload = to_jsonable(dict(args))
    query = payload if target.method == "GET" else None
    body = None if target.method == "GET" else payload
    try:
        response = httpx.request(target.method, target.url, params=query, json=body, headers=headers,
                                 timeout=target.timeout_s)
    except httpx.TimeoutException as exc:
        raise ActionTimeout(target.name, f"no answer within {target.timeout_s:g} s from {target.url}") from exc
    except httpx.HTTPError as exc:
        raise ActionFailed(target.name, f"{type(exc).__name__} calling {target.url}: {exc}") from exc
    if response.is_error:
        raise ActionFailed(target.name, f"HTTP {response.status_code} from {target.url}: {response.text[:200]}")
    if not response.content.strip():
        return {}
    try:
        data = response.json()
    except ValueError as exc:
        raise ActionFailed(target.name, f"the answer from {target.url} is not JSON") from exc
    return _result(target.name, data)


def _result(name: str, value: Any) -> dict[str, Any]:
    try:
        data = to_jsonable(value)
    except TypeError as exc:
        raise ActionFailed(name, f"returned {exc}") from exc
    if data is None:
        return {}
    return data if isinstance(data, dict) else {"value": data}

