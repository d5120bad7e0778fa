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
class IntentScore:
    intent: str
    confidence: float


@dataclass(frozen=True)
class EntityValue:
    """An entity found in a message: `text` as written at [start, end), `value` canonical and normalised.

    `entity` is the slot or entity type it fills (`card_type`, `amount`, `DATE`); `extractor` says what found it
    (`model`, `regex`, `lookup`, `spacy`) so a wrong value can be traced to the part that produced it.
    """

    entity: str
    value: Any
    text: str
    start: int
    end: int
    extractor: str
    confidence: float = 1.0


@dataclass(frozen=True)
class SentimentReading:
    """negative / neutral / positive with the model's confidence in that label."""

    label: Literal["negative", "neutral", "positive"]
    score: float


@dataclass(frozen=True)
class Understanding:
    """What a message means: the best intent (or out of scope), the runners-up, its entities and its sentiment."""

    intent: str
    confidence: float
    route: Route
    ranking: tuple[IntentScore, ...] = ()
    entities: tuple[EntityValue, ...] = ()
    sentiment: SentimentReading | None = None
    out_of_scope: bool = False


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
    decision: str = ""  # the policy's choice (chatwright.dialogue.policy.Decision)
    events: list[dict[str, Any]] = field(default_factory=list)  # this turn's new events, as Event.to_dict()
    flow: str | None = None  # the active flow after the turn
    slots: dict[str, Any] = field(default_factory=dict)  # the slot values after the turn

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
