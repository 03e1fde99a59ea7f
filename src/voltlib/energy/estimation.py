"""Keep every car's state of charge current: from the charge point's meter while docked, from
telematics when the car reports, and from the battery model otherwise.

While a car charges, its charge point's MeterValues drive a :class:`voltlib.domain.battery.SocEstimator`
per dock: a SoC measurand (a true reading) re-anchors it and re-fits the charging efficiency; the
energy register alone moves the estimate (source ``metered``). Telematics (HTTP or MQTT, see
``voltlib.energy.telematics``) are true readings too. Each estimate is stored with its source and
time (``vehicles.soc_percent``, ``soc_source``, ``soc_at``): the API and GBFS show its age, and
range-aware assignment uses it. Meter values are batched: one read and one write per flush, never
work inside the gateway's read loop (a bus watcher only queues them). A SoC measurand does not wait
for the flush: the MeterValues handler has already committed it onto the car at the connector
(``repo.record_soc``, in the order of the charge point's messages), so an unplug a moment later
cannot lose it; the flush then re-anchors the estimator with it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, select, update

from voltlib import events as ev
from voltlib.domain import battery
from voltlib.store import fast
from voltlib.store.tables import vehicles

if TYPE_CHECKING:
    from voltlib.gateway.context import Services

log = logging.getLogger(__name__)
FLUSH_EVERY = 1.0  # wall seconds between two batches of meter values
MAX_PENDING = 200_000  # meter values waiting for a flush; beyond, the oldest are dropped (estimates catch up)
MODEL = battery.BLUECAR

Dock = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Reading:
    dock: Dock
    at: datetime
    energy_wh: float | None
    soc_percent: float | None


@dataclass(frozen=True, slots=True)
class DockedCar:
    car_id: str
    soc_percent: float | None
    soc_source: str | None
    soc_at: datetime | None


def docked_cars(conn: Connection, docks: list[Dock]) -> dict[Dock, DockedCar]:
    cps = sorted({d[0] for d in docks})
    found: dict[Dock, DockedCar] = {}
    for start in range(0, len(cps), 500):
        rows = conn.execute(select(vehicles.c.id, vehicles.c.charge_point_id, vehicles.c.connector_id,
                                   vehicles.c.soc_percent, vehicles.c.soc_source, vehicles.c.soc_at)
                            .where(and_(vehicles.c.charge_point_id.in_(cps[start:start + 500]),
                                        vehicles.c.status == "docked")))
        for r in rows:
            found[(r.charge_point_id, r.connector_id)] = DockedCar(r.id, r.soc_percent, r.soc_source, r.soc_at)
    return found


def store_estimates(conn: Connection, estimates: dict[str, battery.SocEstimate]) -> list[str]:
    """Write the estimates; returns the cars whose rows another transaction holds, left for the next
    flush. On PostgreSQL a car-sharing operation (a concurrent writer, docs/architecture.md) may hold
    some of these cars' rows while it waits for another car this write would hold until its group
    commit ends: waiting for one of its cars would deadlock, which PostgreSQL breaks only after
    ``deadlock_timeout`` (1 s) by failing one side. So the cars are locked first, in id order, the
    held ones skipped (``SKIP LOCKED``): this write never waits for a car row."""
    ids = sorted(estimates)
    held: list[str] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        free = set(conn.execute(select(vehicles.c.id).where(vehicles.c.id.in_(chunk)).order_by(vehicles.c.id)
                                .with_for_update(skip_locked=True)).scalars())
        if len(free) < len(chunk):  # held by another transaction, or no such car any more
            held.extend(conn.execute(select(vehicles.c.id).where(
                vehicles.c.id.in_([car for car in chunk if car not in free]))).scalars())
        for car_id in chunk:
            if car_id in free:
                e = estimates[car_id]
                conn.execute(update(vehicles).where(vehicles.c.id == car_id)
                             .values(soc_percent=round(e.soc * 100.0, 2), soc_source=e.source, soc_at=e.as_of))
    return held


def record_reading(conn: Connection, car_id: str, soc_percent: float, source: str, at: datetime) -> bool:
    """A true reading from outside the meter (telematics); an older one never overwrites a newer one.
    In a group commit of several ops it does not wait for the car's row (``fast.holds_others``): a
    car-sharing operation holding it may wait for a car this batch holds. It fails instead, and the
    writer runs it again in a transaction of its own."""
    query = select(vehicles.c.soc_at).where(vehicles.c.id == car_id)
    row = conn.execute(query.with_for_update(nowait=True) if fast.holds_others(conn) else query).first()
    if row is None:
        return False
    if row.soc_at is None or row.soc_at <= at:
        conn.execute(update(vehicles).where(vehicles.c.id == car_id)
                     .values(soc_percent=soc_percent, soc_source=source, soc_at=at))
    return True


def advance(est: battery.SocEstimator | None, car: DockedCar, reading: Reading) -> battery.SocEstimator | None:
    """One meter value for the car at this dock: the estimator after it (None: nothing to go on)."""
    if reading.soc_percent is not None:
        true = battery.SocEstimate(min(1.0, max(0.0, reading.soc_percent / 100.0)), "measured", reading.at)
        register = reading.energy_wh if reading.energy_wh is not None else (est.anchor_register_wh if est else 0.0)
        return battery.refit(est, true, register) if est else battery.start_estimator(MODEL, true, register)
    if reading.energy_wh is None:
        return est
    if est is None:
        if car.soc_percent is None:
            return None
        start = battery.SocEstimate(car.soc_percent / 100.0, "model", car.soc_at or reading.at)
        return battery.start_estimator(MODEL, start, reading.energy_wh)
    return est


def estimate(est: battery.SocEstimator, reading: Reading) -> battery.SocEstimate:
    if reading.soc_percent is not None or reading.energy_wh is None:
        return est.anchor
    return battery.estimate_soc(est, reading.energy_wh, reading.at)


class SocTracker:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._pending: list[Reading] = []
        self._estimators: dict[Dock, tuple[str, battery.SocEstimator]] = {}  # dock -> (car, estimator)
        self._unwritten: dict[str, battery.SocEstimate] = {}  # car -> estimate its row was held for
        self._wake = asyncio.Event()
        self.flushed = 0
        self.dropped = 0

    def install(self) -> None:
        # node scope: estimators are per dock of a charge point held here; a car that moves to another
        # charge point starts afresh there from the state of charge stored in the database
        self.services.bus.watch(self._on_event, ev.MeterValuesReceived, ev.TransactionStarted,
                                ev.TransactionStopped, name="soc-tracker", scope="node")

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.MeterValuesReceived):
            if len(self._pending) >= MAX_PENDING:
                self._pending.pop(0)
                self.dropped += 1
            self._pending.append(Reading((event.charge_point_id, event.connector_id), event.sampled_at,
                                         event.energy_wh, event.soc_percent))
            self._wake.set()
        elif isinstance(event, ev.TransactionStarted | ev.TransactionStopped):  # a new car, or none
            for dock in [d for d in self._estimators if d[0] == event.charge_point_id]:
                del self._estimators[dock]

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_EVERY)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the next batch retries from the newer readings
                log.exception("state-of-charge flush failed")

    async def flush(self) -> int:
        """Apply every queued meter value; returns how many cars got a new estimate. An estimate whose
        car row was held by a car-sharing operation (``store_estimates``) is written at the next flush,
        unless a newer one replaces it."""
        readings, self._pending = self._pending, []
        latest, self._unwritten = self._unwritten, {}
        if not readings and not latest:
            return 0
        cars = await self.services.store.read(partial(docked_cars, docks=list({r.dock for r in readings}))) \
            if readings else {}
        for reading in sorted(readings, key=lambda r: r.at):
            car = cars.get(reading.dock)
            if car is None:
                continue
            held = self._estimators.get(reading.dock)
            est = held[1] if held is not None and held[0] == car.car_id else None
            est = advance(est, car, reading)
            if est is None:
                continue
            self._estimators[reading.dock] = (car.car_id, est)
            latest[car.car_id] = estimate(est, reading)
        if latest:
            busy = await self.services.store.write(partial(store_estimates, estimates=latest))
            self._unwritten = {car: latest[car] for car in busy}
            if busy:
                self._wake.set()
        self.flushed += len(latest) - len(self._unwritten)
        return len(latest) - len(self._unwritten)
