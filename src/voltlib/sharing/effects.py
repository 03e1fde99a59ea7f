"""What car sharing asks of the world once a rental change is committed: ReserveNow and
CancelReservation (through the command port, in the charge point's OCPP version; the answer
stored on the hold's reservation row), alerts, departures without a rental."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from voltlib import events as ev
from voltlib.domain import commands as cmd
from voltlib.domain import rental as dr
from voltlib.domain.commands import CommandRefused
from voltlib.store import repo, reservations
from voltlib.telemetry.logs import RENTAL

if TYPE_CHECKING:
    from voltlib.sharing.service import SharingService

log = logging.getLogger("voltlib.sharing.service")
REQUESTED_BY = "car-sharing"


async def carry_out(sharing: SharingService, effect: dr.Effect) -> None:
    s = sharing.services
    now = s.clock.now()
    rental_id = getattr(effect, "rental_id", None)
    if rental_id is not None:  # this effect's own task: its log lines name the rental, nothing else's
        RENTAL.set(rental_id)
    try:
        if isinstance(effect, dr.SendReserveNow):
            await _reserve(sharing, effect)
        elif isinstance(effect, dr.SendCancelReservation):
            await sharing.gateway.commands.send(effect.charge_point_id, cmd.CancelReservation(effect.reservation_id),
                                                requested_by=REQUESTED_BY)
            await sharing.displays.released(effect)
        elif isinstance(effect, dr.RaiseAlert):
            await alert(sharing, effect.kind, "warning", None, {"rental_id": effect.rental_id,
                                                                "detail": effect.detail}, now)
        elif isinstance(effect, dr.UnauthorisedDeparture):  # stored first: the alert is rebuilt from it if lost
            await s.store.write(partial(repo.record_security_event, kind="unauthorised_departure",
                                        severity="high", charge_point_id=effect.dock.charge_point_id,
                                        source="car-sharing", now=now,
                                        detail={"car_id": effect.car_id, "connector_id": effect.dock.connector_id,
                                                "rental_id": effect.rental_id, "left_at": effect.at.isoformat()}))
            await s.bus.publish(ev.CarLeftWithoutRental(
                charge_point_id=effect.dock.charge_point_id, at=effect.at, connector_id=effect.dock.connector_id,
                car_id=effect.car_id, rental_id=effect.rental_id))  # the security detectors alert on it
        elif isinstance(effect, dr.RecordNoShow):
            log.info("no-show: member %s, rental %s", effect.member_id, effect.rental_id)
    except CommandRefused as exc:
        log.warning("car-sharing effect %s not carried out: %s", type(effect).__name__, exc)
    except Exception:  # our fault: logged with its trace, never left as an unretrieved task error
        log.exception("car-sharing effect %s failed", type(effect).__name__)


async def _reserve(sharing: SharingService, effect: dr.SendReserveNow) -> None:
    """ReserveNow; the answer (or why there is none) goes on the hold's reservation row."""
    store, now = sharing.services.store, sharing.services.clock.now
    try:
        held = await sharing.gateway.commands.send(effect.dock.charge_point_id, cmd.Reserve(
            effect.dock.connector_id, effect.reservation_id, effect.id_tag, effect.expiry_date),
            requested_by=REQUESTED_BY)
    except CommandRefused:
        await store.write(partial(reservations.answered, reservation_id=effect.reservation_id, state="refused",
                                  status=None, now=now()))
        raise
    await store.write(partial(reservations.answered, reservation_id=effect.reservation_id, state=held.state,
                              status=held.status, now=now()))
    if held.accepted:
        await sharing.displays.held(effect)


async def alert(sharing: SharingService, kind: str, severity: str, cp_id: str | None, detail: dict[str, Any],
                now: datetime) -> None:
    s = sharing.services
    await s.store.write(partial(repo.record_security_event, kind=kind, severity=severity, charge_point_id=cp_id,
                                source="car-sharing", detail=detail, now=now))
    await s.bus.publish(ev.SecurityIncident(charge_point_id=cp_id or "", at=now, kind=kind, severity=severity,
                                            source="car-sharing", detail=detail))
