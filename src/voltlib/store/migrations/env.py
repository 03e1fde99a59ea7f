"""Alembic environment: runs against the engine voltlib hands over in ``config.attributes``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from voltlib.store.tables import metadata

config = context.config
engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url") or "")

MIGRATION_LOCK = 0x766F6C74  # "volt": several nodes starting at once migrate one after the other

with engine.begin() as connection:
    if connection.dialect.name == "postgresql":  # held until this transaction commits
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
