"""Smart charging of every station: plan with :mod:`voltlib.domain.charging`, apply with OCPP 1.6
charging profiles, re-plan when something changes.

The profiles each charge point holds (connector 0 = the whole charge point):

- ``ChargePointMaxProfile`` (id 1, stack 0, connector 0): the station's grid limit, a hard cap
  should voltlib fall silent;
- ``TxDefaultProfile`` (id 2, stack 0, connector 0): the *safe start*, keep-warm power only, so a
  car plugged in between two plans can never push the station over its limit: the planner keeps
  that much headroom for every bay without a session;
- ``TxProfile`` (id 3, stack 1, on the connector, bound to the transaction): the plan's power for
  this session.

Changes are applied decreases first, then increases, so the station total stays under the limit
while profiles are in flight. After each TxProfile, GetCompositeSchedule checks what the charge
point will really do. A re-plan is triggered by a plug, an unplug, a reservation or a limit change
(bus events, coalesced per station) and runs at least every ``REPLAN_EVERY`` simulated seconds as
states of charge move. With several gateway nodes every node plans, and each applies the plan only
to the charge points connected to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, select, update

from voltlib import events as ev
from voltlib.domain import battery, charging, ev_needs, meter
from voltlib.domain.commands import Command, CommandRefused, LimitPower, Outcome, ReadSchedule
from voltlib.energy import charging_limits
from voltlib.sharing import codec
from voltlib.sharing import store as ss
from voltlib.store import charging_profiles as profile_store
from voltlib.store import ev_needs as needs_store
from voltlib.store.tables import bays, meter_values, rentals, stations, transactions, vehicles
from voltlib.telemetry.counters import WORK_SECONDS, Histogram

if TYPE_CHECKING:
    from voltlib.gateway.gateway import Gateway

log = logging.getLogger(__name__)

MAX_PROFILE_ID, DEFAULT_PROFILE_ID, TX_PROFILE_ID = 1, 2, 3
TX_STACK_LEVEL = 1
COALESCE_S = 0.2  # wall seconds: events this close together share one re-plan
REPLAN_EVERY = 300.0  # simulated seconds between re-plans of every station with sessions
READ_CHUNK = 200  # stations per read: bounded IN lists (~900 charge points)
PARALLEL_STATIONS = 32  # stations re-planned at once: each waits on its charge points' answers
MODEL = battery.BLUECAR
# What changes a station's plan. A station's charge points may be held by different gateway nodes:
# each node plans the whole station from the database and sends only its own charge points' share,
# so it must hear these from every node ("network" scope); a reboot only concerns the holding node.
CHANGES: tuple[type[ev.Event], ...] = (ev.TransactionStarted, ev.TransactionStopped, ev.ConnectorStatusChanged,
                                       ev.RentalChanged, ev.CarNeedsReported, ev.ChargingLimitChanged)
BOOTS: tuple[type[ev.Event], ...] = (ev.BootNotified, ev.ChargePointConnected)

Dock = tuple[str, int]  # (charge point, connector)


@dataclass(frozen=True, slots=True)
class DockState:
    cp_id: str
    connector_id: int
    rated_w: float
    transaction_id: int | None
    car_id: str | None
    soc: float | None  # 0..1
    departure: datetime | None  # a live reservation of this car: when it lapses
    required_range_km: float | None
    needs: ev_needs.CarNeeds | None = None  # what the car reported of this session (2.0.1, ISO 15118)


@dataclass(frozen=True, slots=True)
class StationState:
    station_id: str
    limit_w: float
    phase_limit_w: float | None
    docks: tuple[DockState, ...]
    caps: Mapping[tuple[str, int], float] = field(default_factory=dict)  # external limits (charging_limits)


@dataclass(frozen=True, slots=True)
class Limits:
    """A station's configured grid connection, or its default."""

    station_id: str
    limit_w: float
    phase_limit_w: float | None
    configured: bool
    rated_total_w: float


