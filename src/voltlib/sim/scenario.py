"""City-simulator scenarios: TOML files (built-ins in ``voltlib/sim/scenarios``), parsed and checked.

Fields: ``name``, ``city`` (a built-in city code), either ``stations`` (the first N of the packaged
Autolib' snapshot; all when absent) or ``synthetic_stations`` + ``synthetic_cars`` + ``center`` +
``radius_km`` (cities without a public snapshot), ``members``, ``rentals_per_day``, ``start`` (ISO
time with offset), ``hours``, ``speed`` (simulated seconds per wall second, 1–200), ``seed``,
``station_limit_fraction`` (grid limit ÷ the bays' ratings) and ``[[events]]`` (``at_minutes``,
``kind``: ``intrusion`` | ``charge_point_failure`` | ``network_outage`` | ``server_crash`` (voltlib
killed with SIGKILL and started again ``duration_minutes`` later) | ``clock_jump`` (one post's clock
jumps by ``offset_minutes``), optional ``duration_minutes``), ``clock_skew_minutes`` (every post's
clock off by a seeded draw in ±that many minutes: the posts stamp what they send with it), and
``ocpp201_share`` (0 to 1, default 0: the share of the posts that speak OCPP 2.0.1 rather than 1.6J,
picked from the seed), ``[[crew_shifts]]`` (``start`` and ``end``, local "HH:MM" of the city, an
end before the start runs past midnight; ``crews``: how many work it): field crews carrying out
voltlib's rebalancing moves (:mod:`voltlib.sim.crews`; none by default), ``iso15118_share`` (0 to 1,
default 0: the share of the cars that speak ISO 15118 and, at a 2.0.1 post, report their needs,
:mod:`voltlib.sim.needs`) and ``car_needs_planning`` (default true: voltlib plans with those reports;
false: today's planner, the comparison's baseline).
"""

from __future__ import annotations

import math
import random
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from voltlib.sharing.cities import paris_snapshot
from voltlib.sharing.importer import Snapshot, parse_snapshot

BUILT_IN = ("small", "crews", "demo", "crash", "skew", "paris", "lyon", "bordeaux")
EVENT_KINDS = frozenset({"intrusion", "charge_point_failure", "network_outage", "server_crash", "clock_jump"})
HEADER_FIELDS = ("Address", "Cars", "Bluecar counter", "Utilib counter", "Utilib 1.4 counter", "Charge Slots",
                 "Charging Status", "City", "Displayed comment", "ID", "Kind", "Geo point", "Postal code",
                 "Public name", "Rental status", "Scheduled at", "Slots", "Station type", "Status",
                 "Subscription status")  # the columns of an Autolib' snapshot


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message says which field."""


@dataclass(frozen=True, slots=True)
class Event:
    at_minutes: float
    kind: str
    duration_minutes: float = 10.0
    offset_minutes: float = 0.0  # clock_jump: how far one post's clock jumps (negative: back)


@dataclass(frozen=True, slots=True)
class CrewShift:
    start: str  # local "HH:MM"
    end: str
    crews: int

    @property
    def minutes(self) -> tuple[int, int]:
        """(start, end) in minutes after local midnight."""
        def of(text: str) -> int:
            hours, _, minutes = text.partition(":")
            value = int(hours) * 60 + int(minutes or 0)
            if not 0 <= value <= 24 * 60:
                raise ScenarioError(f"crew shift time {text!r}: 00:00 to 24:00")
            return value
        return of(self.start), of(self.end)


@dataclass(frozen=True)
class Scenario:
    name: str
    city: str
    members: int
    rentals_per_day: float
    start: datetime
    hours: float
    speed: float
    seed: int
    station_limit_fraction: float
    stations: int | None = None
    synthetic_stations: int | None = None
    synthetic_cars: int | None = None
    center: tuple[float, float] = (48.8566, 2.3522)
    radius_km: float = 4.0
    events: tuple[Event, ...] = field(default_factory=tuple)
    clock_skew_minutes: float = 0.0  # each post's clock is off by a seeded draw in [-x, +x] minutes
    ocpp201_share: float = 0.0  # the share of the posts speaking OCPP 2.0.1 (the others 1.6J)
    crew_shifts: tuple[CrewShift, ...] = field(default_factory=tuple)  # field crews (sim.crews)
    iso15118_share: float = 0.0  # the share of the cars reporting their needs at a 2.0.1 post (sim.needs)
    car_needs_planning: bool = True  # voltlib's charging_use_car_needs

    def snapshot(self) -> Snapshot:
        """Stations and cars, as an Autolib'-format snapshot (real or synthetic)."""
        if self.synthetic_stations:
            return parse_snapshot(_synthetic_csv(self), car_prefix=self.city[:2].upper())
        parsed = parse_snapshot(paris_snapshot(), car_prefix="PA")
        if self.stations is None:
            return parsed
        keep = {s.id for s in parsed.stations[:self.stations]}
        return Snapshot([s for s in parsed.stations if s.id in keep], [c for c in parsed.cars if c.station_id in keep])


