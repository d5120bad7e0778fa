"""What passes between the dialogue pipeline and its callers (server, CLI, benchmarks)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal


class Route(StrEnum):
    KNOWLEDGE = "knowledge"
    GREETING = "greeting"
    THANKS = "thanks"
    GOODBYE = "goodbye"
    HUMAN = "human"
    OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True)
class HistoryTurn:
    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class Understanding:
    intent: str
    confidence: float
    route: Route


@dataclass(frozen=True)
class Citation:
    index: int  # the [n] used in the reply text
    source: str
    title: str
    heading_path: list[str]
    text: str
    score: float


@dataclass
class Reply:
    text: str
    route: Route
    understanding: Understanding
    citations: list[Citation] = field(default_factory=list)
    abstained: bool = False
    handoff: bool = False
    rewritten_query: str | None = None
    support: dict[str, float] = field(default_factory=dict)  # the measured scores behind answering or abstaining
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["route"] = self.route.value
        data["understanding"]["route"] = self.understanding.route.value
        return data


@dataclass(frozen=True)
class Token:
    """A piece of the reply text, streamed before the final Reply."""

    text: str


ReplyEvent = Token | Reply
