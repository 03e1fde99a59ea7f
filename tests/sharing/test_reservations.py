"""Reservations through the real API: one winner under concurrency (the database decides), the
charge point told with ReserveNow / CancelReservation, bays at the destination, clear refusals."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from tests.conformance.conftest import connect, wait_until
from tests.conftest import BOTH_VERSIONS
from tests.sharing.conftest import CAR_ID, CAR_TAG, City, set_soc
from voltlib.sharing import service

ORIGIN = "st-a-1"
pytestmark = pytest.mark.parametrize("ocpp_version", BOTH_VERSIONS, indirect=True)


async def test_hundred_concurrent_reservations_of_one_car_have_one_winner(city: City) -> None:
    members = [await city.sign_up(100 + i) for i in range(100)]
    responses = await asyncio.gather(*(
        city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=m.headers()) for m in members))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == 99, statuses
    refusals = {r.json()["title"] for r in responses if r.status_code == 409}
    assert refusals <= {"car_already_held", "already_taken"}
    for r in responses:
        if r.status_code == 409:
            assert r.headers["Content-Type"].startswith("application/problem+json")
    rentals = (await city.client.get("/api/v1/rentals", headers=city.server.api_headers())).json()
    assert len(rentals) == 1 and rentals[0]["state"] == "reserved"


async def test_reservation_is_sent_to_the_charge_point_and_cancelled(city: City) -> None:
    member = await city.sign_up(1)
    async with connect(city.server, ORIGIN) as a:
        await a.boot()
        await a.status(1, "Charging")
        response = await city.client.post("/api/v1/me/reservation", json={"station_id": "st-a"},
                                          headers=member.headers())
        assert response.status_code == 201, response.text
        held = response.json()
        assert held["car_hold"]["dock"] == [ORIGIN, 1]

        async def told() -> bool:
            return len(a.got("ReserveNow")) == 1

        await wait_until(told)
        reserve = a.got("ReserveNow")[0]
        if city.server.station_version == "2.0.1":  # ReserveNow's 2.0.1 words (snake_case here)
            reserve = {"reservation_id": reserve["id"], "id_tag": reserve["id_token"]["id_token"],
                       "connector_id": reserve["evse_id"]}
        assert reserve["reservation_id"] == held["car_hold"]["reservation_id"]
        assert reserve["id_tag"] == member.badge and reserve["connector_id"] == 1
        again = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=member.headers())
        assert again.status_code == 409 and again.json()["title"] == "member_has_active_reservation"
        cancelled = await city.client.delete("/api/v1/me/reservation", headers=member.headers())
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"

        async def released() -> bool:
            return len(a.got("CancelReservation")) == 1

        await wait_until(released)
        assert a.got("CancelReservation")[0]["reservation_id"] == reserve["reservation_id"]
    assert await city.rental(member) is None


async def test_reserved_car_is_badged_by_its_member_only(city: City) -> None:
    owner, other = await city.sign_up(1), await city.sign_up(2)
    response = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=owner.headers())
    assert response.status_code == 201
    async with connect(city.server, ORIGIN) as a:
        await a.boot()
        await a.status(1, "Charging")
        assert (await a.authorize(other.badge))["status"] == "Invalid"
        assert (await a.authorize(owner.badge))["status"] == "Accepted"
    assert (await city.rental(owner))["state"] == "badged"


async def test_reservation_expires_as_a_no_show(city: City) -> None:
    member = await city.sign_up(1)
    assert (await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID},
                                   headers=member.headers())).status_code == 201
    await city.server.store.write(partial(service.timers_op, now=datetime.now(UTC) + timedelta(minutes=31)))
    assert await city.rental(member) is None
    other = await city.sign_up(2)  # the car is free again
    assert (await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID},
                                   headers=other.headers())).status_code == 201


async def test_bay_reservation_and_full_station_suggestion(city: City) -> None:
    first, second, third = await city.sign_up(1), await city.sign_up(2), await city.sign_up(3)
    no_car = await city.client.post("/api/v1/me/reservation/bay", json={"station_id": "st-b"},
                                    headers=first.headers())
    assert no_car.status_code == 409 and no_car.json()["title"] == "no_active_rental"
    assert (await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID},
                                   headers=first.headers())).status_code == 201
    bay = await city.client.post("/api/v1/me/reservation/bay", json={"station_id": "st-c"}, headers=first.headers())
    assert bay.status_code == 201, bay.text
    assert bay.json()["bay_hold"]["dock"] == ["st-c-1", 1]
    # st-c has one bay and it is held now: the next member is pointed to the nearest station with space
    await city.server.store.write(partial(_give_car, second=second.id))
    full = await city.client.post("/api/v1/me/reservation/bay", json={"station_id": "st-c"},
                                  headers=second.headers())
    assert full.status_code == 409, full.text
    assert full.json()["title"] == "station_full"
    assert full.json()["suggestion"]["station_id"] in {"st-a", "st-b"}
    stations = (await city.client.get("/api/v1/stations", params={"near": "48.9,2.4"})).json()
    assert stations[0]["id"] == "st-c" and stations[0]["free_bays"] == 0
    assert third.id


def _give_car(conn: object, second: str) -> None:
    """A second car for the second member, docked at st-b, reserved by them (through the domain)."""
    from voltlib.sharing import store as ss
    from voltlib.store.tables import id_tags, vehicles

    now = datetime.now(UTC)
    conn.execute(vehicles.insert().values(  # type: ignore[attr-defined]
        id="car-2", city="paris", plate="PA-002", vin="VF9BLUECAR0000002", model="Bluecar", battery_kwh=30.0,
        id_tag="CAR2", status="docked", charge_point_id="st-b-1", connector_id=1, soc_percent=90.0,
        soc_source="import", soc_at=now))
    conn.execute(id_tags.insert().values(id_tag="CAR2", status="Accepted", created_at=now))  # type: ignore[attr-defined]
    service.reserve_car_op(conn, second, "car-2", None, now)  # type: ignore[arg-type]
    assert ss.live_rental_of_member(conn, second) is not None  # type: ignore[arg-type]


async def test_bad_requests_get_problem_details(city: City) -> None:
    member = await city.sign_up(1)
    for body in ({}, {"car_id": CAR_ID, "station_id": "st-a"}):
        response = await city.client.post("/api/v1/me/reservation", json=body, headers=member.headers())
        assert response.status_code == 422 and response.json()["title"] == "invalid-body"
    unknown = await city.client.post("/api/v1/me/reservation", json={"car_id": "nope"}, headers=member.headers())
    assert unknown.status_code == 404 and unknown.json()["title"] == "no_car"
    await set_soc(city.server, CAR_ID, 3.0)
    low = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=member.headers())
    assert low.status_code == 409 and low.json()["title"] == "low_range" and low.json()["min_range_km"] == 20
    unpaid = await city.sign_up(2, plan=None)
    response = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=unpaid.headers())
    assert response.status_code == 403 and response.json()["title"] == "no_subscription"
    operator_only = await city.client.get("/api/v1/members", headers=member.headers())
    assert operator_only.status_code == 403
    as_operator = await city.client.get("/api/v1/me", headers=city.server.api_headers())
    assert as_operator.status_code == 403
    assert CAR_TAG


async def test_a_reservation_for_a_trip_needs_the_range_for_it_with_margin(city: City) -> None:
    member = await city.sign_up(1)
    range_km = (await city.vehicle())["range_km"]
    too_far = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID, "trip_km": range_km},
                                     headers=member.headers())
    assert too_far.status_code == 409 and too_far.json()["title"] == "low_range"
    assert too_far.json()["needed_km"] == pytest.approx(range_km * 1.25, abs=0.1)
    bad = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID, "trip_km": -3},
                                 headers=member.headers())
    assert bad.status_code == 422
    fits = await city.client.post("/api/v1/me/reservation", json={"station_id": "st-a", "trip_km": range_km / 1.3},
                                  headers=member.headers())
    assert fits.status_code == 201, fits.text
