"""Car-sharing queries: plain functions over a Connection, run by ``Store.write``/``Store.read``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, and_, cast, func, insert, select, update

from voltlib.domain.pricing import Plan, PriceBreakdown
from voltlib.domain.rental import TERMINAL, Rental, RentalPolicy
from voltlib.sharing import codec
from voltlib.sharing.cities import City, policy_from_json
from voltlib.sharing.importer import Snapshot, bay_charge_point
from voltlib.store.repo import insert_one_if_new
from voltlib.store.tables import (
    badges,
    bays,
    charge_points,
    cities,
    id_tags,
    invoices,
    members,
    rentals,
    stations,
    vehicles,
)

EARTH_RADIUS_M = 6_371_000.0


# --- cities and import -----------------------------------------------------------------------

def upsert_city(conn: Connection, city: City) -> None:
    values = {"name": city.name, "timezone": city.timezone, "currency": city.currency,
              "policy": city.policy_json(), "plans": [p.to_dict() for p in city.plans.values()],
              "min_range_km": city.min_range_km}
    if conn.execute(update(cities).where(cities.c.code == city.code).values(**values)).rowcount == 0:
        conn.execute(insert(cities).values(code=city.code, **values))
    _city_cache.pop((str(conn.engine.url), city.code), None)


def seed_cities(conn: Connection) -> None:
    """The built-in cities, where the database has none of that code yet (edits are kept)."""
    from voltlib.sharing.cities import builtin_cities

    known = set(conn.execute(select(cities.c.code)).scalars())
    for city in builtin_cities().values():
        if city.code not in known:
            upsert_city(conn, city)


@dataclass(frozen=True)
class CityRecord:
    code: str
    currency: str
    plans: dict[str, Plan]
    policy: RentalPolicy
    min_range_km: int


# Every rental operation needs its city's plans and policy; parsing them each time cost more than
# the rest of a reservation. Cities change only through upsert_city, which drops the cached copy.
_city_cache: dict[tuple[str, str], CityRecord] = {}


def get_city(conn: Connection, code: str) -> CityRecord | None:
    key = (str(conn.engine.url), code)
    cached = _city_cache.get(key)
    if cached is not None:
        return cached
    row = conn.execute(select(cities).where(cities.c.code == code)).mappings().first()
    if row is None:
        return None
    plans = {p["code"]: Plan.from_dict(p) for p in row["plans"]}
    record = CityRecord(row["code"], row["currency"], plans, policy_from_json(row["policy"]), row["min_range_km"])
    _city_cache[key] = record
    return record


def list_cities(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(cities).order_by(cities.c.code)).mappings()]


@dataclass(frozen=True)
class ImportReport:
    stations: int
    bays: int
    charge_points_created: int
    cars: int


def import_snapshot(conn: Connection, city: str, snapshot: Snapshot, *, security_profile: int,
                    password_hash: str | None, soc_percent: float, now: datetime) -> ImportReport:
    """Idempotent: stations, bays and cars are keyed by their ids; charge points are created once."""
    created = bay_count = 0
    for s in snapshot.stations:
        values = {"city": city, "name": s.name, "address": s.address, "postal_code": s.postal_code,
                  "latitude": s.latitude, "longitude": s.longitude, "kind": s.kind, "status": s.status}
        if conn.execute(update(stations).where(stations.c.id == s.id).values(**values)).rowcount == 0:
            conn.execute(insert(stations).values(id=s.id, **values))
        for number in range(1, s.bays + 1):
            cp_id = bay_charge_point(s.id, number)
            bay_count += 1
            insert_one_if_new(conn, bays, {"station_id": s.id, "number": number, "charge_point_id": cp_id,
                                           "connector_id": 1})
            created += insert_one_if_new(conn, charge_points, {
                "id": cp_id, "registration": "Accepted", "security_profile": security_profile,
                "password_hash": password_hash, "created_at": now})
    for car in snapshot.cars:
        dock = bay_charge_point(car.station_id, car.bay)
        inserted = insert_one_if_new(conn, vehicles, {
            "id": car.id, "city": city, "plate": car.plate, "vin": car.vin, "model": "Bluecar", "battery_kwh": 30.0,
            "id_tag": car.id_tag, "status": "docked", "charge_point_id": dock, "connector_id": 1,
            "soc_percent": soc_percent, "soc_source": "import", "soc_at": now})
        if inserted:
            insert_one_if_new(conn, id_tags, {"id_tag": car.id_tag, "status": "Accepted", "note": f"car {car.id}",
                                              "created_at": now})
    return ImportReport(len(snapshot.stations), bay_count, created, len(snapshot.cars))


# --- stations, bays, vehicles ----------------------------------------------------------------

def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def station_availability(conn: Connection, city: str | None = None,
                         station_id: str | None = None) -> list[dict[str, Any]]:
    """Stations (all, a city's, or one) with their bay count, cars docked, and free bays (no car,
    no live bay hold)."""
    docked = (select(bays.c.station_id, func.count(vehicles.c.id).label("cars"))
              .join(vehicles, and_(vehicles.c.charge_point_id == bays.c.charge_point_id,
                                   vehicles.c.connector_id == bays.c.connector_id))
              .group_by(bays.c.station_id).subquery())
    held = (select(rentals.c.active_bay).where(rentals.c.active_bay.is_not(None))).scalar_subquery()
    total = select(bays.c.station_id, func.count().label("bays")).group_by(bays.c.station_id).subquery()
    on_hold = (select(bays.c.station_id, func.count().label("held"))
               .where((bays.c.charge_point_id + "/" + cast(bays.c.connector_id, String)).in_(held))
               .group_by(bays.c.station_id).subquery())
    query = (select(stations, func.coalesce(total.c.bays, 0).label("bays"),
                    func.coalesce(docked.c.cars, 0).label("cars"), func.coalesce(on_hold.c.held, 0).label("held"))
             .outerjoin(total, total.c.station_id == stations.c.id)
             .outerjoin(docked, docked.c.station_id == stations.c.id)
             .outerjoin(on_hold, on_hold.c.station_id == stations.c.id).order_by(stations.c.id))
    if city is not None:
        query = query.where(stations.c.city == city)
    if station_id is not None:
        query = query.where(stations.c.id == station_id)
    out = []
    for row in conn.execute(query).mappings():
        item = dict(row)
        item["free_bays"] = max(0, item["bays"] - item["cars"] - item.pop("held"))
        out.append(item)
    return out


def station_bays(conn: Connection, station_id: str) -> list[dict[str, Any]]:
    query = (select(bays.c.number, bays.c.charge_point_id, bays.c.connector_id, vehicles.c.id.label("car_id"))
             .outerjoin(vehicles, and_(vehicles.c.charge_point_id == bays.c.charge_point_id,
                                       vehicles.c.connector_id == bays.c.connector_id))
             .where(bays.c.station_id == station_id).order_by(bays.c.number))
    return [dict(r) for r in conn.execute(query).mappings()]


def station_of_dock(conn: Connection, cp_id: str, connector_id: int) -> str | None:
    return conn.execute(select(bays.c.station_id).where(bays.c.charge_point_id == cp_id,
                                                        bays.c.connector_id == connector_id)).scalar()


def get_vehicle(conn: Connection, car_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(vehicles).where(vehicles.c.id == car_id)).mappings().first()
    return None if row is None else dict(row)


def vehicle_by_tag(conn: Connection, id_tag: str) -> dict[str, Any] | None:
    row = conn.execute(select(vehicles).where(vehicles.c.id_tag == id_tag)).mappings().first()
    return None if row is None else dict(row)


def vehicles_at(conn: Connection, cp_id: str, connector_id: int | None = None) -> list[dict[str, Any]]:
    query = select(vehicles).where(vehicles.c.charge_point_id == cp_id).order_by(vehicles.c.connector_id)
    if connector_id is not None:
        query = query.where(vehicles.c.connector_id == connector_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def vehicles_at_station(conn: Connection, station_id: str) -> list[dict[str, Any]]:
    query = (select(vehicles).join(bays, and_(vehicles.c.charge_point_id == bays.c.charge_point_id,
                                              vehicles.c.connector_id == bays.c.connector_id))
             .where(bays.c.station_id == station_id).order_by(vehicles.c.soc_percent.desc()))
    return [dict(r) for r in conn.execute(query).mappings()]


def list_vehicles(conn: Connection, city: str | None = None) -> list[dict[str, Any]]:
    query = select(vehicles).order_by(vehicles.c.id)
    if city is not None:
        query = query.where(vehicles.c.city == city)
    return [dict(r) for r in conn.execute(query).mappings()]


def move_vehicle(conn: Connection, car_id: str, *, status: str, dock: tuple[str, int] | None) -> None:
    conn.execute(update(vehicles).where(vehicles.c.id == car_id).values(
        status=status, charge_point_id=dock[0] if dock else None, connector_id=dock[1] if dock else None))


# --- members and badges ----------------------------------------------------------------------

def create_member(conn: Connection, member: dict[str, Any], badge: str, now: datetime) -> None:
    conn.execute(insert(members).values(created_at=now, **member))
    add_badge(conn, member["id"], badge, now)


def add_badge(conn: Connection, member_id: str, id_tag: str, now: datetime) -> None:
    conn.execute(insert(badges).values(id_tag=id_tag, member_id=member_id, created_at=now))
    conn.execute(insert(id_tags).values(id_tag=id_tag, status="Accepted", note=f"member {member_id}", created_at=now))


def get_member(conn: Connection, member_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(members).where(members.c.id == member_id)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["badges"] = [dict(b) for b in conn.execute(
        select(badges.c.id_tag, id_tags.c.status).join(id_tags, id_tags.c.id_tag == badges.c.id_tag)
        .where(badges.c.member_id == member_id)).mappings()]
    return out


def list_members(conn: Connection, limit: int = 500) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(members).order_by(members.c.created_at).limit(limit)).mappings()]


def member_by_badge(conn: Connection, id_tag: str) -> tuple[dict[str, Any], str] | None:
    """The member owning badge ``id_tag`` and the badge's status (Accepted, Blocked, ...)."""
    row = conn.execute(select(badges.c.member_id, id_tags.c.status).join(id_tags, id_tags.c.id_tag == badges.c.id_tag)
                       .where(badges.c.id_tag == id_tag)).first()
    if row is None:
        return None
    member = get_member(conn, row[0])
    return None if member is None else (member, row[1])


