"""What car sharing shows on a 2.0.1 station's screen (block O; docs/car-sharing.md, "Display messages").

- A bay hold placed (ReserveNow accepted): "Reserved for you until 14:05" by that bay, until the
  hold's expiry (the station takes it down itself then), in the city's local time. The message's id
  is the reservation's, so a hold cancelled early clears exactly its message.
- A rental closed: "Thank you! Your rental: 12.40 EUR" by the bay the car was returned to, for
  ``RETURN_SHOWN``. One message id per bay (:func:`return_message_id`): the next return replaces it.

Only stations that have a screen get them: OCPP 2.0.1 (1.6 has no display messages: the port's
1.6 adapter refuses ``ShowMessage``) and a device model saying ``DisplayMessageCtrlr`` Available or
Enabled is true (a station whose model voltlib never read shows nothing). A message is a courtesy:
a refusal or a failure is logged, never in the way of the rental.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select

from voltlib import events as ev
from voltlib.domain import commands as cmd
from voltlib.domain import rental as dr
from voltlib.sharing import store as ss
from voltlib.store.diagnostics import display_capable
from voltlib.store.tables import bays, cities, stations

if TYPE_CHECKING:
    from voltlib.gateway.gateway import Gateway

log = logging.getLogger(__name__)
RETURN_SHOWN = timedelta(minutes=10)
RETURN_MESSAGE_BASE = 2_000_000_000  # return messages: this + the bay's connector (a hold's id: 1 in 2^31 to meet one)


def reserved_text(until: datetime, zone: ZoneInfo) -> str:
    return f"Reserved for you until {until.astimezone(zone):%H:%M}"


def returned_text(price: str) -> str:
    return f"Thank you! Your rental: {price}"


def return_message_id(connector_id: int) -> int:
    return RETURN_MESSAGE_BASE + max(0, connector_id)


def _zone(conn: Connection, cp_id: str) -> str | None:
    query = (select(cities.c.timezone).select_from(bays.join(stations, bays.c.station_id == stations.c.id)
                                                   .join(cities, stations.c.city == cities.c.code))
             .where(bays.c.charge_point_id == cp_id).limit(1))
    return conn.execute(query).scalar()


class Displays:
    """Sends car sharing's messages through the command port (neutral ``ShowMessage``)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.services = gateway.services

    def install(self) -> None:
        # node scope: the node that closed the rental holds the socket of the bay the car came back to
        self.services.bus.subscribe(self.on_event, ev.RentalChanged, name="sharing-displays", scope="node")

    async def has_display(self, cp_id: str) -> bool:
        if await self.gateway.commands.version_of(cp_id) != "2.0.1":
            return False
        return bool(await self.services.store.read(partial(display_capable, cp_id=cp_id)))

    async def _zone_of(self, cp_id: str) -> ZoneInfo:
        name = await self.services.store.read(partial(_zone, cp_id=cp_id))
        try:
            return ZoneInfo(name or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    async def _show(self, cp_id: str, show: cmd.ShowMessage) -> None:
        try:
            if not await self.has_display(cp_id):
                return
            outcome = await self.gateway.commands.send(cp_id, show, requested_by="car-sharing")
            if not outcome.accepted:
                log.info("%s: display message %d not shown (%s, %s)", cp_id, show.message_id, outcome.state,
                         outcome.status)
        except cmd.CommandRefused as exc:
            log.info("%s: display message %d refused: %s", cp_id, show.message_id, exc.detail)
        except Exception:  # a courtesy: never in the way of the rental
            log.exception("%s: display message %d failed", cp_id, show.message_id)

    async def held(self, effect: dr.SendReserveNow) -> None:
        """A hold was sent: show it by its bay."""
        dock = effect.dock
        zone = await self._zone_of(dock.charge_point_id)
        await self._show(dock.charge_point_id, cmd.ShowMessage(
            message_id=effect.reservation_id, text=reserved_text(effect.expiry_date, zone),
            connector_id=dock.connector_id, until=effect.expiry_date))

    async def released(self, effect: dr.SendCancelReservation) -> None:
        """A hold cancelled before its expiry: its message goes with it."""
        try:
            if await self.has_display(effect.charge_point_id):
                await self.gateway.commands.send(effect.charge_point_id, cmd.ClearMessage(effect.reservation_id),
                                                 requested_by="car-sharing")
        except Exception:  # a courtesy, as _show
            log.exception("%s: display message %d not cleared", effect.charge_point_id, effect.reservation_id)

    async def on_event(self, event: ev.Event) -> None:
        if not isinstance(event, ev.RentalChanged) or event.state != dr.State.CLOSED.value:
            return
        found = await self.services.store.read(partial(ss.load_rental, rental_id=event.rental_id))
        if found is None:
            return
        rental = found[0]
        if rental.return_dock is None or rental.charged is None:
            return
        dock = rental.return_dock
        await self._show(dock.charge_point_id, cmd.ShowMessage(
            message_id=return_message_id(dock.connector_id), text=returned_text(rental.charged.total.format()),
            connector_id=dock.connector_id, until=self.services.clock.now() + RETURN_SHOWN))
