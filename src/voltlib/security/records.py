"""Store functions for security operations (alerts, incidents, work orders, quarantines, badges).

Plain functions taking a Connection, run through ``Store.write``/``read``; the rules they apply
live in the pure modules (incidents.py, workorders.py).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, false, insert, select, text, union_all, update

from voltlib.domain import meter
from voltlib.domain.demand import Place
from voltlib.security import incidents as inc
from voltlib.security.detectors import CROSSING, Inventory, Signal
from voltlib.security.workorders import WorkOrder
from voltlib.store.tables import (
    bays,
    charge_points,
    id_tags,
    meter_values,
    quarantines,
    security_alerts,
    security_incidents,
    stations,
    work_orders,
)


def charge_point_places(conn: Connection) -> dict[str, Place]:
    """Each charge point that has a bay: its station and where it stands."""
    rows = conn.execute(select(bays.c.charge_point_id, stations.c.id, stations.c.latitude, stations.c.longitude)
                        .join(stations, stations.c.id == bays.c.station_id).distinct())
    return {r.charge_point_id: Place(r.id, r.latitude, r.longitude) for r in rows}


REGISTER_LOOKBACK = 5  # a connector's latest stored readings searched for its energy register
Connector = tuple[str, int]


def registers_before(conn: Connection, wanted: list[tuple[str, int, datetime]]) -> dict[Connector, float | None]:
    """For each (charge point, connector, time): the energy register of the connector's latest stored
    reading (by sample time) among those voltlib received before that time. Receipt, not sample
    time, splits before from after: a stored sample time is the charge point's stamp as sent, which
    the clock policy may not have believed for the event. One statement for all, each connector an
    index scan of its own (SQLite allows 500 in one statement: ``SecurityService`` asks for fewer)."""
    mv = meter_values.c
    latest = [select(mv.charge_point_id, mv.connector_id, mv.sampled_at, mv.samples).where(
        mv.charge_point_id == cp_id, mv.connector_id == connector_id, mv.received_at < before)
        .order_by(mv.sampled_at.desc()).limit(REGISTER_LOOKBACK).subquery() for cp_id, connector_id, before in wanted]
    found: dict[Connector, float | None] = {(cp_id, connector_id): None for cp_id, connector_id, _ in wanted}
    if not latest:
        return found
    rows = conn.execute(union_all(*[select(*one.c) for one in latest])).all()
    for row in sorted(rows, key=lambda r: r.sampled_at, reverse=True):
        key = (row.charge_point_id, row.connector_id)
        if found[key] is None:
            found[key] = meter.find_packed(row.samples, "Energy.Active.Import.Register")
    return found


def _json(detail: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(detail, default=str))
    return result


# --- alerts and incidents ---------------------------------------------------------------------

CROSSINGS = "crossings"  # a NETWORK_KINDS alert's detail: the crossings it holds (``record_signal``)
CROSSINGS_KEPT = 20  # the last ones: a node's copy of a crossing comes soon after the first node's

@dataclass(frozen=True, slots=True)
class Recorded:
    alert_id: int
    incident_id: int | None
    new_alert: bool  # False: folded into an earlier identical alert (dedup)
    new_incident: bool


def record_signal(conn: Connection, signal: Signal, *, expected: bool, work_order_id: int | None,
                  shared: bool = False) -> Recorded:
    """Store one signal: dedup against the last identical alert, then correlate into an incident
    (expected signals, inside a work order, get no incident).

    ``shared``: every gateway node raises this signal for the same crossing of a count (NETWORK_KINDS),
    named by its ``crossing`` detail; a crossing the last identical alert already holds is left as
    it is, a new one is recorded (a repeat or a new alert) however soon after. A lock taken first
    makes the nodes' writes take turns, so the second sees the first's alert. The alerts of one
    security event each (recovery.py) are recorded the same way, their event's key as ``crossing``:
    the start-up recovery may be recording the same event."""
    a = security_alerts.c
    if shared:
        take_turns(conn, signal)
    cp_match = a.charge_point_id.is_(None) if signal.charge_point_id is None else \
        a.charge_point_id == signal.charge_point_id
    src_match = a.source.is_(None) if signal.source is None else a.source == signal.source
    last = conn.execute(select(a.id, a.last_at, a.incident_id, a.detail).where(
        a.kind == signal.kind, cp_match, src_match, a.expected == expected).order_by(a.id.desc()).limit(1)).first()
    crossing = signal.detail.get(CROSSING) if shared else None
    seen = _crossings(last.detail) if last is not None else []
    if last is not None and crossing is not None and crossing in seen:
        return Recorded(int(last.id), last.incident_id, False, False)
    if last is not None and inc.is_repeat(last.last_at, signal.at):
        values: dict[str, Any] = {"repeats": a.repeats + 1, "last_at": max(last.last_at, signal.at)}
        if crossing is not None:
            values["detail"] = {**last.detail, CROSSINGS: [*seen, crossing][-CROSSINGS_KEPT:]}
        conn.execute(update(security_alerts).where(a.id == last.id).values(**values))
        return Recorded(int(last.id), last.incident_id, False, False)
    incident_id, new_incident = (None, False) if expected else _correlate(conn, signal)
    detail = _json(signal.detail) | ({CROSSINGS: [crossing]} if crossing is not None else {})
    alert_id = conn.execute(insert(security_alerts).values(
        incident_id=incident_id, charge_point_id=signal.charge_point_id, source=signal.source,
        detector=signal.detector, kind=signal.kind, severity=signal.severity, expected=expected,
        work_order_id=work_order_id, repeats=0, detail=detail, at=signal.at, last_at=signal.at,
    ).returning(a.id)).scalar_one()
    return Recorded(int(alert_id), incident_id, True, new_incident)


def _crossings(detail: Any) -> list[Any]:
    """The crossings an alert of a NETWORK_KINDS signal holds, its first and its repeats' (the last few)."""
    held = detail.get(CROSSINGS) if isinstance(detail, dict) else None
    return list(held) if isinstance(held, list) else []


