"""Energy accounting: kWh delivered per station, per vehicle and per charging session, for a day;
kWh driven and charged per rental.

A charging session's energy is its meter delta (``meter_stop − meter_start`` of the OCPP
transaction, the charge point's own register, the number a grid invoice can be reconciled with);
a session still open is counted up to its latest MeterValues register. A session counts for the day
(in the city's time zone) it ended, or for today while it runs. Sessions at bays map to stations;
sessions started with a car's id token map to that car, so energy charged after a rental ends
(the car is plugged in, the return starts the session) is the rental's ``charged`` energy.

A rental's *driven* energy comes from the state-of-charge estimates recorded on it when the car left
and when it was returned (:func:`voltlib.domain.rental.driven_energy`); its *charged* energy is the
meter delta of the session its return started, so far when that session is still open. A rental
counts for the day (city time) it was returned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, func, or_, select

from voltlib.domain import battery, meter
from voltlib.domain import rental as dr
from voltlib.sharing import codec
from voltlib.store.repo import first_transaction_of_tag_since
from voltlib.store.tables import bays, cities, meter_values, rentals, stations, transactions, vehicles

BATCH = 500  # ids per IN (...) query


@dataclass(frozen=True, slots=True)
class Session:
    transaction_id: int
    charge_point_id: str
    connector_id: int
    id_tag: str
    started_at: datetime
    stopped_at: datetime | None
    wh: float


def day_bounds(conn: Connection, city: str, day: date) -> tuple[datetime, datetime]:
    tz_name = conn.execute(select(cities.c.timezone).where(cities.c.code == city)).scalar() or "UTC"
    start = datetime.combine(day, time(), ZoneInfo(tz_name))
    return start, start + timedelta(days=1)


def _open_register(conn: Connection, tx_id: int) -> float | None:
    row = conn.execute(select(meter_values.c.samples).where(meter_values.c.transaction_id == tx_id)
                       .order_by(meter_values.c.sampled_at.desc()).limit(1)).first()
    if row is None:
        return None
    for sample in meter.unpack(row.samples):
        if sample.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
            try:
                value = float(sample["value"])
            except (KeyError, ValueError):
                return None
            return value * 1000.0 if sample.get("unit") == "kWh" else value
    return None


def sessions(conn: Connection, cp_ids: list[str], start: datetime, end: datetime, now: datetime) -> list[Session]:
    out: list[Session] = []
    ended_then = and_(transactions.c.stopped_at >= start, transactions.c.stopped_at < end)
    counted = or_(ended_then, transactions.c.stopped_at.is_(None)) if start <= now < end else ended_then
    for first in range(0, len(cp_ids), 500):
        rows = conn.execute(select(transactions).where(and_(
            transactions.c.charge_point_id.in_(cp_ids[first:first + 500]), transactions.c.started_at < end, counted)))
        for r in rows:
            out.append(Session(r.id, r.charge_point_id, r.connector_id, r.id_tag, r.started_at, r.stopped_at,
                               _session_wh(conn, r._mapping)))
    return out


def _session_wh(conn: Connection, tx: Mapping[Any, Any]) -> float:
    """A transaction's meter delta; an open one up to its latest register (none yet: 0)."""
    stop = tx["meter_stop"] if tx["meter_stop"] is not None else _open_register(conn, tx["id"])
    return max(0.0, float(stop) - float(tx["meter_start"])) if stop is not None else 0.0


def _rows_by_id(conn: Connection, column: Any, ids: set[Any], *columns: Any) -> dict[Any, Mapping[Any, Any]]:
    wanted = sorted(ids)
    found: dict[Any, Mapping[Any, Any]] = {}
    for first in range(0, len(wanted), BATCH):
        for row in conn.execute(select(*columns).where(column.in_(wanted[first:first + BATCH]))).mappings():
            found[row[column.name]] = row
    return found


def _charged(conn: Connection, r: dr.Rental,
             txs: dict[Any, Mapping[Any, Any]]) -> tuple[float | None, str | None, Mapping[Any, Any] | None]:
    """kWh of the session the return started, why not, and that transaction's row."""
    if r.returned_at is None or r.started_at is None:
        return None, "the car has not been returned", None
    tx = txs.get(r.return_transaction_id)
    if r.return_transaction_id is None:  # stored before the id was recorded: the rule reconciliation uses
        tx = first_transaction_of_tag_since(conn, r.car_id_tag, r.started_at)
    if tx is None:
        return None, "the return's charging session is not recorded", None
    return round(_session_wh(conn, tx) / 1000.0, 3), None, tx