# --- reads (reader thread) -------------------------------------------------------------------------

def station_of(conn: Connection, cp_ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(cp_ids), 500):
        chunk = cp_ids[start:start + 500]
        found.update(conn.execute(select(bays.c.charge_point_id, bays.c.station_id)
                                  .where(bays.c.charge_point_id.in_(chunk))).all())
    return found


def read_limits(conn: Connection, station_id: str, *, rated_w: float, fraction: float) -> Limits | None:
    row = conn.execute(select(stations.c.grid_limit_w, stations.c.phase_limit_w)
                       .where(stations.c.id == station_id)).first()
    if row is None:
        return None
    ratings = conn.execute(select(bays.c.rated_power_w).where(bays.c.station_id == station_id)).scalars().all()
    total = sum(rated_w if r is None else r for r in ratings)
    return Limits(station_id, _limit(row.grid_limit_w, total, fraction), row.phase_limit_w,
                  row.grid_limit_w is not None, total)


def _limit(grid_limit_w: float | None, rated_total_w: float, fraction: float) -> float:
    """The configured grid limit, or by default that share of the bays' ratings."""
    return grid_limit_w if grid_limit_w is not None else rated_total_w * fraction


def read_station(conn: Connection, station_id: str, *, rated_w: float, fraction: float,
                 reserved_range_km: float = 0.0, car_needs: bool = True,
                 at: datetime | None = None) -> StationState | None:
    return read_stations(conn, [station_id], rated_w=rated_w, fraction=fraction,
                         reserved_range_km=reserved_range_km, car_needs=car_needs, at=at).get(station_id)


def read_stations(conn: Connection, station_ids: list[str], *, rated_w: float, fraction: float,
                  reserved_range_km: float = 0.0, car_needs: bool = True,
                  at: datetime | None = None) -> dict[str, StationState]:
    """Many stations in a few queries (a sweep of Paris is 1,119 stations, every few seconds at 100x).
    ``car_needs``: read what the cars reported of their sessions (False: today's estimate only).
    ``at``: when external limits with a schedule are read (None: as they were notified)."""
    out: dict[str, StationState] = {}
    for start in range(0, len(station_ids), READ_CHUNK):
        out.update(_read_chunk(conn, station_ids[start:start + READ_CHUNK], rated_w, fraction, reserved_range_km,
                               car_needs, at))
    return out


def _read_chunk(conn: Connection, station_ids: list[str], rated_w: float, fraction: float,
                reserved_range_km: float, car_needs: bool, at: datetime | None) -> dict[str, StationState]:
    rows = conn.execute(select(stations.c.id, stations.c.city, stations.c.grid_limit_w, stations.c.phase_limit_w)
                        .where(stations.c.id.in_(station_ids))).all()
    docks = conn.execute(select(bays.c.station_id, bays.c.charge_point_id, bays.c.connector_id, bays.c.rated_power_w)
                         .where(bays.c.station_id.in_(station_ids)).order_by(bays.c.station_id, bays.c.number)).all()
    cps = sorted({d.charge_point_id for d in docks})
    open_tx = {(r.charge_point_id, r.connector_id): r.id for r in conn.execute(
        select(transactions.c.id, transactions.c.charge_point_id, transactions.c.connector_id)
        .where(and_(transactions.c.charge_point_id.in_(cps), transactions.c.stopped_at.is_(None))))}
    cars = {(r.charge_point_id, r.connector_id): r for r in conn.execute(
        select(vehicles.c.id, vehicles.c.charge_point_id, vehicles.c.connector_id, vehicles.c.soc_percent)
        .where(and_(vehicles.c.charge_point_id.in_(cps), vehicles.c.status == "docked")))}
    held = _reservations(conn, [c.id for c in cars.values()])
    reported = needs_store.latest_needs(conn, open_tx.values()) if car_needs else {}
    caps = charging_limits.caps_in_force(profile_store.list_limits(conn, cps), at)
    by_station: dict[str, list[DockState]] = defaultdict(list)
    needed: dict[str, float] = {}
    for row in rows:
        city = ss.get_city(conn, row.city)
        needed[row.id] = max(reserved_range_km, float(city.min_range_km) if city is not None else 0.0)
    for d in docks:
        dock = (d.charge_point_id, d.connector_id)
        car = cars.get(dock)
        departure = held.get(car.id) if car is not None else None
        tx = open_tx.get(dock)
        by_station[d.station_id].append(DockState(
            d.charge_point_id, d.connector_id, rated_w if d.rated_power_w is None else d.rated_power_w,
            tx, car.id if car else None,
            None if car is None or car.soc_percent is None else car.soc_percent / 100.0,
            departure, needed.get(d.station_id) if departure is not None else None,
            None if tx is None else reported.get(tx)))
    out = {}
    for row in rows:
        here = by_station.get(row.id, [])
        mine = {place: w for place, w in caps.items() if place[0] in {d.cp_id for d in here}}
        out[row.id] = StationState(row.id, _limit(row.grid_limit_w, sum(d.rated_w for d in here), fraction),
                                   row.phase_limit_w, tuple(here), mine)
    return out


