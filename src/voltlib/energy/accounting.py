"""Energy accounting: kWh delivered per station, per vehicle and per charging session, for a day.

A charging session's energy is its meter delta (``meter_stop − meter_start`` of the OCPP
transaction, the charge point's own register, the number a grid invoice can be reconciled with);
a session still open is counted up to its latest MeterValues register. A session counts for the day
(in the city's time zone) it ended, or for today while it runs. Sessions at bays map to stations;
sessions started with a car's id token map to that car, so energy charged after a rental ends
(the car is plugged in, the return starts the session) is the rental's ``charged`` energy.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, func, or_, select

from voltlib.domain import meter
from voltlib.store.tables import bays, cities, meter_values, stations, transactions, vehicles


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
            stop = r.meter_stop if r.meter_stop is not None else _open_register(conn, r.id)
            wh = max(0.0, float(stop) - float(r.meter_start)) if stop is not None else 0.0
            out.append(Session(r.id, r.charge_point_id, r.connector_id, r.id_tag, r.started_at, r.stopped_at, wh))
    return out


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
            "vehicles": kwh(by_vehicle)}
