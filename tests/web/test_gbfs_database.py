"""GBFS from the car-sharing tables: every file validates, and the numbers are the database's
(cars docked per station, free bays, cars' charge), also after a change on the bus."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.sharing.conftest import CAR_ID, SNAPSHOT, City
from tests.sharing.conftest import city as city  # the fixture, re-exported
from voltlib.events import ConnectorStatusChanged
from voltlib.gbfs import feeds
from voltlib.sharing.importer import parse_snapshot
from voltlib.store.tables import connectors, vehicles

from .gbfs_schema import errors


async def _get(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def test_feeds_validate_and_match_the_database(city: City) -> None:
    client, server = city.client, city.server
    manifest = await _get(client, "/gbfs/manifest.json")
    assert errors("manifest", manifest) == []
    assert "paris" in [d["system_id"] for d in manifest["data"]["datasets"]]
    for name in feeds.CITY_FEEDS:
        assert errors(name, await _get(client, f"/gbfs/paris/{name}.json")) == [], name

    api = (await client.get("/api/v1/stations?city=paris", headers=server.api_headers())).json()
    status = {s["station_id"]: s for s in (await _get(client, "/gbfs/paris/station_status.json"))["data"]["stations"]}
    info = {s["station_id"]: s
            for s in (await _get(client, "/gbfs/paris/station_information.json"))["data"]["stations"]}
    rows = api if isinstance(api, list) else api["stations"]
    assert set(status) == {r["id"] for r in rows} == {s.id for s in parse_snapshot(SNAPSHOT).stations}
    for row in rows:
        assert status[row["id"]]["num_vehicles_available"] == row["cars"]
        assert status[row["id"]]["num_docks_available"] == row["free_bays"]
        assert info[row["id"]]["capacity"] == row["bays"]
    assert status["st-a"]["num_vehicles_available"] == 1 and status["st-b"]["num_docks_available"] == 2

    cars = (await _get(client, "/gbfs/paris/vehicle_status.json"))["data"]["vehicles"]
    db_car = await city.vehicle()
    (car,) = cars
    assert car["vehicle_id"] == db_car["id"] and car["station_id"] == "st-a"
    assert car["current_fuel_percent"] == pytest.approx(db_car["soc_percent"] / 100)
    assert car["current_range_meters"] == pytest.approx(db_car["range_km"] * 1000, abs=100)


async def test_a_car_leaving_shows_in_station_status(city: City) -> None:
    client, server = city.client, city.server
    before = await _get(client, "/gbfs/paris/station_status.json")
    await server.store.write(lambda conn: conn.execute(
        vehicles.update().values(status="rented", charge_point_id=None, connector_id=None)))
    await server.gateway.services.bus.publish(ConnectorStatusChanged(
        charge_point_id="st-a-1", at=datetime.now(UTC), connector_id=1, previous="Occupied", status="Available",
        error_code="NoError", vendor_error_code=None, info=None, expected=True))
    after = before
    for _ in range(200):  # rebuilt in the background after the event; poll, never assert a duration
        after = await _get(client, "/gbfs/paris/station_status.json")
        if after != before:
            break
        await asyncio.sleep(0.05)
    a_before = next(s for s in before["data"]["stations"] if s["station_id"] == "st-a")
    a_after = next(s for s in after["data"]["stations"] if s["station_id"] == "st-a")
    assert (a_before["num_vehicles_available"], a_after["num_vehicles_available"]) == (1, 0)
    assert a_after["num_docks_available"] == 2
    assert (await _get(client, "/gbfs/paris/vehicle_status.json"))["data"]["vehicles"] == []


async def _st_b_after_report(client: httpx.AsyncClient, last: Any) -> dict[str, Any]:
    """st-b's station_status once its last_reported moved past ``last`` (the rebuild after a
    status report; polled, never timed)."""
    for _ in range(200):
        st: dict[str, Any] = next(s for s in (await _get(client, "/gbfs/paris/station_status.json"))["data"]["stations"]
                                  if s["station_id"] == "st-b")
        if st["last_reported"] != last:
            return st
        await asyncio.sleep(0.05)
    raise AssertionError("station_status never showed the report")


async def _report_reserved(city: City, cp_id: str, at: datetime) -> None:
    """The charge point's StatusNotification Reserved, as the gateway stores and announces it."""
    await city.server.store.write(lambda conn: conn.execute(connectors.insert().values(
        charge_point_id=cp_id, connector_id=1, status="Reserved", error_code="NoError", status_at=at)))
    await city.server.gateway.services.bus.publish(ConnectorStatusChanged(
        charge_point_id=cp_id, at=at, connector_id=1, previous="Available", status="Reserved",
        error_code="NoError", vendor_error_code=None, info=None, expected=True))


async def test_a_bay_reserved_by_an_operator_is_not_free(city: City) -> None:
    """A bay whose charge point reports Reserved is not free to members; car sharing's own bay
    hold (also Reserved at the post) counts once."""
    client = city.client
    member = await city.sign_up(1)
    assert (await client.post("/api/v1/me/reservation", json={"car_id": CAR_ID},
                              headers=member.headers())).status_code == 201
    hold = await client.post("/api/v1/me/reservation/bay", json={"station_id": "st-b"}, headers=member.headers())
    assert hold.status_code == 201, hold.text
    held_cp = hold.json()["bay_hold"]["dock"][0]
    other_cp = next(cp for cp in ("st-b-1", "st-b-2") if cp != held_cp)
    first = await _st_b_after_report(client, None)
    now = datetime.now(UTC).replace(microsecond=0)
    await _report_reserved(city, held_cp, now + timedelta(minutes=1))
    second = await _st_b_after_report(client, first["last_reported"])
    assert second["num_docks_available"] == 1  # car sharing's hold, counted once
    await _report_reserved(city, other_cp, now + timedelta(minutes=2))  # an operator's reservation
    third = await _st_b_after_report(client, second["last_reported"])
    assert third["num_docks_available"] == 0
