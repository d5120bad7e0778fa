"""Plain records the store hands out, detached from the database session (and reused as API schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from chatwright.dialogue.types import Citation, Route

Rating = Literal["up", "down"]
Role = Literal["user", "assistant"]


class FeedbackRecord(BaseModel):
    id: int
    turn_id: str
    rating: Rating
    comment: str | None
    created_at: datetime


class TurnRecord(BaseModel):
    id: str
    conversation_id: str
    position: int
    role: Role
    text: str
    route: Route | None = None
    understanding: dict[str, Any] | None = None
    rewritten_query: str | None = None
    citations: list[Citation] = []
    abstained: bool = False
    handoff: bool = False
    error: str | None = None
    support: dict[str, float] = {}
    timings_ms: dict[str, float] = {}
    created_at: datetime
    feedback: list[FeedbackRecord] = []


class EventRecord(BaseModel):
    """A stored dialogue event: `type` and `payload` are `Event.to_dict()` split apart."""

    seq: int
    type: str
    payload: dict[str, Any]
    created_at: datetime


class ConversationRecord(BaseModel):
    id: str
    assistant: str
    created_at: datetime
    updated_at: datetime
    turns: list[TurnRecord] = []
    events: list[EventRecord] = []