def take_turns(conn: Connection, signal: Signal) -> None:
    """Hold, until this transaction ends, a lock that another node recording the same signal waits for."""
    if conn.dialect.name == "postgresql":  # on this signal's identity only
        key = zlib.crc32(f"{signal.kind}|{signal.charge_point_id}|{signal.source}".encode())
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:  # SQLite: a write statement, even on no row, takes the database's write lock
        conn.execute(update(security_alerts).where(false()).values(repeats=security_alerts.c.repeats))


def _correlate(conn: Connection, signal: Signal) -> tuple[int, bool]:
    i = security_incidents.c
    key = inc.correlation_key(signal)
    live = conn.execute(select(i.id, i.severity, i.last_alert_at).where(
        i.correlation_key == key, i.state.in_(inc.LIVE_STATES)).order_by(i.id.desc()).limit(1)).first()
    if live is not None and inc.joins(live.last_alert_at, signal.at):
        conn.execute(update(security_incidents).where(i.id == live.id).values(
            severity=inc.worst(live.severity, signal.severity), alert_count=i.alert_count + 1,
            last_alert_at=max(live.last_alert_at, signal.at)))
        return int(live.id), False
    new_id = conn.execute(insert(security_incidents).values(
        correlation_key=key, charge_point_id=signal.charge_point_id, source=signal.source,
        severity=signal.severity, state=inc.OPEN, title=inc.title(signal), alert_count=1, opened_at=signal.at,
        last_alert_at=signal.at).returning(i.id)).scalar_one()
    return int(new_id), True


def list_alerts(conn: Connection, *, cp_id: str | None = None, expected: bool | None = None,
                limit: int = 200) -> list[dict[str, Any]]:
    query = select(security_alerts).order_by(security_alerts.c.id.desc()).limit(limit)
    if cp_id is not None:
        query = query.where(security_alerts.c.charge_point_id == cp_id)
    if expected is not None:
        query = query.where(security_alerts.c.expected == expected)
    return [dict(r) for r in conn.execute(query).mappings()]


