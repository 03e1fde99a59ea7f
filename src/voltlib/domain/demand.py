"""Who wants a car, when, from where to where: the demand model of the city simulator.

Pure and seeded: the same seed gives the same trips. Calibration (sources in docs/simulator.md):
Autolib' Paris served about 16,000 rentals a day at its peak with ~4,000 cars; a rental lasted
37–40 minutes on average and covered about 9 km. The time-of-day profile has the morning and
evening commuting peaks and a midday plateau typical of car sharing (an assumption shaped like
published one-way car-sharing profiles, not Autolib' data). Destinations are drawn with a weight
that falls with distance, scaled so trips average about 9 km in Paris. Origins are drawn in
proportion to each station's *reach* (the sum of its destination weights): with a symmetric weight
this makes every station's expected departures and arrivals equal over a day, as people come back,
and gives an isolated suburban station fewer trips than one in a dense quarter (docs/simulator.md,
"Demand model").
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from voltlib.domain.geo import great_circle_km

# Share of a day's rentals starting in each hour (sums to 1).
_RAW: Final = (0.4, 0.2, 0.1, 0.1, 0.1, 0.3, 1.2, 3.6, 6.4, 5.4, 4.4, 4.8, 5.6, 5.6, 5.0, 5.2, 6.0, 7.2, 8.0, 7.0,
               5.8, 4.8, 3.2, 1.6)
HOURLY: Final[tuple[float, ...]] = tuple(x / sum(_RAW) for x in _RAW)
MEAN_TRIP_KM: Final = 9.0
URBAN_KMH: Final = 14.0  # door-to-door average speed that turns 9 km into ~38 minutes
RESERVE_AHEAD: Final = 0.3  # share of members who reserve their car before walking to it
DISTANCE_SCALE_KM: Final = MEAN_TRIP_KM / 2.0  # destinations: weight exp(-km / scale), most trips short
TRIP_TIME_SPREAD: Final = (0.8, 1.3)  # a trip's minutes: the urban-speed time times a uniform draw in this range


@dataclass(frozen=True, slots=True)
class Place:
    station_id: str
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class Trip:
    at: datetime
    origin: str
    destination: str
    distance_km: float
    duration: timedelta
    reserve_ahead: bool


def distance_km(a: Place, b: Place) -> float:
    """Great-circle distance × 1.3 (streets are not straight lines)."""
    return 1.3 * great_circle_km(a.latitude, a.longitude, b.latitude, b.longitude)


def destination_weights(origin: Place, others: Sequence[Place]) -> list[float]:
    """Relative chance that a trip from ``origin`` ends at each of ``others``: falls with distance,
    never zero (someone always crosses the city). Shared by the simulator and rebalancing."""
    return [destination_weight(distance_km(origin, p)) for p in others]


def origin_weights(places: Sequence[Place]) -> list[float]:
    """Relative chance that a trip starts at each of ``places``: its reach, the sum of its
    destination weights to every other place. Shared by the simulator and rebalancing."""
    return [sum(destination_weight(distance_km(p, q)) for q in places if q is not p) for p in places]


def destination_weight(km: float) -> float:
    return math.exp(-km / DISTANCE_SCALE_KM) + 1e-6


def mean_trip_minutes(km: float) -> float:
    """About the mean duration ``trips`` draws for a trip of ``km`` (the forecast's expected value)."""
    lo, hi = TRIP_TIME_SPREAD
    return max(5.0, max(0.5, km) / URBAN_KMH * 60.0 * (lo + hi) / 2.0)


def expected_trips(per_day: float, start: datetime, end: datetime) -> float:
    """Expected number of trips starting in ``[start, end)`` (local time: the profile is by hour of day)."""
    total, t = 0.0, start
    while t < end:
        hour_end = min(end, t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
        total += per_day * HOURLY[t.hour] * (hour_end - t).total_seconds() / 3600.0
        t = hour_end
    return total


def trips(places: Sequence[Place], start: datetime, hours: float, per_day: float, seed: int) -> list[Trip]:
    """The trips starting in ``[start, start + hours)``, in time order."""
    if len(places) < 2 or hours <= 0 or per_day <= 0:
        return []
    rng = random.Random(seed)
    origins = list(itertools.accumulate(origin_weights(places)))
    out: list[Trip] = []
    t, end = start, start + timedelta(hours=hours)
    while t < end:
        hour_end = min(end, t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
        span_h = (hour_end - t).total_seconds() / 3600.0
        expected = per_day * HOURLY[t.hour] * span_h
        for _ in range(_poisson(rng, expected)):
            at = t + timedelta(seconds=rng.uniform(0, span_h * 3600.0))
            out.append(_trip(rng, places, origins, at))
        t = hour_end
    return sorted(out, key=lambda trip: trip.at)


def _trip(rng: random.Random, places: Sequence[Place], origins: Sequence[float], at: datetime) -> Trip:
    origin = rng.choices(places, cum_weights=origins, k=1)[0]
    others = [p for p in places if p is not origin]
    dest = rng.choices(others, weights=destination_weights(origin, others), k=1)[0]
    km = max(0.5, distance_km(origin, dest))
    minutes = max(5.0, km / URBAN_KMH * 60.0 * rng.uniform(*TRIP_TIME_SPREAD))
    return Trip(at, origin.station_id, dest.station_id, round(km, 2), timedelta(minutes=round(minutes, 1)),
                rng.random() < RESERVE_AHEAD)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:  # normal approximation: fast and plenty for demand counts
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
