"""Rebalancing (issue 4): where cars will run out or bays fill up in the coming hours, which cars a
field agent should drive where, and the lifecycle of those field tasks.

Pure and typed: no I/O, no clock. The rates are the city simulator's own demand model
(:mod:`voltlib.domain.demand`), so a forecast says what the simulator would do on average.

Model (expected values, a fluid approximation; docs/car-sharing.md, "Rebalancing"):

* **Pickups.** A day's rentals follow ``demand.HOURLY`` (local time); every station is an equally
  likely origin. An hour's expected pickups at each station are ``expected_trips(hour) / n``.
* **Returns.** A trip from *i* ends at *j* with the model's weight (falling with distance) after the
  model's mean trip time *D*. A trip leaving uniformly within an hour arrives ``floor(D)`` hours
  later with probability ``1 - frac(D)``, one hour more otherwise. Trips that left before the
  forecast starts and arrive after it (cars on the road now) are counted.
* **Stock.** Only rentable cars count (docked, not held, at least the city's minimum range). A
  station's capacity is those cars plus its free bays: unrentable cars and held bays stay put.
  Each hour ``level = cars + returns - pickups``; below 0 is missed pickups ("no car"), above the
  capacity missed returns ("no bay"); the level is then clamped. Pickups and returns inside one hour
  are netted, so a station whose two flows balance shows no shortage even if it is tiny.
* **Donors** give only cars they would not need for their own pickups if no car came back within
  the horizon: on the simulated Paris day, giving against forecast returns put two thirds of the
  trips lost for no car at the stations that had given cars (docs/simulator.md, "Field crews").
* **Shortage.** Reported when the horizon's expected missed pickups (or returns) reach
  ``SHORTAGE_MIN``; its hour is the first in which any were missed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Final

from voltlib.domain import demand
from voltlib.domain.demand import Place

SHORTAGE_MIN: Final = 0.5  # expected members turned away over the horizon that make a shortage
RENTALS_PER_CAR_DAY: Final = 4.0  # Autolib' Paris at its peak: ~16,000 rentals a day with ~4,000 cars
MAX_HOURS: Final = 24
MAX_MOVE_KM: Final = 8.0  # street km: beyond this a move costs more agent time than it saves
DEFAULT_MAX_MOVES: Final = 20
RETURNS_COUNTED: Final = 0.5  # share of its forecast returns a station short of cars counts on
_EPS: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Car:
    car_id: str
    range_km: float


@dataclass(frozen=True, slots=True)
class StationState:
    """Now, at one station: its rentable cars, its free bays (no car, no hold) and all its bays."""

    place: Place
    cars: tuple[Car, ...]
    free_bays: int
    bays: int

    def __post_init__(self) -> None:
        if self.free_bays < 0 or len(self.cars) + self.free_bays > self.bays:
            raise ValueError(f"station {self.place.station_id}: {len(self.cars)} cars + {self.free_bays} free bays "
                             f"do not fit in {self.bays} bays")

    @property
    def station_id(self) -> str:
        return self.place.station_id

    @property
    def capacity(self) -> int:
        """Bays a rentable car can be in: its rentable cars' and the free ones."""
        return len(self.cars) + self.free_bays


@dataclass(frozen=True, slots=True)
class Rates:
    """Expected pickups and returns at one station, one value per coming hour."""

    pickups: tuple[float, ...]
    returns: tuple[float, ...]


# --- rates from the demand model ---------------------------------------------------------------

