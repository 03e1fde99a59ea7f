"""Simulated time end to end: voltlib serving at 200x (Settings.time_scale), a simulated charge point
on the same clock (aligned through GET /api/v1/clock) over a real WebSocket, SQLite and PostgreSQL.
A 30-minute hold lapses after 30 simulated minutes, i.e. seconds of wall time, with no sleeps in the
domain: the rental timers wait on voltlib's clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest_asyncio

from tests.conformance.conftest import wait_until
from tests.conftest import PASSWORD, free_port, start_server
from tests.sharing.conftest import CAR_ID, City, Member, seeded_city
from voltlib.clock import ScaledClock
from voltlib.config import Settings
from voltlib.sim.chargepoint import Car, SimOptions, SimulatedChargePoint

FACTOR = 200.0
ORIGIN_CP = "st-a-1"  # where the tiny city's only car is docked
# sim-time options: ticks every 30 simulated seconds (0.15 s of wall time at 200x)
OPTIONS = SimOptions(connectors=1, heartbeat_interval=300, meter_interval=300, tick=30.0, reconnect_min=10.0,
                     reconnect_max=600.0)
WALL_BOUND = 60.0  # generous: 30 simulated minutes are 9 wall seconds at 200x, real time would be 1,800


@pytest_asyncio.fixture
async def fast_city(database_url: str) -> AsyncIterator[City]:
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        duplicate_probe_timeout=1.0, time_scale=FACTOR)
    runner, server = await start_server(settings)
    try:
        async with seeded_city(server) as city:
            yield city
    finally:
        await runner.cleanup()


async def server_clock(city: City) -> ScaledClock:
    response = await city.client.get("/api/v1/clock")
    assert response.status_code == 200, response.text
    assert response.json()["factor"] == FACTOR
    return ScaledClock.from_description(response.json())


async def docked_charge_point(city: City, clock: ScaledClock) -> SimulatedChargePoint:
    """The car's bay, online with the car plugged in (an empty bay would report the car gone)."""
    sim = SimulatedChargePoint(ORIGIN_CP, city.server.ws_url, password=PASSWORD, options=OPTIONS, clock=clock)
    sim.plug_in(1, Car(soc=80))
    await sim.start()
    assert await sim.wait_accepted(20)
    return sim


async def reserve(city: City, member: Member, sim: SimulatedChargePoint, count: int = 1) -> dict[str, Any]:
    response = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=member.headers())
    assert response.status_code == 201, response.text

    async def told() -> bool:
        return sim.stats["received:ReserveNow"] == count

    await wait_until(told, timeout=20)
    held: dict[str, Any] = response.json()
    return held


async def rental_state(city: City, rental_id: str) -> dict[str, Any]:
    rentals = (await city.client.get("/api/v1/rentals", headers=city.server.api_headers())).json()
    found: dict[str, Any] = next(r for r in rentals if r["rental_id"] == rental_id)
    return found


async def test_a_30_minute_reservation_expires_in_simulated_minutes(fast_city: City) -> None:
    city = fast_city
    clock = await server_clock(city)
    sim = await docked_charge_point(city, clock)
    try:
        member = await city.sign_up(1)
        held = await reserve(city, member, sim)
        reserved_at = datetime.fromisoformat(held["reserved_at"])
        expires_at = datetime.fromisoformat(held["car_hold"]["expires_at"])
        assert expires_at - reserved_at == timedelta(minutes=30)
        seen_expired_at: list[datetime] = []

        async def expired() -> bool:
            rental = await rental_state(city, held["rental_id"])
            if rental["state"] == "expired":
                seen_expired_at.append(clock.now())  # read after the answer: never before the expiry
                return True
            assert rental["state"] == "reserved", rental
            return False

        await wait_until(expired, timeout=WALL_BOUND)
        assert seen_expired_at[0] >= expires_at  # not early
        rental = await rental_state(city, held["rental_id"])
        assert datetime.fromisoformat(rental["ended_at"]) == expires_at  # the timer event carries its deadline
        assert await city.rental(member) is None
        # the charge point, on the same clock, dropped its reservation at expiryDate (OCPP 1.6 ReserveNow),
        # and the car is free for the next member, whose ReserveNow reaches the charge point
        assert sim.connectors[1].reservation is None
        other = await city.sign_up(2)
        again = await reserve(city, other, sim, count=2)
        assert again["car_hold"]["reservation_id"] != held["car_hold"]["reservation_id"]
    finally:
        await sim.stop()


async def test_a_badge_without_taking_the_car_is_released_and_the_charge_point_told(fast_city: City) -> None:
    city = fast_city
    clock = await server_clock(city)
    sim = await docked_charge_point(city, clock)
    try:
        member = await city.sign_up(1)
        held = await reserve(city, member, sim)
        assert await sim.authorize(member.badge) == "Accepted"  # badged at the car, which stays in its bay
        badged = await rental_state(city, held["rental_id"])
        assert badged["state"] == "badged"
        badged_at = datetime.fromisoformat(badged["badged_at"])

        async def released() -> bool:
            rental = await rental_state(city, held["rental_id"])
            assert rental["state"] in ("badged", "released"), rental
            return rental["state"] == "released" and sim.stats["received:CancelReservation"] == 1

        await wait_until(released, timeout=WALL_BOUND)
        assert clock.now() >= badged_at + timedelta(minutes=5)
        rental = await rental_state(city, held["rental_id"])
        assert datetime.fromisoformat(rental["ended_at"]) == badged_at + timedelta(minutes=5)
        assert await city.rental(member) is None
        assert (await city.vehicle())["status"] == "docked"  # the car never left
    finally:
        await sim.stop()
