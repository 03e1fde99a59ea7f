"""Charge points with wrong clocks, end to end over real OCPP on SQLite and PostgreSQL (issue 22,
defects 2 and 3): a stamp in voltlib's future is never billed, a return stamped before the departure
still ends the rental, and a charge point whose stamp was not believed raises one ``clock_skew``
alert naming it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from tests.conformance.conftest import Station, connect, wait_until
from tests.conformance.station201 import voltlib_id
from tests.conftest import BOTH_VERSIONS, RunningServer
from tests.sharing.conftest import CAR_ID, CAR_TAG, City, Member
from tests.sharing.test_late_departure import history, quiet
from voltlib.ocpp.v16 import messages as m
from voltlib.security import records
from voltlib.sharing import service
from voltlib.store import repo

pytestmark = pytest.mark.parametrize("ocpp_version", BOTH_VERSIONS, indirect=True)

ORIGIN, DESTINATION = "st-a-1", "st-b-1"


async def skew_alerts(server: RunningServer, cp_id: str) -> list[dict[str, Any]]:
    return [a for a in await server.store.read(partial(records.list_alerts, cp_id=cp_id)) if a["kind"] == "clock_skew"]


async def skew_events(server: RunningServer) -> list[dict[str, Any]]:
    return [e for e in await server.store.read(repo.list_security_events) if e["kind"] == "clock_skew"]


async def departs(city: City, member: Member, a: Station, left: datetime | None = None) -> None:
    """The member badges at the car's bay and the car leaves it, the departure stamped ``left``."""
    await a.boot()
    await a.status(1, "Charging")
    assert (await a.authorize(member.badge))["status"] == "Accepted"
    await a.status(1, "Available", timestamp=(left or datetime.now(UTC)).isoformat())
    await city.wait_for_state(member, "started")


async def test_a_return_stamped_days_ahead_is_billed_from_its_arrival(city: City) -> None:
    member = await city.sign_up(1)
    server = city.server
    async with connect(server, ORIGIN) as a, connect(server, DESTINATION) as b:
        await b.boot()
        await departs(city, member, a)
        ahead = datetime.now(UTC) + timedelta(days=3)
        plugged = await b.start_tx(1, CAR_TAG, timestamp=ahead.isoformat())  # the destination is 3 days fast
        await city.wait_for_state(member, None)
        await b.stop_tx(plugged.transaction_id, 500, timestamp=(ahead + timedelta(minutes=1)).isoformat())
        await quiet(server)

        async def alerted() -> bool:
            return len(await skew_events(server)) == 2 and len(await skew_alerts(server, DESTINATION)) == 1

        await wait_until(alerted)
    [closed] = await history(city, member)
    assert closed["state"] == "closed"
    assert closed["charged"]["billed_minutes"] == 1 and closed["charged"]["total"] == "5.00"  # not 4,320 minutes
    started, returned, ended = (datetime.fromisoformat(closed[k]) for k in ("started_at", "returned_at", "ended_at"))
    assert started <= returned <= ended < ahead
    [alert] = await skew_alerts(server, DESTINATION)
    assert alert["charge_point_id"] == DESTINATION
    start, stop = (("StartTransaction", "StopTransaction") if server.station_version == "1.6"
                   else ("TransactionEvent", "TransactionEvent"))  # 2.0.1: Started, Ended
    assert alert["detail"]["message"] == start
    assert 3 * 86400 - 60 < alert["detail"]["skew_seconds"] <= 3 * 86400
    assert sorted((e["charge_point_id"], e["detail"]["message"]) for e in await skew_events(server)) \
        == [(DESTINATION, start), (DESTINATION, stop)]  # one event a message, one alert for both
    assert await skew_alerts(server, ORIGIN) == []
    tx_id = await voltlib_id(server, DESTINATION, plugged.transaction_id)
    [tx] = [t for t in await server.store.read(partial(repo.list_transactions, cp_id=DESTINATION))
            if t["id"] == tx_id]
    # the charge point's own stamps are kept as evidence (a retransmission is known by them)
    assert (tx["started_at"], tx["stopped_at"]) == (ahead, ahead + timedelta(minutes=1)) and tx["received_at"] < ahead


async def test_a_return_reconciled_at_start_up_is_judged_against_its_receipt_time(city: City) -> None:
    member = await city.sign_up(5)
    server = city.server
    async with connect(server, ORIGIN) as a:
        await departs(city, member, a)
    received = datetime.now(UTC)
    request = m.StartTransaction(connector_id=1, id_tag=CAR_TAG, meter_start=0, timestamp=received + timedelta(days=3))
    await server.store.write(partial(repo.start_transaction, cp_id=DESTINATION, req=request, now=received))
    await server.store.write(partial(service.reconcile_op, now=received + timedelta(seconds=5)))
    [closed] = await history(city, member)
    assert closed["state"] == "closed" and closed["charged"]["billed_minutes"] == 1
    assert datetime.fromisoformat(closed["returned_at"]) == received