def _reservations(conn: Connection, car_ids: list[str]) -> dict[str, datetime]:
    """Cars held for a member: when the hold lapses (the latest the member can come)."""
    if not car_ids:
        return {}
    held: dict[str, datetime] = {}
    for row in conn.execute(select(rentals.c.car_id, rentals.c.data).where(rentals.c.active_car.in_(car_ids))):
        rental = codec.rental_from_dict(row.data)
        if rental.car_hold is not None and rental.started_at is None:
            held[row.car_id] = rental.car_hold.expires_at
    return held


def drawn_now(conn: Connection, station_id: str, since: datetime) -> dict[str, float]:
    """Each bay's latest reported Power.Active.Import (W) since ``since``, by ``cp/connector``."""
    out: dict[str, float] = {}
    for bay in conn.execute(select(bays.c.charge_point_id, bays.c.connector_id).where(bays.c.station_id == station_id)):
        row = conn.execute(select(meter_values.c.samples).where(and_(
            meter_values.c.charge_point_id == bay.charge_point_id, meter_values.c.connector_id == bay.connector_id,
            meter_values.c.received_at >= since)).order_by(meter_values.c.sampled_at.desc()).limit(1)).first()
        if row is None:
            continue
        for sample in meter.unpack(row.samples):
            if sample.get("measurand") == "Power.Active.Import":
                with contextlib.suppress(KeyError, ValueError):
                    scale = 1000.0 if str(sample.get("unit", "W")).startswith("k") else 1.0
                    out[f"{bay.charge_point_id}/{bay.connector_id}"] = float(sample["value"]) * scale
    return out


def write_limits(conn: Connection, station_id: str, limit_w: float | None, phase_limit_w: float | None) -> bool:
    return conn.execute(update(stations).where(stations.c.id == station_id)
                        .values(grid_limit_w=limit_w, phase_limit_w=phase_limit_w)).rowcount > 0


# --- the plan (pure) ------------------------------------------------------------------------------

def plan_station(state: StationState, at: datetime) -> dict[Dock, int]:
    """Power per charging session, in W. Bays without a session keep their safe-start power in
    reserve, so a car plugged in before the next plan cannot exceed the limit."""
    idle = sum(1 for d in state.docks if d.transaction_id is None)
    reserve = idle * safe_start_w(state)
    phase_limits = {p: state.phase_limit_w for p in charging.PHASES} if state.phase_limit_w else {}
    station = charging.Station(max(0.0, state.limit_w - reserve), phase_limits)
    sessions = {(d.cp_id, d.connector_id): session_of(d) for d in state.docks if d.transaction_id is not None}

    def allocate(maxima: Mapping[Dock, float]) -> dict[Dock, int]:
        capped = {dock: s if maxima[dock] == s.connector_max_w else replace(s, connector_max_w=maxima[dock])
                  for dock, s in sessions.items()}
        allocation = charging.allocate(station, list(capped.values()), at)
        return {dock: allocation.of(s.vehicle_id).power_w for dock, s in capped.items()}

    maxima = {dock: s.connector_max_w for dock, s in sessions.items()}
    if not state.caps:  # no external limit here (nearly everywhere): one allocation, as before
        return allocate(maxima)
    return charging_limits.share_within(state.caps, allocate, maxima)  # external limits (K11-K13)


