"""Raw ReserveNow and CancelReservation (``POST .../commands/{action}``) kept in the reservations
table, the one record of every reservation (issue 20), so that a reservation an operator made by
hand shows in ``GET /api/v1/reservations`` and the allocator never hands out an id a charge point
may hold. The operator chose the id: it is claimed in the table before the command goes out
(refused with a 409 if car sharing's, or open on another charge point); the answer lands on it as
on the resource's (:mod:`voltlib.gateway.reservation_answers`). A raw CancelReservation of a
car-sharing hold is refused as the resource's DELETE is. docs/operations.md "Reservations".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from voltlib.api.framework import Problem
from voltlib.gateway.gateway import CommandError, Gateway
from voltlib.gateway.reservation_answers import follow
from voltlib.ocpp import schemas
from voltlib.ocpp.errors import OcppError
from voltlib.store import repo
from voltlib.store import reservations as rs

RESOURCE = "/api/v1/charge-points/{cp_id}/reservations"


async def send(gateway: Gateway, cp_id: str, action: str, payload: dict[str, Any], by: str | None,
               sending: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """``sending`` (the command as the route sends it), with its reservation recorded around it."""
    s = gateway.services
    if action not in ("ReserveNow", "CancelReservation"):
        return await sending()
    version = await gateway.commands.version_of(cp_id)
    try:
        schemas.validate(version, action, "request", payload)
    except OcppError:
        return await sending()  # refused by the gateway as any invalid payload (422)
    if await s.store.read(partial(repo.get_charge_point, cp_id=cp_id)) is None:
        return await sending()  # 404
    reservation_id = int(payload["reservationId" if action == "CancelReservation" or version == "1.6" else "id"])
    if not 0 < reservation_id <= rs.MAX_RESERVATION_ID:
        return await sending()  # an id the allocator never gives: nothing to keep it from
    if action == "CancelReservation":
        held = await s.store.read(partial(rs.get, reservation_id=reservation_id, now=s.clock.now()))
        if held is not None and held["origin"] != "api" and held["charge_point_id"] == cp_id \
                and held["status"] in rs.OPEN:
            raise Problem(409, "car-sharing-hold", "a car-sharing hold ends with its rental (the member's "
                          "cancellation, or POST /api/v1/rentals/{id}/end)", reservation=held)
    else:
        await _claim(gateway, cp_id, version, reservation_id, payload, by)
    try:
        row = await sending()
    except CommandError:
        if action == "ReserveNow":  # not sent: Failed, as the resource records it
            await s.store.write(partial(rs.answered, reservation_id=reservation_id, state="refused", status=None,
                                        now=s.clock.now(), cp_id=cp_id))
        raise
    op = follow(cp_id, action, row["state"], row["request"], row["response"], by, s.clock.now())
    if op is not None:  # waited for: stored before it is answered (the follower's write then changes nothing)
        await s.store.write(op)
    return row


async def _claim(gateway: Gateway, cp_id: str, version: str, reservation_id: int, payload: dict[str, Any],
                 by: str | None) -> None:
    s = gateway.services
    if version == "1.6":
        connector, id_tag, expiry = payload["connectorId"], payload["idTag"], payload["expiryDate"]
    else:
        connector, id_tag, expiry = payload.get("evseId", 0), payload["idToken"]["idToken"], payload["expiryDateTime"]
    try:
        expires_at = datetime.fromisoformat(str(expiry).replace("Z", "+00:00"))
    except ValueError:
        raise Problem(422, "invalid-payload", f"{expiry!r} is not a date and time") from None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    taken = await s.store.write(partial(rs.claim, reservation_id=reservation_id, cp_id=cp_id,
                                        connector_id=int(connector), id_tag=str(id_tag)[:36], expires_at=expires_at,
                                        requested_by=by, now=s.clock.now()))
    if taken is not None:
        raise Problem(409, "reservation-id-taken", f"reservation {reservation_id} is {taken['status']} on "
                      f"{taken['charge_point_id']} ({taken['origin']}): POST {RESOURCE} lets voltlib choose a free id",
                      reservation=taken)