@lru_cache(maxsize=8)
def arrival_profile(places: tuple[Place, ...]) -> dict[str, tuple[float, ...]]:
    """For each station *j*: ``profile[lag]`` = expected arrivals at *j*, ``lag`` hours after the
    hour of departure, per trip in the city. A trip leaves *i* for *j* with chance ``w_ij / Z``
    (origins weighted by their reach ``sum_j w_ij``, ``Z`` the sum of every reach: the demand
    model's origin weights); the weight depends on distance only, so ``sum(profile)`` is also *j*'s
    share of the departures. Geometry only (O(n²)), so it is cached."""
    out: dict[str, list[float]] = {p.station_id: [0.0] for p in places}
    if len(places) < 2:
        return {k: tuple(v) for k, v in out.items()}
    for origin in places:
        others = [p for p in places if p is not origin]
        km = [demand.distance_km(origin, p) for p in others]
        weights = [demand.destination_weight(d) for d in km]  # = demand.destination_weights, one distance each
        for dest, d, w in zip(others, km, weights, strict=True):
            hours = demand.mean_trip_minutes(d) / 60.0
            lag, frac = int(hours), hours - int(hours)
            profile = out[dest.station_id]
            while len(profile) < lag + 2:
                profile.append(0.0)
            profile[lag] += w * (1.0 - frac)
            profile[lag + 1] += w * frac
    z = sum(sum(p) for p in out.values())
    return {k: tuple(x / z for x in v) for k, v in out.items()}


def demand_rates(places: Sequence[Place], start: datetime, hours: int, per_day: float) -> dict[str, Rates]:
    """Each station's expected pickups and returns in the ``hours`` hours from ``start`` (local time
    of the city: the daily profile is by hour of day)."""
    if not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"1 to {MAX_HOURS} hours")
    profiles = arrival_profile(tuple(places))
    longest = max((len(p) for p in profiles.values()), default=1)

    def departures(k: int) -> float:  # in the whole city, in hour k (negative: before the start)
        if len(places) < 2:  # the demand model has nowhere to go
            return 0.0
        return demand.expected_trips(per_day, hour_start(start, k), hour_start(start, k + 1))

    per_hour = {k: departures(k) for k in range(-longest, hours)}
    rates: dict[str, Rates] = {}
    for place in places:
        profile = profiles[place.station_id]
        returns = tuple(sum(per_hour[k - lag] * share for lag, share in enumerate(profile)) for k in range(hours))
        mine = sum(profile)  # the station's share of departures: as many leave as arrive (see arrival_profile)
        rates[place.station_id] = Rates(tuple(per_hour[k] * mine for k in range(hours)), returns)
    return rates


def hour_start(start: datetime, k: int) -> datetime:
    """``start`` + ``k`` elapsed hours, on ``start``'s local clock (right across a DST change)."""
    return (start.astimezone(UTC) + timedelta(hours=k)).astimezone(start.tzinfo)


# --- forecast ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Hour:
    """Expected at the end of one hour, and what was missed during it."""

    cars: float
    free_bays: float
    missed_pickups: float
    missed_returns: float


@dataclass(frozen=True, slots=True)
class Shortage:
    first_hour: int  # 0 = the coming hour
    expected: float  # members turned away over the horizon


@dataclass(frozen=True, slots=True)
class StationForecast:
    station_id: str
    cars: int
    free_bays: int
    hours: tuple[Hour, ...]
    no_car: Shortage | None
    no_bay: Shortage | None


def project(cars: int, capacity: int, rates: Rates) -> tuple[Hour, ...]:
    """The fluid model, hour by hour, from ``cars`` rentable cars in ``capacity`` usable bays."""
    stock, out = float(cars), []
    for pickups, returns in zip(rates.pickups, rates.returns, strict=True):
        level = stock + returns - pickups
        stock = min(max(level, 0.0), float(capacity))
        out.append(Hour(stock, capacity - stock, max(0.0, -level), max(0.0, level - capacity)))
    return tuple(out)


def missed(cars: int, capacity: int, rates: Rates) -> tuple[float, float]:
    """(missed pickups, missed returns) over the horizon."""
    hours = project(cars, capacity, rates)
    return sum(h.missed_pickups for h in hours), sum(h.missed_returns for h in hours)


def _shortage(values: Iterable[float]) -> Shortage | None:
    values = list(values)
    total = sum(values)
    if total < SHORTAGE_MIN:
        return None
    return Shortage(next(i for i, v in enumerate(values) if v > 0), total)


def counted(rates: Rates) -> Rates:
    """The rates a station short of cars plans on: its pickups, and ``RETURNS_COUNTED`` of its
    forecast returns (they come at random; a member who finds no car is lost even if one comes back
    an hour later)."""
    return Rates(rates.pickups, tuple(RETURNS_COUNTED * r for r in rates.returns))