def session_of(d: DockState) -> charging.ChargingSession:
    """The planner's session for a dock: the car's report first, then its reservation, then the
    estimate (:func:`voltlib.domain.ev_needs.targets`)."""
    t = ev_needs.targets(d.needs, d.departure, d.required_range_km, MODEL)
    connector_max = d.rated_w if t.max_w is None else min(d.rated_w, t.max_w)
    return charging.ChargingSession(
        vehicle_id=d.car_id or f"{d.cp_id}/{d.connector_id}", model=MODEL, soc=0.5 if d.soc is None else d.soc,
        connector_max_w=connector_max, departure=t.departure, required_soc=t.required_soc,
        required_range_km=t.required_range_km, connector_id=d.connector_id, transaction_id=d.transaction_id)


def safe_start_w(state: StationState) -> int:
    """What a session draws before its first plan: keep-warm, never more than a fair share."""
    share = state.limit_w / max(1, len(state.docks))
    return max(0, math.floor(min(MODEL.keep_warm_w, share)))


def ordered_changes(previous: dict[Dock, int], wanted: dict[Dock, int],
                    forced: frozenset[Dock] | set[Dock] = frozenset()) -> list[tuple[Dock, int]]:
    """The limits to send, decreases first: in flight, the station total never goes over. ``forced``:
    sent even when unchanged (a car that reported its needs is owed a TxProfile), in its place."""
    changes = [(dock, watts) for dock, watts in wanted.items() if previous.get(dock) != watts or dock in forced]
    return sorted(changes, key=lambda c: (c[1] > previous.get(c[0], math.inf), c[0]))


# --- the service ------------------------------------------------------------------------------------

