"""What a restart recovers (issue 22): a message answered and committed, but voltlib stopped before
the subscriber that does the domain work after the answer ran — the security service (the alert)
or car sharing (the departure). Over real OCPP sockets, on SQLite and PostgreSQL.

"Stopped before the subscriber ran" is made exact: that subscriber of the first server is stopped
before the message is sent (what a kill -9 just after the answer leaves: the message committed
and answered, its bus event never handled), then that server is shut down and another starts on
the same database. Its start-up must bring the alert or the departure back exactly once; starting
again, or two at once, changes nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
from ocpp.v16 import call

from tests.conformance.conftest import connect, now_iso, wait_until
from tests.conftest import RunningServer, free_port, start_server
from tests.sharing.conftest import CAR_ID, CAR_TAG, City, catch_up, seeded_city
from tests.sharing.test_late_departure import badged_then_released, car_leaves
from voltlib.bus import LocalBus
from voltlib.config import Settings
from voltlib.security import records
from voltlib.sharing import service
from voltlib.store import repo

CP = "SEC-REC-1"
ORIGIN = "st-a-1"


def settings_of(database_url: str) -> Settings:
    return Settings(database_url=database_url, port=free_port(), command_timeout=5.0, duplicate_probe_timeout=1.0)


@asynccontextmanager
async def running(database_url: str) -> AsyncIterator[RunningServer]:
    """A voltlib server on ``database_url``, started (start-up recovery included) and then stopped."""
    runner, server = await start_server(settings_of(database_url))
    try:
        yield server
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)


def stop_subscriber(server: RunningServer, name: str) -> None:
    """As if the process died before ``name`` handled anything published from now on."""
    bus = server.gateway.services.bus
    assert isinstance(bus, LocalBus)
    [subscriber] = [s for s in bus._every if s.name == name]
    assert subscriber.task is not None
    subscriber.task.cancel()


async def alerts_of(server: RunningServer, cp_id: str, kind: str) -> list[dict[str, Any]]:
    found = await server.store.read(partial(records.list_alerts, cp_id=cp_id))
    return [a for a in found if a["kind"] == kind]


async def events_of(server: RunningServer, kind: str) -> list[dict[str, Any]]:
    return [e for e in await server.store.read(repo.list_security_events) if e["kind"] == kind]


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


# --- security: the alert of a stored security event ---------------------------------------------

async def test_an_alert_lost_after_the_answer_is_raised_once_at_start_up(database_url: str) -> None:
    async with running(database_url) as first:
        await first.add_charge_point(CP)
        stop_subscriber(first, "security")
        async with connect(first, CP) as cp:
            await cp.boot()
            await cp.send(call.SecurityEventNotification(type="InvalidFirmwareSignature", timestamp=now_iso(),
                                                         tech_info="bad signature"))  # answered
        assert len(await events_of(first, "charge_point:InvalidFirmwareSignature")) == 1
        assert await alerts_of(first, CP, "charge_point_security_event") == []  # lost with the process
    async with running(database_url) as second:
        [alert] = await alerts_of(second, CP, "charge_point_security_event")
        assert (alert["severity"], alert["repeats"], alert["detail"]["type"]) == ("high", 0, "InvalidFirmwareSignature")
        assert alert["incident_id"] is not None
    async with running(database_url) as third:  # already alerted: nothing more
        assert [a["id"] for a in await alerts_of(third, CP, "charge_point_security_event")] == [alert["id"]]
        assert (await alerts_of(third, CP, "charge_point_security_event"))[0]["repeats"] == 0


async def test_an_event_lost_inside_a_run_of_repeats_is_counted_once(database_url: str) -> None:
    """The alert existed already (more notifications handled on time than it keeps the keys of);
    the last one, lost, is one more repeat of it after the restart, not a new alert, and only once."""
    handled = records.CROSSINGS_KEPT + 2
    start = datetime.now(UTC) - seconds(handled + 1)
    async with running(database_url) as first:
        await first.add_charge_point(CP)
        async with connect(first, CP) as cp:
            await cp.boot()
            for n in range(handled + 1):
                if n == handled:
                    await first.settled()
                    stop_subscriber(first, "security")
                stamp = (start + seconds(n)).isoformat()
                await cp.send(call.SecurityEventNotification(type="MemoryExhaustion", timestamp=stamp,
                                                             tech_info=f"#{n}"))
        [alert] = await alerts_of(first, CP, "charge_point_security_event")
        assert alert["repeats"] == handled - 1
    for _ in range(2):
        async with running(database_url) as later:
            assert [(a["id"], a["repeats"]) for a in await alerts_of(later, CP, "charge_point_security_event")] \
                == [(alert["id"], handled)]


async def test_nodes_starting_at_once_raise_a_lost_alert_once(database_url: str) -> None:
    async with running(database_url) as first:
        await first.add_charge_point(CP)
        stop_subscriber(first, "security")
        async with connect(first, CP) as cp:
            await cp.boot()
            await cp.send(call.SecurityEventNotification(type="TamperDetectionActivated", timestamp=now_iso(),
                                                         tech_info="door"))
    started = await asyncio.gather(*(start_server(settings_of(database_url)) for _ in range(3)))
    try:
        for _, node in started:
            [alert] = await alerts_of(node, CP, "tamper_detected")
            assert (alert["repeats"], alert["expected"]) == (0, False)
    finally:
        for runner, _ in started:
            await runner.cleanup()


async def test_an_alert_raised_on_time_is_not_raised_again(database_url: str) -> None:
    async with running(database_url) as first:
        await first.add_charge_point(CP)
        async with connect(first, CP) as cp:
            await cp.boot()
            await cp.send(call.SecurityEventNotification(type="SecurityLogWasCleared", timestamp=now_iso(),
                                                         tech_info=None))
        await first.settled()
        [alert] = await alerts_of(first, CP, "charge_point_security_event")
        async with httpx.AsyncClient(base_url=first.url, headers=first.api_headers()) as http:
            response = await http.post(f"/api/v1/security/incidents/{alert['incident_id']}/lifecycle",
                                       json={"action": "resolve", "note": "checked"})
        assert response.status_code == 200, response.text
    async with running(database_url) as second:  # resolved, not forgotten: no new alert
        assert [(a["id"], a["repeats"]) for a in await alerts_of(second, CP, "charge_point_security_event")] \
            == [(alert["id"], 0)]


# --- car sharing: a departure committed but never applied --------------------------------------

@asynccontextmanager
async def city_on(server: RunningServer) -> AsyncIterator[City]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield City(server, client)


async def quiet(server: RunningServer) -> None:
    """The start-up reconciliation done (the writer runs it before a later write), its effects and
    their bus events handled."""
    await server.store.write(partial(service.reconcile_op, now=datetime.now(UTC)))
    sharing = server.gateway.services.authorizer
    assert isinstance(sharing, service.SharingService)
    bus = server.gateway.services.bus
    assert isinstance(bus, LocalBus)
    for _ in range(2):  # an effect publishes on the bus (CarLeftWithoutRental), whose detector records
        await bus.drain()
        await sharing.settle()


async def test_a_departure_lost_after_the_answer_starts_the_rental_at_start_up(database_url: str) -> None:
    async with running(database_url) as first, seeded_city(first) as city:
        member = await city.sign_up(1)
        async with connect(first, ORIGIN) as a:
            await a.boot()
            await a.status(1, "Charging")
            charging = await a.start_tx(1, CAR_TAG)
            assert (await a.authorize(member.badge))["status"] == "Accepted"
            assert (await city.rental(member))["state"] == "badged"
            stop_subscriber(first, "sharing")
            await a.stop_tx(charging.transaction_id, 1200, reason="EVDisconnected")  # answered, stored
            await a.status(1, "Available")
        assert (await city.rental(member))["state"] == "badged"  # never applied
    async with running(database_url) as second, city_on(second) as city:
        await city.wait_for_state(member, "started")
        await quiet(second)
        assert (await city.vehicle())["status"] == "rented"
    async with running(database_url) as third, city_on(third) as city:
        again = await third.store.write(partial(service.reconcile_op, now=datetime.now(UTC)))
        assert (again.events, again.effects) == ([], [])
        await quiet(third)
        rentals = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
        assert [r["state"] for r in rentals] == ["started"]
        assert await alerts_of(third, ORIGIN, "car_left_without_rental") == []
        assert await events_of(third, "unauthorised_departure") == []


async def test_a_late_departure_lost_after_the_answer_starts_the_released_rental(database_url: str) -> None:
    """Reported after the release timer fired, stamped inside the badge window, and never applied:
    routed at start-up as on time (*Late departures*): the released rental starts, no alert."""
    async with running(database_url) as first, seeded_city(first) as city:
        member = await city.sign_up(2)
        async with connect(first, ORIGIN) as a:
            badged_at, charging = await badged_then_released(city, member, a)
            left = (badged_at + timedelta(minutes=3)).replace(microsecond=0)
            catch_up(first, left)
            stop_subscriber(first, "sharing")
            await car_leaves(a, charging, left)
        assert await city.rental(member) is None  # released, and the departure never applied
    for _ in range(2):
        async with running(database_url) as later, city_on(later) as city:
            await quiet(later)
            rental = await city.rental(member)
            assert (rental["state"], datetime.fromisoformat(rental["started_at"])) == ("started", left)
            assert (await city.vehicle())["status"] == "rented"
            assert await alerts_of(later, ORIGIN, "car_left_without_rental") == []
            assert await events_of(later, "unauthorised_departure") == []


async def test_a_car_that_left_without_rental_is_alerted_once_after_a_restart(database_url: str) -> None:
    async with running(database_url) as first, seeded_city(first):
        async with connect(first, ORIGIN) as a:
            await a.boot()
            await a.status(1, "Charging")
            stop_subscriber(first, "sharing")
            await a.status(1, "Available")  # nobody badged: the car left on its own
        assert await events_of(first, "unauthorised_departure") == []
    async with running(database_url) as second, city_on(second) as city:
        await quiet(second)
        assert (await city.vehicle())["status"] == "missing"
        [alert] = await alerts_of(second, ORIGIN, "car_left_without_rental")
        assert (alert["repeats"], alert["detail"]["car_id"]) == (0, CAR_ID)
    for _ in range(2):
        async with running(database_url) as later:
            await quiet(later)
            assert [(a["id"], a["repeats"]) for a in await alerts_of(later, ORIGIN, "car_left_without_rental")] \
                == [(alert["id"], 0)]
            assert len(await events_of(later, "unauthorised_departure")) == 1


async def test_an_alert_lost_after_car_sharing_stored_its_event_is_raised_at_start_up(database_url: str) -> None:
    """Car sharing handled the departure and stored its security event, the process died before
    the security service alerted on it."""
    async with running(database_url) as first, seeded_city(first):
        stop_subscriber(first, "security")
        async with connect(first, ORIGIN) as a:
            await a.boot()
            await a.status(1, "Charging")
            await a.status(1, "Available")
        await wait_until(partial(_stored, first))
        assert await alerts_of(first, ORIGIN, "car_left_without_rental") == []
    async with running(database_url) as second:
        [alert] = await alerts_of(second, ORIGIN, "car_left_without_rental")
        assert (alert["repeats"], alert["detail"]["car_id"]) == (0, CAR_ID)


async def _stored(server: RunningServer) -> bool:
    return len(await events_of(server, "unauthorised_departure")) == 1


# --- car sharing on two nodes: the departure lost on one, the return handled on the other --------

DESTINATION = "st-b-1"


async def handled(server: RunningServer) -> None:
    """Every bus event ``server`` received handled by car sharing, and its effects carried out; no
    reconciliation pass (``quiet`` runs one, which would apply what this test wants the return to)."""
    sharing = server.gateway.services.authorizer
    assert isinstance(sharing, service.SharingService)
    bus = server.gateway.services.bus
    assert isinstance(bus, LocalBus)
    for _ in range(2):
        await bus.drain()
        await sharing.settle()


async def car_returned_elsewhere(survivor: RunningServer) -> None:
    """The car plugged in at a bay ``survivor`` holds, and car sharing there done with it."""
    async with connect(survivor, DESTINATION) as b:
        await b.boot()
        await b.status(1, "Preparing")
        await b.start_tx(1, CAR_TAG)
    await handled(survivor)


async def test_a_departure_lost_on_a_killed_node_is_applied_by_the_return_on_another(database_url: str) -> None:
    """The chaos drill's race (kill -9 of each node in turn, one run in five): the departure is
    committed and answered on node A, A dies before car sharing applies it, and the car is plugged in
    a second later at a bay node B holds. B handles that return at once; A's start-up reconciliation
    comes later and finds the car docked at its new bay, nothing to reconcile. The return proves the
    car left: it applies the departure A committed (the rental starts at its stamp), then ends the
    rental and bills it, once, whatever restarts after."""
    async with running(database_url) as survivor, seeded_city(survivor) as city:
        member = await city.sign_up(4)
        # node A, started after B (B's start-up reconciliation is past)
        async with running(database_url) as first, connect(first, ORIGIN) as a:
            await a.boot()
            await a.status(1, "Charging")
            charging = await a.start_tx(1, CAR_TAG, timestamp=(datetime.now(UTC) - seconds(600)).isoformat())
            assert (await a.authorize(member.badge))["status"] == "Accepted"
            left = datetime.now(UTC)
            stop_subscriber(first, "sharing")  # A is killed after answering what follows
            await a.stop_tx(charging.transaction_id, 1200, reason="EVDisconnected", timestamp=left.isoformat())
            await a.status(1, "Available", timestamp=left.isoformat())
        assert (await city.rental(member))["state"] == "badged"
        await car_returned_elsewhere(survivor)
        rentals = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
        assert [(r["state"], r["return_dock"]) for r in rentals] == [("closed", [DESTINATION, 1])]
        assert datetime.fromisoformat(rentals[0]["started_at"]) == left
        car = await city.vehicle()
        assert (car["status"], car["charge_point_id"]) == ("docked", DESTINATION)
    for _ in range(2):  # A restarted (its reconciliation), and once more: nothing changes
        async with running(database_url) as later, city_on(later) as city:
            await quiet(later)
            again = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
            assert [(r["rental_id"], r["state"]) for r in again] == [(rentals[0]["rental_id"], "closed")]
            statement = (await city.client.get("/api/v1/me/invoices", headers=member.headers())).json()
            assert sorted(i["kind"] for i in statement["invoices"]) == ["rental", "subscription"]
            assert await alerts_of(later, ORIGIN, "car_left_without_rental") == []
            assert await events_of(later, "unauthorised_departure") == []


async def test_a_departure_a_killed_node_never_stored_starts_the_rental_at_its_badge(database_url: str) -> None:
    """The same race, the node killed before the departure was stored: the charge point reports the
    bay again on reconnecting, after the car was plugged in elsewhere. The return still starts the
    badged rental (at the badge: the earliest the car can have left) and ends it; the bay's status
    reported afterwards is no second departure and no alert."""
    async with running(database_url) as survivor, seeded_city(survivor) as city:
        member = await city.sign_up(5)
        async with running(database_url) as first, connect(first, ORIGIN) as a:
            await a.boot()
            await a.status(1, "Charging")
            assert (await a.authorize(member.badge))["status"] == "Accepted"  # then A dies: nothing more
        badged = await city.rental(member)
        assert badged["state"] == "badged"
        await car_returned_elsewhere(survivor)
        async with connect(survivor, ORIGIN) as a:  # the origin reconnects, to B, and reports its bay
            await a.status(1, "Available")
        await handled(survivor)
        rentals = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
        assert [(r["state"], r["return_dock"]) for r in rentals] == [("closed", [DESTINATION, 1])]
        assert rentals[0]["started_at"] == badged["badged_at"]
        statement = (await city.client.get("/api/v1/me/invoices", headers=member.headers())).json()
        assert sorted(i["kind"] for i in statement["invoices"]) == ["rental", "subscription"]
        assert await alerts_of(survivor, ORIGIN, "car_left_without_rental") == []
        assert await events_of(survivor, "unauthorised_departure") == []
        assert ((await city.vehicle())["status"], (await city.vehicle())["charge_point_id"]) == ("docked", DESTINATION)