def forecast(stations: Iterable[StationState], rates: Mapping[str, Rates]) -> list[StationForecast]:
    """Expected cars and free bays hour by hour; a shortage of cars as the planner judges it
    (:func:`counted`), of bays on the full forecast."""
    out = []
    for s in stations:
        hours = project(len(s.cars), s.capacity, rates[s.station_id])
        short = project(len(s.cars), s.capacity, counted(rates[s.station_id]))
        out.append(StationForecast(s.station_id, len(s.cars), s.free_bays, hours,
                                   _shortage(h.missed_pickups for h in short),
                                   _shortage(h.missed_returns for h in hours)))
    return out


# --- moves -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Move:
    car_id: str
    from_station: str
    to_station: str
    distance_km: float  # street km (demand.distance_km)
    car_range_km: float
    reason: str  # "no_car" at the destination, or "no_bay" at the origin
    hour: int  # the first hour of the shortage the move is meant to prevent


@dataclass(slots=True)
class _Balance:
    """How many cars a station can give, wants, should shed, can take — each keeping it out of
    shortage. Missed pickups fall and missed returns rise with the cars a station starts with, so
    each is a scan for the first count that crosses ``SHORTAGE_MIN``."""

    state: StationState
    give: int
    want: int
    shed: int
    room: int
    no_car_hour: int
    no_bay_hour: int
    missed_pickups: float
    cars: list[Car]  # still available, best range first
    role: str = ""  # "donor" or "receiver" once used

    @classmethod
    def of(cls, s: StationState, rates: Rates, pinned: frozenset[str]) -> _Balance:
        cars, cap = len(s.cars), s.capacity
        # a receiver counts on part of its forecast returns only (docs/car-sharing.md "Moves")
        planned = counted(rates)
        hours, full = project(cars, cap, planned), project(cars, cap, rates)
        mp0 = sum(h.missed_pickups for h in hours)
        mr0 = sum(h.missed_returns for h in full)

        def mp(n: int) -> float:
            return missed(n, cap, planned)[0]

        def mr(n: int) -> float:
            return missed(n, cap, rates)[1]

        # a donor keeps what its own members would take if no car came back within the horizon: its
        # returns are forecast, not promised, and giving against them moved the shortage to the donor
        own = Rates(rates.pickups, (0.0,) * len(rates.returns))
        give = 0 if mp0 >= SHORTAGE_MIN else max((k for k in range(cars + 1)
                                                  if missed(cars - k, cap, own)[0] < SHORTAGE_MIN), default=0)
        want = 0
        if mp0 >= SHORTAGE_MIN:
            bay_ok = max(mr0 + _EPS, SHORTAGE_MIN)  # never create (or worsen) a bay shortage
            allowed = max(k for k in range(s.free_bays + 1) if k == 0 or mr(cars + k) < bay_ok)
            want = next((k for k in range(1, allowed + 1) if mp(cars + k) < SHORTAGE_MIN), allowed)
        shed = 0
        if mr0 >= SHORTAGE_MIN:
            shed = next((k for k in range(1, give + 1) if mr(cars - k) < SHORTAGE_MIN), give)
        room = 0 if mr0 >= SHORTAGE_MIN else max(k for k in range(s.free_bays + 1)
                                                 if k == 0 or mr(cars + k) < SHORTAGE_MIN)
        first_car = next((i for i, h in enumerate(hours) if h.missed_pickups > 0), len(hours))
        first_bay = next((i for i, h in enumerate(full) if h.missed_returns > 0), len(full))
        return cls(s, give, want, shed, room, first_car, first_bay, mp0,
                   sorted((c for c in s.cars if c.car_id not in pinned), key=lambda c: (-c.range_km, c.car_id)))


