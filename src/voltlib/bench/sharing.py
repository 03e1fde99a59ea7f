"""`voltlib bench sharing`: reservations/s and completed rentals/s through the car-sharing operations
and the group-commit store, on SQLite or PostgreSQL, with the double-booking check.

It runs the same operations the API and the OCPP handlers run (``voltlib.sharing.service``), each
committed before it counts, many in flight at once as under real load; HTTP and WebSocket costs
are measured by ``voltlib bench gateway`` and are not repeated here.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from voltlib.sharing import service
from voltlib.sharing import store as ss
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import parse_snapshot
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import metadata

HEADER = ("Address;Cars;Bluecar counter;Utilib counter;Utilib 1.4 counter;Charge Slots;Charging Status;City;"
          "Displayed comment;ID;Kind;Geo point;Postal code;Public name;Rental status;Scheduled at;Slots;"
          "Station type;Status;Subscription status")


@dataclass
class SharingBenchResult:
    store: str
    cars: int
    reservations_per_s: float
    rentals_per_s: float
    double_booking_attempts: int
    double_booking_winners: int


def _snapshot(stations: int, cars_per_station: int) -> str:
    rows = [HEADER]
    for i in range(stations):
        lat, lon = 48.80 + (i % 40) * 0.004, 2.25 + (i // 40) * 0.006
        rows.append(f"{i} rue Bench;{cars_per_station};0;0;0;0;operational;Paris;;bench-{i};STATION;{lat}, {lon};"
                    f"75000;Bench/{i};operational;;{cars_per_station};station;ok;x")
    return "\n".join(rows) + "\n"


def _members(conn: Connection, n: int, now: datetime) -> list[str]:
    ids: list[str] = []
    for i in range(n):
        member = {"id": f"bm-{i}", "city": "paris", "name": f"Bench {i}", "email": f"bench{i}@example.org",
                  "licence_number": f"B{i}", "licence_expiry": now + timedelta(days=365), "licence_verified": True,
                  "payment_ok": True, "plan_code": "premium", "subscribed_until": now + timedelta(days=365)}
        ss.create_member(conn, member, f"BADGE{i:07d}", now)
        ids.append(f"bm-{i}")
    return ids


def _reset(url: str) -> None:
    store = Store(url)
    try:
        with store.engine.begin() as conn:
            if store.dialect == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
                conn.execute(text(f"DROP TABLE IF EXISTS {names}, alembic_version CASCADE"))
            else:  # a SQLite file given twice: emptied too, or the second run fails on its members
                for table in reversed(metadata.sorted_tables):
                    conn.execute(text(f'DROP TABLE IF EXISTS "{table.name}"'))
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        store.close()


async def run(database_url: str | None, *, stations: int = 200, cars_per_station: int = 2,
              concurrency: int = 64) -> SharingBenchResult:
    url = database_url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='voltlib-bench-')) / 'sharing.db'}"
    await asyncio.to_thread(_reset, url)
    store = Store(url)
    try:
        upgrade(store.engine)
        now = datetime.now(UTC)
        snapshot = parse_snapshot(_snapshot(stations, cars_per_station), car_prefix="BE")
        cars = [(c.id, c.id_tag, f"{c.station_id}-{c.bay}") for c in snapshot.cars]

        def seed(conn: Connection) -> list[str]:
            ss.upsert_city(conn, builtin_cities()["paris"])
            ss.import_snapshot(conn, "paris", snapshot, security_profile=0, password_hash=None, soc_percent=90.0,
                               now=now)
            return _members(conn, len(cars) + 1, now)

        members = store.run_sync(seed)
        limit = asyncio.Semaphore(concurrency)

        async def one(op: Any) -> Any:
            async with limit:
                return await store.write(op, concurrent=True)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(partial(service.reserve_car_op, member_id=m, car_id=car[0], station_id=None,
                                           now=now)) for m, car in zip(members, cars, strict=False)))
        await asyncio.gather(*(one(partial(service.cancel_op, member_id=m, now=now)) for m in members[:len(cars)]))
        reservations = 2 * len(cars) / (time.perf_counter() - t0)  # each reservation and its cancellation

        async def rental(member: str, car: tuple[str, str, str], n: int) -> None:
            badge = f"BADGE{int(member.split('-')[1]):07d}"
            await one(partial(service.badge_op, cp_id=car[2], id_tag=badge, now=now))
            await one(partial(service.unplug_op, cp_id=car[2], connector_id=1, at=now, now=now))
            await one(partial(service.return_op, cp_id=car[2], connector_id=1, id_tag=car[1], transaction_id=n,
                              started_at=now + timedelta(minutes=20), now=now))

        t0 = time.perf_counter()
        await asyncio.gather(*(rental(m, car, i + 1) for i, (m, car) in enumerate(zip(members, cars, strict=False))))
        rentals = len(cars) / (time.perf_counter() - t0)
        invoices = store.run_sync(lambda conn: len([i for i in ss.list_invoices(conn, limit=100_000)
                                                    if i["kind"] == "rental"]))
        if invoices != len(cars):
            raise RuntimeError(f"{invoices} rental invoices for {len(cars)} rentals")

        target = cars[0][0]
        outcomes = await asyncio.gather(*(store.write(partial(service.reserve_car_op, member_id=m, car_id=target,
                                                              station_id=None, now=now), concurrent=True)
                                          for m in members), return_exceptions=True)
        winners = sum(1 for o in outcomes if not isinstance(o, BaseException))
        unclear = [o for o in outcomes if isinstance(o, BaseException)
                   and not (isinstance(o, service.SharingError) and o.code == "car_already_held")]
        if unclear:  # every loser must be told the car is held, not meet a database error
            raise RuntimeError(f"{len(unclear)} double-booking losers not refused clearly: {unclear[0]!r}")
        return SharingBenchResult(store.dialect, len(cars), reservations, rentals, len(members), winners)
    finally:
        store.close()


def render(results: list[SharingBenchResult]) -> str:
    lines = ["store       cars  reservations/s  rentals/s  double-booking (attempts -> winners)",
             "----------  ----  --------------  ---------  -------------------------------------"]
    for r in results:
        lines.append(f"{r.store:<10}  {r.cars:>4}  {r.reservations_per_s:>14,.0f}  {r.rentals_per_s:>9,.0f}  "
                     f"{r.double_booking_attempts} -> {r.double_booking_winners}")
    return "\n".join(lines)
