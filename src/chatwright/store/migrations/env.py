"""Alembic environment: runs migrations on the connection `chatwright.store.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from chatwright.store.engine import create_store_engine
from chatwright.store.models import Base

# Any constant works; it only has to be the same for every process migrating the same database.
MIGRATION_LOCK_KEY = 0x63687477


def run_migrations(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Several workers may start at once; the first migrates, the others then find the schema current.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    engine = create_store_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as owned_connection:
            run_migrations(owned_connection)
    finally:
        engine.dispose()


run_online()
