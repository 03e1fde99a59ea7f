"""Migration 0020 (badges.kind: a member's badge or Plug & Charge contract) goes up, down and up
again on SQLite and PostgreSQL (issue 17)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from voltlib.store.db import Store
from voltlib.store.migrate import alembic_config, upgrade


def test_migration_0020_adds_the_kind_of_badge_and_takes_it_away(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade(store.engine)
        assert "kind" in {c["name"] for c in inspect(store.engine).get_columns("badges")}
        command.downgrade(alembic_config(store.engine), "0019")
        assert "kind" not in {c["name"] for c in inspect(store.engine).get_columns("badges")}
        upgrade(store.engine)
        assert "kind" in {c["name"] for c in inspect(store.engine).get_columns("badges")}
    finally:
        store.close()
