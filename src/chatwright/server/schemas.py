"""Request and response bodies of the HTTP API (stored records are returned as they are)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from chatwright.store.records import Rating, TurnRecord


class MessageIn(BaseModel):
    text: str = Field(description="the user's message; its length limit is in GET /api/health")


class MessageResult(BaseModel):
    """A finished turn: the stored user message's id and the stored reply (whose id takes feedback)."""

    user_turn_id: str
    turn: TurnRecord


class ConversationCreated(BaseModel):
    id: str


class FeedbackIn(BaseModel):
    rating: Rating
    comment: str | None = Field(default=None, max_length=4000)


class ModelsInfo(BaseModel):
    llm: str
    embedder: str


class Health(BaseModel):
    status: str
    version: str
    assistant: str
    models: ModelsInfo
    database: str
    max_message_chars: int