def rental_energy(conn: Connection, found: list[dr.Rental]) -> dict[str, dict[str, Any]]:
    """Driven and charged kWh of each rental that started, by rental id, with their sources."""
    started = [r for r in found if r.started_at is not None]
    models = _rows_by_id(conn, vehicles.c.id, {r.car_id for r in started}, vehicles.c.id, vehicles.c.model)
    txs = _rows_by_id(conn, transactions.c.id, {r.return_transaction_id for r in started
                                                if r.return_transaction_id is not None}, *transactions.c)
    out: dict[str, dict[str, Any]] = {}
    for r in started:
        row = models.get(r.car_id)
        model = battery.MODELS.get(row["model"]) if row is not None else None
        usable = model.usable_wh if model else None
        driven = dr.driven_energy(r, usable)
        if driven.kwh is None and dr.needs_return_reading(r):
            plugged = _plug_in_soc(conn, r)
            if plugged is not None:
                r = replace(r, return_soc=plugged)
                driven = dr.driven_energy(r, usable)
        charged_kwh, charged_reason, tx = _charged(conn, r, txs)
        out[r.rental_id] = {
            "driven_kwh": driven.kwh, "driven_reason": driven.reason,
            "charged_kwh": charged_kwh, "charged_reason": charged_reason,
            "sources": {"departure": codec.soc_to_dict(r.departure_soc), "return": codec.soc_to_dict(r.return_soc),
                        "usable_kwh": None if model is None else round(model.usable_wh / 1000.0, 3),
                        "charging": None if tx is None else {"transaction_id": tx["id"],
                                                             "open": tx["meter_stop"] is None}}}
    return out


PLUG_IN_READINGS = 5  # the first meter values of the return's charging session searched for a SoC


def _plug_in_soc(conn: Connection, r: dr.Rental) -> dr.SocSnapshot | None:
    """The first state of charge the return's charging session reported (a DC post reads it from the
    car at Transaction.Begin): the car's state of charge as it came back, when nothing measured it
    on the road. ``driven_energy`` decides whether it is early enough to count. Readings bound to the
    return bay's connector only (no ``transactionId``, stored as 0) count too from the session's start."""
    assert r.return_transaction_id is not None and r.return_dock is not None and r.returned_at is not None
    connector_only = and_(meter_values.c.transaction_id == 0, meter_values.c.connector_id == r.return_dock.connector_id,
                          meter_values.c.sampled_at >= r.returned_at)
    rows = conn.execute(select(meter_values.c.samples, meter_values.c.sampled_at).where(
        or_(meter_values.c.transaction_id == r.return_transaction_id, connector_only),
        meter_values.c.charge_point_id == r.return_dock.charge_point_id).order_by(meter_values.c.sampled_at)
        .limit(PLUG_IN_READINGS))
    for row in rows:
        percent = meter.find_packed(row.samples, "SoC")
        if percent is not None:
            return dr.SocSnapshot(percent, "meter", row.sampled_at)
    return None


def rentals_returned(conn: Connection, city: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The city's rentals returned in ``[start, end)`` (the charge point's time of the return), with
    their energy."""
    rows = conn.execute(select(rentals.c.data).where(and_(
        rentals.c.city == city, rentals.c.returned_at >= start, rentals.c.returned_at < end,
        rentals.c.state.in_([dr.State.CLOSED.value, dr.State.FORCE_ENDED.value]))))
    returned = [r for r in (codec.rental_from_dict(row.data) for row in rows)
                if r.returned_at is not None and start <= r.returned_at < end]
    returned.sort(key=lambda r: (r.returned_at or start, r.rental_id))
    energy = rental_energy(conn, returned)
    return [{"rental_id": r.rental_id, "car_id": r.car_id, "returned_at": (r.returned_at or start).isoformat(),
             **energy[r.rental_id]} for r in returned]


def daily_report(conn: Connection, city: str, day: date, now: datetime) -> dict[str, Any] | None:
    if conn.execute(select(func.count()).select_from(cities).where(cities.c.code == city)).scalar_one() == 0:
        return None
    start, end = day_bounds(conn, city, day)
    docks = {(r.charge_point_id, r.connector_id): r.station_id for r in conn.execute(
        select(bays.c.charge_point_id, bays.c.connector_id, bays.c.station_id)
        .join(stations, stations.c.id == bays.c.station_id).where(stations.c.city == city))}
    cars = dict(conn.execute(select(vehicles.c.id_tag, vehicles.c.id).where(vehicles.c.city == city)).all())
    found = sessions(conn, sorted({cp for cp, _ in docks}), start, end, now)
    by_station: dict[str, float] = defaultdict(float)
    by_vehicle: dict[str, float] = defaultdict(float)
    for s in found:
        by_station[docks.get((s.charge_point_id, s.connector_id), "?")] += s.wh
        if s.id_tag in cars:
            by_vehicle[cars[s.id_tag]] += s.wh
    total = sum(s.wh for s in found)

    def kwh(values: dict[str, float]) -> list[dict[str, Any]]:
        return [{"id": k, "kwh": round(v / 1000.0, 3)} for k, v in sorted(values.items(), key=lambda kv: -kv[1])]

    return {"city": city, "day": day.isoformat(), "from": start.isoformat(), "to": end.isoformat(),
            "sessions": len(found), "total_kwh": round(total / 1000.0, 3), "stations": kwh(by_station),
            "vehicles": kwh(by_vehicle), "rentals": rentals_returned(conn, city, start, end)}
