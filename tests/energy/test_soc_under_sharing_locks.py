"""State-of-charge estimates and car sharing write the same ``vehicles`` rows from different writer
threads on PostgreSQL (the default group commit, and the concurrent writers of car sharing). A
car-sharing operation that holds one car and then locks another must not meet an estimate write
holding the second and waiting for the first: PostgreSQL would break that deadlock only after
``deadlock_timeout`` (1 s), failing one side. The estimate write skips a held car instead and
writes it at the next flush."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select, text

from tests.conftest import RunningServer
from voltlib import events as ev
from voltlib.domain import battery
from voltlib.energy import telematics
from voltlib.energy.estimation import SocTracker, store_estimates
from voltlib.sharing import store as ss
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.tables import cities, meter_values, vehicles

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
CP = "CP-DL"


def _two_docked_cars(conn: Connection) -> None:
    conn.execute(insert(cities).values(code="dl", name="Deadlock", timezone="UTC", currency="EUR", policy={},
                                       plans=[], min_range_km=0))
    for n in (1, 2):
        conn.execute(insert(vehicles).values(
            id=f"DL-{n}", city="dl", plate=f"DL-{n}", vin=f"VINDL{n:012d}", model="bluecar", battery_kwh=30.0,
            id_tag=f"DLTAG{n}", status="docked", charge_point_id=CP, connector_id=n, soc_percent=50.0,
            soc_source="import", soc_at=NOW))


def _lock_waiters(conn: Connection) -> int:
    waiting = int(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND wait_event_type = 'Lock'")).scalar_one())
    conn.rollback()  # the statistics are a snapshot per transaction: the next look takes a new one
    return waiting


async def _car_sharing_holds_dl2_then_wants_dl1(store: Store, done: threading.Event) -> asyncio.Future[list[str]]:
    """As car sharing does: lock DL-2, then (once ``done`` is set, or the writes under test wait for a
    lock) DL-1. Returns when DL-2 is held; the future gives the cars locked, in order."""
    holds_dl2 = threading.Event()
    runs = 0

    def sharing_op(conn: Connection) -> list[str]:
        nonlocal runs
        runs += 1
        locked = [car["id"] for car in ss.vehicles_at(conn, CP, 2, lock=True)]
        holds_dl2.set()
        if runs == 1:
            with store.engine.connect() as watcher:
                deadline = time.monotonic() + 30  # a bound on a broken test, not a measurement
                while not done.is_set() and not _lock_waiters(watcher) and time.monotonic() < deadline:
                    time.sleep(0.01)
        return locked + [car["id"] for car in ss.vehicles_at(conn, CP, 1, lock=True)]

    sharing = asyncio.ensure_future(store.write(sharing_op, concurrent=True))
    await asyncio.to_thread(holds_dl2.wait, 30)
    return sharing


async def test_an_estimate_skips_a_car_sharing_holds_instead_of_deadlocking(server: RunningServer) -> None:
    store = server.store
    if store.dialect != "postgresql":
        pytest.skip("SQLite has one writer: car sharing and the estimates take turns, they cannot deadlock")
    await store.write(_two_docked_cars)
    tracker = SocTracker(server.gateway.services)
    for connector, soc in ((1, 61.0), (2, 62.0)):  # DL-1's reading first: the write used to take DL-1, then DL-2
        tracker._on_event(ev.MeterValuesReceived(charge_point_id=CP, at=NOW, connector_id=connector,
                                                 transaction_id=None, sampled_at=NOW, energy_wh=None, power_w=None,
                                                 soc_percent=soc))
    estimates_done = threading.Event()
    sharing = await _car_sharing_holds_dl2_then_wants_dl1(store, estimates_done)
    written = await tracker.flush()
    estimates_done.set()
    assert await sharing == ["DL-2", "DL-1"]
    assert store.deadlocks == 0  # nobody waited for deadlock_timeout and ran again
    assert written == 1
    assert await _socs(server) == {"DL-1": (61.0, "measured"), "DL-2": (50.0, "import")}
    assert await tracker.flush() == 1  # the held car's estimate, once it is free
    assert await _socs(server) == {"DL-1": (61.0, "measured"), "DL-2": (62.0, "measured")}


async def test_a_telematics_reading_in_the_estimates_batch_skips_a_car_sharing_holds(server: RunningServer) -> None:
    """A reading for a car that car sharing holds, in one group commit with an estimate for a car that
    car sharing locks next: the reading is not written (nor waited for) in that batch, but once the
    car is free."""
    store = server.store
    if store.dialect != "postgresql":
        pytest.skip("SQLite has one writer: car sharing and the readings take turns, they cannot deadlock")
    await store.write(_two_docked_cars)
    estimates_done = threading.Event()
    sharing = await _car_sharing_holds_dl2_then_wants_dl1(store, estimates_done)
    estimate = asyncio.ensure_future(store.write(partial(  # queued in the same turn: one group commit
        store_estimates, estimates={"DL-1": battery.SocEstimate(0.61, "metered", NOW)})))
    reading = asyncio.ensure_future(telematics.ingest(server.gateway.services, "DL-2",
                                                      telematics.Telematics(soc_percent=72.0, at=NOW)))
    estimate.add_done_callback(lambda _: estimates_done.set())
    assert await estimate == [] and await reading is True
    await sharing
    assert store.deadlocks == 0
    assert await _socs(server) == {"DL-1": (61.0, "metered"), "DL-2": (72.0, "telematics")}


async def test_a_meter_values_soc_in_a_batch_holding_a_car_does_not_wait_for_one_car_sharing_holds(
        server: RunningServer) -> None:
    """A MeterValues' state of charge goes on its car before the answer (``repo.record_soc``, in the
    group commit of its rows). In a batch that holds another car (an estimate), waiting there for a
    car that car sharing holds while car sharing waits for the first would deadlock: the reading is
    written in a transaction of its own instead, after the rest of the batch, still before the answer."""
    store = server.store
    if store.dialect != "postgresql":
        pytest.skip("SQLite has one writer: car sharing and the readings take turns, they cannot deadlock")
    await store.write(_two_docked_cars)
    estimates_done = threading.Event()
    sharing = await _car_sharing_holds_dl2_then_wants_dl1(store, estimates_done)
    row = {"charge_point_id": CP, "connector_id": 2, "transaction_id": 0, "sampled_at": NOW, "samples": b"x",
           "received_at": NOW}
    estimate = asyncio.ensure_future(store.write(partial(  # queued in the same turn: one group commit
        store_estimates, estimates={"DL-1": battery.SocEstimate(0.61, "metered", NOW)})))
    stored = asyncio.ensure_future(store.insert(meter_values, [row], ignore_duplicates=True, then=partial(
        repo.record_soc, cp_id=CP, connector_id=2, tx_id=None, reading=(72.0, NOW))))
    estimate.add_done_callback(lambda _: estimates_done.set())
    assert await estimate == []
    await stored
    await sharing
    assert store.deadlocks == 0
    assert await _socs(server) == {"DL-1": (61.0, "metered"), "DL-2": (72.0, "measured")}


async def _socs(server: RunningServer) -> dict[str, Any]:
    def read(conn: Connection) -> dict[str, Any]:
        rows = conn.execute(select(vehicles.c.id, vehicles.c.soc_percent, vehicles.c.soc_source)
                            .where(vehicles.c.city == "dl"))
        return {r.id: (r.soc_percent, r.soc_source) for r in rows}
    return await server.store.read(read)
