"""What a 2.0.1 station tells voltlib about the reservations it holds (H05; issue 16).

1.6 stations let a reservation lapse in silence; a 2.0.1 station reports it (ReservationStatusUpdate
Expired or Removed). The reservations table records it (:mod:`voltlib.store.reservations`); it
becomes the version-neutral ``ReservationEnded``, which car sharing follows
(:mod:`voltlib.sharing.station_holds`). The handler joins :mod:`voltlib.gateway.handlers_v201`'s table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from voltlib import events as ev
from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.v201 import messages as m
from voltlib.store import reservations


async def reservation_status_update(ctx: ChargePointContext, req: m.ReservationStatusUpdate) -> m.Reply:
    """Stored (the reservation, if it is this station's and still open, ends Expired or Removed),
    published, then answered: car sharing ends the hold it names from the event, and its own timer
    ends an expired hold anyway should the event be lost (docs/car-sharing.md, "Reservations a
    station ends")."""
    s = ctx.services
    if req.reservation_update_status in ("Expired", "Removed"):  # the schema's two; anything else: no claim
        await s.store.write(partial(reservations.end, reservation_id=req.reservation_id,
                                    status=req.reservation_update_status, now=s.clock.now(), cp_id=ctx.cp_id,
                                    detail="ReservationStatusUpdate"))
    await s.bus.publish(ev.ReservationEnded(charge_point_id=ctx.cp_id, at=s.clock.now(),
                                            reservation_id=req.reservation_id, status=req.reservation_update_status))
    return m.ReservationStatusUpdateReply()


HANDLERS: dict[str, Callable[[ChargePointContext, Any], Awaitable[m.Reply]]] = {
    m.ReservationStatusUpdate.ACTION: reservation_status_update,
}
