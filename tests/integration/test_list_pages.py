"""The lists the issue 20 audit found unpaged, paged like the others (docs/operations.md, "Lists and
pages"): a 2.0.1 station's events, the rebalancing tasks and the stations (by id and nearest first),
each read one row a page through the Link headers of a running server on SQLite and PostgreSQL,
every row exactly once, in the list's order; a page never larger than 1,000."""

from __future__ import annotations

import httpx
import pytest
from ocpp.v201 import call

from tests.conformance.conftest import now_iso
from tests.conformance_v201.conftest import connect
from tests.conftest import RunningServer
from tests.integration.test_monitoring_v201 import event
from tests.integration.test_transactions_api import all_pages
from tests.sharing.conftest import CAR_ID, seeded_city

CS = "CS-PAGES-201"


@pytest.mark.parametrize("ocpp_version", ["2.0.1"], indirect=True)
async def test_station_events_page_one_row_at_a_time(server: RunningServer) -> None:
    await server.add_charge_point(CS)
    await server.add_charge_point("CS-PAGES-OTHER")
    async with connect(server, CS) as cs:
        await cs.booted()
        for part in range(3):  # three NotifyEvent messages, two events each
            await cs.send(call.NotifyEvent(generated_at=now_iso(), seq_no=0, event_data=[
                event(10 * part + 1, "EVSE", "AvailabilityState", "Available"),
                event(10 * part + 2, "Connector", "AvailabilityState", "Occupied")]))
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        url = f"/api/v1/charge-points/{CS}/events"
        whole = (await api.get(url)).json()
        assert len(whole) == 6 and [e["id"] for e in whole] == sorted((e["id"] for e in whole), reverse=True)
        rows, pages = await all_pages(api, f"{url}?limit=1")
        assert pages == 6 and rows == whole  # each once, newest first
        first = await api.get(url, params={"limit": 4})
        assert len(first.json()) == 4 and "next" in first.links
        rest = await api.get(first.links["next"]["url"])
        assert rest.json() == whole[4:] and "next" not in rest.links
        assert (await api.get(url, params={"limit": 5000})).json() == whole  # read as 1,000
        assert (await api.get(url, params={"limit": 0})).status_code == 400
        bad = await api.get(url, params={"cursor": "not-a-cursor"})
        assert bad.status_code == 400 and bad.json()["parameter"] == "cursor"
        assert bad.headers["Content-Type"].startswith("application/problem+json")
        assert (await api.get("/api/v1/charge-points/CS-PAGES-OTHER/events")).json() == []  # per station


async def test_rebalancing_tasks_page_one_row_at_a_time(server: RunningServer) -> None:
    async with seeded_city(server), httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        made = []
        for _ in range(3):  # one live task per car: each cancelled before the next
            created = await api.post("/api/v1/rebalancing/tasks", json={
                "car_id": CAR_ID, "from_station": "st-a", "to_station": "st-b"})
            assert created.status_code == 201, created.text
            made.append(created.json()["id"])
            if len(made) < 3:
                cancelled = await api.post(f"/api/v1/rebalancing/tasks/{made[-1]}/transition",
                                           json={"action": "cancel"})
                assert cancelled.status_code == 200
        rows, pages = await all_pages(api, "/api/v1/rebalancing/tasks?city=paris&limit=1")
        assert pages == 3 and [t["id"] for t in rows] == made[::-1]  # each once, newest first
        cancelled_only, pages = await all_pages(api, "/api/v1/rebalancing/tasks?state=cancelled&limit=1")
        assert pages == 2 and [t["id"] for t in cancelled_only] == made[1::-1]  # the filters follow the Link
        assert (await api.get("/api/v1/rebalancing/tasks", params={"city": "lyon"})).json() == []
        assert (await api.get("/api/v1/rebalancing/tasks", params={"limit": 0})).status_code == 400
        assert (await api.get("/api/v1/rebalancing/tasks", params={"cursor": "x"})).status_code == 400


async def test_stations_page_by_id_and_nearest_first(server: RunningServer) -> None:
    async with seeded_city(server), httpx.AsyncClient(base_url=server.url) as api:  # public, like GBFS
        rows, pages = await all_pages(api, "/api/v1/stations?city=paris&limit=1")
        assert pages == 3 and [s["id"] for s in rows] == ["st-a", "st-b", "st-c"]
        near_b = "48.8700,2.3550"
        nearest, pages = await all_pages(api, f"/api/v1/stations?near={near_b}&limit=1")
        assert pages == 3 and [s["id"] for s in nearest] == ["st-b", "st-a", "st-c"]
        assert nearest[0]["distance_m"] == 0 < nearest[1]["distance_m"] < nearest[2]["distance_m"]
        first = await api.get("/api/v1/stations", params={"limit": 1})
        other = await api.get("/api/v1/stations", params={"near": near_b, "cursor": first.links["next"]["url"]
                                                          .split("cursor=")[1]})
        assert other.status_code == 400 and other.json()["parameter"] == "cursor"  # not this order's cursor
        assert [s["id"] for s in (await api.get("/api/v1/stations", params={"limit": 5000})).json()] == [
            "st-a", "st-b", "st-c"]
        with_cars = (await api.get("/api/v1/stations", params={"with": "cars"})).json()
        assert [s["id"] for s in with_cars] == ["st-a"]
