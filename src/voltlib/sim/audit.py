"""After a crash drill: is everything voltlib acknowledged in its database, exactly once?

The simulated charge points remember what voltlib answered (``SimulatedChargePoint.acknowledged``:
each transaction message, with its transaction id). A SIGKILL loses whatever was not committed, so
anything answered but missing means voltlib acknowledged before it committed; anything twice means a
replay was not idempotent. Each count below must be 0 (``problems``)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, select

from voltlib.sharing.codec import rental_from_dict
from voltlib.store.db import Store
from voltlib.store.tables import (
    invoices,
    meter_values,
    rentals,
    security_alerts,
    security_events,
    transactions,
    vehicles,
)

Acknowledged = dict[str, list[tuple[str, int | None]]]  # charge point id -> (action, transaction id)


def check(url: str, acknowledged: Acknowledged) -> dict[str, Any]:
    """The audit of the database at ``url`` against what the charge points were answered."""
    store = Store(url)
    try:
        return store.run_sync(lambda conn: audit(conn, acknowledged))
    finally:
        store.close()


def audit(conn: Connection, acknowledged: Acknowledged) -> dict[str, Any]:
    stored = {row.id: row for row in conn.execute(
        select(transactions.c.id, transactions.c.charge_point_id, transactions.c.stopped_at))}
    samples = Counter({(row.charge_point_id, row.transaction_id): int(row.n) for row in conn.execute(
        select(meter_values.c.charge_point_id, meter_values.c.transaction_id, func.count().label("n"))
        .group_by(meter_values.c.charge_point_id, meter_values.c.transaction_id))})
    by_cp = security_events.c.charge_point_id
    events = Counter({row.charge_point_id: int(row.n) for row in conn.execute(
        select(by_cp, func.count().label("n")).group_by(by_cp))})
    found: Counter[str] = Counter()
    for cp_id, answered in acknowledged.items():
        reported = sum(1 for action, _ in answered if action == "SecurityEventNotification")
        found["acknowledged:SecurityEventNotification"] += reported
        found["lost:SecurityEventNotification"] += max(0, reported - events[cp_id])
        sent = Counter((action, tx) for action, tx in answered if tx is not None)
        for (action, tx_id), n in sent.items():
            found[f"acknowledged:{action}"] += n
            row = stored.get(tx_id)
            if row is None or row.charge_point_id != cp_id:
                found[f"lost:{action}"] += n
            elif action == "StopTransaction" and row.stopped_at is None:
                found["lost:StopTransaction"] += n
            elif action == "MeterValues" and samples[(cp_id, tx_id)] < n:
                found["lost:MeterValues"] += n - samples[(cp_id, tx_id)]
    closed = conn.execute(select(func.count()).select_from(rentals).where(rentals.c.state == "closed")).scalar_one()
    uninvoiced = conn.execute(
        select(func.count()).select_from(rentals.outerjoin(invoices, invoices.c.rental_id == rentals.c.id))
        .where(and_(rentals.c.state == "closed", invoices.c.id.is_(None)))).scalar_one()
    problems = {
        "lost_start_transactions": found["lost:StartTransaction"],
        "lost_stop_transactions": found["lost:StopTransaction"],
        "lost_meter_values": found["lost:MeterValues"],
        "lost_security_events": found["lost:SecurityEventNotification"],
        "duplicate_open_transactions": _duplicates(conn, select(transactions.c.charge_point_id,
                                                                 transactions.c.connector_id)
                                                   .where(transactions.c.stopped_at.is_(None))),
        "closed_rentals_without_invoice": int(uninvoiced),
        "duplicate_alerts": _duplicates(conn, select(security_alerts.c.kind, security_alerts.c.charge_point_id,
                                                     security_alerts.c.source, security_alerts.c.at)),
    }
    return {"acknowledged": {k.split(":", 1)[1]: v for k, v in sorted(found.items()) if k.startswith("acknowledged:")},
            "rentals_closed": int(closed), "problems": problems, "ok": not any(problems.values())}


def _duplicates(conn: Connection, rows: Any) -> int:
    """Groups of ``rows`` (a select of the columns that must be unique) that occur more than once."""
    grouped = rows.subquery()
    counted = select(func.count()).select_from(grouped).group_by(*grouped.c).having(func.count() > 1).subquery()
    return int(conn.execute(select(func.count()).select_from(counted)).scalar_one())


def check_rentals(url: str, plugged: dict[str, str], longest: timedelta) -> dict[str, int]:
    """:func:`docks` and :func:`billed_times` of the database at ``url``."""
    store = Store(url)
    try:
        return store.run_sync(lambda conn: {**docks(conn, plugged),
                                            **{f"billed_{k}": v for k, v in billed_times(conn, longest).items()}})
    finally:
        store.close()


def docks(conn: Connection, plugged: dict[str, str]) -> dict[str, int]:
    """Cars plugged in (car id -> charge point, as the simulation left them) that voltlib does not
    see docked there, and those it still counts as on an open rental: a car physically plugged in is
    always docked and its rental always ends, whatever the posts' clocks said."""
    seen = {row.id: row for row in conn.execute(
        select(vehicles.c.id, vehicles.c.status, vehicles.c.charge_point_id).where(vehicles.c.id.in_(plugged)))}
    open_rentals = set(conn.execute(select(rentals.c.active_car).where(
        rentals.c.active_car.in_(plugged), rentals.c.state.in_(("started", "overdue")))).scalars())
    elsewhere = sum(1 for car, cp in plugged.items()
                    if car not in seen or seen[car].status != "docked" or seen[car].charge_point_id != cp)
    return {"plugged_in": len(plugged), "not_docked_there": elsewhere, "on_open_rental": len(open_rentals)}


def billed_times(conn: Connection, longest: timedelta) -> dict[str, int]:
    """Closed rentals whose billed time is negative or longer than ``longest`` (the play and its
    margin): what a charge point's wrong clock would do to a bill without the clock policy."""
    closed = [rental_from_dict(data) for data in conn.execute(
        select(rentals.c.data).where(rentals.c.state == "closed")).scalars()]
    negative = sum(1 for r in closed if r.started_at and r.returned_at and r.returned_at < r.started_at)
    too_long = sum(1 for r in closed if r.started_at and r.returned_at and r.returned_at - r.started_at > longest)
    return {"closed": len(closed), "negative": negative, "too_long": too_long}
