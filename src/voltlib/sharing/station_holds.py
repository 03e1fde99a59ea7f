"""Holds a charge point ended by itself (``ReservationEnded``: OCPP 2.0.1 ReservationStatusUpdate).

voltlib's own timers decide when a hold lapses, for 1.6 and 2.0.1 stations alike
(:func:`voltlib.domain.rental.due_events`): ReserveNow carries the expiry voltlib chose. So:

- ``Expired``: the rental's due timers fire first, as they do every few seconds; a hold past its
  expiry ends exactly as a lapsed 1.6 hold does (the same event id: never twice). A station whose
  clock runs ahead reports it early: voltlib keeps the hold until its own expiry (online badges are
  decided by voltlib, so the car stays the member's), then ends it the same way.
- ``Removed``: the station could not keep the hold (its EVSE went out of service...). A bay hold ends
  (as a lost bay: the rest of the rental goes on); a car hold ends the reservation, cancelled without
  a no-show. Nothing is sent back for the reservation the station already dropped.

A hold already ended (by the timer, the member, a departure) is left alone. docs/car-sharing.md.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy import Connection, select

from voltlib import events as ev
from voltlib.domain import rental as dr
from voltlib.sharing import store as ss
from voltlib.sharing.service import Change, SharingService, _apply, _city, _expire_lapsed
from voltlib.store.tables import rentals


def _holders(conn: Connection, cp_id: str) -> list[tuple[dr.Rental, str]]:
    """The live rentals of the cars docked at ``cp_id`` and those holding one of its bays, locked."""
    found: dict[str, tuple[dr.Rental, str]] = {}
    for car in ss.vehicles_at(conn, cp_id, lock=True):
        live = ss.live_rental_of_car(conn, car["id"], lock=True)
        if live is not None:
            found[live[0].rental_id] = live
    held = select(rentals.c.id).where(rentals.c.active_bay.startswith(f"{cp_id}/", autoescape=True))
    for rental_id in conn.execute(held).scalars():
        live = ss.load_rental(conn, rental_id, lock=True)
        if live is not None:
            found[rental_id] = live
    return list(found.values())


def hold_ended_op(conn: Connection, cp_id: str, reservation_id: int, status: str, now: datetime) -> Change:
    change = Change()
    for found in _holders(conn, cp_id):
        live = _expire_lapsed(conn, change, found, now)  # a hold past its expiry ends as its timer ends it
        if live is None or status != "Removed":
            continue  # ended (now or before), or an early Expired: voltlib's expiry decides
        rental, city = live[0], _city(conn, live[1])
        rid = rental.rental_id
        event: dr.RentalEvent | None = None
        if _holds(rental.bay_hold, cp_id, reservation_id):
            event = dr.BayHoldLost(f"{rid}/bay-removed/{reservation_id}", now, reservation_id)
        elif _holds(rental.car_hold, cp_id, reservation_id) and rental.state is dr.State.RESERVED:
            event = dr.CancelReservation(f"{rid}/car-hold-removed/{reservation_id}", now)
        if event is not None:
            ss.save_rental(conn, _apply(conn, change, rental, event, city.policy, now), now)
    # the station dropped this reservation already: no CancelReservation for it
    change.effects = [e for e in change.effects if not (isinstance(e, dr.SendCancelReservation)
                                                        and e.charge_point_id == cp_id
                                                        and e.reservation_id == reservation_id)]
    return change


def _holds(hold: dr.Hold | None, cp_id: str, reservation_id: int) -> bool:
    return hold is not None and hold.reservation_id == reservation_id and hold.dock.charge_point_id == cp_id


class StationHolds:
    """Car sharing's ear for ``ReservationEnded``."""

    def __init__(self, sharing: SharingService) -> None:
        self.sharing = sharing

    def install(self) -> None:
        # node scope, as car sharing's other consumers: the node holding the charge point handles it
        self.sharing.services.bus.subscribe(self.on_event, ev.ReservationEnded, name="sharing-station-holds",
                                            scope="node")

    async def on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.ReservationEnded):
            await self.sharing._run(partial(hold_ended_op, cp_id=event.charge_point_id,
                                            reservation_id=event.reservation_id, status=event.status,
                                            now=self.sharing.services.clock.now()))