def load(name_or_path: str) -> Scenario:
    if name_or_path in BUILT_IN:
        text = resources.files("voltlib.sim").joinpath("scenarios", f"{name_or_path}.toml").read_text("utf-8")
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ScenarioError(f"no scenario {name_or_path!r}: one of {', '.join(BUILT_IN)} or a TOML file")
        text = path.read_text("utf-8")
    try:
        return parse(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{name_or_path}: {exc}") from None


def parse(data: dict[str, Any]) -> Scenario:
    try:
        start = datetime.fromisoformat(str(data["start"]))
        if start.tzinfo is None:
            raise ScenarioError("start needs a UTC offset, e.g. 2018-05-18T08:00:00+02:00")
        events = tuple(Event(float(e["at_minutes"]), str(e["kind"]), float(e.get("duration_minutes", 10.0)),
                             float(e.get("offset_minutes", 0.0)))
                       for e in data.get("events", []))
        scenario = Scenario(
            name=str(data["name"]), city=str(data["city"]), members=int(data["members"]),
            rentals_per_day=float(data["rentals_per_day"]), start=start, hours=float(data["hours"]),
            speed=float(data.get("speed", 60)), seed=int(data.get("seed", 1)),
            station_limit_fraction=float(data.get("station_limit_fraction", 1.0)),
            stations=int(data["stations"]) if "stations" in data else None,
            synthetic_stations=int(data["synthetic_stations"]) if "synthetic_stations" in data else None,
            synthetic_cars=int(data["synthetic_cars"]) if "synthetic_cars" in data else None,
            center=(float(data["center"][0]), float(data["center"][1])) if "center" in data else (48.8566, 2.3522),
            radius_km=float(data.get("radius_km", 4.0)), events=events,
            clock_skew_minutes=float(data.get("clock_skew_minutes", 0.0)),
            ocpp201_share=float(data.get("ocpp201_share", 0.0)),
            crew_shifts=tuple(CrewShift(str(c["start"]), str(c["end"]), int(c["crews"]))
                              for c in data.get("crew_shifts", [])),
            iso15118_share=float(data.get("iso15118_share", 0.0)),
            car_needs_planning=_flag(data.get("car_needs_planning", True)))
    except KeyError as exc:
        raise ScenarioError(f"missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ScenarioError):
            raise
        raise ScenarioError(f"bad value: {exc}") from None
    _check(scenario)
    return scenario


def _check(s: Scenario) -> None:
    if not 1 <= s.speed <= 200:
        raise ScenarioError("speed: 1 to 200")
    if s.members < 1 or s.rentals_per_day <= 0 or not 0 < s.hours <= 48:
        raise ScenarioError("members ≥ 1, rentals_per_day > 0, 0 < hours ≤ 48")
    if not 0 < s.station_limit_fraction <= 1:
        raise ScenarioError("station_limit_fraction: above 0, at most 1")
    if s.synthetic_stations is not None and (s.synthetic_stations < 2 or not s.synthetic_cars):
        raise ScenarioError("synthetic_stations ≥ 2 and synthetic_cars ≥ 1")
    if s.stations is not None and s.stations < 2:
        raise ScenarioError("stations ≥ 2")
    if not 0 <= s.clock_skew_minutes <= 24 * 60:
        raise ScenarioError("clock_skew_minutes: 0 to 1440")
    if not 0 <= s.ocpp201_share <= 1:
        raise ScenarioError("ocpp201_share: 0 to 1")
    if not 0 <= s.iso15118_share <= 1:
        raise ScenarioError("iso15118_share: 0 to 1")
    for shift in s.crew_shifts:
        lo, hi = shift.minutes
        if shift.crews < 0 or lo == hi:
            raise ScenarioError(f"crew shift {shift.start}-{shift.end}: crews ≥ 0 and an end other than its start")
    for e in s.events:
        if e.kind not in EVENT_KINDS or e.at_minutes < 0:
            raise ScenarioError(f"event {e.kind!r} at {e.at_minutes}: kinds are {sorted(EVENT_KINDS)}")


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ScenarioError("car_needs_planning: true or false")
    return value


def ocpp_versions(s: Scenario, charge_points: list[str]) -> dict[str, str]:
    """Which OCPP version each post speaks: ``round(ocpp201_share × posts)`` of them, drawn from the
    seed (its own generator: the other seeded draws stay as they were), speak 2.0.1."""
    ordered = sorted(charge_points)
    newer = set(random.Random(f"{s.seed}:ocpp2.0.1").sample(ordered, round(s.ocpp201_share * len(ordered))))
    return {cp_id: "2.0.1" if cp_id in newer else "1.6" for cp_id in ordered}


def _synthetic_csv(s: Scenario) -> str:
    """Stations spread around the centre, cars spread over them (about half the bays filled)."""
    assert s.synthetic_stations is not None and s.synthetic_cars is not None
    rng = random.Random(s.seed)
    per = [0] * s.synthetic_stations
    for i in range(s.synthetic_cars):
        per[i % s.synthetic_stations] += 1
    rows = [";".join(HEADER_FIELDS)]
    for n in range(s.synthetic_stations):
        r, a = s.radius_km * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        lat = s.center[0] + r * math.cos(a) / 111.0
        lon = s.center[1] + r * math.sin(a) / (111.0 * math.cos(math.radians(s.center[0])))
        cars, slots = per[n], max(1, per[n])
        row = {"Address": f"{n} rue {s.city}", "Cars": str(cars), "Bluecar counter": str(cars), "City": s.city,
               "ID": f"{s.city}-{n:03d}", "Kind": "STATION", "Geo point": f"{lat:.5f}, {lon:.5f}",
               "Postal code": "00000", "Public name": f"{s.city.title()} {n}", "Rental status": "operational",
               "Slots": str(slots), "Station type": "station", "Status": "ok", "Charging Status": "operational",
               "Subscription status": "x"}
        rows.append(";".join(row.get(f, "0" if "counter" in f or f == "Charge Slots" else "") for f in HEADER_FIELDS))
    return "\n".join(rows) + "\n"
