"""Stations, bays, charge points and cars from an Autolib' availability snapshot (CSV, ``;``).

A snapshot has no capacity column: a station gets ``max(1, Cars + Slots)`` bays, each served by its
own charge point ``{station id}-{bay}`` (connector 1), as Autolib' had one post per space. The
snapshot's cars are docked in the first bays, with a state of charge of 80 % (source ``import``)
since the snapshot does not say. Car ids, plates, VINs and id tokens are made up, deterministically,
so that importing twice gives the same fleet.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field

CHARGE_POINT_ID_MAX = 48


@dataclass(frozen=True)
class StationRow:
    id: str
    name: str
    address: str
    postal_code: str
    city_name: str
    latitude: float
    longitude: float
    kind: str
    status: str  # operational | closed
    bays: int
    cars: int


@dataclass(frozen=True)
class CarRow:
    id: str
    plate: str
    vin: str
    id_tag: str
    station_id: str
    bay: int


@dataclass
class Snapshot:
    stations: list[StationRow] = field(default_factory=list)
    cars: list[CarRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why a row was not imported


def bay_charge_point(station_id: str, bay: int) -> str:
    """``{station id}-{bay}``; a station id too long for the 48 characters of an OCPP identity is cut
    and given a short digest of the full id, so it stays unique."""
    name = f"{station_id}-{bay}"
    if len(name) <= CHARGE_POINT_ID_MAX:
        return name
    digest = hashlib.sha256(station_id.encode()).hexdigest()[:6]
    return f"{station_id[:CHARGE_POINT_ID_MAX - 12]}-{digest}-{bay}"


def parse_snapshot(text: str, *, car_prefix: str = "PA") -> Snapshot:
    out = Snapshot()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";")
    for number, row in enumerate(reader, start=2):
        try:
            station = _station(row)
        except (KeyError, ValueError) as exc:
            out.skipped.append(f"line {number}: {exc}")
            continue
        out.stations.append(station)
        for bay in range(1, station.cars + 1):
            n = len(out.cars) + 1
            out.cars.append(CarRow(id=f"car-{car_prefix.lower()}-{n:05d}", plate=f"{car_prefix}-{n:03d}-BC"[:16],
                                   vin=f"VF9BLUECAR{car_prefix}{n:05d}"[:17].ljust(17, "0"),
                                   id_tag=f"CAR{car_prefix}{n:06d}", station_id=station.id, bay=bay))
    return out


def _station(row: dict[str, str]) -> StationRow:
    station_id = row["ID"].strip()
    if not station_id:
        raise ValueError("no ID")
    lat_text, lon_text = (part.strip() for part in row["Geo point"].split(","))
    cars, slots = int(row["Cars"] or 0), int(row["Slots"] or 0)
    if cars < 0 or slots < 0:
        raise ValueError("negative Cars or Slots")
    return StationRow(
        id=station_id, name=row["Public name"].strip() or station_id, address=row["Address"].strip(),
        postal_code=row["Postal code"].strip(), city_name=row["City"].strip(), latitude=float(lat_text),
        longitude=float(lon_text), kind=row["Kind"].strip() or "STATION",
        status="closed" if row["Status"].strip() == "closed" else "operational",
        bays=max(1, cars + slots), cars=cars)
