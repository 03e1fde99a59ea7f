"""Every answer to ReserveNow and CancelReservation, whoever sent the command (the reservations
resource, car sharing, an operator's raw command), kept in the reservations table, the one record
of every reservation (issue 20). The senders that wait write the same thing themselves, so that
what they answer is stored already: these writes are idempotent (a status only moves forward).
A raw command sent with ``?wait=false`` has nobody waiting: this is what stores its answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection

from voltlib import events as ev
from voltlib.gateway.context import Services
from voltlib.store import reservations as rs

FOLLOWED = ("ReserveNow", "CancelReservation")


def follow(cp_id: str, action: str, state: str, request: dict[str, Any] | None, response: dict[str, Any] | None,
           requested_by: str | None, now: datetime) -> Callable[[Connection], Any] | None:
    """The write one finished command calls for, if any: ReserveNow's answer (or why there is none)
    on its reservation; a CancelReservation answered Accepted or Rejected (the charge point holds no
    such reservation) ends it Cancelled. Only the reservation of that charge point is touched."""
    status = None if response is None else response.get("status")
    if action == "ReserveNow" and request is not None:
        reservation_id = request.get("reservationId", request.get("id"))  # 1.6 / 2.0.1
        if isinstance(reservation_id, int):
            return partial(rs.answered, reservation_id=reservation_id, state=state, status=status, now=now,
                           cp_id=cp_id)
    if action == "CancelReservation" and request is not None and state == "answered" \
            and status in ("Accepted", "Rejected") and isinstance(request.get("reservationId"), int):
        return partial(rs.end, reservation_id=request["reservationId"], status="Cancelled", now=now, cp_id=cp_id,
                       detail=rs.cancel_detail(requested_by, status))
    return None


class ReservationFollower:
    """Follows ``CommandFinished`` on each node (a command finishes on the node holding the socket)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def install(self) -> None:
        self.services.bus.subscribe(self.on_event, ev.CommandFinished, name="reservation-answers", scope="node")

    async def on_event(self, event: ev.Event) -> None:
        """Queued, not awaited, as charging profiles' follower: car sharing's answers come by the
        thousand, and the senders that wait have written the same thing already."""
        if isinstance(event, ev.CommandFinished) and event.action in FOLLOWED:
            op = follow(event.charge_point_id, event.action, event.state, event.request, event.response,
                        event.requested_by, self.services.clock.now())
            if op is not None:
                self.services.store.write_later(op)
