"""Field crews in the city simulation (issue 19): they carry out the moves voltlib decides.

voltlib decides: a dispatcher (the operator's desk) asks ``GET /api/v1/rebalancing/moves`` every
``DISPATCH_EVERY`` simulated minutes and files each recommended move as a field task. The crews only
execute, as a crew's app would, through the same API: a free crew claims the proposed task whose car
is nearest (``assign`` with its name and its crew badge; a 409 means another crew was faster),
travels to the car at ``TRAVEL_KMH``, badges at the car's charge point (Authorize: voltlib accepts a
crew badge only for its task's car), unplugs it (the charging transaction ends, the connector is
Available), reports ``start``, drives it at the members' urban speed and plugs it in at a free bay of
the receiving station or, when that is full, of the nearest one with room (a transaction started
with the car's own tag), then reports ``complete``. A car that is gone when the crew arrives, or a
badge refused, cancels the task with a note. Crews work their scenario shift (``crew_shifts``, local
time), finish the task in hand when it ends, and start from a station drawn from the seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from sqlalchemy import Connection

from voltlib.domain import battery, demand
from voltlib.domain import rebalancing as rb
from voltlib.security.credentials import hash_api_token, new_api_token
from voltlib.store import repo

if TYPE_CHECKING:
    from voltlib.sim.city import CitySimulation
    from voltlib.sim.scenario import CrewShift

log = logging.getLogger(__name__)
TASKS = "/api/v1/rebalancing/tasks"
TRAVEL_KMH = 15.0  # a crew between two stations (folding scooter, bike or metro), street km
DISPATCH_EVERY = timedelta(minutes=10)  # the desk asks voltlib for moves this often (simulated)
HORIZON_HOURS = 5  # ... for the coming hours' demand
STALE = timedelta(minutes=30)  # a proposed task nobody took by then is cancelled: the next plan replaces it
IDLE_WAIT = 120.0  # simulated seconds a crew with nothing to take waits before looking again
BOARD_PER_CREW = 2  # proposed tasks kept on the board per crew on shift


@dataclass
class Crew:
    name: str
    badge: str
    token: str
    shift: CrewShift
    station: str  # where the crew is now
    busy: bool = False


@dataclass
class Board:
    """The proposed tasks as the desk last read them (task id -> task)."""

    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)


class CrewTeam:
    def __init__(self, sim: CitySimulation) -> None:
        self.sim = sim
        self.rng = random.Random(f"{sim.s.seed}:crews")  # its own draws: the demand's stay as they were
        self.crews: list[Crew] = []
        self.board = Board()
        self.counts: Counter[str] = Counter()
        self.moves_by_hour: Counter[int] = Counter()
        self.km = 0.0
        self.station_of: dict[str, str] = {}

    @property
    def size(self) -> int:
        return sum(s.crews for s in self.sim.s.crew_shifts)

    def seed_rows(self, conn: Connection, now: datetime) -> None:
        """Each crew: an operator token (its app) and a badge of the CREW group (staff, not a member)."""
        n = 0
        for shift in self.sim.s.crew_shifts:
            for _ in range(shift.crews):
                n += 1
                name, badge, token = f"crew-{n:03d}", f"CREW{n:04d}", new_api_token()
                repo.add_api_token(conn, name, "operator", hash_api_token(token), now)
                repo.upsert_id_tag(conn, badge, status="Accepted", expiry_date=None, parent_id_tag=rb.CREW_GROUP,
                                   now=now)
                self.crews.append(Crew(name, badge, token, shift, ""))

    async def run(self, start: datetime, end: datetime) -> None:
        self.station_of = {cp: st for st, bays in self.sim.station_bays.items() for cp in bays}
        stations = sorted(self.sim.station_bays)
        for crew in self.crews:
            crew.station = self.rng.choice(stations)
        work = [asyncio.create_task(self._desk(end)), *(asyncio.create_task(self._crew(c, end)) for c in self.crews)]
        try:
            await asyncio.gather(*work)
        finally:
            for task in work:
                task.cancel()
            await asyncio.gather(*work, return_exceptions=True)

    def summary(self) -> dict[str, Any]:
        cars = len(self.sim.fleet.cars)
        return {"crews": self.size, "per_thousand_cars": round(1000.0 * self.size / cars, 1) if cars else 0.0,
                "shifts": [{"start": s.start, "end": s.end, "crews": s.crews} for s in self.sim.s.crew_shifts],
                "moves": self.counts["moves"], "crew_km": round(self.km, 1),
                "moves_by_hour": [self.moves_by_hour[h] for h in range(int(self.sim.hours + 0.999))],
                **{k: v for k, v in sorted(self.counts.items()) if k != "moves"}}

    # -- the desk --

    def _on_shift(self, crew: Crew) -> bool:
        local = self.sim.clock.now().astimezone(self.sim.s.start.tzinfo)
        minute = local.hour * 60 + local.minute
        lo, hi = crew.shift.minutes
        return lo <= minute < hi if lo < hi else minute >= lo or minute < hi

    async def _desk(self, end: datetime) -> None:
        while self.sim.clock.now() < end:
            try:
                await self._dispatch()
            except aiohttp.ClientError:  # voltlib down (a crash drill): try again next round
                pass
            except Exception:
                log.exception("the crews' desk failed a round")
            await self.sim.clock.sleep(DISPATCH_EVERY.total_seconds())

    async def _dispatch(self) -> None:
        api, now = self.sim.api, self.sim.clock.now()
        on_shift = sum(1 for c in self.crews if self._on_shift(c))
        async with api.get(TASKS, params={"city": self.sim.s.city, "state": "proposed", "limit": "1000"}) as r:
            proposed = await r.json() if r.status == 200 else []
        board: dict[int, dict[str, Any]] = {}
        for task in proposed:
            created = datetime.fromisoformat(task["created_at"])
            if now - created > STALE or not on_shift:
                await self._transition(None, task["id"], "cancel", note="not taken: replanned")
                self.counts["tasks_expired"] += 1
            else:
                board[task["id"]] = task
        self.board.tasks = board
        wanted = on_shift * BOARD_PER_CREW - len(board)
        if wanted <= 0:
            return
        params = {"city": self.sim.s.city, "hours": str(HORIZON_HOURS), "max": str(min(200, wanted)),
                  "rentals_per_day": str(self.sim.s.rentals_per_day)}
        async with api.get("/api/v1/rebalancing/moves", params=params) as r:
            moves = (await r.json())["moves"] if r.status == 200 else []
        for move in moves:
            async with api.post(TASKS, json={**move, "city": self.sim.s.city}) as r:
                if r.status == 201:
                    task = await r.json()
                    board[task["id"]] = task
                    self.counts["tasks_created"] += 1

    # -- one crew --

    async def _crew(self, crew: Crew, end: datetime) -> None:
        while self.sim.clock.now() < end:
            task = self._take(crew) if self._on_shift(crew) else None
            if task is None:
                await self.sim.clock.sleep(IDLE_WAIT)
                continue
            try:
                await self._carry_out(crew, task)
            except aiohttp.ClientError:
                self.counts["tasks_failed_api"] += 1
            except Exception:
                log.exception("crew %s failed task %s", crew.name, task["id"])
                self.counts["tasks_failed"] += 1

    def _take(self, crew: Crew) -> dict[str, Any] | None:
        """The proposed task whose car is nearest to the crew (taken off the board)."""
        if not self.board.tasks:
            return None
        here = self.sim.places[crew.station]
        best = min(self.board.tasks.values(),
                   key=lambda t: (demand.distance_km(here, self.sim.places[t["from_station"]]), t["id"]))
        del self.board.tasks[best["id"]]
        return best

    async def _carry_out(self, crew: Crew, task: dict[str, Any]) -> None:
        sim = self.sim
        if not await self._transition(crew, task["id"], "assign", assignee=crew.name, badge=crew.badge):
            return  # another crew claimed it, or it was cancelled meanwhile
        crew.busy = True
        try:
            km = demand.distance_km(sim.places[crew.station], sim.places[task["from_station"]])
            await sim.clock.sleep(km / TRAVEL_KMH * 3600.0)
            self.km += km
            crew.station = task["from_station"]
            car_id = task["car_id"]
            cp_id = sim.fleet.dock_of.get(car_id)
            if cp_id is None or self.station_of.get(cp_id) != task["from_station"] or car_id in sim.reserved:
                self.counts["cancelled_car_gone"] += 1  # a member took it first (demand served anyway)
                await self._transition(crew, task["id"], "cancel", note="car gone")
                return
            cp = sim.cps[cp_id]
            status = await cp.authorize(crew.badge)
            if status != "Accepted" or sim.fleet.at.get(cp_id) != car_id:
                self.counts["cancelled_badge_refused" if status != "Accepted" else "cancelled_car_gone"] += 1
                await self._transition(crew, task["id"], "cancel", note=f"badge {status}")
                return
            cp.unplug(1)
            del sim.fleet.at[cp_id]
            sim.fleet.dock_of[car_id] = None
            await self._transition(crew, task["id"], "start")
            await self._drive(crew, task, car_id)
        finally:
            crew.busy = False

    async def _drive(self, crew: Crew, task: dict[str, Any], car_id: str) -> None:
        sim = self.sim
        km = demand.distance_km(sim.places[task["from_station"]], sim.places[task["to_station"]])
        await sim.clock.sleep(km / demand.URBAN_KMH * 3600.0)
        car = sim.fleet.cars[car_id]
        car.soc = max(0.0, car.soc - km * battery.BLUECAR.urban_wh_per_km / battery.BLUECAR.usable_wh * 100.0)
        self.km += km
        while True:
            bay = sim.free_bay(task["to_station"])
            if bay is not None:
                break
            await sim.clock.sleep(300)  # everything full around: wait for a member to take a car
        sim.fleet.at[bay], sim.fleet.dock_of[car_id] = car_id, bay
        cp = sim.cps[bay]
        cp.plug_in(1, car)
        cp.start_transaction(1, sim.fleet.tags[car_id])
        crew.station = self.station_of[bay]
        elsewhere = crew.station != task["to_station"]
        self.counts["moves"] += 1
        self.counts["docked_elsewhere"] += elsewhere
        self.moves_by_hour[int(sim.elapsed_hours())] += 1
        await self._transition(crew, task["id"], "complete", note=f"docked at {crew.station}" if elsewhere else None)

    async def _transition(self, crew: Crew | None, task_id: int, action: str, **body: Any) -> bool:
        headers = {"Authorization": f"Bearer {crew.token}"} if crew else None
        payload = {"action": action, **{k: v for k, v in body.items() if v is not None}}
        with contextlib.suppress(aiohttp.ClientError):
            async with self.sim.api.post(f"{TASKS}/{task_id}/transition", json=payload, headers=headers) as r:
                await r.read()
                if r.status == 200:
                    return True
                self.counts[f"refused_{action}"] += 1
        return False
