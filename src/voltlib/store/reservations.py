"""The reservations table: every reservation voltlib asked a charge point for, whoever asked (the
operator API, car sharing), and what became of it. One row per reservation id, whose status only
moves forward: ``Requested`` → an answer (``Accepted`` or a refusal) → an end (``Cancelled``,
``Used`` by a transaction, ``Expired``, ``Removed`` by a 2.0.1 station). ``Failed``: never reached
the charge point. An open reservation past its expiry reads ``Expired`` everywhere (computed in
each query: no sweep that would lock rows car sharing's concurrent writers update), while its
row keeps the last status a message set (docs/operations.md "Reservations"; issue 20).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, literal, select, update

from voltlib.store.pages import Key, Order, Page, fetch
from voltlib.store.tables import reservations

MAX_RESERVATION_ID = 2**31 - 1  # OCPP reservationId: a signed 32-bit integer
OPEN = ("Requested", "Accepted")
REFUSALS = ("Rejected", "Faulted", "Occupied", "Unavailable")
ENDS = ("Cancelled", "Used", "Expired", "Removed")
STATUSES = (*OPEN, *REFUSALS, "Failed", *ENDS)
ORIGINS = ("api", "car-sharing")
COMMAND = "ReserveNow command"  # the detail of an operator's raw ReserveNow: the id was theirs
ORDER = Order((reservations.c.created_at, reservations.c.id))  # newest first
r = reservations.c


def status_at(now: datetime) -> ColumnElement[Any]:
    """The status as of ``now``: an open reservation past its expiry is Expired."""
    return case((and_(r.status.in_(OPEN), r.expires_at <= now), literal("Expired")), else_=r.status)


def _readable(now: datetime) -> Any:
    return select(*[status_at(now).label("status") if c.name == "status" else c for c in reservations.columns])


def new_id(conn: Connection) -> int:
    """A reservation id no reservation has: random in [1, 2^31-1], so none can be guessed from another."""
    for _ in range(8):
        candidate = secrets.randbelow(MAX_RESERVATION_ID) + 1
        if conn.execute(select(r.id).where(r.id == candidate)).first() is None:
            return candidate
    raise RuntimeError("could not allocate a reservation id")


def insert(conn: Connection, *, reservation_id: int, cp_id: str, connector_id: int, id_tag: str,
           expires_at: datetime, origin: str, requested_by: str | None, now: datetime,
           rental_id: str | None = None, detail: str | None = None) -> None:
    """Record a reservation about to be sent (Requested)."""
    conn.execute(reservations.insert().values(
        id=reservation_id, charge_point_id=cp_id, connector_id=connector_id, id_tag=id_tag, expires_at=expires_at,
        status="Requested", origin=origin, rental_id=rental_id, requested_by=requested_by, detail=detail,
        created_at=now, updated_at=now))


def claim(conn: Connection, *, reservation_id: int, cp_id: str, connector_id: int, id_tag: str,
          expires_at: datetime, requested_by: str | None, now: datetime) -> dict[str, Any] | None:
    """Record a reservation whose id the operator chose (a raw ReserveNow command), so that the
    allocator never hands that id out while the charge point may hold it. The id is free, or the
    operator's own on this charge point (ReserveNow with a held id replaces that reservation), or an
    operator's one that no longer holds anything: the row is (re)written Requested. Else (a car-sharing
    hold, or open on another charge point) nothing is written and that row is returned."""
    row = conn.execute(_readable(now).where(r.id == reservation_id).with_for_update()).mappings().first()
    if row is None:
        insert(conn, reservation_id=reservation_id, cp_id=cp_id, connector_id=connector_id, id_tag=id_tag,
               expires_at=expires_at, origin="api", requested_by=requested_by, now=now, detail=COMMAND)
        return None
    if row["origin"] != "api" or (row["charge_point_id"] != cp_id and row["status"] in OPEN):
        return dict(row)
    conn.execute(update(reservations).where(r.id == reservation_id).values(
        charge_point_id=cp_id, connector_id=connector_id, id_tag=id_tag, expires_at=expires_at, status="Requested",
        requested_by=requested_by, rental_id=None, transaction_id=None, detail=COMMAND, created_at=now,
        updated_at=now))
    return None


def answered(conn: Connection, reservation_id: int, state: str, status: str | None, now: datetime, *,
             cp_id: str | None = None) -> None:
    """What became of ReserveNow (the command's ``state`` and the charge point's ``status``). A
    reservation sent but not answered (timeout, connection lost) stays Requested: the charge point
    may hold it, and it ends at its expiry anyway."""
    if state == "answered" and status in ("Accepted", *REFUSALS):
        _move(conn, reservation_id, ("Requested",), status, now, cp_id=cp_id)
    elif state in ("offline", "refused", "failed"):
        _move(conn, reservation_id, ("Requested",), "Failed", now, cp_id=cp_id, detail=f"ReserveNow {state}")
    elif state != "queued":
        _move(conn, reservation_id, ("Requested",), "Requested", now, cp_id=cp_id,
              detail=f"no answer to ReserveNow ({state})")


def end(conn: Connection, reservation_id: int, status: str, now: datetime, *, cp_id: str | None = None,
        transaction_id: int | None = None, detail: str | None = None) -> bool:
    """End an open reservation (``cp_id``: only if it is that charge point's). False: it was not open."""
    return _move(conn, reservation_id, OPEN, status, now, cp_id=cp_id, transaction_id=transaction_id, detail=detail)


def cancel_detail(by: str | None, status: str | None) -> str:
    """Why a CancelReservation the charge point answered ended its reservation (Rejected: it held none)."""
    return f"by {by}" if status == "Accepted" else f"by {by}; the charge point did not hold it"


def used(conn: Connection, cp_id: str, reservation_id: int | None, transaction_id: int, now: datetime) -> None:
    """A transaction the charge point started on a reservation of its own (1.6 StartTransaction,
    2.0.1 TransactionEvent reservationId): that reservation is Used."""
    if reservation_id is not None:
        _move(conn, reservation_id, OPEN, "Used", now, cp_id=cp_id, transaction_id=transaction_id)


def _move(conn: Connection, reservation_id: int, was: tuple[str, ...], status: str, now: datetime, *,
          cp_id: str | None = None, transaction_id: int | None = None, detail: str | None = None) -> bool:
    if not 0 <= reservation_id <= MAX_RESERVATION_ID:
        return False  # a charge point's claim about an id voltlib never gives
    where = [r.id == reservation_id, r.status.in_(was)]
    if cp_id is not None:
        where.append(r.charge_point_id == cp_id)
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if transaction_id is not None:
        values["transaction_id"] = transaction_id
    if detail is not None:
        values["detail"] = detail[:200]
    return bool(conn.execute(update(reservations).where(*where).values(**values)).rowcount)


def get(conn: Connection, reservation_id: int, now: datetime) -> dict[str, Any] | None:
    row = conn.execute(_readable(now).where(r.id == reservation_id)).mappings().first()
    return None if row is None else dict(row)


def bay_reserved(conn: Connection, cp_id: str, connector_id: int, now: datetime) -> bool:
    """Whether a reservation (of any origin) holds that connector now."""
    return conn.execute(select(r.id).where(r.charge_point_id == cp_id, r.connector_id == connector_id,
                                           r.status.in_(OPEN), r.expires_at > now).limit(1)).first() is not None


@dataclass(frozen=True)
class ReservationFilter:
    """Which reservations: every given condition holds; ``status`` as of now (see :func:`status_at`)."""

    charge_point: str | None = None
    id_tag: str | None = None
    status: str | None = None
    origin: str | None = None


def page(conn: Connection, where: ReservationFilter, now: datetime, after: Key | None, limit: int) -> Page:
    query = _readable(now)
    if where.charge_point is not None:
        query = query.where(r.charge_point_id == where.charge_point)
    if where.id_tag is not None:
        query = query.where(r.id_tag == where.id_tag)
    if where.status is not None:
        query = query.where(status_at(now) == where.status)
    if where.origin is not None:
        query = query.where(r.origin == where.origin)
    return fetch(conn, query, ORDER, after, limit)
