"""What a 2.0.1 station tells voltlib about the reservations it holds (H05; issue 16).

1.6 stations let a reservation lapse in silence; a 2.0.1 station reports it (ReservationStatusUpdate
Expired or Removed). It becomes the version-neutral ``ReservationEnded``, which car sharing follows
(:mod:`voltlib.sharing.station_holds`). The handler joins :mod:`voltlib.gateway.handlers_v201`'s table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from voltlib import events as ev
from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.v201 import messages as m


async def reservation_status_update(ctx: ChargePointContext, req: m.ReservationStatusUpdate) -> m.Reply:
    """Published, then answered: the hold it names is voltlib's to end (car sharing, from the event).
    Nothing else to store: the rental holding it is the record, and its own timer ends an expired hold
    anyway should this event be lost (docs/car-sharing.md, "Reservations a station ends")."""
    s = ctx.services
    await s.bus.publish(ev.ReservationEnded(charge_point_id=ctx.cp_id, at=s.clock.now(),
                                            reservation_id=req.reservation_id, status=req.reservation_update_status))
    return m.ReservationStatusUpdateReply()


HANDLERS: dict[str, Callable[[ChargePointContext, Any], Awaitable[m.Reply]]] = {
    m.ReservationStatusUpdate.ACTION: reservation_status_update,
}
