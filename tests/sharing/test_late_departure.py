"""A departure reported late, end to end over real OCPP on SQLite and PostgreSQL (issue 3).

A member badges at the car's charge point; the release timer fires (driven here with
``service.timers_op`` at a later time, as the release tests do) before the charge point's
StopTransaction and StatusNotification Available arrive. Their own timestamp decides: inside the
badge window the released rental starts from it, with no security alert; after it, the alert is
raised as before."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest

from tests.conformance.conftest import Station, connect, wait_until
from tests.conftest import RunningServer
from tests.sharing.conftest import CAR_ID, CAR_TAG, City, Member, catch_up
from voltlib.security import records
from voltlib.sharing import service
from voltlib.store import repo

ORIGIN, DESTINATION = "st-a-1", "st-b-1"


async def badged_then_released(city: City, member: Member, a: Station) -> tuple[datetime, int]:
    """The car charging at its bay, the member's badge accepted there, and the release timer fired
    6 minutes later with the car still docked as far as voltlib knows. Returns the badge time and the
    car's charging transaction."""
    await a.boot()
    await a.status(1, "Charging")
    charging = await a.start_tx(1, CAR_TAG)
    assert (await a.authorize(member.badge))["status"] == "Accepted"
    rental = await city.rental(member)
    assert rental["state"] == "badged"
    badged_at = datetime.fromisoformat(rental["badged_at"])
    await city.server.store.write(partial(service.timers_op, now=badged_at + timedelta(minutes=6)))
    assert await city.rental(member) is None
    assert (await city.vehicle())["status"] == "docked"
    return badged_at, charging.transaction_id


async def car_leaves(a: Station, transaction_id: int, left: datetime) -> None:
    """What a charge point that buffered its messages sends on reconnection, with its own times."""
    await a.stop_tx(transaction_id, 1200, reason="EVDisconnected", timestamp=left.isoformat())
    await a.status(1, "Available", timestamp=left.isoformat())


async def quiet(server: RunningServer) -> None:
    """Every bus event handled and every car-sharing effect carried out (alerts included)."""
    sharing = server.gateway.services.authorizer
    assert isinstance(sharing, service.SharingService)
    bus: Any = server.gateway.services.bus
    for _ in range(2):  # an effect publishes on the bus (CarLeftWithoutRental), whose detector records
        await bus.drain()
        await sharing.settle()


async def alerts(server: RunningServer) -> tuple[list[str], list[str]]:
    """The car-sharing security events about the car, and the security alerts at its charge point."""
    events = await server.store.read(repo.list_security_events)
    found = await server.store.read(partial(records.list_alerts, cp_id=ORIGIN))
    return ([e["kind"] for e in events if (e["detail"] or {}).get("car_id") == CAR_ID],
            [x["kind"] for x in found])


async def history(city: City, member: Member) -> list[dict[str, Any]]:
    response = await city.client.get("/api/v1/me/rentals", headers=member.headers())
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def test_a_late_departure_inside_the_badge_window_starts_the_rental_then(city: City) -> None:
    member = await city.sign_up(1)
    server = city.server
    async with connect(server, ORIGIN) as a, connect(server, DESTINATION) as b:
        await b.boot()
        await b.status(1, "Available")
        badged_at, charging = await badged_then_released(city, member, a)
        assert [r["state"] for r in await history(city, member)] == ["released"]
        left = (badged_at + timedelta(minutes=3)).replace(microsecond=0)
        catch_up(server, left)
        await car_leaves(a, charging, left)

        await city.wait_for_state(member, "started")
        await quiet(server)
        rental = await city.rental(member)
        assert datetime.fromisoformat(rental["started_at"]) == left and rental["ended_at"] is None
        assert (await city.vehicle())["status"] == "rented"
        assert await alerts(server) == ([], [])  # no unauthorised departure, no car_left_without_rental

        back = left + timedelta(minutes=25)
        catch_up(server, back)
        await b.start_tx(1, CAR_TAG, timestamp=back.isoformat())
        await city.wait_for_state(member, None)
    [closed] = await history(city, member)
    assert closed["state"] == "closed"
    assert closed["charged"]["billed_minutes"] == 25  # priced from the charge point's departure time
    assert closed["charged"]["total"] == "5.00"


async def test_a_late_departure_after_the_badge_window_is_still_unauthorised(city: City) -> None:
    member = await city.sign_up(2)
    server = city.server
    async with connect(server, ORIGIN) as a:
        badged_at, charging = await badged_then_released(city, member, a)
        left = (badged_at + timedelta(minutes=7)).replace(microsecond=0)
        catch_up(server, left)
        await car_leaves(a, charging, left)

        async def alerted() -> bool:
            return await alerts(server) == (["unauthorised_departure"], ["car_left_without_rental"])

        await wait_until(alerted)
    assert (await city.vehicle())["status"] == "missing"
    assert [r["state"] for r in await history(city, member)] == ["released"]
    assert await city.rental(member) is None


@pytest.mark.parametrize("who", ["another member", "the same member"])
async def test_a_reservation_taken_since_gives_way_to_the_late_departure(city: City, who: str) -> None:
    """Member 3 badged and left with the car; after the release, before the departure was reported,
    the car was reserved again (by member 4, or by member 3 whose app showed the rental released). The
    car is gone with member 3's first rental: the new hold ends (preempted) and the charge point is
    told to drop its reservation."""
    first = await city.sign_up(3)
    second = await city.sign_up(4) if who == "another member" else first
    server = city.server
    async with connect(server, ORIGIN) as a:
        badged_at, charging = await badged_then_released(city, first, a)
        response = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID},
                                          headers=second.headers())
        assert response.status_code == 201, response.text
        reservation, reservation_id = response.json()["rental_id"], response.json()["car_hold"]["reservation_id"]

        async def reserved_at_the_charge_point() -> bool:
            return len(a.got("ReserveNow")) == 1

        await wait_until(reserved_at_the_charge_point)
        left = (badged_at + timedelta(minutes=4)).replace(microsecond=0)
        catch_up(server, left)
        await car_leaves(a, charging, left)

        await city.wait_for_state(first, "started")

        async def cancelled_at_the_charge_point() -> bool:
            return [c["reservation_id"] for c in a.got("CancelReservation")] == [reservation_id]

        await wait_until(cancelled_at_the_charge_point)
        await quiet(server)
    started = await city.rental(first)
    assert datetime.fromisoformat(started["started_at"]) == left
    assert {r["rental_id"]: r["state"] for r in await history(city, second)}[reservation] == "preempted"
    assert await alerts(server) == ([], [])
    assert (await city.vehicle())["status"] == "rented"
