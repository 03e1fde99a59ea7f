"""Rebalancing through the real HTTP API, on SQLite and PostgreSQL: the forecast, recommended moves,
field tasks and their lifecycle (409 outside the table), operator roles, and the audit trail.

The city: two central stations (one full, one with a single car), one 5 km out with no car, and
one further out where few people are (its cars outlast its own pickups), 08:00 in Paris on
voltlib's clock, 60 rentals a day. A station short of cars counts on half its forecast returns
(docs/car-sharing.md "Moves"): the edge station is short at once, the one-car central station an
hour later; the far station gives the edge a car."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import pytest_asyncio

from tests.conftest import PASSWORD, RunningServer, free_port, start_server
from tests.sharing.conftest import HEADER
from voltlib.config import Settings
from voltlib.security.credentials import hash_api_token, hash_password
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import parse_snapshot
from voltlib.sharing.store import import_snapshot, upsert_city
from voltlib.store import repo


def _row(station: str, cars: int, free: int, where: str) -> str:
    return (f"1 rue {station};{cars};{cars};0;0;0;operational;Paris;;{station};STATION;{where};75001;Paris/{station};"
            f"operational;;{free};station;ok;x")


SNAPSHOT = "\n".join([HEADER, _row("st-full", 4, 0, "48.8600, 2.3500"), _row("st-mid", 1, 3, "48.8620, 2.3530"),
                      _row("st-edge", 0, 3, "48.8950, 2.3800"), _row("st-far", 2, 0, "48.9300, 2.4200")]) + "\n"
MORNING = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # 08:00 in Paris
QUERY = {"city": "paris", "hours": "3", "rentals_per_day": "60"}
BASE = "/api/v1/rebalancing"


@pytest_asyncio.fixture
async def api(database_url: str) -> AsyncIterator[tuple[RunningServer, httpx.AsyncClient]]:
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        duplicate_probe_timeout=1.0, time_origin=MORNING)
    runner, server = await start_server(settings)
    parsed = parse_snapshot(SNAPSHOT, car_prefix="PA")

    def seed(conn: Any) -> None:
        upsert_city(conn, builtin_cities()["paris"])
        import_snapshot(conn, "paris", parsed, security_profile=1, password_hash=hash_password(PASSWORD),
                        soc_percent=80.0, now=MORNING)

    await server.store.write(seed)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=server.api_headers()) as client:
            yield server, client
    finally:
        await runner.cleanup()


async def token(server: RunningServer, role: str) -> dict[str, str]:
    value = "vlt_" + uuid.uuid4().hex
    await server.store.write(partial(repo.add_api_token, name=f"rb-{role}", role=role,
                                     token_hash=hash_api_token(value), now=datetime.now(UTC)))
    return {"Authorization": f"Bearer {value}"}


def problem(response: httpx.Response, status: int, title: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == title


async def test_forecast_shows_shortages_per_station_and_hour(api: tuple[RunningServer, httpx.AsyncClient]) -> None:
    _, client = api
    response = await client.get(f"{BASE}/forecast", params=QUERY)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["start"] == "2026-12-07T08:00:00+01:00" and report["rentals_per_day"] == 60
    stations = {s["station_id"]: s for s in report["stations"]}
    assert stations["st-edge"]["no_car"]["first_hour"] == 0 and stations["st-edge"]["no_bay"] is None
    assert stations["st-mid"]["no_car"]["first_hour"] == 1 and stations["st-mid"]["no_bay"] is None
    assert stations["st-full"]["no_car"] is None and stations["st-full"]["no_bay"] is None
    assert stations["st-far"]["no_car"] is None  # few people out there: its 2 cars outlast the horizon
    assert report["summary"] == {"stations": 4, "no_car": 2, "no_bay": 0}
    for s in report["stations"]:
        assert len(s["hours"]) == 3
        for h in s["hours"]:  # rentable cars and free bays share the station's usable bays
            assert abs(h["cars"] + h["free_bays"] - (s["cars"] + s["free_bays"])) < 0.02
    edge = stations["st-edge"]
    assert edge["no_car"]["expected"] >= 0.5 and edge["hours"][0]["missed_pickups"] > 0
    assert edge["hours"][0]["at"] == "2026-12-07T08:00:00+01:00"
    short = (await client.get(f"{BASE}/forecast", params={**QUERY, "short": "true"})).json()
    assert {s["station_id"] for s in short["stations"]} == {"st-edge", "st-mid"}
    # the default demand scales with the fleet: 7 cars x 4 rentals a day, fewer shortages
    default = (await client.get(f"{BASE}/forecast", params={"city": "paris", "hours": "3"})).json()
    assert default["rentals_per_day"] == 28 and default["summary"] == {"stations": 4, "no_car": 1, "no_bay": 0}


async def test_bad_queries_and_roles(api: tuple[RunningServer, httpx.AsyncClient]) -> None:
    server, client = api
    problem(await client.get(f"{BASE}/forecast", params={"hours": "0"}), 422, "invalid-hours")
    problem(await client.get(f"{BASE}/forecast", params={"hours": "x"}), 422, "invalid-query")
    problem(await client.get(f"{BASE}/forecast", params={"city": "atlantis"}), 404, "unknown-city")
    problem(await client.get(f"{BASE}/moves", params={"max": "-1"}), 422, "invalid-max")
    problem(await client.get(f"{BASE}/tasks", params={"state": "lost"}), 422, "invalid-state")
    problem(await client.get(f"{BASE}/tasks/99"), 404, "unknown-task")
    problem(await client.post(f"{BASE}/tasks/99/transition", json={"action": "assign", "assignee": "x"}), 404,
            "unknown-task")
    operator = await token(server, "operator")
    assert (await client.get(f"{BASE}/moves", headers=operator)).status_code == 200
    for role in ("security", "technician"):
        headers = await token(server, role)
        problem(await client.get(f"{BASE}/forecast", headers=headers), 403, "forbidden")
        problem(await client.post(f"{BASE}/tasks", headers=headers, json={}), 403, "forbidden")
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        problem(await anonymous.get(f"{BASE}/tasks"), 401, "unauthenticated")
    spec = (await client.get("/api/v1/openapi.json")).json()
    assert "NewTask" in spec["components"]["schemas"]
    assert spec["paths"][f"{BASE}/tasks/{{task_id}}/transition"]["post"]["description"] == "Roles: admin, operator"


async def test_moves_become_tasks_with_a_lifecycle(api: tuple[RunningServer, httpx.AsyncClient]) -> None:
    _, client = api
    response = await client.get(f"{BASE}/moves", params=QUERY)
    assert response.status_code == 200, response.text
    moves = response.json()["moves"]
    # the central stations' cars are not spare (their own pickups, should nothing come back): the
    # edge's car comes from the far station, where few people are; nothing is left for st-mid
    assert [(m["car_id"], m["from_station"], m["to_station"], m["reason"]) for m in moves] == [
        ("car-pa-00006", "st-far", "st-edge", "no_car")]
    assert all(m["car_range_km"] >= 20 + m["distance_km"] and m["distance_km"] < 8 for m in moves)

    created = await client.post(f"{BASE}/tasks", json={**moves[0], "city": "paris", "note": "before 9"})
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["state"] == "proposed" and task["assignee"] is None and task["reason"] == "no_car"
    assert task["history"][0]["action"] == "propose" and task["history"][0]["by"].startswith("test-")
    problem(await client.post(f"{BASE}/tasks", json=moves[0]), 409, "car-has-task")
    other = {**moves[0], "car_id": "car-pa-00007"}  # the far station's other car, no task yet
    problem(await client.post(f"{BASE}/tasks", json={**other, "from_station": "st-mid"}), 409, "car-not-there")
    problem(await client.post(f"{BASE}/tasks", json={**other, "to_station": "st-nowhere"}), 422,
            "unknown-station")
    problem(await client.post(f"{BASE}/tasks", json={**other, "to_station": "st-far"}), 422, "invalid-task")

    # the live task counts as done: its car is not offered again, and the edge needs no other car
    again = (await client.get(f"{BASE}/moves", params=QUERY)).json()
    assert again["live_tasks"] == 1 and again["moves"] == []

    url = f"{BASE}/tasks/{task['id']}/transition"
    refused = await client.post(url, json={"action": "complete"})
    problem(refused, 409, "invalid-transition")
    assert refused.json()["state"] == "proposed" and refused.json()["action"] == "complete"
    problem(await client.post(url, json={"action": "assign"}), 422, "invalid-task")
    problem(await client.post(url, json={"action": "teleport"}), 422, "invalid-body")
    for change, state in [({"action": "assign", "assignee": "agent-7"}, "assigned"), ({"action": "start"},
                          "in_progress"), ({"action": "complete", "note": "bay 2"}, "done")]:
        response = await client.post(url, json=change)
        assert response.status_code == 200, response.text
        assert response.json()["state"] == state
    problem(await client.post(url, json={"action": "cancel"}), 409, "invalid-transition")

    done = (await client.get(f"{BASE}/tasks/{task['id']}")).json()
    assert [h["action"] for h in done["history"]] == ["propose", "assign", "start", "complete"]
    assert done["assignee"] == "agent-7" and done["history"][-1]["note"] == "bay 2"
    assert all(h["at"].startswith("2026-12-07T07:0") for h in done["history"])  # voltlib's clock, not the wall's
    listed = (await client.get(f"{BASE}/tasks", params={"state": "done", "city": "paris"})).json()
    assert [t["id"] for t in listed] == [task["id"]]
    # done: the car may get a new task
    assert (await client.post(f"{BASE}/tasks", json=moves[0])).status_code == 201

    audit = (await client.get("/api/v1/security/audit", params={"limit": "50"})).json()
    actions = [e["action"] for e in audit if e["target"] == str(task["id"]) and e["action"].startswith("rebal")]
    assert actions == ["rebalancing.task.complete", "rebalancing.task.start", "rebalancing.task.assign",
                       "rebalancing.task.create"]
