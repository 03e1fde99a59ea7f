"""Departures committed but never applied (issue 22): found at start-up for ``reconcile_op``.

A StatusNotification Available is stored before it is answered; car sharing applies it afterwards,
from the bus (``unplug_op``), and moves the car off its bay (rented, or missing with an alert). If
voltlib stopped in between, the car is still docked as far as voltlib knows, on a connector whose
last reported status is Available. Such a bay is a departure to apply, when that Available was
received

* within ``RECONCILE_WINDOW`` (older ones are not looked at again), and
* after the car's last transaction on that connector (its return or charging session: a car plugged
  in since the Available is there).

A departure applied on time moved the car, so it is never found again: no second alert, no second
start. Plain reads; ``unplug_op`` then locks the car and checks again, so two nodes reconciling at
once apply it once.

Start-up comes too late on a cluster: the charge points of a node that died move to another node
within seconds, and the car is plugged in at its next bay, held by any node, a second after leaving.
The return docks the car there, and nothing is left to reconcile. So the return looks first
(:func:`left_dock`): a car still docked at another bay left it, and that bay's departure is applied
before the return (``return_op``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, select

from voltlib.store.tables import connector_status_history, connectors, transactions, vehicles

RECONCILE_WINDOW = timedelta(hours=24)
AVAILABLE = "Available"


@dataclass(frozen=True, slots=True)
class Departure:
    charge_point_id: str
    connector_id: int
    stamp: datetime  # the charge point's stamp as stored (its receipt time when it sent none)
    received_at: datetime


@dataclass(frozen=True, slots=True)
class LeftDock:
    """The bay a car returned elsewhere is still docked at as far as car sharing knows."""

    charge_point_id: str
    connector_id: int
    departure: Departure | None  # what that bay reported (None: nothing stored, e.g. lost with its node)


def left_dock(conn: Connection, id_tag: str, cp_id: str, connector_id: int, since: datetime) -> LeftDock | None:
    """The car with ``id_tag``, plugged in at ``cp_id``/``connector_id``, is docked at another bay:
    that bay and its departure (as :func:`unapplied_departures` finds it), or None."""
    v = vehicles.c
    row = conn.execute(select(v.charge_point_id, v.connector_id).where(v.id_tag == id_tag, v.status == "docked")
                       ).first()
    if row is None or row.charge_point_id is None or (row.charge_point_id, row.connector_id) == (cp_id, connector_id):
        return None
    return LeftDock(row.charge_point_id, row.connector_id,
                    _reported_departure(conn, id_tag, row.charge_point_id, row.connector_id, since))


def unapplied_departures(conn: Connection, since: datetime) -> list[Departure]:
    """The bays with a docked car whose last reported status, received since ``since``, is Available."""
    v, c = vehicles.c, connectors.c
    docks = conn.execute(select(v.id_tag, v.charge_point_id, v.connector_id).join(connectors, and_(
        c.charge_point_id == v.charge_point_id, c.connector_id == v.connector_id)).where(
        v.status == "docked", c.status == AVAILABLE)).all()
    found: dict[tuple[str, int], Departure] = {}
    for id_tag, cp_id, connector_id in docks:
        if (cp_id, connector_id) in found:
            continue
        departure = _reported_departure(conn, id_tag, cp_id, connector_id, since)
        if departure is not None:
            found[(cp_id, connector_id)] = departure
    return sorted(found.values(), key=lambda d: d.received_at)


def _reported_departure(conn: Connection, id_tag: str, cp_id: str, connector_id: int,
                        since: datetime) -> Departure | None:
    """The bay's last reported status, if it is Available, received since ``since`` and after the
    car's last transaction there."""
    last = _last_status(conn, cp_id, connector_id)
    if last is None or last[0] != AVAILABLE or last[2] < since:
        return None
    plugged = _last_session(conn, id_tag, cp_id, connector_id)
    if plugged is not None and plugged >= last[2]:
        return None
    return Departure(cp_id, connector_id, last[1], last[2])


def _last_status(conn: Connection, cp_id: str, connector_id: int) -> tuple[str, datetime, datetime] | None:
    """The connector's last reported status: (status, its stamp, its receipt time)."""
    h = connector_status_history.c
    row = conn.execute(select(h.status, h.status_at, h.received_at).where(
        h.charge_point_id == cp_id, h.connector_id == connector_id)
        .order_by(h.received_at.desc(), h.id.desc()).limit(1)).first()
    return None if row is None else (str(row.status), row.status_at, row.received_at)


def _last_session(conn: Connection, id_tag: str, cp_id: str, connector_id: int) -> datetime | None:
    t = transactions.c
    found: datetime | None = conn.execute(select(func.max(t.received_at)).where(
        t.id_tag == id_tag, t.charge_point_id == cp_id, t.connector_id == connector_id)).scalar()
    return found
