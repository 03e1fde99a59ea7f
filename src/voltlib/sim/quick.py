"""A quick replay of a scenario's day, in memory, for analysing the crews' rules (issue 19).

The full simulation plays a Paris day over real WebSockets against a real voltlib: 15 minutes of
wall time at ×100. To compare move rules in seconds, this replays the same demand (the same seed,
the same trips) with the simulator's members' rules (a car at the origin or the nearest station
within ``WALK_KM``; a return at the destination or the nearest of its ten neighbours with a free
bay, looking again every 10 minutes for 2 hours) and the crews' rules (the desk filing voltlib's
recommended moves every 10 minutes, a free crew taking the nearest task) — but no server, no OCPP,
no batteries (every car is rentable). The moves come from the same code voltlib's API runs
(:func:`voltlib.sharing.rebalancing.moves_report`). Figures for the record come from the full
simulation; this one says where trips are lost and which rule helps (docs/simulator.md).

``python -m voltlib.sim.quick --scenario paris [--crews 80] [--hours 24]``
"""

from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from voltlib.domain import demand
from voltlib.domain import rebalancing as rb
from voltlib.sharing import rebalancing as store_rb
from voltlib.sharing.cities import builtin_cities
from voltlib.sim import scenario as scenarios
from voltlib.sim.city import RETURN_ATTEMPTS, WALK_KM
from voltlib.sim.crews import BOARD_PER_CREW, DISPATCH_EVERY, HORIZON_HOURS, IDLE_WAIT, STALE, TRAVEL_KMH

RANGE_KM = 150.0  # every car counts as rentable with this range: batteries are not replayed


@dataclass
class Task:
    id: int
    car_id: str
    from_station: str
    to_station: str
    created: datetime
    state: str = "proposed"


@dataclass
class QuickCrew:
    station: str
    lo: int
    hi: int
    busy: bool = False


@dataclass
class QuickResult:
    demand: int = 0
    served: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    lost_by_hour: dict[str, list[int]] = field(default_factory=dict)
    lost_at: Counter[str] = field(default_factory=Counter)  # station -> trips lost there for no car
    moves_by_hour: list[int] = field(default_factory=list)
    crew_km: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        lost = {k: sum(v) for k, v in self.lost_by_hour.items()}
        return {"demand": self.demand, "served": self.served,
                "served_share": round(self.served / self.demand, 4) if self.demand else 0.0,
                "lost": lost, "lost_by_hour": self.lost_by_hour, "moves": sum(self.moves_by_hour),
                "moves_by_hour": self.moves_by_hour, "crew_km": round(self.crew_km, 1),
                "counts": dict(self.counts), "worst_stations": self.lost_at.most_common(15)}


