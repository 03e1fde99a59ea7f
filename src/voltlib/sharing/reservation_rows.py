"""Car sharing's holds in the reservations table (:mod:`voltlib.store.reservations`), the one record
of every reservation voltlib asks for, the operator API's too (issue 20).

A rental keeps the holds it works with (reservation id, bay, expiry: the domain's state machine
needs them); what the charge point answered and how each hold ended is the table's. Each domain
step that places or drops a hold writes its row in the same database transaction as the rental:
a hold placed (ReserveNow) is inserted ``Requested``; a hold the rental no longer has is ended
``Cancelled`` (CancelReservation sent, or released), ``Expired`` (its timer) or ``Used`` (the car
came back to the bay it held, the return's transaction). docs/car-sharing.md.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from voltlib.domain import rental as dr
from voltlib.store import reservations

ORIGIN = "car-sharing"


def record(conn: Connection, before: dr.Rental, after: dr.Rental, event: dr.RentalEvent,
           effects: list[dr.Effect], now: datetime) -> None:
    """The rows of the holds ``event`` placed or dropped (taking ``before`` to ``after``)."""
    for effect in effects:
        if isinstance(effect, dr.SendReserveNow):
            reservations.insert(conn, reservation_id=effect.reservation_id, cp_id=effect.dock.charge_point_id,
                                connector_id=effect.dock.connector_id, id_tag=effect.id_tag,
                                expires_at=effect.expiry_date, origin=ORIGIN, requested_by=ORIGIN, now=now,
                                rental_id=after.rental_id)
    kept = {h.reservation_id for h in (after.car_hold, after.bay_hold) if h is not None}
    cancelled = {e.reservation_id for e in effects if isinstance(e, dr.SendCancelReservation)}
    for hold in (before.car_hold, before.bay_hold):
        if hold is not None and hold.reservation_id not in kept:
            status, transaction_id = _ended_as(hold, event, cancelled)
            reservations.end(conn, hold.reservation_id, status, now, transaction_id=transaction_id,
                             detail=f"car sharing: {event.kind}")


def _ended_as(hold: dr.Hold, event: dr.RentalEvent, cancelled: set[int]) -> tuple[str, int | None]:
    if hold.reservation_id in cancelled:
        return "Cancelled", None
    if isinstance(event, (dr.ReservationExpired, dr.BayHoldExpired)):
        return "Expired", None
    if isinstance(event, dr.CarReturned) and event.dock == hold.dock:
        return "Used", event.transaction_id
    return "Cancelled", None  # dropped without a word to the charge point (e.g. already cancelled at a release)
