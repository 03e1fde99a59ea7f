"""A car returned into a bay that another member holds: the car stays, the return is billed, and
the other member's hold moves to a free bay of that station, or ends early when there is none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from tests.conformance.conftest import connect, wait_until
from tests.sharing.conftest import CAR_TAG, City, Member
from voltlib.sharing import service
from voltlib.store.tables import id_tags, vehicles


def _second_car(conn: Any, member_id: str, dock: str) -> None:
    now = datetime.now(UTC)
    conn.execute(vehicles.insert().values(
        id="car-2", city="paris", plate="PA-002", vin="VF9BLUECAR0000002", model="Bluecar", battery_kwh=30.0,
        id_tag="CAR2", status="docked", charge_point_id=dock, connector_id=1, soc_percent=90.0,
        soc_source="import", soc_at=now))
    conn.execute(id_tags.insert().values(id_tag="CAR2", status="Accepted", created_at=now))
    service.reserve_car_op(conn, member_id, "car-2", None, now)


async def _rent_the_first_car(city: City, member: Member) -> None:
    async with connect(city.server, "st-a-1") as a:
        await a.boot()
        await a.status(1, "Charging")
        charging = await a.start_tx(1, CAR_TAG)
        assert (await a.authorize(member.badge))["status"] == "Accepted"
        await a.stop_tx(charging.transaction_id, 1200, reason="EVDisconnected")
        await a.status(1, "Available")
        await city.wait_for_state(member, "started")


@pytest.mark.parametrize(("second_car_at", "outcome"), [("st-c-1", "moved"), ("st-b-2", "lost")])
async def test_a_car_returned_into_someone_elses_bay(city: City, second_car_at: str, outcome: str) -> None:
    driver, waiting = await city.sign_up(1), await city.sign_up(2)
    await city.server.store.write(partial(_second_car, member_id=waiting.id, dock=second_car_at))
    held = await city.client.post("/api/v1/me/reservation/bay", json={"station_id": "st-b"},
                                  headers=waiting.headers())
    assert held.status_code == 201, held.text
    assert held.json()["bay_hold"]["dock"] == ["st-b-1", 1]
    await _rent_the_first_car(city, driver)

    async with connect(city.server, "st-b-1") as b1, connect(city.server, "st-b-2") as b2:
        await b1.boot()
        await b2.boot()
        back = (datetime.now(UTC) + timedelta(minutes=25)).isoformat()
        returned = await b1.start_tx(1, CAR_TAG, timestamp=back)  # into the bay held for `waiting`
        assert returned.id_tag_info["status"] == "Accepted"
        await city.wait_for_state(driver, None)

        async def hold_changed() -> bool:
            rental = await city.rental(waiting)
            return rental["bay_hold"] is None or rental["bay_hold"]["dock"] != ["st-b-1", 1]

        await wait_until(hold_changed)
        rental = await city.rental(waiting)
        assert rental["state"] == "reserved"  # their car reservation is untouched
        if outcome == "moved":
            assert rental["bay_hold"]["dock"] == ["st-b-2", 1]

            async def told() -> bool:
                return bool(b2.got("ReserveNow")) and bool(b1.got("CancelReservation"))

            await wait_until(told)
            assert b2.got("ReserveNow")[0]["reservation_id"] == rental["bay_hold"]["reservation_id"]
        else:
            assert rental["bay_hold"] is None
    history = (await city.client.get("/api/v1/me/rentals", headers=driver.headers())).json()
    assert [(r["state"], r["return_dock"]) for r in history] == [("closed", ["st-b-1", 1])]
