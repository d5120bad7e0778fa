"""Schema migrations run from code, so `chatwright serve` brings any database up to date by itself.

To add a migration: change `models.py`, then
`python -c "from alembic import command; from chatwright.store.migrate import alembic_config;
command.revision(alembic_config('sqlite:///scratch.db'), 'what changed', autogenerate=True)"`
against a database at the previous head, and review the generated file in `migrations/versions`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from chatwright.store.engine import create_store_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at the packaged migrations; no alembic.ini needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str, engine: Engine | None = None) -> None:
    """Create or upgrade the schema to the newest revision; safe to run at every start."""
    owned = engine is None
    engine = engine or create_store_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if owned:
            engine.dispose()
