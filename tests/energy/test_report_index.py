"""Migration 0008: the daily report narrows a city's returns by ``updated_at`` with an index range
read, on SQLite and PostgreSQL, and the migration goes down and up again (tests/integration/test_schema.py
checks that every table is as declared)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import event, inspect

from voltlib.energy import accounting
from voltlib.store.db import Store
from voltlib.store.migrate import alembic_config, upgrade

INDEX = "ix_rentals_city_updated"


def _returns_query(store: Store) -> tuple[str, Any]:
    """The statement the report really sends, as the driver received it."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "FROM rentals" in statement:
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        start = datetime(2026, 11, 28, tzinfo=UTC)
        with store.engine.connect() as conn:
            assert accounting.rentals_returned(conn, "paris", start, start + timedelta(days=1)) == []
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    (query,) = seen
    return query


def _plan(store: Store, statement: str, parameters: Any) -> str:
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            return " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                         parameters))
        conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: make the planner show its choice
        return " ".join(str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))


def test_a_citys_returns_of_a_day_are_an_index_range_read(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade(store.engine)
        assert INDEX in _plan(store, *_returns_query(store))
    finally:
        store.close()


def test_the_index_goes_down_and_up_with_its_migration(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade(store.engine)
        command.downgrade(alembic_config(store.engine), "0007")
        assert INDEX not in {i["name"] for i in inspect(store.engine).get_indexes("rentals")}
        upgrade(store.engine)
        assert INDEX in {i["name"] for i in inspect(store.engine).get_indexes("rentals")}
    finally:
        store.close()
