"""The daily report picks a city's returns of a day by ``rentals.returned_at`` (the charge point's
time of the return), with an index range read, on SQLite and PostgreSQL; migration 0011 fills the
column for the rentals stored before it (tests/integration/test_schema.py checks every table)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import column, event, insert, inspect, table

from voltlib.domain import rental as dr
from voltlib.domain.pricing import PARIS_2011
from voltlib.energy import accounting
from voltlib.sharing import codec
from voltlib.sharing.store import insert_rental
from voltlib.store.db import Store
from voltlib.store.migrate import alembic_config, upgrade
from voltlib.store.tables import rentals

INDEX = "ix_rentals_city_returned"
DAY = datetime(2026, 11, 28, tzinfo=UTC)


def _returned(rental_id: str, returned_at: datetime) -> dr.Rental:
    new = dr.Rental(rental_id, "m1", "BADGE", "car1", "CAR1", dr.Dock("cp-a", 1), PARIS_2011["premium"])
    return replace(new, state=dr.State.CLOSED, started_at=returned_at - timedelta(minutes=30),
                   returned_at=returned_at, return_dock=dr.Dock("cp-b", 1))


def _returns_query(store: Store) -> tuple[str, Any]:
    """The statement the report really sends, as the driver received it."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "FROM rentals" in statement:
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        with store.engine.connect() as conn:
            assert accounting.rentals_returned(conn, "paris", DAY, DAY + timedelta(days=1)) == []
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


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    migrated = Store(database_url)
    upgrade(migrated.engine)
    yield migrated
    migrated.close()


def test_a_citys_returns_of_a_day_are_an_index_range_read(store: Store) -> None:
    assert INDEX in _plan(store, *_returns_query(store))


def test_a_return_stamped_after_midnight_by_a_clock_ahead_is_in_that_days_report(store: Store) -> None:
    """Saved on the 28th (voltlib's time) but returned on the 29th by the charge point's clock."""
    next_day = DAY + timedelta(days=1)
    store.run_sync(lambda conn: insert_rental(conn, _returned("r-ahead", next_day + timedelta(minutes=10)),
                                              "paris", now=next_day - timedelta(hours=1)))
    with store.engine.connect() as conn:
        assert [r["rental_id"] for r in accounting.rentals_returned(conn, "paris", next_day,
                                                                    next_day + timedelta(days=1))] == ["r-ahead"]
        assert accounting.rentals_returned(conn, "paris", DAY, next_day) == []


def test_the_migration_fills_the_column_and_goes_down_and_up(store: Store) -> None:
    command.downgrade(alembic_config(store.engine), "0010")
    assert "returned_at" not in {c["name"] for c in inspect(store.engine).get_columns("rentals")}
    closed = _returned("r-old", DAY + timedelta(hours=9))
    before = table("rentals", *(column(c.name, c.type) for c in rentals.columns if c.name != "returned_at"))
    with store.engine.begin() as conn:  # a rental stored before the column existed
        conn.execute(insert(before), {"id": "r-old", "city": "paris", "member_id": "m1", "car_id": "car1",
                                      "state": "closed", "data": codec.rental_to_dict(closed),
                                      "created_at": DAY, "updated_at": DAY})
    upgrade(store.engine)
    assert INDEX in {i["name"] for i in inspect(store.engine).get_indexes("rentals")}
    with store.engine.connect() as conn:
        assert [r["rental_id"] for r in accounting.rentals_returned(conn, "paris", DAY,
                                                                    DAY + timedelta(days=1))] == ["r-old"]
