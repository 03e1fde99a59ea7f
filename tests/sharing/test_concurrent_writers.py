"""Car-sharing operations on several writer threads (PostgreSQL): an operation that changes a rental
another writer is changing waits for it, then sees what it committed, so no acknowledged change
is overwritten. On SQLite the same operations share one writer, and the outcome is the same."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, select

from voltlib.bench.sharing import _members, _snapshot
from voltlib.sharing import service
from voltlib.sharing import store as ss
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import parse_snapshot
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import rentals

NOW = datetime.now(UTC)


def _slowly(op: Any, seconds: float) -> Any:
    """``op``, keeping its transaction (and its row locks) open a while after it ran."""
    def run(conn: Connection) -> Any:
        result = op(conn)
        time.sleep(seconds)
        return result
    return run


def _one_car_and_member(store: Store) -> tuple[str, str, str]:
    """A migrated Paris with one car docked at one charge point and one member: (car, charge point, member)."""
    upgrade(store.engine)
    snapshot = parse_snapshot(_snapshot(1, 1), car_prefix="BE")
    car = snapshot.cars[0]

    def seed(conn: Connection) -> list[str]:
        ss.upsert_city(conn, builtin_cities()["paris"])
        ss.import_snapshot(conn, "paris", snapshot, security_profile=0, password_hash=None, soc_percent=90.0, now=NOW)
        return _members(conn, 1, NOW)

    member = store.run_sync(seed)[0]
    return car.id, f"{car.station_id}-{car.bay}", member


async def test_a_badge_waits_for_a_concurrent_cancellation_of_the_same_reservation(database_url: str) -> None:
    store = Store(database_url, concurrent_writers=2, concurrent_batch=1)
    try:
        car_id, cp_id, member = _one_car_and_member(store)
        reserved = await store.write(partial(service.reserve_car_op, member_id=member, car_id=car_id, station_id=None,
                                             now=NOW), concurrent=True)
        assert reserved.rental is not None
        reservation = reserved.rental.rental_id
        cancel = asyncio.ensure_future(store.write(
            _slowly(partial(service.cancel_op, member_id=member, now=NOW), 0.5), concurrent=True))
        await asyncio.sleep(0.2)  # the cancellation ran and holds its transaction open
        badge = await store.write(partial(service.badge_op, cp_id=cp_id, id_tag="BADGE0000000",
                                          now=NOW + timedelta(seconds=1)), concurrent=True)
        cancelled = await cancel
        assert cancelled.rental is not None and cancelled.rental.state.value == "cancelled"
        # the badge saw the committed cancellation: a walk-up rental of the now free car, not the
        # cancelled reservation brought back
        assert badge.decision is not None and badge.decision.status == "Accepted"
        assert badge.rental is not None and badge.rental.rental_id != reservation
        states = store.run_sync(lambda conn: dict(conn.execute(select(rentals.c.id, rentals.c.state)).all()))
        assert states == {reservation: "cancelled", badge.rental.rental_id: "badged"}
    finally:
        store.close()


async def test_an_unplug_waits_for_a_concurrent_badge_of_the_same_car_then_starts_its_rental(
        database_url: str) -> None:
    """The unplug locks the car, waiting for the badge, and reads the car's rentals only afterwards (a
    later statement): read in the statement that waited, the new rental would be missed and the car
    reported as leaving without one."""
    store = Store(database_url, concurrent_writers=2, concurrent_batch=1)
    try:
        car_id, cp_id, _ = _one_car_and_member(store)
        badge = asyncio.ensure_future(store.write(
            _slowly(partial(service.badge_op, cp_id=cp_id, id_tag="BADGE0000000", now=NOW), 0.5), concurrent=True))
        await asyncio.sleep(0.2)  # the badge ran and holds its transaction open
        unplug = await store.write(partial(service.unplug_op, cp_id=cp_id, connector_id=1, at=NOW, now=NOW),
                                   concurrent=True)
        badged = await badge
        assert badged.decision is not None and badged.decision.status == "Accepted"
        assert badged.rental is not None
        assert unplug.rental is not None and unplug.rental.rental_id == badged.rental.rental_id
        assert unplug.rental.state.value == "started"
        assert not [e for e in unplug.effects if type(e).__name__ == "UnauthorisedDeparture"]
        assert store.run_sync(lambda conn: ss.get_vehicle(conn, car_id))["status"] == "rented"  # type: ignore[index]
    finally:
        store.close()
