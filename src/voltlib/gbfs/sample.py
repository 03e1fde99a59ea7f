"""A deterministic synthetic city (stations on a grid around a centre, cars with varied charge),
for benchmarks and for tests that do not need a database."""

from __future__ import annotations

import random
from datetime import datetime

from voltlib.domain.pricing import PARIS_2011
from voltlib.gbfs.model import BLUECAR_RANGE_M, CitySnapshot, Closure, Station, StationState, System, Vehicle


def synthetic_city(system_id: str = "paris", stations: int = 1119, *, now: datetime, seed: int = 7,
                   centre: tuple[float, float] = (48.8566, 2.3522)) -> CitySnapshot:
    rng = random.Random(seed)
    built_stations, states, vehicles, closures = [], [], [], []
    for i in range(stations):
        sid = f"{system_id}-{i + 1}"
        lat = round(centre[0] + rng.uniform(-0.12, 0.12), 6)
        lon = round(centre[1] + rng.uniform(-0.2, 0.2), 6)
        capacity = rng.randint(4, 7)
        cars = rng.randint(0, capacity)
        closed = i % 97 == 0
        built_stations.append(Station(sid, f"Station {i + 1}", lat, lon, capacity, address=f"{i + 1} rue d'Essai"))
        states.append(StationState(sid, 0 if closed else cars, 0, 0 if closed else capacity - cars, 0, now,
                                   closed=closed))
        if closed:
            closures.append(Closure(sid, now))
            continue
        for c in range(cars):
            soc = rng.uniform(0.2, 1.0)
            vehicles.append(Vehicle(f"{sid}-car-{c + 1}", sid, soc, int(soc * BLUECAR_RANGE_M), now))
    return CitySnapshot(System(system_id, system_id.capitalize()), tuple(built_stations), tuple(states),
                        tuple(vehicles), tuple(PARIS_2011.values()), tuple(closures), now)
