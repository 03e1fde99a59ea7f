"""Rebalancing store functions (issue 4): a city's state as the pure model wants it, and field tasks.

Plain functions over a Connection, run by ``Store.read``/``Store.write``; the rules are in
:mod:`voltlib.domain.rebalancing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, func, insert, select, update

from voltlib.domain import rebalancing as rb
from voltlib.domain.demand import Place
from voltlib.sharing import store as ss
from voltlib.sharing.crews import is_crew_badge, task_of_row, task_values
from voltlib.sharing.eligibility import car_range_km
from voltlib.store.pages import Key, Order, Page, fetch
from voltlib.store.tables import bays, cities, field_tasks, rentals, stations, vehicles


@dataclass(frozen=True)
class CityState:
    code: str
    timezone: str
    min_range_km: float
    fleet: int  # every car of the city, docked or not: the default demand scales with it
    stations: list[rb.StationState]
    names: dict[str, str]


class TaskRefused(Exception):
    """A task that cannot be created: ``status`` and ``code`` become the API's problem."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def city_state(conn: Connection, city: str) -> CityState | None:
    """Each station of the city now: rentable cars (docked, not held by a reservation, at least the
    city's minimum range) with their range, free bays (no car, no hold) and all bays."""
    record = ss.get_city(conn, city)
    if record is None:
        return None
    timezone = conn.execute(select(cities.c.timezone).where(cities.c.code == city)).scalar_one()
    held = set(conn.execute(select(rentals.c.active_car).where(rentals.c.active_car.is_not(None))).scalars())
    docked = conn.execute(
        select(vehicles.c.id, vehicles.c.status, vehicles.c.soc_percent, bays.c.station_id)
        .join(bays, and_(vehicles.c.charge_point_id == bays.c.charge_point_id,
                         vehicles.c.connector_id == bays.c.connector_id))
        .join(stations, stations.c.id == bays.c.station_id)
        .where(stations.c.city == city)).mappings()
    cars: dict[str, list[rb.Car]] = {}
    for car in docked:
        km = car_range_km(dict(car))
        if car["status"] == "docked" and car["id"] not in held and km is not None and km >= record.min_range_km:
            cars.setdefault(car["station_id"], []).append(rb.Car(car["id"], round(km, 1)))
    out, names = [], {}
    for row in ss.station_availability(conn, city=city):
        # a dock reported twice must not make a station hold more cars than bays
        mine = tuple(sorted(cars.get(row["id"], []), key=lambda c: c.car_id))[:row["bays"] - row["free_bays"]]
        out.append(rb.StationState(Place(row["id"], row["latitude"], row["longitude"]), mine, row["free_bays"],
                                   row["bays"]))
        names[row["id"]] = row["name"]
    fleet = conn.execute(select(func.count()).select_from(vehicles).where(vehicles.c.city == city)).scalar_one()
    return CityState(city, timezone, float(record.min_range_km), int(fleet), out, names)


# --- reports (pure, on a loaded CityState) ------------------------------------------------------

def _rates(state: CityState, now: datetime, hours: int,
           per_day: float | None) -> tuple[datetime, float, dict[str, rb.Rates]]:
    local = now.astimezone(ZoneInfo(state.timezone)).replace(second=0, microsecond=0)
    daily = rb.fleet_rentals_per_day(state.fleet) if per_day is None else per_day
    return local, daily, rb.demand_rates([s.place for s in state.stations], local, hours, daily)


def forecast_report(state: CityState, *, now: datetime, hours: int, per_day: float | None = None,
                    short_only: bool = False) -> dict[str, Any]:
    """Per station and hour: expected rentable cars and free bays, missed pickups and returns, and
    the first hour of each kind of shortage."""
    start, daily, rates = _rates(state, now, hours, per_day)

    def at(hour: int) -> str:
        return rb.hour_start(start, hour).isoformat()

    def shortage(found: rb.Shortage | None) -> dict[str, Any] | None:
        return None if found is None else {"first_hour": found.first_hour, "at": at(found.first_hour),
                                           "expected": round(found.expected, 2)}

    rows = []
    for f in rb.forecast(state.stations, rates):
        if short_only and f.no_car is None and f.no_bay is None:
            continue
        r = rates[f.station_id]
        rows.append({"station_id": f.station_id, "name": state.names.get(f.station_id), "cars": f.cars,
                     "free_bays": f.free_bays, "no_car": shortage(f.no_car), "no_bay": shortage(f.no_bay),
                     "hours": [{"hour": i, "at": at(i), "pickups": round(r.pickups[i], 2),
                                "returns": round(r.returns[i], 2), "cars": round(h.cars, 2),
                                "free_bays": round(h.free_bays, 2), "missed_pickups": round(h.missed_pickups, 2),
                                "missed_returns": round(h.missed_returns, 2)} for i, h in enumerate(f.hours)]})
    return {"city": state.code, "start": start.isoformat(), "hours": hours, "rentals_per_day": round(daily, 1),
            "shortage_min": rb.SHORTAGE_MIN,
            "summary": {"stations": len(state.stations), "no_car": sum(1 for r in rows if r["no_car"]),
                        "no_bay": sum(1 for r in rows if r["no_bay"])},
            "stations": rows}


