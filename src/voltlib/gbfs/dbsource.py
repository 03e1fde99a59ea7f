"""City snapshots read from the car-sharing tables (one consistent read per city).

Counting, so that the feeds agree with the database and with the rental rules:
- a car is *available* when it is docked at one of the station's bays, not held by a live
  reservation or rental, and has the range the city requires to be rented (``min_range_km``);
- a docked car below that range is *disabled* (it stays charging and cannot be rented);
- *free bays* are ``sharing.store.station_availability``'s: no car and no live bay reservation,
  less the bays whose connector reports Faulted or Unavailable (counted as disabled docks) and the
  bays whose connector reports Reserved for someone else than car sharing (an operator's
  reservation through the API: not free to a member, and back when the charge point says so);
- a station's ``last_reported`` is the newest connector status time of its bays (or state-of-charge
  reading of its cars); stations never heard from report the time of the import (EPOCH otherwise).
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime
from functools import partial

from sqlalchemy import Connection, and_, select

from voltlib.gbfs.feeds import EPOCH
from voltlib.gbfs.model import CitySnapshot, Closure, Station, StationState, System, Vehicle
from voltlib.sharing import store as ss
from voltlib.sharing.eligibility import car_range_km
from voltlib.store.db import Store
from voltlib.store.tables import bays, cities, connectors, rentals, stations, vehicles

BROKEN = frozenset({"Faulted", "Unavailable"})


def read_systems(conn: Connection) -> list[System]:
    return [System(r.code, r.name, timezone=r.timezone)
            for r in conn.execute(select(cities.c.code, cities.c.name, cities.c.timezone).order_by(cities.c.code))]


def read_snapshot(conn: Connection, system_id: str) -> CitySnapshot | None:
    row = conn.execute(select(cities).where(cities.c.code == system_id)).mappings().first()
    city = ss.get_city(conn, system_id)
    if row is None or city is None:
        return None
    avail = {s["id"]: s for s in ss.station_availability(conn, system_id)}
    docks = conn.execute(
        select(bays.c.station_id, bays.c.charge_point_id, bays.c.connector_id, connectors.c.status,
               connectors.c.status_at)
        .join(stations, stations.c.id == bays.c.station_id)
        .outerjoin(connectors, and_(connectors.c.charge_point_id == bays.c.charge_point_id,
                                    connectors.c.connector_id == bays.c.connector_id))
        .where(stations.c.city == system_id)).all()
    held_cars = {r[0] for r in conn.execute(select(rentals.c.active_car).where(rentals.c.active_car.is_not(None)))}
    held_bays = {r[0] for r in conn.execute(select(rentals.c.active_bay).where(rentals.c.active_bay.is_not(None)))}
    station_of = {(cp_id, connector_id): station_id for station_id, cp_id, connector_id, _, _ in docks}
    occupied = set()
    cars: list[Vehicle] = []
    by_station: dict[str, list[tuple[Vehicle, bool]]] = defaultdict(list)
    docked = (select(vehicles.c.id, vehicles.c.charge_point_id, vehicles.c.connector_id, vehicles.c.soc_percent,
                     vehicles.c.soc_at)
              .where(vehicles.c.city == system_id, vehicles.c.status == "docked").order_by(vehicles.c.id))
    for car_id, cp_id, connector_id, soc_percent, soc_at in conn.execute(docked):  # tuples: ~2,600 rows in Paris
        station_id = station_of.get((cp_id, connector_id))
        if station_id is None:
            continue
        occupied.add((cp_id, connector_id))
        km = car_range_km({"soc_percent": soc_percent})
        vehicle = Vehicle(car_id, station_id, (soc_percent or 0.0) / 100.0, int((km or 0.0) * 1000),
                          soc_at or EPOCH, reserved=car_id in held_cars, disabled=km is None or km < city.min_range_km)
        cars.append(vehicle)
        by_station[station_id].append((vehicle, vehicle.reserved))
    reported: dict[str, datetime] = {}
    broken_free: dict[str, int] = defaultdict(int)
    reserved_free: dict[str, int] = defaultdict(int)
    for station_id, cp_id, connector_id, status, status_at in docks:
        if status_at is not None:
            reported[station_id] = max(reported.get(station_id, status_at), status_at)
        if (cp_id, connector_id) in occupied:
            continue
        if status in BROKEN:
            broken_free[station_id] += 1
        elif status == "Reserved" and f"{cp_id}/{connector_id}" not in held_bays:
            # held by someone else than car sharing (an operator's reservation through the API):
            # car sharing's own bay holds are already out of free_bays
            reserved_free[station_id] += 1
    built: list[Station] = []
    states: list[StationState] = []
    closures: list[Closure] = []
    for sid, s in avail.items():
        built.append(Station(sid, s["name"], s["latitude"], s["longitude"], s["bays"], address=s["address"],
                             post_code=s["postal_code"], underground=s["kind"] == "PARKING"))
        here = by_station.get(sid, [])
        last = max([reported.get(sid, EPOCH), *(v.last_reported for v, _ in here)])
        closed = s["status"] == "closed"
        available = sum(1 for v, _ in here if not v.reserved and not v.disabled)
        disabled = sum(1 for v, _ in here if v.disabled and not v.reserved)
        free = max(0, s["free_bays"] - broken_free.get(sid, 0) - reserved_free.get(sid, 0))
        states.append(StationState(sid, 0 if closed else available, disabled, 0 if closed else free,
                                   broken_free.get(sid, 0), last, closed=closed))
        if closed:
            closures.append(Closure(sid, EPOCH))
    updated = max([EPOCH, *(s.last_reported for s in states)])
    return CitySnapshot(System(row["code"], row["name"], timezone=row["timezone"]), tuple(built), tuple(states),
                        tuple(cars), tuple(city.plans.values()), tuple(closures), updated)


def cities_of_charge_points(conn: Connection, cp_ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(cp_ids), 500):  # bounded IN lists
        chunk = cp_ids[start:start + 500]
        found.update(conn.execute(select(bays.c.charge_point_id, stations.c.city)
                                  .join(stations, bays.c.station_id == stations.c.id)
                                  .where(bays.c.charge_point_id.in_(chunk))).all())
    return found


class DatabaseSource:
    """The production source: reads through the store's reader, remembers which city a charge point
    belongs to so that a change there refreshes only that city."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._city_of: dict[str, str | None] = {}
        self._misses_checked = time.monotonic()

    async def systems(self) -> list[System]:
        result: list[System] = await self.store.read(read_systems)
        return result

    async def snapshot(self, system_id: str) -> CitySnapshot | None:
        result: CitySnapshot | None = await self.store.read(partial(read_snapshot, system_id=system_id))
        return result

    async def cities_of(self, cp_ids: set[str]) -> set[str] | None:
        """The cities of these charge points, one read for those not seen before (a charge point
        outside every city, e.g. a depot, maps to none; asked again after a minute, in case a city
        import gave it a bay)."""
        if time.monotonic() - self._misses_checked > 60:
            self._city_of = {k: v for k, v in self._city_of.items() if v is not None}
            self._misses_checked = time.monotonic()
        unknown = sorted(cp_id for cp_id in cp_ids if cp_id not in self._city_of)
        if unknown:
            found = await self.store.read(partial(cities_of_charge_points, cp_ids=unknown))
            if len(self._city_of) > 100_000:  # bounded memory against made-up identities
                self._city_of.clear()
            self._city_of.update({cp_id: found.get(cp_id) for cp_id in unknown})
        return {city for cp_id in cp_ids if (city := self._city_of.get(cp_id)) is not None}