async def test_a_return_bay_running_behind_still_ends_the_rental(city: City) -> None:
    """The destination's clock is 2 minutes behind the origin's: its StartTransaction is stamped
    before the departure. The rental ends, the car is docked there, the member may rent again."""
    member = await city.sign_up(2)
    server = city.server
    async with connect(server, ORIGIN) as a, connect(server, DESTINATION) as b:
        await b.boot()
        left = datetime.now(UTC).replace(microsecond=0)
        await departs(city, member, a, left)
        await b.start_tx(1, CAR_TAG, timestamp=(left - timedelta(minutes=2)).isoformat())
        await city.wait_for_state(member, None)
        [closed] = await history(city, member)
        assert closed["state"] == "closed" and closed["return_dock"] == [DESTINATION, 1]
        assert closed["returned_at"] == closed["started_at"] and closed["charged"]["billed_minutes"] == 1
        car = await city.vehicle()
        assert (car["status"], car["charge_point_id"]) == ("docked", DESTINATION)

        assert (await b.authorize(member.badge))["status"] == "Accepted"  # rents the car again
        assert (await city.rental(member))["state"] == "badged"
        await quiet(server)
    assert await skew_events(server) == []  # a stamp in the past may be an offline queue: no alert


async def test_a_departure_stamped_an_hour_ahead_starts_the_rental_when_it_arrives(city: City) -> None:
    member = await city.sign_up(3)
    server = city.server
    async with connect(server, ORIGIN) as a, connect(server, DESTINATION) as b:
        await b.boot()
        ahead = datetime.now(UTC) + timedelta(hours=1)
        await departs(city, member, a, ahead)  # the origin's clock is an hour fast
        assert datetime.fromisoformat((await city.rental(member))["started_at"]) < ahead - timedelta(minutes=59)
        await b.start_tx(1, CAR_TAG)  # the destination's clock is right
        await city.wait_for_state(member, None)
        await quiet(server)

        async def alerted() -> bool:
            return len(await skew_alerts(server, ORIGIN)) == 1

        await wait_until(alerted)
    [closed] = await history(city, member)
    assert closed["state"] == "closed" and closed["charged"]["billed_minutes"] == 1
    started, returned = (datetime.fromisoformat(closed[k]) for k in ("started_at", "returned_at"))
    assert timedelta(0) <= returned - started < timedelta(minutes=1)
    assert (await city.vehicle())["status"] == "docked"
    [alert] = await skew_alerts(server, ORIGIN)
    assert alert["detail"]["message"] == "StatusNotification" and alert["detail"]["skew_seconds"] > 3500
    assert await skew_alerts(server, DESTINATION) == []


async def test_a_clock_skewed_charge_point_raises_one_alert_not_a_flood(city: City) -> None:
    server = city.server
    async with connect(server, DESTINATION) as b:
        await b.boot()
        for n in range(3):
            await b.meter(1, None, 1000 + n, timestamp=(datetime.now(UTC) + timedelta(days=1)).isoformat())

        async def recorded() -> bool:
            return len(await skew_events(server)) == 3

        await wait_until(recorded)
        await quiet(server)
    [alert] = await skew_alerts(server, DESTINATION)  # one alert per charge point per period
    assert alert["detail"]["message"] == "MeterValues"


async def test_a_skew_inside_the_tolerance_raises_nothing(city: City) -> None:
    member = await city.sign_up(4)
    server = city.server
    async with connect(server, ORIGIN) as a, connect(server, DESTINATION) as b:
        await b.boot()
        await departs(city, member, a)
        soon = datetime.now(UTC) + timedelta(seconds=30)
        await b.start_tx(1, CAR_TAG, timestamp=soon.isoformat())  # 30 s fast: two clocks disagreeing
        await city.wait_for_state(member, None)
        await b.meter(1, None, 1000, timestamp=soon.isoformat())
        await quiet(server)
    [closed] = await history(city, member)
    assert datetime.fromisoformat(closed["returned_at"]) <= datetime.fromisoformat(closed["ended_at"])
    assert await skew_events(server) == [] and await skew_alerts(server, DESTINATION) == []
    assert (await city.vehicle(CAR_ID))["status"] == "docked"