def moves_report(state: CityState, tasks: list[rb.FieldTask], *, now: datetime, hours: int,
                 per_day: float | None = None, max_moves: int = rb.DEFAULT_MAX_MOVES) -> dict[str, Any]:
    """Recommended moves on top of the live tasks: those are counted as done (their car at its
    destination) and their cars are not moved again."""
    start, daily, rates = _rates(state, now, hours, per_day)
    by_id = {s.station_id: s for s in state.stations}
    planned: list[rb.Move] = []
    for t in tasks:
        src, dst = by_id.get(t.from_station), by_id.get(t.to_station)
        car = None if src is None else next((c for c in src.cars if c.car_id == t.car_id), None)
        arriving = sum(1 for m in planned if m.to_station == t.to_station)
        if car is not None and dst is not None and dst.free_bays > arriving:
            planned.append(rb.Move(car.car_id, t.from_station, t.to_station, 0.0, car.range_km, "task", 0))
    after = rb.apply_moves(state.stations, planned)
    moves = rb.plan_moves(after, rates, min_range_km=state.min_range_km, max_moves=max_moves,
                          pinned=frozenset(t.car_id for t in tasks))
    return {"city": state.code, "start": start.isoformat(), "hours": hours, "rentals_per_day": round(daily, 1),
            "live_tasks": len(tasks),
            "moves": [{"car_id": m.car_id, "from_station": m.from_station, "to_station": m.to_station,
                       "distance_km": m.distance_km, "car_range_km": m.car_range_km, "reason": m.reason,
                       "hour": m.hour, "at": rb.hour_start(start, m.hour).isoformat()} for m in moves]}


# --- field tasks -------------------------------------------------------------------------------

def create_task(conn: Connection, *, city: str, car_id: str, from_station: str, to_station: str,
                reason: str | None, by: str, now: datetime, note: str | None = None) -> dict[str, Any]:
    """A proposed task for a car docked at ``from_station``; one live task per car."""
    found = {r["id"]: r for r in conn.execute(select(stations.c.id, stations.c.city).where(
        stations.c.id.in_([from_station, to_station]))).mappings()}
    for sid in (from_station, to_station):
        if sid not in found or found[sid]["city"] != city:
            raise TaskRefused(422, "unknown-station", f"no station {sid} in {city}")
    at = conn.execute(select(bays.c.station_id).join(vehicles, and_(
        vehicles.c.charge_point_id == bays.c.charge_point_id, vehicles.c.connector_id == bays.c.connector_id))
        .where(vehicles.c.id == car_id, vehicles.c.status == "docked")).scalar()
    if at != from_station:
        raise TaskRefused(409, "car-not-there", f"car {car_id} is not docked at {from_station}")
    if conn.execute(select(field_tasks.c.id).where(field_tasks.c.active_car == car_id)).first() is not None:
        raise TaskRefused(409, "car-has-task", f"car {car_id} already has a live task")
    try:
        task = rb.propose(car_id, from_station, to_station, by=by, at=now, note=note)
    except rb.InvalidTask as exc:
        raise TaskRefused(422, "invalid-task", str(exc)) from None
    key = conn.execute(insert(field_tasks).values(
        city=city, car_id=car_id, from_station=from_station, to_station=to_station, reason=reason,
        created_by=by[:64], created_at=now, **task_values(task, now))).inserted_primary_key
    assert key is not None
    task_id = key[0]
    found_task = get_task(conn, int(task_id))
    assert found_task is not None
    return found_task


def get_task(conn: Connection, task_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(field_tasks).where(field_tasks.c.id == task_id)).mappings().first()
    return None if row is None else _out(row)


TASKS = Order((field_tasks.c.id,))  # newest first; done and cancelled tasks stay, so the list grows


def task_page(conn: Connection, *, city: str | None = None, state: str | None = None, after: Key | None = None,
              limit: int = 200) -> Page:
    """A page of field tasks, newest first, after the cursor's key."""
    query = select(field_tasks)
    if city is not None:
        query = query.where(field_tasks.c.city == city)
    if state is not None:
        query = query.where(field_tasks.c.state == state)
    page = fetch(conn, query, TASKS, after, limit)
    return Page([_out(r) for r in page.rows], page.next)


def list_tasks(conn: Connection, *, city: str | None = None, state: str | None = None,
               limit: int = 200) -> list[dict[str, Any]]:
    """The newest ``limit`` field tasks (the CLI's one screen)."""
    return task_page(conn, city=city, state=state, limit=limit).rows


def live_tasks(conn: Connection, city: str) -> list[rb.FieldTask]:
    query = select(field_tasks).where(field_tasks.c.city == city, field_tasks.c.active_car.is_not(None))
    return [task_of_row(r) for r in conn.execute(query).mappings()]


def transition_task(conn: Connection, task_id: int, *, action: str, by: str, now: datetime,
                    assignee: str | None = None, note: str | None = None,
                    badge: str | None = None) -> dict[str, Any] | None:
    """The task after ``action`` (None: no such task). Raises ``rb.TaskTransitionError`` for a pair
    outside the table and ``rb.InvalidTask`` for bad input (a ``badge`` that is not an accepted crew
    badge among them); the row is unchanged then."""
    row = conn.execute(select(field_tasks).where(field_tasks.c.id == task_id)).mappings().first()
    if row is None:
        return None
    if badge is not None and not is_crew_badge(conn, badge):
        raise rb.InvalidTask(f"{badge} is not an accepted crew badge (an id tag of the {rb.CREW_GROUP} group)")
    task = task_of_row(row)
    changed = rb.advance(task, action, by=by[:64], at=now, assignee=assignee[:64] if assignee else None, note=note,
                         badge=badge)
    done = conn.execute(update(field_tasks).where(field_tasks.c.id == task_id,
                                                  field_tasks.c.state == task.state.value)
                        .values(**task_values(changed, now))).rowcount
    if done != 1:  # another node moved it first: report against what is there now
        now_row = conn.execute(select(field_tasks.c.state).where(field_tasks.c.id == task_id)).scalar_one()
        raise rb.TaskTransitionError(rb.TaskState(now_row), action)
    return get_task(conn, task_id)


def _out(row: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(row).items() if k != "active_car"}
