"""Car-sharing queries: plain functions over a Connection, run by ``Store.write``/``Store.read``."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    and_,
    bindparam,
    cast,
    func,
    insert,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from voltlib.domain.geo import great_circle_km
from voltlib.domain.pricing import Plan, PriceBreakdown
from voltlib.domain.rental import TERMINAL, Rental, RentalPolicy
from voltlib.sharing import codec
from voltlib.sharing.cities import City, policy_from_json
from voltlib.sharing.importer import Snapshot, bay_charge_point
from voltlib.store import reservations
from voltlib.store.fast import Prepared, pipelining, rows_together
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

# The statements every rental operation runs are built and compiled once, with bind parameters, and
# run on the driver's cursor (voltlib.store.fast): building a Core statement, computing its cache key
# and SQLAlchemy's execution path cost more than running the statement on SQLite. ``lock=True``: the
# same with ``FOR UPDATE`` (PostgreSQL; SQLite renders nothing and needs nothing, having one writer),
# for the writes that may run concurrently (``Store.write(concurrent=True)``): a row is locked before
# it is read for a change, so a concurrent change waits, then reads what the first one committed.


BADGE, CONTRACT = "badge", "contract"  # badges.kind


def _pair(statement: Any) -> tuple[Prepared, Prepared]:
    return Prepared(statement), Prepared(statement.with_for_update())


def _values(table: Any, names: list[str]) -> dict[str, Any]:
    return {name: bindparam(name, type_=table.c[name].type) for name in names}


_VEHICLE_BY_ID = _pair(select(vehicles).where(vehicles.c.id == bindparam("car_id")))
_VEHICLE_BY_TAG = _pair(select(vehicles).where(vehicles.c.id_tag == bindparam("id_tag")))
_VEHICLES_AT = _pair(select(vehicles).where(vehicles.c.charge_point_id == bindparam("cp_id"))
                     .order_by(vehicles.c.connector_id))
_VEHICLES_AT_CONNECTOR = _pair(select(vehicles).where(vehicles.c.charge_point_id == bindparam("cp_id"),
                                                      vehicles.c.connector_id == bindparam("connector_id")))
_MOVE_STATEMENT = (update(vehicles).where(vehicles.c.id == bindparam("car_id"))
                   .values(_values(vehicles, ["status", "charge_point_id", "connector_id"])))
_MOVE_VEHICLE = Prepared(_MOVE_STATEMENT)
_DOCK_VEHICLE_BY_TAG = Prepared(update(vehicles).where(vehicles.c.id_tag == bindparam("id_tag"))
                                .values(_values(vehicles, ["status", "charge_point_id", "connector_id"]))
                                .returning(vehicles.c.id, vehicles.c.soc_percent, vehicles.c.soc_source,
                                           vehicles.c.soc_at))
_MEMBER_WITH_BADGES = Prepared(
    select(members, badges.c.id_tag.label("badge_id_tag"), id_tags.c.status.label("badge_status"),
           badges.c.kind.label("badge_kind"))
    .select_from(members.outerjoin(badges, badges.c.member_id == members.c.id)
                 .outerjoin(id_tags, id_tags.c.id_tag == badges.c.id_tag))
    .where(members.c.id == bindparam("member_id")).order_by(badges.c.created_at, badges.c.id_tag))
_MEMBER_BY_BADGE = Prepared(select(members, id_tags.c.status.label("badge_status"), badges.c.kind.label("badge_kind"))
                            .select_from(badges.join(members, members.c.id == badges.c.member_id)
                                         .join(id_tags, id_tags.c.id_tag == badges.c.id_tag))
                            .where(badges.c.id_tag == bindparam("id_tag")))
_RENTAL_COLUMNS = (rentals.c.id, rentals.c.data, rentals.c.city, rentals.c.active_member, rentals.c.active_car,
                   rentals.c.active_bay)
_RENTAL_BY_ID = _pair(select(*_RENTAL_COLUMNS).where(rentals.c.id == bindparam("rental_id")))
_LIVE_OF_CAR = _pair(select(*_RENTAL_COLUMNS).where(rentals.c.active_car == bindparam("car_id")))
_LIVE_OF_MEMBER = _pair(select(*_RENTAL_COLUMNS).where(rentals.c.active_member == bindparam("member_id")))
_LIVE_OF_CAR_OR_BAY = _pair(select(*_RENTAL_COLUMNS).where(or_(rentals.c.active_car == bindparam("car_id"),
                                                               rentals.c.active_bay == bindparam("bay"))))
_LIVE_ON_BAY = _pair(select(*_RENTAL_COLUMNS).where(rentals.c.active_bay == bindparam("bay")))
# The live rentals an operation needs, found from what it is given (a badge, a charge point, a car's
# id token) rather than from an earlier answer, so that they go out with the other reads at once.
_LIVE_OF_BADGE = _pair(select(*_RENTAL_COLUMNS).where(rentals.c.active_member == select(badges.c.member_id)
                                                      .where(badges.c.id_tag == bindparam("id_tag")).scalar_subquery()))


def _live_of_cars(*where: Any) -> tuple[Prepared, Prepared]:
    query = select(*_RENTAL_COLUMNS).join(vehicles, rentals.c.active_car == vehicles.c.id).where(*where)
    return Prepared(query), Prepared(query.with_for_update(of=rentals))


_LIVE_AT_CP = _live_of_cars(vehicles.c.charge_point_id == bindparam("cp_id"))
_LIVE_AT_CONNECTOR = _live_of_cars(vehicles.c.charge_point_id == bindparam("cp_id"),
                                   vehicles.c.connector_id == bindparam("connector_id"))
_LIVE_OF_TAG = _live_of_cars(vehicles.c.id_tag == bindparam("id_tag"))


def _both(first: tuple[Prepared, Prepared], second: tuple[Prepared, Prepared]) -> tuple[Prepared, Prepared]:
    """The rows of two rental queries (each locking its rows as it would alone, the first's first) in
    one statement: each is a WITH of its own, so each keeps its own plan and index (an ``OR`` of the
    two would not). A rental both find comes twice."""
    def union(lock: bool) -> Prepared:
        one: Any = first[lock].statement
        two: Any = second[lock].statement
        a, b = one.cte("first"), two.cte("second")
        return Prepared(union_all(select(*a.c), select(*b.c)))
    return union(False), union(True)
_STATE_COLUMNS = ["state", "active_car", "active_member", "active_bay", "returned_at"]
_INSERT_RENTAL = Prepared(insert(rentals).values(_values(
    rentals, ["id", "city", "member_id", "car_id", "data", "created_at", "updated_at", *_STATE_COLUMNS])))
_SAVE_STATEMENT = (update(rentals).where(rentals.c.id == bindparam("rental_id"))
                   .values(_values(rentals, ["data", "updated_at", *_STATE_COLUMNS])))
_SAVE_RENTAL = Prepared(_SAVE_STATEMENT)
_INVOICE_COLUMNS = ["member_id", "rental_id", "kind", "currency", "total_minor", "lines", "issued_at"]
_INVOICE_IF_NEW = {
    "sqlite": Prepared(sqlite_insert(invoices).values(_values(invoices, _INVOICE_COLUMNS)).on_conflict_do_nothing()),
    "postgresql": Prepared(pg_insert(invoices).values(_values(invoices, _INVOICE_COLUMNS)).on_conflict_do_nothing())}
# PostgreSQL: a rental saved together with the write that follows it in the same operation, as one
# statement (a data-modifying WITH), so that each costs no execution of its own. The two change
# different tables, so neither can see or undo the other (what a WITH forbids); SQLite runs them
# one after the other (no round trips there).
_SAVE_RENTAL_AND_MOVE = Prepared(_MOVE_STATEMENT.add_cte(_SAVE_STATEMENT.cte("saved")))
_SAVE_RENTAL_WITH_INVOICE = Prepared(_SAVE_STATEMENT.add_cte(pg_insert(invoices).values(
    {name: bindparam(f"invoice_{name}", type_=invoices.c[name].type) for name in _INVOICE_COLUMNS})
    .on_conflict_do_nothing().cte("billed")))
_live_of_member_or_cars: dict[int, tuple[Prepared, Prepared]] = {}
_LIVE_OF_BADGE_AND_AT_CP = _both(_LIVE_OF_BADGE, _LIVE_AT_CP)


def _member_and_cars(lock: bool) -> Prepared:
    """The badge's member (as ``_MEMBER_BY_BADGE``, columns ``m_*``) beside each car docked at the charge
    point (as ``_VEHICLES_AT``, locked the same, columns ``v_*``): a row per car, one with no car if
    there is none, none without a member. The member is read first, as it was on its own."""
    member: Any = _MEMBER_BY_BADGE.statement
    docked: Any = _VEHICLES_AT[lock].statement
    m, v = member.cte("member"), docked.cte("docked")
    return Prepared(select(*(c.label(f"m_{c.key}") for c in m.c), *(c.label(f"v_{c.key}") for c in v.c))
                    .select_from(m.outerjoin(v, true())).order_by(v.c.connector_id))


_MEMBER_AND_CARS_AT = (_member_and_cars(False), _member_and_cars(True))
_LIVE_OF_TAG_AND_ON_BAY = _both(_LIVE_OF_TAG, _LIVE_ON_BAY)


def _live_of_member_or_cars_query(cars: int) -> tuple[Prepared, Prepared]:
    """The member's live rental or any of ``cars`` cars': one statement per number of cars."""
    found = _live_of_member_or_cars.get(cars)
    if found is None:
        found = _live_of_member_or_cars[cars] = _pair(select(*_RENTAL_COLUMNS).where(or_(
            rentals.c.active_member == bindparam("member_id"),
            *(rentals.c.active_car == bindparam(f"car_{i}") for i in range(cars)))))
    return found


# --- cities and import -----------------------------------------------------------------------

def upsert_city(conn: Connection, city: City) -> None:
    values = {"name": city.name, "timezone": city.timezone, "currency": city.currency,
              "policy": city.policy_json(), "plans": [p.to_dict() for p in city.plans.values()],
              "min_range_km": city.min_range_km}
    if conn.execute(update(cities).where(cities.c.code == city.code).values(**values)).rowcount == 0:
        conn.execute(insert(cities).values(code=city.code, **values))
    _city_cache.pop((_database(conn), city.code), None)


SEED_LOCK = 0x766F6C75  # several nodes starting at once seed the cities one after the other


def seed_cities(conn: Connection) -> None:
    """The built-in cities, where the database has none of that code yet (edits are kept).
    Nodes starting together take turns on PostgreSQL (a lock held until this transaction ends):
    the second one then finds the cities the first one added, instead of failing on their keys."""
    from voltlib.sharing.cities import builtin_cities

    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEED_LOCK})
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
_databases: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def _database(conn: Connection) -> str:
    """Which database ``conn`` is on (the cache's key): rendering the engine's URL each time cost
    more than the cached lookup."""
    engine = conn.engine
    found = _databases.get(engine)
    if found is None:
        found = _databases[engine] = str(engine.url)
    return found


def get_city(conn: Connection, code: str) -> CityRecord | None:
    key = (_database(conn), code)
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
    return 1000.0 * great_circle_km(lat1, lon1, lat2, lon2)


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


def get_vehicle(conn: Connection, car_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    return _VEHICLE_BY_ID[lock].first(conn, {"car_id": car_id})


def vehicle_by_tag(conn: Connection, id_tag: str, *, lock: bool = False) -> dict[str, Any] | None:
    return _VEHICLE_BY_TAG[lock].first(conn, {"id_tag": id_tag})


def vehicles_at(conn: Connection, cp_id: str, connector_id: int | None = None, *,
                lock: bool = False) -> list[dict[str, Any]]:
    if connector_id is None:
        return _VEHICLES_AT[lock].rows(conn, {"cp_id": cp_id})
    return _VEHICLES_AT_CONNECTOR[lock].rows(conn, {"cp_id": cp_id, "connector_id": connector_id})


def vehicles_at_station(conn: Connection, station_id: str, *, lock: bool = False) -> list[dict[str, Any]]:
    query = (select(vehicles).join(bays, and_(vehicles.c.charge_point_id == bays.c.charge_point_id,
                                              vehicles.c.connector_id == bays.c.connector_id))
             .where(bays.c.station_id == station_id).order_by(vehicles.c.soc_percent.desc()))
    if lock:
        query = query.with_for_update(of=vehicles)
    return [dict(r) for r in conn.execute(query).mappings()]


def list_vehicles(conn: Connection, city: str | None = None) -> list[dict[str, Any]]:
    query = select(vehicles).order_by(vehicles.c.id)
    if city is not None:
        query = query.where(vehicles.c.city == city)
    return [dict(r) for r in conn.execute(query).mappings()]


def dock_vehicle_by_tag(conn: Connection, id_tag: str, dock: tuple[str, int]) -> dict[str, Any] | None:
    """The car whose id token is ``id_tag`` is docked at ``dock``: its id and state-of-charge estimate
    (``soc_percent``, ``soc_source``, ``soc_at``), or None if no car has that token. One statement
    (locking the row on PostgreSQL), as the return of a car runs it every time."""
    row = _DOCK_VEHICLE_BY_TAG.first(conn, {"id_tag": id_tag, "status": "docked", "charge_point_id": dock[0],
                                            "connector_id": dock[1]})
    return None if row is None else dict(row)


def move_vehicle(conn: Connection, car_id: str, *, status: str, dock: tuple[str, int] | None) -> None:
    _MOVE_VEHICLE.write(conn, _move_values(car_id, status, dock))


def _move_values(car_id: str, status: str, dock: tuple[str, int] | None) -> dict[str, Any]:
    return {"car_id": car_id, "status": status, "charge_point_id": dock[0] if dock else None,
            "connector_id": dock[1] if dock else None}


# --- members and badges ----------------------------------------------------------------------

def create_member(conn: Connection, member: dict[str, Any], badge: str, now: datetime) -> None:
    conn.execute(insert(members).values(created_at=now, **member))
    add_badge(conn, member["id"], badge, now)


def add_badge(conn: Connection, member_id: str, id_tag: str, now: datetime) -> None:
    conn.execute(insert(badges).values(id_tag=id_tag, member_id=member_id, created_at=now))
    conn.execute(insert(id_tags).values(id_tag=id_tag, status="Accepted", note=f"member {member_id}", created_at=now))


def get_member(conn: Connection, member_id: str) -> dict[str, Any] | None:
    """The member's row and ``badges`` (``id_tag``, ``status``), in one query."""
    return _member(_MEMBER_WITH_BADGES.rows(conn, {"member_id": member_id}))


def _member(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not rows:
        return None
    out = dict(rows[0])
    del out["badge_id_tag"], out["badge_status"], out["badge_kind"]
    for key, kind in (("badges", BADGE), ("contracts", CONTRACT)):  # RFID cards; Plug & Charge eMAIDs
        out[key] = [{"id_tag": r["badge_id_tag"], "status": r["badge_status"]} for r in rows
                    if r["badge_id_tag"] is not None and r["badge_kind"] == kind]
    return out


def list_members(conn: Connection, limit: int = 500) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(members).order_by(members.c.created_at).limit(limit)).mappings()]


def member_by_badge(conn: Connection, id_tag: str) -> tuple[dict[str, Any], str] | None:
    """The member owning badge ``id_tag`` (its row, without the ``badges`` list of :func:`get_member`;
    ``badge_kind`` says badge or contract) and the badge's status (Accepted, Blocked, ...), in one query."""
    member = _MEMBER_BY_BADGE.first(conn, {"id_tag": id_tag})
    if member is None:
        return None
    return member, member.pop("badge_status")


def update_member(conn: Connection, member_id: str, **values: Any) -> bool:
    return conn.execute(update(members).where(members.c.id == member_id).values(**values)).rowcount > 0


# --- rentals ---------------------------------------------------------------------------------

def _state_columns(r: Rental) -> dict[str, Any]:
    """The columns that repeat, for the database's keys and indexes, what ``data`` holds."""
    live = r.state not in TERMINAL
    bay = r.bay_hold
    return {"state": r.state.value, "active_car": r.car_id if live else None,
            "active_member": r.member_id if live else None,
            "active_bay": f"{bay.dock.charge_point_id}/{bay.dock.connector_id}" if live and bay else None,
            "returned_at": r.returned_at}


def insert_rental(conn: Connection, r: Rental, city: str, now: datetime) -> None:
    """Raises IntegrityError when the car, the member or the bay is already taken by a live rental."""
    _INSERT_RENTAL.write(conn, {"id": r.rental_id, "city": city, "member_id": r.member_id, "car_id": r.car_id,
                              "data": codec.rental_to_dict(r), "created_at": now, "updated_at": now,
                              **_state_columns(r)})


def save_rental(conn: Connection, r: Rental, now: datetime, *, invoices: Sequence[Invoice] = (),
                move: tuple[str, str, tuple[str, int] | None] | None = None) -> None:
    """Save ``r``; ``invoices`` first (as :func:`invoice_rental`), then ``move`` (``car_id, status,
    dock``, as :func:`move_vehicle`). On PostgreSQL one invoice or the move goes in the same statement."""
    saved = {"rental_id": r.rental_id, "data": codec.rental_to_dict(r), "updated_at": now, **_state_columns(r)}
    together = conn.dialect.name == "postgresql"
    if together and len(invoices) == 1 and move is None:
        _SAVE_RENTAL_WITH_INVOICE.write(conn, {**saved, **{f"invoice_{k}": v for k, v in
                                                          _invoice_values(*invoices[0]).items()}})
        return
    for invoice in invoices:
        invoice_rental(conn, *invoice)
    if together and move is not None:
        _SAVE_RENTAL_AND_MOVE.write(conn, {**saved, **_move_values(*move)})
        return
    _SAVE_RENTAL.write(conn, saved)
    if move is not None:
        move_vehicle(conn, move[0], status=move[1], dock=move[2])


def _rental(row: Any) -> tuple[Rental, str]:
    return codec.rental_from_dict(row["data"]), row["city"]


def _one_rental(conn: Connection, statement: Prepared, params: dict[str, Any]) -> tuple[Rental, str] | None:
    row = statement.first(conn, params)
    return None if row is None else _rental(row)


def load_rental(conn: Connection, rental_id: str, *, lock: bool = False) -> tuple[Rental, str] | None:
    return _one_rental(conn, _RENTAL_BY_ID[lock], {"rental_id": rental_id})


def live_rental_of_car(conn: Connection, car_id: str, *, lock: bool = False) -> tuple[Rental, str] | None:
    return _one_rental(conn, _LIVE_OF_CAR[lock], {"car_id": car_id})


def live_rental_of_member(conn: Connection, member_id: str, *, lock: bool = False) -> tuple[Rental, str] | None:
    return _one_rental(conn, _LIVE_OF_MEMBER[lock], {"member_id": member_id})


Live = tuple[Rental, str]  # a live rental and its city


def live_rentals_of(conn: Connection, member_id: str | None, car_ids: list[str], *,
                    lock: bool = False) -> tuple[Live | None, dict[str, Live]]:
    """In one query: the member's live rental, and the live rental of each of ``car_ids`` that has one.
    A rental that is both appears in both (the same object)."""
    return _mine_and_by_car(_live_of_member_or_cars_query(len(car_ids))[lock].rows(conn, _member_or_cars(
        member_id, car_ids)), member_id, car_ids)


def _member_or_cars(member_id: str | None, car_ids: list[str]) -> dict[str, Any]:
    return {"member_id": member_id, **{f"car_{i}": car for i, car in enumerate(car_ids)}}


def _mine_and_by_car(rows: list[dict[str, Any]], member_id: str | None,
                     car_ids: list[str]) -> tuple[Live | None, dict[str, Live]]:
    """``rows`` (possibly from several queries, a rental more than once) as the member's live rental and
    each car's; each rental is decoded once, so a rental that is both is the same object in both."""
    mine: Live | None = None
    by_car: dict[str, Live] = {}
    decoded: dict[str, Live] = {}
    for row in rows:
        found = decoded.get(row["id"])
        if found is None:
            found = decoded[row["id"]] = _rental(row)
        if member_id is not None and row["active_member"] == member_id:
            mine = found
        if row["active_car"] in car_ids:
            by_car[row["active_car"]] = found
    return mine, by_car


def badge_lookup(conn: Connection, id_tag: str, cp_id: str, *, lock: bool = False
                 ) -> tuple[tuple[dict[str, Any], str] | None, list[dict[str, Any]], Live | None, dict[str, Live]]:
    """What a badge at a charge point needs, in one round trip on PostgreSQL: the badge's member and
    the badge's status (as :func:`member_by_badge`), the cars docked at the charge point, the member's
    live rental and the live rental of each of those cars. Elsewhere (SQLite: no round trips), three
    statements, the rentals found from the first two answers."""
    if pipelining(conn):
        together, live = rows_together(
            conn, (_MEMBER_AND_CARS_AT[lock], {"id_tag": id_tag, "cp_id": cp_id}),
            (_LIVE_OF_BADGE_AND_AT_CP[lock], {"id_tag": id_tag, "cp_id": cp_id}))
        member_rows = [{k[2:]: v for k, v in together[0].items() if k[0] == "m"}] if together else []
        cars = [{k[2:]: v for k, v in row.items() if k[0] == "v"} for row in together if row["v_id"] is not None]
    else:
        member_rows = _MEMBER_BY_BADGE.rows(conn, {"id_tag": id_tag})
        cars = _VEHICLES_AT[lock].rows(conn, {"cp_id": cp_id})
        live = []
    found = None
    if member_rows:
        member = member_rows[0]
        found = (member, str(member.pop("badge_status")))
    member_id, car_ids = found[0]["id"] if found else None, [c["id"] for c in cars]
    if not pipelining(conn) and (member_id is not None or car_ids):
        live = _live_of_member_or_cars_query(len(car_ids))[lock].rows(conn, _member_or_cars(member_id, car_ids))
    mine, by_car = _mine_and_by_car(live, member_id, car_ids)
    return found, cars, mine, by_car


def cars_at_with_rentals(conn: Connection, cp_id: str, connector_id: int, *,
                         lock: bool = False) -> tuple[list[dict[str, Any]], dict[str, Live]]:
    """The cars docked at a connector and the live rental of each that has one, in one round trip."""
    cars, live = rows_together(conn, (_VEHICLES_AT_CONNECTOR[lock], {"cp_id": cp_id, "connector_id": connector_id}),
                               (_LIVE_AT_CONNECTOR[lock], {"cp_id": cp_id, "connector_id": connector_id}))
    return cars, _mine_and_by_car(live, None, [c["id"] for c in cars])[1]


def dock_returned_car(conn: Connection, id_tag: str, cp_id: str, connector_id: int, *,
                      lock: bool = False) -> tuple[dict[str, Any] | None, Live | None, Live | None]:
    """A car plugged in with its id token: docks it there (as :func:`dock_vehicle_by_tag`) and finds its
    live rental and the live rental holding that bay, in one round trip: the car as
    :func:`dock_vehicle_by_tag` gives it (or None), the car's rental, the bay's. The two rentals are
    the same object when they are one. Elsewhere (SQLite), two statements."""
    if not pipelining(conn):
        car = dock_vehicle_by_tag(conn, id_tag, (cp_id, connector_id))
        if car is None:
            return None, None, None
        return car, *live_rentals_at(conn, str(car["id"]), cp_id, connector_id, lock=lock)
    bay = f"{cp_id}/{connector_id}"
    docked, found = rows_together(
        conn, (_DOCK_VEHICLE_BY_TAG, {"id_tag": id_tag, "status": "docked", "charge_point_id": cp_id,
                                      "connector_id": connector_id}),
        (_LIVE_OF_TAG_AND_ON_BAY[lock], {"id_tag": id_tag, "bay": bay}))
    if not docked:
        return None, None, None
    car = dict(docked[0])
    car_id = str(car["id"])
    decoded = _mine_and_by_car(found, None, [car_id])[1]
    live = decoded.get(car_id)
    held = None
    for row in found:
        if row["active_bay"] == bay:
            held = live if live is not None and live[0].rental_id == row["id"] else _rental(row)
    return car, live, held


def reservation_lookup(conn: Connection, member_id: str, car_id: str, *, lock: bool = False
                       ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, Live | None, dict[str, Live]]:
    """What reserving a given car needs, in one round trip on PostgreSQL: the member (as
    :func:`get_member`), the car, the member's live rental and the car's."""
    member_rows, car_rows, live = rows_together(
        conn, (_MEMBER_WITH_BADGES, {"member_id": member_id}), (_VEHICLE_BY_ID[lock], {"car_id": car_id}),
        (_live_of_member_or_cars_query(1)[lock], _member_or_cars(member_id, [car_id])))
    mine, by_car = _mine_and_by_car(live, member_id, [car_id])
    return _member(member_rows), car_rows[0] if car_rows else None, mine, by_car


def live_rentals_at(conn: Connection, car_id: str, cp_id: str, connector_id: int, *,
                    lock: bool = False) -> tuple[tuple[Rental, str] | None, tuple[Rental, str] | None]:
    """In one query: the car's live rental and the live rental holding bay ``cp_id``/``connector_id``
    (the same object when they are one rental)."""
    car: tuple[Rental, str] | None = None
    bay: tuple[Rental, str] | None = None
    key = f"{cp_id}/{connector_id}"
    for row in _LIVE_OF_CAR_OR_BAY[lock].rows(conn, {"car_id": car_id, "bay": key}):
        found = _rental(row)
        if row["active_car"] == car_id:
            car = found
        if row["active_bay"] == key:
            bay = car if car is not None and car[0].rental_id == found[0].rental_id else found
    return car, bay


def live_rentals(conn: Connection, *, lock: bool = False) -> list[tuple[Rental, str]]:
    query = select(rentals.c.data, rentals.c.city).where(rentals.c.active_car.is_not(None))
    rows = conn.execute(query.with_for_update() if lock else query).mappings()
    return [_rental(row) for row in rows]


def ended_rentals_of_car(conn: Connection, car_id: str, limit: int = 10) -> list[Rental]:
    """The car's most recent rentals that hold nothing any more, newest first (late departures)."""
    rows = conn.execute(select(rentals.c.data, rentals.c.city)
                        .where(rentals.c.car_id == car_id, rentals.c.active_car.is_(None))
                        .order_by(rentals.c.created_at.desc(), rentals.c.id.desc()).limit(limit)).mappings()
    return [_rental(row)[0] for row in rows]


def bay_holder(conn: Connection, cp_id: str, connector_id: int, *, lock: bool = False) -> tuple[Rental, str] | None:
    """The live rental holding this bay, if any."""
    return _one_rental(conn, _LIVE_ON_BAY[lock], {"bay": f"{cp_id}/{connector_id}"})


def bay_is_held(conn: Connection, cp_id: str, connector_id: int, now: datetime) -> bool:
    """A rental holds the bay, or a reservation of any origin does (an operator's, through the API)."""
    return conn.execute(select(rentals.c.id).where(rentals.c.active_bay == f"{cp_id}/{connector_id}")).first() \
        is not None or reservations.bay_reserved(conn, cp_id, connector_id, now)


def list_rentals(conn: Connection, member_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    query = select(rentals.c.data).order_by(rentals.c.created_at.desc()).limit(limit)
    if member_id is not None:
        query = query.where(rentals.c.member_id == member_id)
    return [row.data for row in conn.execute(query)]


# --- invoices --------------------------------------------------------------------------------

Invoice = tuple[str, str, PriceBreakdown, datetime]  # member_id, rental_id, breakdown, issued at


def invoice_rental(conn: Connection, member_id: str, rental_id: str, breakdown: PriceBreakdown, now: datetime) -> None:
    """One invoice per rental: a replay inserts nothing (unique rental_id)."""
    _INVOICE_IF_NEW[conn.dialect.name].write(conn, _invoice_values(member_id, rental_id, breakdown, now))


def _invoice_values(member_id: str, rental_id: str, breakdown: PriceBreakdown, now: datetime) -> dict[str, Any]:
    return {"member_id": member_id, "rental_id": rental_id, "kind": "rental", "currency": breakdown.currency,
            "total_minor": breakdown.total.minor, "lines": codec.breakdown_to_dict(breakdown)["lines"],
            "issued_at": now}


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