class QuickDay:
    """One replay. ``crews``: how many crews per shift of the scenario (None: the scenario's own)."""

    def __init__(self, s: scenarios.Scenario, *, hours: float | None = None, crews_per_shift: int | None = None,
                 plan: Callable[..., dict[str, Any]] = store_rb.moves_report) -> None:
        self.s, self.hours = s, hours or s.hours
        self.plan = plan
        snap = s.snapshot()
        city = builtin_cities()[s.city]
        self.timezone, self.min_range = city.timezone, float(city.min_range_km)
        self.places = {st.id: demand.Place(st.id, st.latitude, st.longitude) for st in snap.stations}
        self.bays = {st.id: st.bays for st in snap.stations}
        self.cars_at: dict[str, set[str]] = {st.id: set() for st in snap.stations}
        for car in snap.cars:
            self.cars_at[car.station_id].add(car.id)
        self.fleet = len(snap.cars)
        self.held: set[str] = set()  # reserved by a member walking to it
        self.nearest = {sid: self._ten_nearest(p) for sid, p in self.places.items()}
        self.crews = [QuickCrew("", *sh.minutes) for sh in s.crew_shifts
                      for _ in range(sh.crews if crews_per_shift is None else crews_per_shift)]
        self.rng = random.Random(f"{s.seed}:crews")
        self.walk_rng = random.Random(s.seed)
        self.tasks: dict[int, Task] = {}
        self.task_ids = itertools.count(1)
        self.queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self.order = itertools.count()
        self.now = s.start
        self.result = QuickResult()
        n = int(self.hours + 0.999)
        self.result.lost_by_hour = {"no_car": [0] * n, "no_bay": [0] * n}
        self.result.moves_by_hour = [0] * n

    def _ten_nearest(self, here: demand.Place) -> list[str]:
        """The station itself and its 9 nearest, as the simulator's members look."""
        return sorted(self.places, key=lambda other: demand.distance_km(here, self.places[other]))[:10]

    # -- the event loop --

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        heapq.heappush(self.queue, (when, next(self.order), action))

    def run(self) -> QuickResult:
        end = self.s.start + timedelta(hours=self.hours)
        trips = demand.trips(list(self.places.values()), self.s.start, self.hours, self.s.rentals_per_day, self.s.seed)
        self.result.demand = len(trips)
        for trip in trips:
            self.at(trip.at, functools.partial(self.rent, trip))
        if self.crews:
            stations = sorted(self.places)
            for crew in self.crews:
                crew.station = self.rng.choice(stations)
                self.at(self.s.start, functools.partial(self.crew_look, crew))
            self.at(self.s.start, self.desk)
        while self.queue and self.queue[0][0] < end:
            self.now, _, action = heapq.heappop(self.queue)
            action()
        return self.result

    def hour(self) -> int:
        return min(int((self.now - self.s.start).total_seconds() // 3600), len(self.result.moves_by_hour) - 1)

    def lose(self, reason: str, station: str) -> None:
        self.result.lost_by_hour[reason][self.hour()] += 1
        if reason == "no_car":
            self.result.lost_at[station] += 1

    # -- members --

    def free_cars(self, sid: str) -> list[str]:
        return sorted(c for c in self.cars_at[sid] if c not in self.held)

    def free_bays(self, sid: str) -> int:
        return self.bays[sid] - len(self.cars_at[sid])

    def rent(self, trip: demand.Trip) -> None:
        here = self.places[trip.origin]
        sid = next((s for s in self.nearest[trip.origin]
                    if demand.distance_km(here, self.places[s]) <= WALK_KM and self.free_cars(s)), None)
        if sid is None:
            self.lose("no_car", trip.origin)
            return
        car = self.free_cars(sid)[0]
        if trip.reserve_ahead:
            self.held.add(car)
            self.at(self.now + timedelta(seconds=self.walk_rng.uniform(120, 900)), lambda: self.depart(car, sid, trip))
        else:
            self.depart(car, sid, trip)

    def depart(self, car: str, sid: str, trip: demand.Trip) -> None:
        self.held.discard(car)
        self.cars_at[sid].discard(car)
        self.at(self.now + trip.duration, lambda: self.arrive(car, trip.destination, 0))

    def free_bay_near(self, sid: str) -> str | None:
        return next((s for s in self.nearest[sid] if self.free_bays(s) > 0), None)

    def arrive(self, car: str, destination: str, attempt: int) -> None:
        sid = self.free_bay_near(destination)
        if sid is not None:
            self.cars_at[sid].add(car)
            self.result.served += 1
            return
        if attempt + 1 >= RETURN_ATTEMPTS:
            self.lose("no_bay", destination)
            return
        self.at(self.now + timedelta(minutes=10), lambda: self.arrive(car, destination, attempt + 1))

    # -- the desk and the crews --

    def on_shift(self, crew: QuickCrew) -> bool:
        local = self.now.astimezone(self.s.start.tzinfo)
        minute = local.hour * 60 + local.minute
        return crew.lo <= minute < crew.hi if crew.lo < crew.hi else minute >= crew.lo or minute < crew.hi

    def city_state(self) -> store_rb.CityState:
        stations = [rb.StationState(self.places[sid], tuple(rb.Car(c, RANGE_KM) for c in sorted(
                        self.cars_at[sid] - self.held)),
                                    self.free_bays(sid), self.bays[sid]) for sid in sorted(self.places)]
        return store_rb.CityState(self.s.city, self.timezone, self.min_range, self.fleet, stations, {})

    def desk(self) -> None:
        on_shift = sum(1 for c in self.crews if self.on_shift(c))
        board = 0
        for t in self.tasks.values():
            if t.state == "proposed":
                if self.now - t.created > STALE or not on_shift:
                    t.state = "cancelled"
                    self.result.counts["tasks_expired"] += 1
                else:
                    board += 1
        wanted = on_shift * BOARD_PER_CREW - board
        if wanted > 0:
            live = [rb.FieldTask(t.car_id, t.from_station, t.to_station, rb.TaskState.PROPOSED, None, ())
                    for t in self.tasks.values() if t.state in ("proposed", "assigned")]
            report = self.plan(self.city_state(), live, now=self.now, hours=HORIZON_HOURS,
                               per_day=self.s.rentals_per_day, max_moves=min(200, wanted))
            for m in report["moves"]:
                tid = next(self.task_ids)
                self.tasks[tid] = Task(tid, m["car_id"], m["from_station"], m["to_station"], self.now)
                self.result.counts["tasks_created"] += 1
        self.tasks = {k: t for k, t in self.tasks.items() if t.state in ("proposed", "assigned")}
        self.at(self.now + DISPATCH_EVERY, self.desk)

    def crew_look(self, crew: QuickCrew) -> None:
        board = [t for t in self.tasks.values() if t.state == "proposed"]
        if not self.on_shift(crew) or not board:
            self.at(self.now + timedelta(seconds=IDLE_WAIT), lambda: self.crew_look(crew))
            return
        here = self.places[crew.station]
        task = min(board, key=lambda t: (demand.distance_km(here, self.places[t.from_station]), t.id))
        task.state = "assigned"
        km = demand.distance_km(here, self.places[task.from_station])
        self.result.crew_km += km
        self.at(self.now + timedelta(hours=km / TRAVEL_KMH), lambda: self.crew_at_car(crew, task))

    def crew_at_car(self, crew: QuickCrew, task: Task) -> None:
        crew.station = task.from_station
        if task.car_id not in self.cars_at[task.from_station] or task.car_id in self.held:
            self.result.counts["cancelled_car_gone"] += 1
            task.state = "cancelled"
            self.crew_look(crew)
            return
        self.cars_at[task.from_station].discard(task.car_id)
        km = demand.distance_km(self.places[task.from_station], self.places[task.to_station])
        self.result.crew_km += km
        self.at(self.now + timedelta(hours=km / demand.URBAN_KMH), lambda: self.crew_dock(crew, task))

    def crew_dock(self, crew: QuickCrew, task: Task) -> None:
        sid = self.free_bay_near(task.to_station)
        if sid is None:
            self.at(self.now + timedelta(minutes=5), lambda: self.crew_dock(crew, task))
            return
        self.cars_at[sid].add(task.car_id)
        crew.station = sid
        task.state = "done"
        self.result.counts["docked_elsewhere"] += sid != task.to_station
        self.result.moves_by_hour[self.hour()] += 1
        self.crew_look(crew)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="paris")
    parser.add_argument("--hours", type=float)
    parser.add_argument("--crews", type=int, help="crews per shift (default: the scenario's)")
    args = parser.parse_args(argv)
    result = QuickDay(scenarios.load(args.scenario), hours=args.hours, crews_per_shift=args.crews).run()
    print(json.dumps(result.as_dict()))


if __name__ == "__main__":
    main()