def update_member(conn: Connection, member_id: str, **values: Any) -> bool:
    return conn.execute(update(members).where(members.c.id == member_id).values(**values)).rowcount > 0


# --- rentals ---------------------------------------------------------------------------------

def _active_columns(r: Rental) -> dict[str, Any]:
    live = r.state not in TERMINAL
    bay = r.bay_hold
    return {"state": r.state.value, "active_car": r.car_id if live else None,
            "active_member": r.member_id if live else None,
            "active_bay": f"{bay.dock.charge_point_id}/{bay.dock.connector_id}" if live and bay else None}


def insert_rental(conn: Connection, r: Rental, city: str, now: datetime) -> None:
    """Raises IntegrityError when the car, the member or the bay is already taken by a live rental."""
    conn.execute(insert(rentals).values(id=r.rental_id, city=city, member_id=r.member_id, car_id=r.car_id,
                                        data=codec.rental_to_dict(r), created_at=now, updated_at=now,
                                        **_active_columns(r)))


def save_rental(conn: Connection, r: Rental, now: datetime) -> None:
    conn.execute(update(rentals).where(rentals.c.id == r.rental_id).values(
        data=codec.rental_to_dict(r), updated_at=now, **_active_columns(r)))


def _rental(row: Any) -> tuple[Rental, str]:
    return codec.rental_from_dict(row.data), row.city


