"""What a city looks like at one moment, as the GBFS builders need it: plain frozen dataclasses,
filled from the database by ``voltlib.gbfs.source`` (or by hand in tests and benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from voltlib.domain.pricing import Plan

BLUECAR_TYPE_ID = "bluecar"
BLUECAR_RANGE_M = 250_000  # urban range of a full Bluecar (voltlib/sharing/data/README.md)


@dataclass(frozen=True, slots=True)
class System:
    """One city's car-sharing system (one GBFS ``system_id``)."""

    system_id: str
    name: str
    timezone: str = "Europe/Paris"
    language: str = "fr"
    operator: str = "voltlib"
    feed_contact_email: str = "opendata@example.org"
    opening_hours: str = "24/7"  # OSM opening_hours syntax
    license_url: str | None = None


@dataclass(frozen=True, slots=True)
class Station:
    station_id: str
    name: str
    lat: float
    lon: float
    capacity: int  # bays, each with a charge point
    address: str | None = None
    post_code: str | None = None
    underground: bool = False


@dataclass(frozen=True, slots=True)
class StationState:
    """Availability of one station. ``closed`` stations are neither renting nor returning."""

    station_id: str
    cars_available: int  # docked, not reserved, not disabled
    cars_disabled: int
    bays_free: int  # free and usable, not reserved
    bays_disabled: int
    last_reported: datetime
    closed: bool = False


@dataclass(frozen=True, slots=True)
class Vehicle:
    vehicle_id: str
    station_id: str
    state_of_charge: float  # 0..1
    range_m: int
    last_reported: datetime
    reserved: bool = False
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class Closure:
    """A closed station, published in system_alerts."""

    station_id: str
    since: datetime
    reason: str = "Station closed"


@dataclass(frozen=True, slots=True)
class CitySnapshot:
    system: System
    stations: tuple[Station, ...]
    states: tuple[StationState, ...]
    vehicles: tuple[Vehicle, ...]
    plans: tuple[Plan, ...]
    closures: tuple[Closure, ...] = ()
    updated_at: datetime | None = None  # when the newest fact in it changed
    meta: dict[str, str] = field(default_factory=dict)
