"""The HTTP API and the web chat page, built around an assistant and a conversation store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from chatwright import __version__
from chatwright.dialogue.types import Token
from chatwright.errors import InputError
from chatwright.server.schemas import (
    ConversationCreated,
    FeedbackIn,
    Health,
    MessageIn,
    MessageResult,
    ModelsInfo,
)
from chatwright.server.turns import ChatAssistant, PendingTurn, TurnDone, TurnEvent, TurnRunner
from chatwright.store.records import ConversationRecord, FeedbackRecord
from chatwright.store.repository import ConversationStore, RecordNotFound

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).with_name("static")


@dataclass(frozen=True)
class Services:
    """What the endpoints depend on, kept on the app (not in globals) so tests can build several apps."""

    assistant: ChatAssistant
    store: ConversationStore
    turns: TurnRunner
    max_message_chars: int


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
api = APIRouter(prefix="/api")


def create_app(assistant: ChatAssistant, store: ConversationStore, *, max_message_chars: int,
               history_limit: int = 20) -> FastAPI:
    """The server for one assistant. SQLite stores need a single worker process; PostgreSQL allows several."""
    turns = TurnRunner(assistant, store, history_limit=history_limit)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await turns.drain()

    app = FastAPI(title=f"chatwright: {assistant.name}", lifespan=lifespan)
    app.state.services = Services(assistant, store, turns, max_message_chars)
    app.include_router(api)
    app.add_exception_handler(InputError, _input_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def chat_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    return app


async def _input_error(_request: Request, exc: Exception) -> JSONResponse:
    not_found = isinstance(exc, RecordNotFound)
    code = status.HTTP_404_NOT_FOUND if not_found else status.HTTP_422_UNPROCESSABLE_CONTENT
    return JSONResponse({"detail": str(exc)}, status_code=code)


@api.get("/health", response_model=Health)
def health(services: ServicesDep) -> Health | JSONResponse:
    models = services.assistant.config.models
    llm = models.llm if isinstance(models.llm, str) else f"{models.llm.model} at {models.llm.endpoint}"
    report = Health(status="ok", version=__version__, assistant=services.assistant.name,
                    models=ModelsInfo(llm=llm, embedder=models.embedder), database=services.store.backend,
                    max_message_chars=services.max_message_chars)
    try:
        services.store.check()
    except Exception as exc:
        log.warning("health.database_unreachable", error=str(exc))
        report.status = "database unreachable"
        return JSONResponse(report.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return report


@api.post("/conversations", status_code=status.HTTP_201_CREATED)
def create_conversation(services: ServicesDep) -> ConversationCreated:
    return ConversationCreated(id=services.store.create_conversation(services.assistant.name).id)


@api.get("/conversations/{conversation_id}")
def read_conversation(conversation_id: str, services: ServicesDep) -> ConversationRecord:
    return services.store.get_conversation(conversation_id)


@api.post("/conversations/{conversation_id}/messages", response_model=MessageResult,
          responses={200: {"content": {"text/event-stream": {}}}})
async def send_message(conversation_id: str, message: MessageIn, request: Request, services: ServicesDep,
                       stream: bool = False) -> MessageResult | StreamingResponse:
    """Reply as JSON, or as Server-Sent Events (`token`s, then `done` or `error`) when streaming is asked."""
    text = _checked_text(message.text, services.max_message_chars)
    if not await run_in_threadpool(services.store.conversation_exists, conversation_id):
        raise RecordNotFound(f"no conversation {conversation_id}")
    pending = services.turns.start(conversation_id, text)
    if stream or "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(_sse(pending), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    outcome = await pending.outcome()
    if not isinstance(outcome, TurnDone):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=outcome.detail)
    return _result(outcome)


@api.post("/turns/{turn_id}/feedback", status_code=status.HTTP_201_CREATED)
def record_feedback(turn_id: str, feedback: FeedbackIn, services: ServicesDep) -> FeedbackRecord:
    return services.store.add_feedback(turn_id, feedback.rating, feedback.comment)


def _checked_text(text: str, limit: int) -> str:
    text = text.strip()
    if not text:
        raise InputError("The message is empty. Please type a question.")
    if len(text) > limit:
        raise InputError(f"The message is too long ({len(text)} characters); the limit is {limit}.")
    return text


def _result(done: TurnDone) -> MessageResult:
    return MessageResult(user_turn_id=done.user_turn.id, turn=done.assistant_turn)


async def _sse(pending: PendingTurn) -> AsyncIterator[str]:
    async for event in pending.events():
        yield _sse_event(event)


def _sse_event(event: TurnEvent) -> str:
    name, data = _sse_payload(event)
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def _sse_payload(event: TurnEvent) -> tuple[str, dict[str, Any]]:
    if isinstance(event, Token):
        return "token", {"text": event.text}
    if isinstance(event, TurnDone):
        return "done", _result(event).model_dump(mode="json")
    return "error", {"detail": event.detail}