def load_rental(conn: Connection, rental_id: str) -> tuple[Rental, str] | None:
    row = conn.execute(select(rentals.c.data, rentals.c.city).where(rentals.c.id == rental_id)).first()
    return None if row is None else _rental(row)


def live_rental_of_car(conn: Connection, car_id: str) -> tuple[Rental, str] | None:
    row = conn.execute(select(rentals.c.data, rentals.c.city).where(rentals.c.active_car == car_id)).first()
    return None if row is None else _rental(row)


def live_rental_of_member(conn: Connection, member_id: str) -> tuple[Rental, str] | None:
    row = conn.execute(select(rentals.c.data, rentals.c.city).where(rentals.c.active_member == member_id)).first()
    return None if row is None else _rental(row)


def live_rentals(conn: Connection) -> list[tuple[Rental, str]]:
    rows = conn.execute(select(rentals.c.data, rentals.c.city).where(rentals.c.active_car.is_not(None)))
    return [_rental(row) for row in rows]


def ended_rentals_of_car(conn: Connection, car_id: str, limit: int = 10) -> list[Rental]:
    """The car's most recent rentals that hold nothing any more, newest first (late departures)."""
    rows = conn.execute(select(rentals.c.data, rentals.c.city)
                        .where(rentals.c.car_id == car_id, rentals.c.active_car.is_(None))
                        .order_by(rentals.c.created_at.desc(), rentals.c.id.desc()).limit(limit))
    return [_rental(row)[0] for row in rows]


