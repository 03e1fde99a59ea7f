"""Migration 0006 (field tasks) goes up and down on SQLite and PostgreSQL and matches the table
the code uses."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from voltlib.store.db import Store
from voltlib.store.migrate import alembic_config, upgrade
from voltlib.store.tables import metadata


def _field_task_diffs(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    return [d for d in diffs if "field_tasks" in repr(d)]


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade(store.engine)
        assert "field_tasks" in inspect(store.engine).get_table_names()
        assert _field_task_diffs(store) == []
        unique = {tuple(u["column_names"]) for u in inspect(store.engine).get_unique_constraints("field_tasks")}
        assert ("active_car",) in unique  # one live task per car
        command.downgrade(alembic_config(store.engine), "0005")
        assert "field_tasks" not in inspect(store.engine).get_table_names()
        upgrade(store.engine)
        assert "field_tasks" in inspect(store.engine).get_table_names()
    finally:
        store.close()