def list_incidents(conn: Connection, *, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    query = select(security_incidents).order_by(security_incidents.c.id.desc()).limit(limit)
    if state is not None:
        query = query.where(security_incidents.c.state == state)
    return [dict(r) for r in conn.execute(query).mappings()]


def get_incident(conn: Connection, incident_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(security_incidents).where(security_incidents.c.id == incident_id)).mappings().first()
    if row is None:
        return None
    alerts = conn.execute(select(security_alerts).where(security_alerts.c.incident_id == incident_id)
                          .order_by(security_alerts.c.id)).mappings()
    return {**dict(row), "alerts": [dict(a) for a in alerts]}


def change_incident(conn: Connection, incident_id: int, *, action: str, by: str, note: str | None,
                    now: datetime) -> dict[str, Any] | None:
    """Apply a lifecycle action; raises LifecycleError when the table forbids it."""
    i = security_incidents.c
    row = conn.execute(select(i.state, i.note).where(i.id == incident_id)).first()
    if row is None:
        return None
    state = inc.transition(row.state, action)
    values: dict[str, Any] = {"state": state}
    if state == inc.ACKNOWLEDGED:
        values.update(acknowledged_at=now, acknowledged_by=by)
    if state == inc.RESOLVED:
        values.update(resolved_at=now, resolved_by=by)
    if note:
        values["note"] = (f"{row.note}\n" if row.note else "") + f"[{now.isoformat()} {by}] {note}"
    conn.execute(update(security_incidents).where(i.id == incident_id, i.state == row.state).values(**values))
    return get_incident(conn, incident_id)


# --- work orders ------------------------------------------------------------------------------

def add_work_order(conn: Connection, *, technician: str, badge: str, charge_points: list[str],
                   starts_at: datetime, ends_at: datetime, purpose: str, created_by: str, now: datetime) -> int:
    return int(conn.execute(insert(work_orders).values(
        technician=technician, badge=badge, charge_points=charge_points, starts_at=starts_at, ends_at=ends_at,
        purpose=purpose, created_by=created_by, created_at=now).returning(work_orders.c.id)).scalar_one())


def list_work_orders(conn: Connection, *, technician: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    query = select(work_orders).order_by(work_orders.c.id.desc()).limit(limit)
    if technician is not None:
        query = query.where(work_orders.c.technician == technician)
    return [dict(r) for r in conn.execute(query).mappings()]


def get_work_order(conn: Connection, order_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(work_orders).where(work_orders.c.id == order_id)).mappings().first()
    return None if row is None else dict(row)


def cancel_work_order(conn: Connection, order_id: int, now: datetime) -> bool:
    return bool(conn.execute(update(work_orders).where(
        work_orders.c.id == order_id, work_orders.c.cancelled_at.is_(None)).values(cancelled_at=now)).rowcount)


def live_work_orders(conn: Connection, at: datetime) -> list[WorkOrder]:
    """Orders not cancelled whose window has not ended (a day of slack for late signals)."""
    w = work_orders.c
    rows = conn.execute(select(work_orders).where(w.cancelled_at.is_(None), w.ends_at >= at - inc.CORRELATION_WINDOW))
    return [WorkOrder(r.id, r.technician, r.badge, tuple(r.charge_points), r.starts_at, r.ends_at, r.purpose)
            for r in rows]


def check_in(conn: Connection, order_id: int, at: datetime) -> None:
    conn.execute(update(work_orders).where(work_orders.c.id == order_id, work_orders.c.checked_in_at.is_(None))
                 .values(checked_in_at=at))


# --- quarantine and badges --------------------------------------------------------------------

def active_quarantine(conn: Connection, cp_id: str) -> dict[str, Any] | None:
    q = quarantines.c
    row = conn.execute(select(quarantines).where(q.charge_point_id == cp_id, q.released_at.is_(None))
                       .order_by(q.id.desc()).limit(1)).mappings().first()
    return None if row is None else dict(row)


def start_quarantine(conn: Connection, cp_id: str, *, reason: str, by: str, incident_id: int | None,
                     now: datetime) -> bool:
    """False when it already is in quarantine (idempotent)."""
    if active_quarantine(conn, cp_id) is not None:
        return False
    conn.execute(insert(quarantines).values(charge_point_id=cp_id, reason=reason[:200], incident_id=incident_id,
                                            started_at=now, started_by=by))
    return True


def release_quarantine(conn: Connection, cp_id: str, *, by: str, now: datetime) -> bool:
    q = quarantines.c
    return bool(conn.execute(update(quarantines).where(q.charge_point_id == cp_id, q.released_at.is_(None))
                             .values(released_at=now, released_by=by)).rowcount)


def list_quarantines(conn: Connection, *, active_only: bool = True) -> list[dict[str, Any]]:
    query = select(quarantines).order_by(quarantines.c.id.desc())
    if active_only:
        query = query.where(quarantines.c.released_at.is_(None))
    return [dict(r) for r in conn.execute(query).mappings()]


def block_badge(conn: Connection, id_tag: str, now: datetime) -> str | None:
    """Set an id tag Blocked (kept: expiry, parent). Returns its previous status (None: new row)."""
    row = conn.execute(select(id_tags.c.status).where(id_tags.c.id_tag == id_tag)).first()
    if row is None:
        conn.execute(insert(id_tags).values(id_tag=id_tag, status="Blocked", note="blocked by security",
                                            created_at=now))
        return None
    conn.execute(update(id_tags).where(id_tags.c.id_tag == id_tag).values(status="Blocked"))
    return str(row.status)


# --- inventory --------------------------------------------------------------------------------

def load_inventory(conn: Connection) -> dict[str, Inventory]:
    c = charge_points.c
    rows = conn.execute(select(c.id, c.vendor, c.model, c.serial_number, c.firmware_version, c.last_address,
                               c.certificate_fingerprint))
    return {r.id: Inventory(r.vendor, r.model, r.serial_number, r.firmware_version,
                            frozenset({r.last_address}) if r.last_address else frozenset(),
                            frozenset({r.certificate_fingerprint}) if r.certificate_fingerprint else frozenset())
            for r in rows}