def bay_holder(conn: Connection, cp_id: str, connector_id: int) -> tuple[Rental, str] | None:
    """The live rental holding this bay, if any."""
    row = conn.execute(select(rentals.c.data, rentals.c.city)
                       .where(rentals.c.active_bay == f"{cp_id}/{connector_id}")).first()
    return None if row is None else _rental(row)


def bay_is_held(conn: Connection, cp_id: str, connector_id: int) -> bool:
    return conn.execute(select(rentals.c.id).where(rentals.c.active_bay == f"{cp_id}/{connector_id}")).first() \
        is not None


def list_rentals(conn: Connection, member_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    query = select(rentals.c.data).order_by(rentals.c.created_at.desc()).limit(limit)
    if member_id is not None:
        query = query.where(rentals.c.member_id == member_id)
    return [row.data for row in conn.execute(query)]


# --- invoices --------------------------------------------------------------------------------

def invoice_rental(conn: Connection, member_id: str, rental_id: str, breakdown: PriceBreakdown, now: datetime) -> bool:
    """One invoice per rental: a replay inserts nothing (unique rental_id)."""
    return insert_one_if_new(conn, invoices, {
        "member_id": member_id, "rental_id": rental_id, "kind": "rental", "currency": breakdown.currency,
        "total_minor": breakdown.total.minor, "lines": codec.breakdown_to_dict(breakdown)["lines"], "issued_at": now})


def invoice_subscription(conn: Connection, member_id: str, plan: Plan, now: datetime) -> None:
    conn.execute(insert(invoices).values(
        member_id=member_id, rental_id=None, kind="subscription", currency=plan.currency,
        total_minor=plan.fee.minor, issued_at=now,
        lines=[{"label": f"{plan.name}: subscription", "quantity": 1, "unit": f"{plan.period_days} days",
                "unit_price_minor": plan.fee.minor, "amount_minor": plan.fee.minor, "per": 1}]))


def list_invoices(conn: Connection, member_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    query = select(invoices).order_by(invoices.c.issued_at.desc(), invoices.c.id.desc()).limit(limit)
    if member_id is not None:
        query = query.where(invoices.c.member_id == member_id)
    return [dict(r) for r in conn.execute(query).mappings()]