class SmartCharging:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.services = gateway.services
        s = self.services.settings
        self.rated_w, self.fraction = s.charging_connector_rated_w, s.station_limit_fraction
        self.reserved_range_km = s.charging_reserved_range_km
        self.car_needs = s.charging_use_car_needs
        self._station_of: dict[str, str | None] = {}
        self._dirty_cps: set[str] = set()
        self._booted: set[str] = set()
        self._wake = asyncio.Event()
        self._sent: dict[Dock, int] = {}  # the TxProfile limit each session holds
        # Charge points connected to this process whose sessions may hold TxProfiles it never sent (a
        # previous process's, another node's): their next plan is sent in full, whatever it assumes.
        self._unknown: set[str] = set()
        # Sessions whose car reported its needs (or chose a schedule over the limit): their next plan
        # sends a TxProfile whatever it was (K15.FR.07, K15.FR.13).
        self._must_send: set[Dock] = set()
        self.plans = 0
        self.mismatches = 0
        self.plan_seconds = Histogram(WORK_SECONDS)  # metrics: one re-plan, commands to charge points included

    def install(self) -> None:
        self.services.bus.watch(self._on_event, *CHANGES, name="smart-charging", scope="network")
        self.services.bus.watch(self._on_event, *BOOTS, name="smart-charging-boots", scope="node")

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.BootNotified):  # a rebooted charge point lost its profiles
            self._booted.add(event.charge_point_id)
            self._forget(event.charge_point_id)
        elif isinstance(event, ev.ChargePointConnected):  # what it holds may not be what we think
            self._unknown.add(event.charge_point_id)
            self._forget(event.charge_point_id)
        elif isinstance(event, ev.CarNeedsReported) and event.charge_point_id in self.gateway.connections:
            self._must_send.add((event.charge_point_id, event.connector_id))
        self._dirty_cps.add(event.charge_point_id)
        self._wake.set()

    def _forget(self, cp_id: str) -> None:
        for dock in [d for d in self._sent if d[0] == cp_id]:
            del self._sent[dock]

    async def run(self) -> None:
        """Re-plan changed stations as events arrive, and every station with sessions periodically."""
        clock = self.services.clock
        next_sweep = clock.monotonic() + REPLAN_EVERY
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.5, (next_sweep - clock.monotonic())
                                                                      / clock.factor))
            except TimeoutError:
                pass
            await asyncio.sleep(COALESCE_S)
            self._wake.clear()
            cps, self._dirty_cps = self._dirty_cps, set()
            booted, self._booted = self._booted, set()
            if clock.monotonic() >= next_sweep:
                cps |= {d[0] for d in self._sent}
                next_sweep = clock.monotonic() + REPLAN_EVERY
            try:
                await self.replan(await self._stations(cps), booted)
            except Exception:  # a failed plan must not stop planning: the next event retries
                log.exception("smart charging re-plan failed")

    async def _stations(self, cps: Iterable[str]) -> set[str]:
        unknown = [cp for cp in cps if cp not in self._station_of]
        if unknown:
            found = await self.services.store.read(partial(station_of, cp_ids=unknown))
            self._station_of.update({cp: found.get(cp) for cp in unknown})
        return {st for cp in cps if (st := self._station_of.get(cp)) is not None}

    async def replan(self, station_ids: Iterable[str], booted: set[str] | None = None) -> None:
        """One read for all the stations, then stations planned side by side (``PARALLEL_STATIONS`` at a
        time), since most of a plan is waiting for charge points to answer; within a station the
        order of changes is kept."""
        ids = sorted(station_ids)
        started = time.monotonic()
        try:
            await self._replan(ids, booted)
        finally:
            if ids:
                self.plan_seconds.observe(time.monotonic() - started)

    async def _replan(self, station_ids: list[str], booted: set[str] | None) -> None:
        states = await self.services.store.read(partial(
            read_stations, station_ids=station_ids, rated_w=self.rated_w, fraction=self.fraction,
            reserved_range_km=self.reserved_range_km, car_needs=self.car_needs, at=self.services.clock.now()))
        room = asyncio.Semaphore(PARALLEL_STATIONS)

        async def one(state: StationState) -> None:
            async with room:
                await self._replan_station(state, booted or set())

        results = await asyncio.gather(*(one(state) for state in states.values()), return_exceptions=True)
        for failed in [r for r in results if isinstance(r, Exception)]:
            log.error("smart charging re-plan of a station failed", exc_info=failed)

    async def _replan_station(self, state: StationState, booted: set[str]) -> None:
        for cp_id in sorted({d.cp_id for d in state.docks} & booted):
            await self.send_station_profiles(state, cp_id)
        await self.apply(state, plan_station(state, self.services.clock.now()))
        self.plans += 1

    async def apply(self, state: StationState, wanted: dict[Dock, int]) -> None:
        local = self.gateway.connections
        tx_of = {(d.cp_id, d.connector_id): d.transaction_id for d in state.docks}
        # a post this node set higher than the plan and can no longer reach (cut off) keeps drawing it
        stuck = any(self._sent.get(d, 0) > w for d, w in wanted.items() if d[0] not in local)
        wanted = {d: w for d, w in wanted.items() if d[0] in local}
        for dock in [d for d, tx in tx_of.items() if d in self._sent and tx is None]:
            del self._sent[dock]  # the session ended: its TxProfile went with its transaction
        # no TxProfile yet: the safe start; a charge point that connected since is told everything again
        self._must_send -= {d for d, tx in tx_of.items() if tx is None}  # the session ended
        current = {d: self._sent.get(d, safe_start_w(state)) for d in wanted if d[0] not in self._unknown}
        held = stuck  # a decrease did not go through: no increase may follow it in this plan
        for dock, watts in ordered_changes(current, wanted, self._must_send & set(wanted)):
            increase = watts > current.get(dock, math.inf)
            if increase and held:
                continue  # the next plan retries, once the decrease is through
            profile = charging.charging_profile([charging.SchedulePeriod(0, watts)], self.services.clock.now(),
                                                TX_PROFILE_ID, "Tx", TX_STACK_LEVEL, transaction_id=tx_of[dock])
            if (await self._send(dock[0], LimitPower(dock[1], profile))).accepted:
                self._sent[dock] = watts
                self._must_send.discard(dock)
                await self._check(dock, watts)
            elif not increase:
                held = True
        for cp_id in {d.cp_id for d in state.docks} & self._unknown:
            if all(d in self._sent for d in wanted if d[0] == cp_id):  # every session told: known again
                self._unknown.discard(cp_id)

    async def send_station_profiles(self, state: StationState, cp_id: str) -> None:
        """The charge point's standing profiles: the station cap and the safe start (connector 0)."""
        now = self.services.clock.now()
        cap = charging.station_max_profile(charging.Station(state.limit_w), now, MAX_PROFILE_ID)
        safe = charging.charging_profile([charging.SchedulePeriod(0, safe_start_w(state))], now,
                                         DEFAULT_PROFILE_ID, "TxDefault")
        for profile in (cap, safe):
            await self._send(cp_id, LimitPower(0, profile))

    async def _check(self, dock: Dock, watts: int) -> None:
        outcome = await self._send(dock[0], ReadSchedule(dock[1], 60))
        if outcome.accepted and outcome.schedule_w is not None and outcome.schedule_w > watts + 0.5:
            self.mismatches += 1
            log.warning("%s/%s will draw %s W, planned %s W", dock[0], dock[1], outcome.schedule_w, watts)

    async def _send(self, cp_id: str, command: Command) -> Outcome:
        try:
            return await self.gateway.commands.send(cp_id, command, requested_by="voltlib:smart-charging")
        except CommandRefused as exc:  # the next plan retries
            log.warning("smart charging: %s to %s refused: %s", type(command).__name__, cp_id, exc.detail)
        except Exception:  # our fault, logged with its trace; the next plan retries
            log.exception("smart charging: %s to %s failed", type(command).__name__, cp_id)
        return Outcome(state="failed")

    async def set_limit(self, station_id: str, limit_w: float | None, phase_limit_w: float | None) -> Limits:
        """Change (or, with None, reset to the default) a station's grid limit and re-plan it now."""
        store = self.services.store
        if not await store.write(partial(write_limits, station_id=station_id, limit_w=limit_w,
                                         phase_limit_w=phase_limit_w)):
            raise KeyError(station_id)
        state = await store.read(partial(read_station, station_id=station_id, rated_w=self.rated_w,
                                         fraction=self.fraction, reserved_range_km=self.reserved_range_km,
                                         car_needs=self.car_needs, at=self.services.clock.now()))
        assert state is not None
        await self.apply(state, plan_station(state, self.services.clock.now()))  # sessions first, then caps
        for cp_id in sorted({d.cp_id for d in state.docks} & set(self.gateway.connections)):
            await self.send_station_profiles(state, cp_id)
        limits = await self.limits(station_id)
        assert limits is not None
        return limits

    def planned(self, cp_ids: Iterable[str]) -> dict[str, int]:
        """The TxProfile limits this node holds for these charge points' sessions, by ``cp/connector``."""
        wanted = set(cp_ids)
        return {f"{cp}/{conn}": w for (cp, conn), w in self._sent.items() if cp in wanted}

    async def limits(self, station_id: str) -> Limits | None:
        result: Limits | None = await self.services.store.read(partial(
            read_limits, station_id=station_id, rated_w=self.rated_w, fraction=self.fraction))
        return result

