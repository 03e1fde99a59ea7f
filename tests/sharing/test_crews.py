"""Field crews at the charge point (issue 19), on SQLite and PostgreSQL, with real OCPP messages: a
crew badge takes the car of the task assigned to it, the car's departure and arrival are authorised
work in the audit log (no rental, no bill, no alert), and a crew badge opens no other car."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import func, select

from tests.conformance.conftest import connect, wait_until
from tests.sharing.conftest import CAR_ID, CAR_TAG, City
from voltlib.security import records
from voltlib.security.audit import list_entries
from voltlib.store import repo
from voltlib.store.tables import invoices, rentals

ORIGIN, DESTINATION = "st-a-1", "st-b-1"
TASKS = "/api/v1/rebalancing/tasks"


async def _seed_badges(city: City) -> None:
    def op(conn: Any) -> None:
        now = datetime.now(UTC)
        for badge in ("CREW0001", "CREW0002"):
            repo.upsert_id_tag(conn, badge, status="Accepted", expiry_date=None, parent_id_tag="CREW", now=now)
        repo.upsert_id_tag(conn, "STAFF0001", status="Accepted", expiry_date=None, parent_id_tag=None, now=now)

    await city.server.store.write(op)


async def _task(city: City) -> str:
    response = await city.client.post(TASKS, headers=city.server.api_headers(), json={
        "car_id": CAR_ID, "from_station": "st-a", "to_station": "st-b", "reason": "no_car"})
    assert response.status_code == 201, response.text
    return f"{TASKS}/{response.json()['id']}/transition"


async def _settled(city: City) -> None:
    await city.server.gateway.services.authorizer.settle()  # type: ignore[union-attr]


async def test_a_crew_moves_its_tasks_car_as_authorised_work(city: City) -> None:
    server, headers = city.server, city.server.api_headers()
    await _seed_badges(city)
    url = await _task(city)
    refused = await city.client.post(url, headers=headers, json={
        "action": "assign", "assignee": "crew-1", "badge": "STAFF0001"})  # not of the CREW group
    assert refused.status_code == 422 and "crew badge" in refused.json()["detail"]
    async with connect(server, ORIGIN) as a, connect(server, DESTINATION) as b:
        await a.boot()
        await a.status(1, "Charging")
        charging = await a.start_tx(1, CAR_TAG)
        await b.boot()
        await b.status(1, "Available")
        assert (await a.authorize("CREW0001"))["status"] == "Invalid"  # not assigned yet
        assigned = await city.client.post(url, headers=headers, json={
            "action": "assign", "assignee": "crew-1", "badge": "CREW0001"})
        assert assigned.status_code == 200, assigned.text
        assert assigned.json()["history"][-1]["badge"] == "CREW0001"
        assert (await b.authorize("CREW0001"))["status"] == "Invalid"  # no car of its task there
        assert (await a.authorize("CREW0002"))["status"] == "Invalid"  # another crew's badge
        assert (await a.authorize("CREW0001"))["status"] == "Accepted"

        await a.stop_tx(charging.transaction_id, 1200, reason="EVDisconnected")
        await a.status(1, "Available")  # the crew drives the car off

        async def relocating() -> bool:
            return (await city.vehicle())["status"] == "relocating"

        await wait_until(relocating)
        assert (await city.client.post(url, headers=headers, json={"action": "start"})).status_code == 200
        await b.status(1, "Preparing")
        await b.start_tx(1, CAR_TAG)  # plugged in at the receiving bay with the car's own tag

        async def docked() -> bool:
            car = await city.vehicle()
            return (car["status"], car["charge_point_id"]) == ("docked", DESTINATION)

        await wait_until(docked)
        done = await city.client.post(url, headers=headers, json={"action": "complete"})
        assert done.status_code == 200 and done.json()["state"] == "done"
        await _settled(city)

    events = await server.store.read(repo.list_security_events)
    assert not [e for e in events if e["kind"] == "unauthorised_departure"]
    alerts = await server.store.read(partial(records.list_alerts, cp_id=ORIGIN))
    assert not [a for a in alerts if a["kind"] == "car_left_without_rental"]
    counts = await server.store.read(lambda c: [c.execute(select(func.count()).select_from(t)).scalar_one()
                                                for t in (rentals, invoices)])
    assert counts == [0, 0]  # not a rental, not billed
    entries = await server.store.read(partial(list_entries, limit=50))
    crew = [(e["action"], e["actor"]) for e in reversed(entries) if e["action"].startswith("rebalancing.crew.")]
    assert crew == [("rebalancing.crew.badge_refused", "crew:CREW0001"), ("rebalancing.crew.badge_refused",
                    "crew:CREW0001"), ("rebalancing.crew.badge_refused", "crew:CREW0002"),
                    ("rebalancing.crew.badge", "crew:CREW0001"), ("rebalancing.crew.departure", "crew:CREW0001"),
                    ("rebalancing.crew.arrival", "crew:CREW0001")]
    arrival = next(e for e in entries if e["action"] == "rebalancing.crew.arrival")
    assert arrival["detail"]["as_planned"] is True and arrival["detail"]["station_id"] == "st-b"


async def test_a_car_of_a_task_taken_without_its_crew_badge_still_alerts(city: City) -> None:
    server, headers = city.server, city.server.api_headers()
    await _seed_badges(city)
    url = await _task(city)
    assert (await city.client.post(url, headers=headers, json={
        "action": "assign", "assignee": "crew-1", "badge": "CREW0001"})).status_code == 200
    blocked = await city.client.put("/api/v1/id-tags/CREW0001", headers=headers,
                                    json={"status": "Blocked", "parent_id_tag": "CREW"})
    assert blocked.status_code == 200, blocked.text
    async with connect(server, ORIGIN) as a:
        await a.boot()
        await a.status(1, "Charging")
        assert (await a.authorize("CREW0001"))["status"] == "Blocked"  # a blocked crew badge opens nothing
        await a.status(1, "Available")  # the car leaves with no badge accepted: not the crew's work

        async def alerted() -> bool:
            alerts = await server.store.read(partial(records.list_alerts, cp_id=ORIGIN))
            return any(a["kind"] == "car_left_without_rental" and not a["expected"] for a in alerts)

        await wait_until(alerted)
    assert (await city.vehicle())["status"] == "missing"
