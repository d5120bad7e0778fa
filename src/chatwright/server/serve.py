"""`chatwright serve DIR`: load the assistant once, bring the database up to date, run uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from chatwright.dialogue.assistant import Assistant
from chatwright.errors import ConfigError
from chatwright.project import AssistantProject
from chatwright.server.app import create_app
from chatwright.store.migrate import upgrade_database
from chatwright.store.repository import ConversationStore

# How the parent hands the project to worker processes, which build their app by importing this module.
PROJECT_ENV = "CHATWRIGHT_PROJECT"
DATABASE_URL_ENV = "CHATWRIGHT_DATABASE_URL"


def build_app(project: AssistantProject, database_url: str) -> FastAPI:
    """Load the models and open the store; the schema must already be current."""
    store = ConversationStore(database_url, migrate=False)
    return create_app(Assistant.from_project(project), store,
                      max_message_chars=project.config.server.max_message_chars)


def app_from_environment() -> FastAPI:
    """The app factory each uvicorn worker calls when serving with several workers."""
    return build_app(AssistantProject.load(os.environ[PROJECT_ENV]), os.environ[DATABASE_URL_ENV])


def serve(project_dir: Path | str, host: str = "127.0.0.1", port: int = 8000, database_url: str | None = None,
          workers: int = 1) -> None:
    """Serve the web chat and API until interrupted; SQLite allows one worker, PostgreSQL several."""
    project = AssistantProject.load(project_dir)
    url = database_url or project.database_url
    if workers > 1 and make_url(url).get_backend_name() == "sqlite":
        raise ConfigError("several workers need PostgreSQL (--database-url); SQLite serves with one worker")
    upgrade_database(url)
    banner = f"chatwright is serving {project.config.name} at http://{host}:{port}"
    if workers == 1:
        app = build_app(project, url)
        print(banner, flush=True)
        uvicorn.run(app, host=host, port=port, log_level=project.config.log_level)
        return
    os.environ[PROJECT_ENV] = str(project.root)
    os.environ[DATABASE_URL_ENV] = url
    print(banner, flush=True)
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_level=project.config.log_level)
