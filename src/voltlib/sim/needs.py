"""What the simulated ISO 15118 cars know of their next trip, to tell their 2.0.1 post (issue 17).

A car-sharing car has no driver to set a departure time at the dashboard; the simulator stands in
with what it knows: the next trip the demand model starts from the station where the car is plugged
in, at least ``NOTICE`` after it was plugged in (a car just returned is not the one a member takes in
the next minutes while others are docked there; and a departure that is past when it reaches voltlib
is a wrong clock there). The car then says it leaves at that trip's time and wants the range it
needs (1.25 × the trip, as a reserved car must hold, and never below the rentable floor), or, with
no trip left in the day, nothing about its departure and a full battery. Every car docked at a
station names the same next trip: the sim does not know which of them the member will take (the
fullest, usually).
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from voltlib.domain import battery, demand
from voltlib.sim.hardware import Car
from voltlib.sim.link import Link

MODEL = battery.BLUECAR
RANGE_MARGIN = 1.25  # the reserved car's requirement (docs/energy.md), and the report's "with range"
FLOOR_SOC = 30.0  # percent: below it a member is refused the car (lost:low_battery)
NOTICE = timedelta(minutes=10)  # simulated: the earliest trip a car just plugged in names


class TripBoard:
    """The upcoming trips from each station, in time order (the demand's own times, shifted to the play)."""

    def __init__(self, trips: Iterable[demand.Trip], shift: timedelta) -> None:
        self._times: dict[str, list[datetime]] = {}
        self._km: dict[str, list[float]] = {}
        for trip in sorted(trips, key=lambda t: t.at):
            self._times.setdefault(trip.origin, []).append(trip.at + shift)
            self._km.setdefault(trip.origin, []).append(trip.distance_km)

    def next_trip(self, station_id: str, now: datetime) -> tuple[datetime, float] | None:
        times = self._times.get(station_id, [])
        i = bisect.bisect_right(times, now)
        return (times[i], self._km[station_id][i]) if i < len(times) else None

    def tell(self, car: Car, station_id: str, now: datetime) -> None:
        """Set what an ISO 15118 car will report when it is plugged in at ``station_id``."""
        if not car.iso15118:
            return
        found = self.next_trip(station_id, now + NOTICE)
        if found is None:
            car.departure, car.target_soc = None, None
            return
        at, km = found
        car.departure = at
        car.target_soc = min(100.0, max(FLOOR_SOC, battery.soc_for_range(MODEL, km * RANGE_MARGIN) * 100.0))


def iso15118_cars(seed: int, car_ids: Iterable[str], share: float) -> set[str]:
    """``round(share × cars)`` of the cars, drawn from the seed on a generator of their own (the other
    seeded draws stay as they were)."""
    ordered = sorted(car_ids)
    return set(random.Random(f"{seed}:iso15118").sample(ordered, round(share * len(ordered))))


def has_range(car: Car, trip_km: float) -> bool:
    """Whether the car holds the range its trip needs, with the reserved car's margin."""
    return battery.range_km(MODEL, car.soc / 100.0) >= trip_km * RANGE_MARGIN


def needs_summary(share: float, planning: bool, posts: Iterable[Link]) -> dict[str, Any]:
    """For the report: the share of ISO 15118 cars, whether voltlib planned with their reports, and
    the answers their posts got (``NotifyEVChargingNeeds:Accepted``...)."""
    answers: Counter[str] = Counter()
    for post in posts:
        answers.update({k: v for k, v in post.stats.items()
                        if k.startswith(("NotifyEVChargingNeeds:", "NotifyEVChargingSchedule:"))})
    return {"iso15118_share": share, "planning": planning, "answers": dict(sorted(answers.items()))}