def plan_moves(stations: Sequence[StationState], rates: Mapping[str, Rates], *, min_range_km: float,
               max_moves: int = DEFAULT_MAX_MOVES, max_km: float = MAX_MOVE_KM,
               pinned: frozenset[str] = frozenset()) -> list[Move]:
    """Moves, most urgent first, at most ``max_moves``.

    First, stations about to run out of cars (earliest first) get cars from the nearest stations
    that can spare them; then stations about to fill up (earliest first) send cars to the nearest
    stations with room. A donor gives only cars it would not need for its own pickups even if no car
    came back within the horizon (so it never misses ``SHORTAGE_MIN`` pickups by giving); a receiver
    never takes more than its free bays, nor so many that it would start missing returns. The car
    moved is the donor's with the most range, and only if that range covers the drive plus the
    city's minimum (the car must still be rentable on arrival). No station both gives and receives;
    no move is longer than ``max_km``. ``pinned`` cars (already on a task) stay.
    """
    balances = {s.station_id: _Balance.of(s, rates[s.station_id], pinned) for s in stations}
    near = neighbours(tuple(s.place for s in stations), max_km)
    distances: dict[tuple[str, str], float] = {}
    moves: list[Move] = []

    def km(a: _Balance, b: _Balance) -> float:
        key = (a.state.station_id, b.state.station_id)
        if key not in distances:
            distances[key] = distances[key[::-1]] = demand.distance_km(a.state.place, b.state.place)
        return distances[key]

    def usable(donor: _Balance, receiver: _Balance) -> bool:
        d = km(donor, receiver)
        return d <= max_km and bool(donor.cars) and donor.cars[0].range_km >= min_range_km + d

    def move(donor: _Balance, receiver: _Balance, reason: str, hour: int) -> None:
        car = donor.cars.pop(0)
        donor.give, donor.shed, donor.role = donor.give - 1, max(0, donor.shed - 1), "donor"
        receiver.want, receiver.room, receiver.role = receiver.want - 1, receiver.room - 1, "receiver"
        moves.append(Move(car.car_id, donor.state.station_id, receiver.state.station_id,
                          round(km(donor, receiver), 2), car.range_km, reason, hour))

    def nearest(of: _Balance, fits: Callable[[_Balance], bool]) -> _Balance | None:
        """The nearest station that ``fits`` and can be paired with ``of`` (the cheap tests first: the
        exact distance only for the few that pass them)."""
        for sid in near[of.state.station_id]:
            other = balances[sid]
            if fits(other) and (usable(other, of) if fits is can_give else usable(of, other)):
                return other
        return None

    def can_give(b: _Balance) -> bool:
        return b.give > 0 and b.role != "receiver"

    def can_take(b: _Balance) -> bool:
        return b.room > 0 and b.role != "donor"

    short = sorted((b for b in balances.values() if b.want > 0),
                   key=lambda b: (b.no_car_hour, -b.missed_pickups, b.state.station_id))
    for receiver in short:
        while receiver.want > 0 and len(moves) < max_moves:
            donor = nearest(receiver, can_give)
            if donor is None:
                break
            move(donor, receiver, "no_car", receiver.no_car_hour)
    full = sorted((b for b in balances.values() if b.shed > 0 and b.role != "receiver"),
                  key=lambda b: (b.no_bay_hour, b.state.station_id))
    for donor in full:
        while donor.shed > 0 and donor.give > 0 and len(moves) < max_moves:
            taker = nearest(donor, can_take)
            if taker is None:
                break
            move(donor, taker, "no_bay", donor.no_bay_hour)
    return moves


@lru_cache(maxsize=8)
def neighbours(places: tuple[Place, ...], max_km: float) -> dict[str, tuple[str, ...]]:
    """For each station, the others within about ``max_km`` street km, nearest first (ties by id).
    Geometry only, so it is cached: the planner then measures exact distances for a few candidates
    instead of every station for every move (Paris: from seconds to a fraction of one). The order
    uses a flat-earth distance (within 0.1 % of the great circle across a city)."""
    if not places:
        return {}
    lat0 = math.radians(sum(p.latitude for p in places) / len(places))
    scale = 1.3 * 6371.0088 * math.pi / 180.0  # street km per degree of latitude (demand.distance_km's 1.3)
    xy = [(p.station_id, p.longitude * math.cos(lat0) * scale, p.latitude * scale) for p in places]
    limit = (max_km * 1.01) ** 2
    out: dict[str, tuple[str, ...]] = {}
    for sid, x, y in xy:
        found = sorted((dx * dx + dy * dy, other) for other, ox, oy in xy
                       if other != sid and (dx := ox - x) * dx + (dy := oy - y) * dy <= limit)
        out[sid] = tuple(other for _, other in found)
    return out


