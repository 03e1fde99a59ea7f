"""``voltlib simulate``: a whole car-sharing city against a real voltlib, on simulated time.

voltlib runs in this process on a fresh SQLite file, on a :class:`~voltlib.clock.ScaledClock`
shared with every simulated charge point (one per bay, each on its own WebSocket). Members come
from the demand model (:mod:`voltlib.domain.demand`): some reserve through the HTTP API first;
all badge at the charge point where a car is docked, unplug it, drive (the battery model drains
it), and plug it in at a bay of the destination station (or the nearest with space), which ends
and bills the rental in voltlib. Injected events (intrusions, failures, outages) exercise the
security detectors. The :class:`Report` says what was served and lost, and how the fleet and the
grid fared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from sqlalchemy import Connection, func, select

from voltlib.clock import ScaledClock
from voltlib.domain import battery, demand
from voltlib.security.credentials import hash_api_token, hash_password, new_api_token
from voltlib.sharing import store as ss
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import bay_charge_point
from voltlib.sim import audit
from voltlib.sim.chargepoint import Car, SimOptions, SimulatedChargePoint
from voltlib.sim.crews import CrewTeam
from voltlib.sim.measure import HourlyCounts, served_share
from voltlib.sim.needs import TripBoard, has_range, iso15118_cars, needs_summary
from voltlib.sim.scenario import Scenario, ocpp_versions
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import ocpp_messages, security_alerts, vehicles

T = TypeVar("T")
log = logging.getLogger(__name__)
PASSWORD = "simulated-city-password-1"
RATED_W = 3_000.0
RETURN_ATTEMPTS = 12  # a member with no free bay nearby looks again every 10 simulated minutes, 2 hours at most
OUT_OF_ORDER = frozenset({"Unavailable", "Faulted"})  # a member does not plug into such a bay
WALK_KM = 1.0  # a member finding no car at the origin walks to the nearest station with one, this far at most
SAMPLE_EVERY = timedelta(minutes=15)  # fleet and grid samples, simulated time
MODEL = battery.BLUECAR


@dataclass
class Member:
    id: str
    badge: str
    token: str
    busy: bool = False
    stranded: bool = False  # still holds a car they could not return anywhere: out of the pool


@dataclass
class Fleet:
    """Where every car is, as the simulator (the physical world) knows it."""

    cars: dict[str, Car] = field(default_factory=dict)  # car id -> battery
    tags: dict[str, str] = field(default_factory=dict)  # car id -> its id token
    dock_of: dict[str, str | None] = field(default_factory=dict)  # car id -> charge point (None: driving)
    at: dict[str, str] = field(default_factory=dict)  # charge point -> car id docked there

    def docked_at(self, bays: list[str]) -> list[str]:
        return [self.at[cp] for cp in bays if cp in self.at]


@dataclass
class Report:
    scenario: str
    seed: int
    simulated_hours: float
    wall_seconds: float
    setup_seconds: float  # seeding and connecting every charge point, before simulated time starts
    setup_phases: dict[str, float]  # wall seconds of each setup step (seed, connect, profiles)
    speed_reached: float  # simulated seconds per wall second while the city played
    stations: int
    bays: int
    cars: int
    demand: int
    rentals_served: int
    lost: dict[str, int]
    picked_up_elsewhere: int  # members who walked to a nearby station for a car (none at the origin)
    returned_elsewhere: int  # cars left at a nearby station (the destination was full)
    in_progress: int  # rentals still on the road (or walking to their car) when the simulation ended
    energy_delivered_kwh: float
    reserved_pickups: int  # members who reserved reaching their car
    reserved_with_range: int  # ... and finding it with 1.25 x their trip's range
    peak_station_ratio: float  # highest (station power ÷ its limit) sampled
    seconds_over_limit: int  # samples over a limit × the sample period
    alerts: int
    protocol_errors: int
    soc_samples: list[tuple[float, list[float]]]  # (simulated hour, fleet SoC percent)
    power_samples: list[tuple[float, float, float]]  # (simulated hour, network kW, network limit kW)
    events: list[dict[str, Any]]
    crashes: list[dict[str, Any]] = field(default_factory=list)  # server_crash events (kill -9, restart)
    crash_audit: dict[str, Any] | None = None  # after a crash: acknowledged messages lost or doubled (sim.audit)
    alert_kinds: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> charge point -> alerts
    docks: dict[str, int] = field(default_factory=dict)  # plugged-in cars voltlib does not see docked (sim.audit)
    ocpp_versions: dict[str, int] = field(default_factory=dict)  # OCPP version -> posts speaking it
    # OCPP version -> cars taken from ("picked_up") and returned to ("returned") posts speaking it
    rentals_by_ocpp_version: dict[str, dict[str, int]] = field(default_factory=dict)
    served_share: float = 0.0  # rentals served ÷ demand (sim.measure)
    lost_by_hour: dict[str, list[int]] = field(default_factory=dict)  # reason -> trips lost in each simulated hour
    served_by_hour: list[int] = field(default_factory=list)
    crews: dict[str, Any] | None = None  # field crews: how many, shifts, moves, crew-km (sim.crews)
    pickups: int = 0  # cars members drove off with
    pickups_with_range: int = 0  # ... holding 1.25 x their trip's range (sim.needs.has_range)
    # ISO 15118 cars: the share, whether voltlib planned with their reports, and the answers they got
    car_needs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class CitySimulation:
    def __init__(self, scenario: Scenario, *, port: int, workdir: Path | None = None,
                 on_progress: Callable[[float, Counter[str]], None] | None = None,
                 speed: float | None = None, hours: float | None = None, db_path: Path | None = None,
                 on_ready: Callable[[str, str], None] | None = None,
                 hold: Callable[[], Awaitable[None]] | None = None,
                 on_phase: Callable[[str], None] | None = None) -> None:
        """``on_ready(base_url, admin_token)`` runs once every charge point is up; ``hold`` is awaited
        after the play, before the server stops (the demo keeps serving until Ctrl-C); ``on_phase``
        hears what the setup is doing (a Paris setup takes minutes)."""
        self.s = scenario
        self.port = port
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="voltlib-sim-"))
        self.db_path = db_path or self.workdir / "city.db"
        self.on_ready, self.hold = on_ready, hold
        self.on_progress = on_progress
        self.on_phase = on_phase or (lambda _: None)
        self.phases: dict[str, float] = {}
        self.speed = speed or scenario.speed
        self.hours = hours or scenario.hours
        self.rng = random.Random(scenario.seed)
        self.clock = ScaledClock(scenario.start.astimezone(UTC), self.speed)
        self.fleet = Fleet()
        self.cps: dict[str, SimulatedChargePoint] = {}
        self.station_bays: dict[str, list[str]] = {}
        self.station_of: dict[str, str] = {}  # charge point -> its station
        self.places: dict[str, demand.Place] = {}
        self._nearest: dict[str, list[str]] = {}
        self.members: list[Member] = []
        self.idle: deque[Member] = deque()
        self.reserved: set[str] = set()  # cars held for a member: walk-up members leave them alone
        self.counts = HourlyCounts(self.elapsed_hours)
        self.crews = CrewTeam(self) if scenario.crew_shifts else None  # field crews (sim.crews)
        self.soc_samples: list[tuple[float, list[float]]] = []
        self.power_samples: list[tuple[float, float, float]] = []
        self.peak_ratio = 0.0
        self.over_samples = 0
        self.events: list[dict[str, Any]] = []
        self.limit_w: dict[str, float] = {}
        self.play_wall = 0.0
        self.play_start = self.clock.now()
        self.crashes: list[dict[str, Any]] = []  # server_crash events: when, how long until every post was back
        self.trip_board = TripBoard((), timedelta(0))  # what ISO 15118 cars know of their next trip (sim.needs)

    # -- the run --

    async def run(self) -> Report:
        """Seed the database, start voltlib as its own process (its own core and GIL: the simulator
        and the server each take about half of the machine at Paris peaks), connect every charge
        point, play the demand, report."""
        wall0 = time.monotonic()
        url = f"sqlite:///{self.db_path}"
        store = Store(url)
        try:
            upgrade(store.engine)
            self.on_phase("seeding the city")
            token = await self._timed("seed", self._seed(store))
        finally:
            store.close()
        self.server = await self._timed("server", self._start_server(url))
        self.db_url = url
        base = f"http://127.0.0.1:{self.port}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            # aiohttp rather than httpx: at Paris peaks hundreds of requests wait for a connection,
            # and httpx's pool spends CPU quadratic in that queue (measured: a fifth of the process)
            async with aiohttp.ClientSession(base, headers=headers, timeout=aiohttp.ClientTimeout(total=30),
                                             connector=aiohttp.TCPConnector(limit=100)) as api:
                self.api = api
                async with api.get("/api/v1/clock") as response:
                    self.clock = ScaledClock.from_description(await response.json())  # voltlib's own time
                await self._start_charge_points()
                if self.on_ready:
                    self.on_ready(base, token)
                await self._play()
            await self._settled()
            for crash in self.crashes:
                crash["all_back"] = all(cp.accepted.is_set() for cp in self.cps.values())
            result = self._report(time.monotonic() - wall0, *await asyncio.to_thread(_outcomes, url))
            plugged = {car: cp for car, cp in self.fleet.dock_of.items() if cp is not None}
            result.docks = await asyncio.to_thread(audit.check_rentals, url, plugged,
                                                   timedelta(hours=self.hours + 1))
            if self.crashes:
                result.crash_audit = await asyncio.to_thread(
                    audit.check, url, {cp_id: cp.acknowledged for cp_id, cp in self.cps.items()})
            if self.hold:
                self.report = result
                await self.hold()
        finally:
            await asyncio.gather(*(cp.stop(timeout=2) for cp in self.cps.values()), return_exceptions=True)
            await _stop(self.server)
        return result

    async def _start_server(self, url: str, *, same_clock: bool = False) -> asyncio.subprocess.Process:
        """Start ``voltlib serve``; ``same_clock``: a restart, on the simulated clock the first one set
        (its origin and wall start), so that time goes on where it was rather than starting again."""
        clock = {"VOLTLIB_TIME_WALL_START": repr(self.clock.wall_start)} if same_clock else {}
        origin = self.clock.origin if same_clock else self.clock.now()
        env = {**os.environ, **clock, "VOLTLIB_DATABASE_URL": url, "VOLTLIB_HOST": "127.0.0.1",
               "VOLTLIB_PORT": str(self.port), "VOLTLIB_LOG_LEVEL": "WARNING",
               "VOLTLIB_STATION_LIMIT_FRACTION": str(self.s.station_limit_fraction),
               "VOLTLIB_CHARGING_CONNECTOR_RATED_W": str(RATED_W), "VOLTLIB_RATE_PER_SECOND": "50",
               "VOLTLIB_RATE_BURST": "200",
               "VOLTLIB_OCPP_VERSIONS": '["1.6", "2.0.1"]',  # the scenario's fleet may mix them (ocpp201_share)
               "VOLTLIB_HEARTBEAT_INTERVAL": "3600",  # simulated seconds: thousands of posts, one heartbeat an hour
               "VOLTLIB_CHARGING_USE_CAR_NEEDS": "true" if self.s.car_needs_planning else "false"}
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voltlib", "serve", "--time-scale", str(self.speed),
            "--time-origin", origin.isoformat(), env=env)
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{self.port}/api/v1/health") as response:
                        if response.status == 200:
                            return server
                if server.returncode is not None or time.monotonic() > deadline:
                    await _stop(server)
                    raise RuntimeError(f"voltlib did not start on port {self.port} (exit code {server.returncode})")
                await asyncio.sleep(0.1)

    async def _seed(self, store: Any) -> str:
        snapshot = self.s.snapshot()
        city = builtin_cities()[self.s.city]
        now = self.clock.now()
        socs = {c.id: self.rng.uniform(45.0, 95.0) for c in snapshot.cars}
        token = new_api_token()
        members = [(f"sim-{n:05d}", f"SIMB{n:07d}", new_api_token()) for n in range(self.s.members)]
        password_hash = hash_password(PASSWORD)

        def seed(conn: Connection) -> None:
            ss.upsert_city(conn, city)
            ss.import_snapshot(conn, self.s.city, snapshot, security_profile=1, password_hash=password_hash,
                               soc_percent=80.0, now=now)
            for car_id, soc in socs.items():
                conn.execute(vehicles.update().where(vehicles.c.id == car_id).values(soc_percent=soc))
            repo.add_api_token(conn, "sim-admin", "admin", hash_api_token(token), now)
            for member_id, badge, member_token in members:
                ss.create_member(conn, {
                    "id": member_id, "city": self.s.city, "name": member_id, "email": f"{member_id}@sim.example",
                    "licence_number": member_id, "licence_expiry": now + timedelta(days=3650),
                    "licence_verified": True, "payment_ok": True, "plan_code": _plan(city),
                    "subscribed_until": now + timedelta(days=365)}, badge, now)
                repo.add_api_token(conn, f"member:{member_id}", "member", hash_api_token(member_token), now, member_id)
            if self.crews is not None:
                self.crews.seed_rows(conn, now)

        await store.write(seed)
        self.members = [Member(*m) for m in members]
        self.idle = deque(self.members)
        for st in snapshot.stations:
            self.places[st.id] = demand.Place(st.id, st.latitude, st.longitude)
            self.station_bays[st.id] = [bay_charge_point(st.id, n) for n in range(1, st.bays + 1)]
            self.station_of.update(dict.fromkeys(self.station_bays[st.id], st.id))
            self.limit_w[st.id] = st.bays * RATED_W * self.s.station_limit_fraction
        talking = iso15118_cars(self.s.seed, [c.id for c in snapshot.cars], self.s.iso15118_share)
        for car in snapshot.cars:
            cp_id = self.station_bays[car.station_id][car.bay - 1]
            # a Bluecar: 27 kWh usable; it stops drawing when full (a charge point's meter sees that)
            self.fleet.cars[car.id] = Car(battery_wh=MODEL.usable_wh, soc=socs[car.id], max_power_w=RATED_W,
                                          iso15118=car.id in talking)
            self.fleet.tags[car.id] = car.id_tag
            self.fleet.dock_of[car.id], self.fleet.at[cp_id] = cp_id, car.id
        return token

    async def _start_charge_points(self) -> None:
        # Intervals in simulated seconds, sized for thousands of posts at 100x on two cores: meter values
        # every 15 minutes, the posts' own clock ticking every 5 (energy is integrated exactly anyway).
        options = SimOptions(connectors=1, connector_power_w=RATED_W, max_power_w=RATED_W, meter_interval=900,
                             heartbeat_interval=3600, call_timeout=30.0, connect_timeout=30.0,
                             reconnect_min=self.speed, reconnect_max=30 * self.speed, tick=300.0)
        url = f"ws://127.0.0.1:{self.port}/ocpp"
        versions = ocpp_versions(self.s, [cp_id for bays in self.station_bays.values() for cp_id in bays])
        for bays in self.station_bays.values():
            for cp_id in bays:
                cp = SimulatedChargePoint(cp_id, url, password=PASSWORD, options=options, clock=self.clock,
                                          ocpp_version=versions[cp_id])
                # like Autolib's AC posts: no state of charge in MeterValues (voltlib estimates it from energy)
                cp.configuration["MeterValuesSampledData"].value = "Energy.Active.Import.Register,Power.Active.Import"
                if self.s.clock_skew_minutes:  # posts whose clocks were set wrong, or drift
                    cp.clock_offset = timedelta(minutes=self.rng.uniform(-1, 1) * self.s.clock_skew_minutes)
                car_id = self.fleet.at.get(cp_id)
                if car_id is not None:
                    cp.plug_in(1, self.fleet.cars[car_id])
                self.cps[cp_id] = cp
        limit = asyncio.Semaphore(50)  # connect in waves: a storm of thousands is the gateway bench's job

        async def start(cp: SimulatedChargePoint) -> None:
            async with limit:
                await cp.start()
                await cp.wait_accepted(60)

        self.on_phase(f"connecting {len(self.cps):,} charge points")
        await self._timed("connect", asyncio.gather(*(start(cp) for cp in self.cps.values())))
        self.on_phase("waiting for their charging profiles")
        await self._timed("profiles", self._standing_profiles())
        self.on_phase("playing")
        self.trip_board = TripBoard(self._trips(), self.clock.now() - self.s.start.astimezone(UTC))
        for cp_id, car_id in self.fleet.at.items():  # docked cars charge (or keep warm)
            self.trip_board.tell(self.fleet.cars[car_id], self.station_of[cp_id], self.clock.now())
            self.cps[cp_id].start_transaction(1, self.fleet.tags[car_id])
        self.on_phase(f"starting {len(self.fleet.at):,} charging sessions")
        await self._timed("sessions", self._delivered())

    async def _delivered(self, wall_timeout: float = 120.0) -> None:
        """Wait (bounded) until every charge point has delivered what it queued: thousands of sessions
        starting at once are a storm that members arriving in the middle of it would feel as minutes
        of delay (a departure reported late looks like a car leaving without a rental)."""
        deadline = time.monotonic() + wall_timeout
        while time.monotonic() < deadline:
            if all(cp.outbox_size == 0 for cp in self.cps.values()):
                return
            await asyncio.sleep(0.2)
        log.warning("some charge points still had messages queued after %.0f s", wall_timeout)

    async def _timed(self, phase: str, work: Awaitable[T]) -> T:
        wall0 = time.monotonic()
        try:
            return await work
        finally:
            self.phases[phase] = round(time.monotonic() - wall0, 1)

    async def _standing_profiles(self, wall_timeout: float = 60.0) -> None:
        """Wait (bounded) until voltlib's boot-time profiles are on every charge point, as a real
        station's would be from before: cars then start at the safe-start power, not at full power."""
        deadline = time.monotonic() + wall_timeout
        while time.monotonic() < deadline:
            now = self.clock.now()
            if all(cp.profiles.connector_limit(1, now, None, None) is not None for cp in self.cps.values()):
                return
            await asyncio.sleep(0.2)
        log.warning("some charge points have no charging profile after %.0f s", wall_timeout)

    async def _play(self) -> None:
        wall0 = time.monotonic()
        try:
            await self._play_trips()
        finally:
            self.play_wall = time.monotonic() - wall0

    async def _play_trips(self) -> None:
        # Seeding and connecting took some simulated time: the demand keeps the scenario's own time of
        # day (trips are drawn from its start) and is played from now on, shifted by that setup time.
        start = self.play_start = self.clock.now()
        end = start + timedelta(hours=self.hours)
        shift = start - self.s.start.astimezone(UTC)
        trips = self._trips()
        self.trip_board = TripBoard(trips, shift)
        self.counts["demand"] = len(trips)
        tasks = [asyncio.create_task(self._sampler(start, end)), *(asyncio.create_task(self._event(e, start))
                                                                     for e in self.s.events)]
        if self.crews is not None:
            tasks.append(asyncio.create_task(self.crews.run(start, end)))
        running: set[asyncio.Task[None]] = set()
        for trip in trips:
            await self._until(trip.at + shift)
            task = asyncio.create_task(self._rent(trip))
            running.add(task)
            task.add_done_callback(running.discard)
        await self._until(end)
        for task in [*tasks, *running]:
            task.cancel()
        await asyncio.gather(*tasks, *running, return_exceptions=True)

    def _trips(self) -> list[demand.Trip]:
        return demand.trips(list(self.places.values()), self.s.start, self.hours, self.s.rentals_per_day,
                            self.s.seed)

    async def _until(self, at: datetime) -> None:
        wait = (at - self.clock.now()).total_seconds()
        if wait > 0:
            await self.clock.sleep(wait)

    # -- one member's trip --

    async def _rent(self, trip: demand.Trip) -> None:
        if not self.idle:
            self.counts["lost:no_member"] += 1
            return
        member = self.idle.popleft()  # the member idle longest: trips spread over the whole membership
        member.busy = True
        try:
            await self._trip(member, trip)
        except aiohttp.ClientError:  # voltlib down (a crash drill): the member's app cannot reserve
            self.counts["lost:server_unreachable"] += 1
        except Exception:  # a bug in one trip is counted, never stops the city
            log.exception("simulated trip failed")
            self.counts["trip_failures"] += 1
        finally:
            member.busy = False
            if not member.stranded:
                self.idle.append(member)
            if self.on_progress:
                self.on_progress(self.elapsed_hours(), self.counts)

    def _free_cars(self, station_id: str) -> list[str]:
        return [c for c in self.fleet.docked_at(self.station_bays[station_id]) if c not in self.reserved]

    def _pickup_station(self, origin: str) -> str | None:
        """The origin, or (as members did with Autolib's app) the nearest station with a car within
        ``WALK_KM``."""
        here = self.places[origin]
        return next((s for s in self._by_distance(origin)
                     if demand.distance_km(here, self.places[s]) <= WALK_KM and self._free_cars(s)), None)

    async def _trip(self, member: Member, trip: demand.Trip) -> None:
        station_id = self._pickup_station(trip.origin)
        if station_id is None:
            self.counts["lost:no_car"] += 1
            return
        if station_id != trip.origin:
            self.counts["picked_up_elsewhere"] += 1
        car_id = max(self._free_cars(station_id), key=lambda c: self.fleet.cars[c].soc)
        headers = {"Authorization": f"Bearer {member.token}"}
        if trip.reserve_ahead:
            async with self.api.post("/api/v1/me/reservation", headers=headers,
                                     json={"car_id": car_id, "trip_km": trip.distance_km}) as response:
                if response.status != 201:
                    self.counts[f"lost:{await _reason(response)}"] += 1
                    return
            self.reserved.add(car_id)
            try:
                await self.clock.sleep(self.rng.uniform(120, 900))  # walking to the station
            finally:
                self.reserved.discard(car_id)
        cp_id = self.fleet.dock_of[car_id]
        if cp_id is None or self.fleet.at.get(cp_id) != car_id:
            self.counts["lost:no_car"] += 1
            return
        cp = self.cps[cp_id]
        if trip.reserve_ahead:  # issue 4's target: a reserved car holds the range its trip needs
            self.counts["reserved_pickups"] += 1
            if battery.range_km(MODEL, self.fleet.cars[car_id].soc / 100.0) >= trip.distance_km * 1.25:
                self.counts["reserved_with_range"] += 1
        status = await cp.authorize(member.badge)
        if status != "Accepted":
            if not cp.accepted.is_set():  # offline (voltlib down): members are not on the posts' local lists
                self.counts["lost:server_unreachable"] += 1
            else:
                self.counts["lost:low_battery" if self.fleet.cars[car_id].soc < 30 else f"lost:refused_{status}"] += 1
            if trip.reserve_ahead:  # give the car back rather than leave it held
                with contextlib.suppress(aiohttp.ClientError):  # voltlib down: its hold expires by itself
                    async with self.api.delete("/api/v1/me/reservation", headers=headers) as response:
                        await response.read()
            return
        if self.fleet.at.get(cp_id) != car_id:  # another member drove it off while we badged (a post
            self.counts["lost:no_car"] += 1  # answering from its local cache can accept both badges)
            return
        self.counts["pickups"] += 1
        if has_range(self.fleet.cars[car_id], trip.distance_km):
            self.counts["pickups_with_range"] += 1
        cp.unplug(1)
        self.counts[f"picked_up:{cp.ocpp_version}"] += 1
        del self.fleet.at[cp_id]
        self.fleet.dock_of[car_id] = None
        await self.clock.sleep(trip.duration.total_seconds())
        car = self.fleet.cars[car_id]
        used_wh = trip.distance_km * MODEL.urban_wh_per_km
        car.soc = max(0.0, car.soc - used_wh / MODEL.usable_wh * 100.0)
        member.stranded = not await self._return(car_id, trip.destination)

    async def _return(self, car_id: str, station_id: str) -> bool:
        """Plug in at the destination or the nearest station with a free bay; with none free, drive
        around and look again every 10 simulated minutes, for up to two hours (the rental stays open
        meanwhile, as it would; voltlib's overdue alert takes over after that)."""
        for attempt in range(RETURN_ATTEMPTS):
            cp_id = self.free_bay(station_id)
            if cp_id is not None:
                if cp_id not in self.station_bays[station_id]:
                    self.counts["returned_elsewhere"] += 1
                if attempt:
                    self.counts["returned_after_waiting"] += 1
                self.fleet.at[cp_id], self.fleet.dock_of[car_id] = car_id, cp_id
                cp = self.cps[cp_id]
                self.trip_board.tell(self.fleet.cars[car_id], self.station_of[cp_id], self.clock.now())
                cp.plug_in(1, self.fleet.cars[car_id])
                cp.start_transaction(1, self.fleet.tags[car_id])
                self.counts["rentals_served"] += 1
                self.counts[f"returned:{cp.ocpp_version}"] += 1
                return True
            await self.clock.sleep(600)
        self.counts["lost:no_bay"] += 1
        return False

    def free_bay(self, station_id: str) -> str | None:
        for candidate in self._by_distance(station_id):
            for cp_id in self.station_bays[candidate]:
                connector = self.cps[cp_id].connector(1)
                if cp_id not in self.fleet.at and connector.car is None and connector.status not in OUT_OF_ORDER:
                    return cp_id  # not a quarantined or faulted post
        return None

    def _by_distance(self, station_id: str) -> list[str]:
        """The station itself and its 9 nearest (computed once per station: Paris has 1,119)."""
        found = self._nearest.get(station_id)
        if found is None:
            origin = self.places[station_id]
            found = self._nearest[station_id] = sorted(
                self.places, key=lambda s: demand.distance_km(origin, self.places[s]))[:10]
        return found

    # -- events and samples --

    async def _event(self, event: Any, start: datetime) -> None:
        await self._until(start + timedelta(minutes=event.at_minutes))
        # a clock jump goes to a post with a car plugged in: its meter values carry the wrong time
        cp_id = self.rng.choice(sorted(self.fleet.at if event.kind == "clock_jump" and self.fleet.at else self.cps))
        cp = self.cps[cp_id]
        if event.kind == "intrusion":  # the 2015 case: cabinet forced, then a laptop on the bus
            cp.report_security_event("TamperDetectionActivated", "cabinet door forced")
        elif event.kind == "charge_point_failure":
            cp.set_fault(1, "GroundFailure")
            await self.clock.sleep(event.duration_minutes * 60)
            cp.set_fault(1, None)
        elif event.kind == "clock_jump":
            cp.clock_offset += timedelta(minutes=event.offset_minutes)
        elif event.kind == "server_crash":
            await self._crash_server(event.duration_minutes)
            return
        elif event.kind == "network_outage":
            await cp.set_network(False)
            await self.clock.sleep(event.duration_minutes * 60)
            await cp.set_network(True)
        self.events.append({"kind": event.kind, "charge_point": cp_id, "at_hour": round(self.elapsed_hours(), 2)})

    async def _crash_server(self, down_minutes: float) -> None:
        """Kill -9 voltlib, leave it down ``down_minutes`` (the posts go on offline: local list,
        transactions queued), start it again on the same database and clock, and time how long until
        every charge point is registered again."""
        crash: dict[str, Any] = {"at_hour": round(self.elapsed_hours(), 2), "down_minutes": down_minutes,
                                 "wall_seconds_until_all_back": None, "simulated_minutes_until_all_back": None}
        self.crashes.append(crash)  # filled in as it goes: the play may end before every post is back
        self.events.append({"kind": "server_crash", "charge_point": None, "at_hour": crash["at_hour"]})
        self.server.kill()  # SIGKILL: nothing flushed, nothing said goodbye
        await self.server.wait()
        crash["acknowledged_before"] = sum(len(cp.acknowledged) for cp in self.cps.values())
        await self.clock.sleep(down_minutes * 60)
        crash["queued_while_down"] = sum(cp.outbox_size for cp in self.cps.values())
        wall0, sim0 = time.monotonic(), self.clock.now()
        self.server = await self._start_server(self.db_url, same_clock=True)
        await asyncio.gather(*(cp.wait_accepted(300) for cp in self.cps.values()))
        crash["wall_seconds_until_all_back"] = round(time.monotonic() - wall0, 1)
        crash["simulated_minutes_until_all_back"] = round((self.clock.now() - sim0).total_seconds() / 60, 1)

    async def _settled(self, wall_timeout: float = 120.0) -> None:
        """Before the audits: every post online and its queued messages delivered (bounded)."""
        deadline = time.monotonic() + wall_timeout
        while time.monotonic() < deadline:
            if all(cp.accepted.is_set() and cp.outbox_size == 0 for cp in self.cps.values()):
                return
            await asyncio.sleep(0.2)
        log.warning("some charge points were still offline or had messages queued after %.0f s", wall_timeout)

    async def _sampler(self, start: datetime, end: datetime) -> None:
        t = start
        while t <= end:
            await self._until(t)
            self._sample()
            t += SAMPLE_EVERY

    def _sample(self) -> None:
        hour = self.elapsed_hours()
        self.soc_samples.append((hour, sorted(round(c.soc, 1) for c in self.fleet.cars.values())))
        total = 0.0
        for station_id, bays in self.station_bays.items():
            power = sum(self.cps[cp].connector(1).power_w for cp in bays)
            total += power
            ratio = power / self.limit_w[station_id] if self.limit_w[station_id] else 0.0
            self.peak_ratio = max(self.peak_ratio, ratio)
            if ratio > 1.0 + 1e-6:
                self.over_samples += 1
        self.power_samples.append((hour, total / 1000.0, sum(self.limit_w.values()) / 1000.0))

    def _by_version(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for key, n in sorted(self.counts.items()):
            what, _, version = key.partition(":")
            if what in ("picked_up", "returned"):
                found.setdefault(version, {})[what] = n
        return found

    def elapsed_hours(self) -> float:
        return (self.clock.now() - self.play_start).total_seconds() / 3600.0

    def _report(self, wall: float, alerts: int, errors: int, alert_kinds: dict[str, dict[str, int]]) -> Report:
        energy = sum(cp.connector(1).energy_wh for cp in self.cps.values()) / 1000.0
        lost = {k.split(":", 1)[1]: v for k, v in sorted(self.counts.items()) if k.startswith("lost:")}
        hours = max(1, math.ceil(self.hours - 1e-9))
        return Report(
            scenario=self.s.name, seed=self.s.seed, simulated_hours=round(self.hours, 2), wall_seconds=round(wall, 1),
            speed_reached=round(self.hours * 3600.0 / self.play_wall, 1) if self.play_wall else 0.0,
            stations=len(self.station_bays),
            bays=len(self.cps), cars=len(self.fleet.cars), demand=self.counts["demand"],
            rentals_served=self.counts["rentals_served"], lost=lost,
            picked_up_elsewhere=self.counts["picked_up_elsewhere"],
            returned_elsewhere=self.counts["returned_elsewhere"],
            in_progress=self.counts["demand"] - self.counts["rentals_served"] - sum(lost.values()),
            energy_delivered_kwh=round(energy, 1), setup_seconds=round(wall - self.play_wall, 1),
            setup_phases=dict(self.phases),
            reserved_pickups=self.counts["reserved_pickups"], reserved_with_range=self.counts["reserved_with_range"],
            peak_station_ratio=round(self.peak_ratio, 3),
            seconds_over_limit=int(self.over_samples * SAMPLE_EVERY.total_seconds()), alerts=alerts,
            protocol_errors=errors, soc_samples=self.soc_samples, power_samples=self.power_samples,
            events=self.events, crashes=self.crashes, alert_kinds=alert_kinds,
            ocpp_versions=dict(sorted(Counter(cp.ocpp_version for cp in self.cps.values()).items())),
            rentals_by_ocpp_version=self._by_version(),
            served_share=served_share(self.counts["demand"], self.counts["rentals_served"]),
            lost_by_hour={k.split(":", 1)[1]: self.counts.per_hour(k, hours)
                          for k in sorted(self.counts.by_hour) if k.startswith("lost:")},
            served_by_hour=self.counts.per_hour("rentals_served", hours),
            crews=self.crews.summary() if self.crews is not None else None,
            pickups=self.counts["pickups"], pickups_with_range=self.counts["pickups_with_range"],
            car_needs=needs_summary(self.s.iso15118_share, self.s.car_needs_planning, self.cps.values()))


def _outcomes(url: str) -> tuple[int, int, dict[str, dict[str, int]]]:
    """Security alerts raised, protocol errors, and the alerts by kind and charge point, read from the
    database voltlib wrote."""
    store = Store(url)
    try:
        return store.run_sync(lambda c: (int(c.execute(select(func.count()).select_from(security_alerts))
                                             .scalar_one()), _protocol_errors(c), _alert_kinds(c)))
    finally:
        store.close()


def _alert_kinds(conn: Connection) -> dict[str, dict[str, int]]:
    kinds: dict[str, dict[str, int]] = {}
    for kind, cp_id, n in conn.execute(select(security_alerts.c.kind, security_alerts.c.charge_point_id, func.count())
                                       .group_by(security_alerts.c.kind, security_alerts.c.charge_point_id)):
        kinds.setdefault(kind, {})[cp_id or "-"] = int(n)
    return kinds


async def _stop(server: asyncio.subprocess.Process) -> None:
    if server.returncode is None:
        server.terminate()
        try:
            await asyncio.wait_for(server.wait(), 15)
        except TimeoutError:
            server.kill()
            await server.wait()


def _protocol_errors(conn: Connection) -> int:
    """Exchanges the gateway logged as violations or CallErrors (from either side)."""
    return int(conn.execute(select(func.count()).select_from(ocpp_messages)
                            .where(ocpp_messages.c.outcome.in_(("violation", "error")))).scalar_one())


def _plan(city: Any) -> str:
    return "premium" if "premium" in city.plans else sorted(city.plans)[0]


async def _reason(response: aiohttp.ClientResponse) -> str:
    with contextlib.suppress(Exception):
        title = str((await response.json(content_type=None)).get("title", "refused"))
        return {"low_range": "low_battery", "car_already_held": "no_car"}.get(title, title)
    return f"http_{response.status}"
