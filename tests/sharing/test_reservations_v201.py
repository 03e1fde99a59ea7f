"""Holds a 2.0.1 station ends by itself (ReservationStatusUpdate, H05): car sharing ends them as it
ends a lapsed 1.6 hold, once, and sends nothing back for a reservation the station dropped; over
real WebSockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest_asyncio

from tests.conformance.conftest import wait_until
from tests.conftest import RunningServer, free_port, start_server
from tests.integration.test_command_port import AnsweringPost, post
from tests.sharing.conftest import CAR_ID, City, advance, seeded_city
from voltlib.config import Settings
from voltlib.sharing.service import SharingService

ORIGIN, FAR_BAY = "st-a-1", "st-c-1"
SENT = itertools.count()


@pytest_asyncio.fixture
async def city201(database_url: str) -> AsyncIterator[City]:
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        ocpp_versions=["1.6", "2.0.1"])
    runner, running = await start_server(settings)
    try:
        async with seeded_city(running) as city:
            yield city
    finally:
        await runner.cleanup()


async def station_says(station: AnsweringPost, reservation_id: int, status: str) -> None:
    message_id = f"rsu-{next(SENT)}"
    await station.ws.send(json.dumps([2, message_id, "ReservationStatusUpdate",
                                      {"reservationId": reservation_id, "reservationUpdateStatus": status}]))
    assert await asyncio.wait_for(station._results.get(), 10) == [3, message_id, {}]


async def settled(server: RunningServer) -> None:
    """The event handled by car sharing, and what it sent to charge points sent."""
    await server.settled()
    sharing = server.gateway.services.authorizer
    assert isinstance(sharing, SharingService)
    await sharing.settle()


async def reserve_now(station: AnsweringPost, count: int = 1) -> dict[str, Any]:
    """The ``count``-th ReserveNow the station got (waiting for it)."""
    async def told() -> bool:
        return sum(action == "ReserveNow" for action, _ in station.received) >= count

    await wait_until(told)
    return [payload for action, payload in station.received if action == "ReserveNow"][count - 1]


def holds(station: AnsweringPost) -> list[str]:
    """The reservation calls the station got (smart charging may send it profiles meanwhile)."""
    return [a for a, _ in station.received if a in ("ReserveNow", "CancelReservation")]


async def rentals(city: City) -> list[dict[str, Any]]:
    return list((await city.client.get("/api/v1/rentals", headers=city.server.api_headers())).json())


async def test_a_removed_car_hold_ends_the_reservation_once_without_a_no_show(city201: City) -> None:
    member = await city201.sign_up(1)
    async with post(city201.server, ORIGIN, "2.0.1") as station:
        held = await city201.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=member.headers())
        assert held.status_code == 201, held.text
        sent = await reserve_now(station)
        assert sent["evseId"] == 1 and sent["id"] == held.json()["car_hold"]["reservation_id"]
        await station_says(station, sent["id"] + 1, "Removed")  # not ours: nothing happens
        await settled(city201.server)
        assert (await city201.rental(member))["state"] == "reserved"
        await station_says(station, sent["id"], "Removed")
        await settled(city201.server)
        await station_says(station, sent["id"], "Removed")  # told twice: ended once
        await settled(city201.server)
        [rental] = await rentals(city201)
        assert rental["state"] == "cancelled" and rental["car_hold"] is None
        assert await city201.rental(member) is None
        again = await city201.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID},
                                          headers=member.headers())  # the car is free again
        assert again.status_code == 201, again.text
        await reserve_now(station, 2)
    assert holds(station) == ["ReserveNow", "ReserveNow"]  # no CancelReservation


async def test_an_expired_car_hold_ends_as_a_lapsed_hold_on_voltlibs_clock(city201: City) -> None:
    member = await city201.sign_up(1)
    async with post(city201.server, ORIGIN, "2.0.1") as station:
        assert (await city201.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID},
                                          headers=member.headers())).status_code == 201
        sent = await reserve_now(station)
        await station_says(station, sent["id"], "Expired")  # the station's clock runs ahead of voltlib's
        await settled(city201.server)
        assert (await city201.rental(member))["state"] == "reserved"  # voltlib's expiry decides
        advance(city201.server, timedelta(minutes=31))
        await station_says(station, sent["id"], "Expired")
        await settled(city201.server)
        await station_says(station, sent["id"], "Expired")
        await settled(city201.server)
        [rental] = await rentals(city201)
    assert rental["state"] == "expired" and rental["car_hold"] is None  # a no-show, as a lapsed 1.6 hold
    assert holds(station) == ["ReserveNow"]


async def test_a_removed_bay_hold_ends_the_bay_hold_and_the_rental_goes_on(city201: City) -> None:
    member = await city201.sign_up(1)
    async with post(city201.server, FAR_BAY, "2.0.1") as bay:
        assert (await city201.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID},
                                          headers=member.headers())).status_code == 201
        held = await city201.client.post("/api/v1/me/reservation/bay", json={"station_id": "st-c"},
                                         headers=member.headers())
        assert held.status_code == 201, held.text
        sent = await reserve_now(bay)
        assert sent["id"] == held.json()["bay_hold"]["reservation_id"] and sent["idToken"]["idToken"] == "CARPA000001"
        await station_says(bay, sent["id"], "Removed")
        await settled(city201.server)
        rental = await city201.rental(member)
        free = (await city201.client.get("/api/v1/stations", params={"near": "48.9,2.4"})).json()
    assert rental["state"] == "reserved" and rental["bay_hold"] is None and rental["car_hold"] is not None
    assert free[0]["id"] == "st-c" and free[0]["free_bays"] == 1
    assert holds(bay) == ["ReserveNow"]  # nothing sent back for the dropped reservation