def apply_moves(stations: Iterable[StationState], moves: Iterable[Move]) -> list[StationState]:
    """The stations as they would be once the moves are done (for checks and what-ifs)."""
    by_id = {s.station_id: s for s in stations}
    for m in moves:
        src, dst = by_id[m.from_station], by_id[m.to_station]
        car = next(c for c in src.cars if c.car_id == m.car_id)
        by_id[m.from_station] = replace(src, cars=tuple(c for c in src.cars if c is not car),
                                        free_bays=src.free_bays + 1)
        by_id[m.to_station] = replace(dst, cars=(*dst.cars, car), free_bays=dst.free_bays - 1)
    return list(by_id.values())


def fleet_rentals_per_day(cars: int) -> float:
    """Default daily demand for a fleet: Autolib's rentals per car and day at its peak."""
    return RENTALS_PER_CAR_DAY * cars


# --- field tasks -------------------------------------------------------------------------------

class TaskState(StrEnum):
    PROPOSED = "proposed"  # created from a recommended move, nobody on it yet
    ASSIGNED = "assigned"  # a field agent has it
    IN_PROGRESS = "in_progress"  # the agent took the car
    DONE = "done"  # the car is at its destination
    CANCELLED = "cancelled"


TASK_ACTIONS: Final = ("assign", "start", "complete", "cancel")
LIVE_TASK_STATES: Final = frozenset({TaskState.PROPOSED, TaskState.ASSIGNED, TaskState.IN_PROGRESS})

# h11 style: a pair that is not here is the protocol error.
TASK_TRANSITIONS: Final[Mapping[tuple[TaskState, str], TaskState]] = {
    (TaskState.PROPOSED, "assign"): TaskState.ASSIGNED,
    (TaskState.PROPOSED, "cancel"): TaskState.CANCELLED,
    (TaskState.ASSIGNED, "start"): TaskState.IN_PROGRESS,
    (TaskState.ASSIGNED, "cancel"): TaskState.CANCELLED,
    (TaskState.IN_PROGRESS, "complete"): TaskState.DONE,
    (TaskState.IN_PROGRESS, "cancel"): TaskState.CANCELLED,
}


class TaskTransitionError(Exception):
    def __init__(self, state: TaskState, action: str) -> None:
        super().__init__(f"cannot {action} a task that is {state.value}")
        self.state, self.action = state, action


class InvalidTask(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TaskStep:
    """One line of a task's history: who did what, when."""

    action: str
    state: TaskState
    by: str
    at: datetime
    assignee: str | None = None
    note: str | None = None
    badge: str | None = None  # assign: the crew's badge; badge: the badge presented (note: where)


@dataclass(frozen=True, slots=True)
class FieldTask:
    car_id: str
    from_station: str
    to_station: str
    state: TaskState
    assignee: str | None
    history: tuple[TaskStep, ...]

    @property
    def live(self) -> bool:
        return self.state in LIVE_TASK_STATES

    @property
    def crew_badge(self) -> str | None:
        """The badge of the crew the task is assigned to (the last assign step's), if they gave one."""
        return next((s.badge for s in reversed(self.history) if s.action == "assign"), None)


def propose(car_id: str, from_station: str, to_station: str, *, by: str, at: datetime,
            note: str | None = None) -> FieldTask:
    if from_station == to_station:
        raise InvalidTask("a move goes from one station to another")
    return FieldTask(car_id, from_station, to_station, TaskState.PROPOSED, None,
                     (TaskStep("propose", TaskState.PROPOSED, by, at, note=note),))


def advance(task: FieldTask, action: str, *, by: str, at: datetime, assignee: str | None = None,
            note: str | None = None, badge: str | None = None) -> FieldTask:
    """The task after ``action``; a pair missing from ``TASK_TRANSITIONS`` raises, the task unchanged.
    ``badge``: with assign, the crew's badge (a crew badge, checked by the caller), which then may
    take the task's car (:func:`crew_badge_decision`)."""
    try:
        state = TASK_TRANSITIONS[(task.state, action)]
    except KeyError:
        raise TaskTransitionError(task.state, action) from None
    if action == "assign" and not (assignee or "").strip():
        raise InvalidTask("assign needs the field agent (assignee)")
    if badge is not None and action != "assign":
        raise InvalidTask("a badge goes with assign")
    if task.history and at < task.history[-1].at:
        raise InvalidTask("a task's history goes forward in time")
    who = assignee if action == "assign" else task.assignee
    return replace(task, state=state, assignee=who,
                   history=(*task.history, TaskStep(action, state, by, at, assignee if action == "assign" else None,
                                                    note, badge)))


# --- crews at the charge point -----------------------------------------------------------------
# A crew badge is an id tag of the CREW group (OCPP parentIdTag): staff, not a member. It opens a
# car only when that car's live task is assigned to that badge, at the task's donor station; the
# accepted badge is written into the task's history (a ``badge`` step), and it is that step that
# makes the car's departure authorised work rather than an unauthorised one.

CREW_GROUP: Final = "CREW"  # parentIdTag of every crew badge
CREW_BADGE_WINDOW: Final = timedelta(minutes=15)  # a crew's badge authorises the car's departure this long


def crew_badge_decision(task: FieldTask | None, id_tag: str, station_id: str | None) -> str | None:
    """Why a crew badge may not take the car it badged at (None: it may). ``task``: the car's live task."""
    if task is None or not task.live:
        return "no_task"
    if task.crew_badge != id_tag:
        return "not_assigned_to_badge"
    if task.state is not TaskState.ASSIGNED and task.state is not TaskState.IN_PROGRESS:
        return "not_assigned"
    if task.from_station != station_id:
        return "not_the_task_station"
    return None


def badged(task: FieldTask, id_tag: str, cp_id: str, at: datetime) -> FieldTask:
    """The task once its crew's badge was accepted at ``cp_id`` (a history step; the state stays)."""
    at = max(at, task.history[-1].at) if task.history else at
    return replace(task, history=(*task.history, TaskStep("badge", task.state, id_tag, at, note=cp_id,
                                                          badge=id_tag)))


def arrived(task: FieldTask, cp_id: str, at: datetime) -> FieldTask:
    """The task once its car was plugged in at ``cp_id`` (an ``arrival`` history step; the state
    stays: the crew completes the task)."""
    at = max(at, task.history[-1].at) if task.history else at
    return replace(task, history=(*task.history, TaskStep("arrival", task.state, task.crew_badge or "?", at,
                                                          note=cp_id)))


def crew_departure(task: FieldTask | None, cp_id: str, at: datetime) -> bool:
    """The task's car left ``cp_id`` at ``at`` (the charge point's stamp) as the task's work: its
    crew's badge was accepted at that charge point within ``CREW_BADGE_WINDOW`` of ``at``, and the
    task was not cancelled before ``at``. The task may be done already: a departure voltlib hears of
    late (a charge point offline, a busy server) after the crew reported the move complete is still
    the crew's."""
    if task is None or task.state is TaskState.PROPOSED:
        return False
    if any(s.action == "cancel" and s.at <= at for s in task.history):
        return False
    step = next((s for s in reversed(task.history) if s.action == "badge"), None)
    return (step is not None and step.note == cp_id and step.badge == task.crew_badge
            and abs(at - step.at) <= CREW_BADGE_WINDOW)



def task_transitions_markdown() -> str:
    """``TASK_TRANSITIONS`` as a Markdown table (docs/car-sharing.md carries it; a test compares)."""
    rows = ["| state | " + " | ".join(f"`{a}`" for a in TASK_ACTIONS) + " |", "|---|" + "---|" * len(TASK_ACTIONS)]
    for state in TaskState:
        cells = [target.value if (target := TASK_TRANSITIONS.get((state, a))) else "—" for a in TASK_ACTIONS]
        rows.append(f"| **{state.value}** | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
