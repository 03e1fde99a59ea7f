"""One-way rentals driven end to end by real OCPP messages from test charge points, on SQLite and
PostgreSQL, over OCPP 1.6 and 2.0.1: badge → unplug → plug in elsewhere → priced and invoiced, and
what goes wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from tests.conformance.conftest import connect, now_iso, wait_until
from tests.conftest import BOTH_VERSIONS
from tests.sharing.conftest import CAR_ID, CAR_TAG, City, catch_up, set_soc
from voltlib import events as ev
from voltlib.ocpp.v16 import messages as m
from voltlib.security import records
from voltlib.sharing import service
from voltlib.store import repo

ORIGIN, DESTINATION = "st-a-1", "st-b-1"
pytestmark = pytest.mark.parametrize("ocpp_version", BOTH_VERSIONS, indirect=True)


async def test_badge_unplug_return_elsewhere_is_billed_once(city: City) -> None:
    member = await city.sign_up(1)
    server = city.server
    async with connect(server, ORIGIN) as a, connect(server, DESTINATION) as b:
        await a.boot()
        await a.status(1, "Charging")  # the car is plugged in and charging at its bay
        charging = await a.start_tx(1, CAR_TAG)
        await b.boot()
        await b.status(1, "Available")

        info = await a.authorize(member.badge)
        assert info["status"] == "Accepted"
        rental = await city.rental(member)
        assert rental["state"] == "badged" and rental["car_id"] == CAR_ID

        await a.stop_tx(charging.transaction_id, 1200, reason="EVDisconnected")
        await a.status(1, "Available")  # the car leaves its bay

        await city.wait_for_state(member, "started")
        assert (await city.vehicle())["status"] == "rented"

        back_at = datetime.now(UTC) + timedelta(minutes=25)
        catch_up(server, back_at)  # the car comes back 25 minutes later (voltlib's clock moved on)
        back = back_at.isoformat()
        returned = await b.start_tx(1, CAR_TAG, timestamp=back)
        assert returned.id_tag_info["status"] == "Accepted"

        await city.wait_for_state(member, None)
        again = await b.start_tx(1, CAR_TAG, timestamp=back)  # a retransmitted return
        assert again.transaction_id == returned.transaction_id

    history = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
    assert [r["state"] for r in history] == ["closed"]
    assert history[0]["return_dock"] == [DESTINATION, 1]
    assert history[0]["charged"]["total"] == "5.00"  # premium: first half hour 5 EUR (25 minutes)
    statement = (await city.client.get("/api/v1/me/invoices", headers=member.headers())).json()
    kinds = sorted(i["kind"] for i in statement["invoices"])
    assert kinds == ["rental", "subscription"]  # the replay did not bill twice
    assert statement["totals"] == [{"currency": "EUR", "total_minor": 14900, "total": "149.00"}]
    car = await city.vehicle()
    assert (car["status"], car["charge_point_id"]) == ("docked", DESTINATION)


async def test_badge_refusals_say_why(city: City) -> None:
    server = city.server
    unverified = await city.sign_up(2, verify=False)
    good = await city.sign_up(3)
    other = await city.sign_up(4)
    async with connect(server, ORIGIN) as a, connect(server, DESTINATION) as b:
        await a.boot()
        await a.status(1, "Charging")
        await b.boot()
        assert (await a.authorize(unverified.badge))["status"] == "Blocked"
        assert (await b.authorize(good.badge))["status"] == "Invalid"  # no car at that bay
        await set_soc(server, CAR_ID, 5.0)
        assert (await a.authorize(good.badge))["status"] == "Invalid"  # not enough range
        await set_soc(server, CAR_ID, 80.0)
        assert (await a.authorize(good.badge))["status"] == "Accepted"
        assert (await a.authorize(other.badge))["status"] == "Invalid"  # the car is taken
        assert (await a.authorize(good.badge))["status"] == "Accepted"  # badging again changes nothing
        assert (await a.authorize("NOT-A-MEMBER"))["status"] == "Invalid"  # the id-tag table decides
    blocked = await city.client.post(f"/api/v1/badges/{other.badge}/block", json={"reason": "stolen"},
                                     headers=server.api_headers())
    assert blocked.status_code == 200 and blocked.json()["status"] == "Blocked"
    async with connect(server, ORIGIN) as a:
        await a.boot()
        assert (await a.authorize(other.badge))["status"] == "Blocked"


async def test_car_leaving_without_rental_raises_an_alert(city: City) -> None:
    server = city.server
    async with connect(server, ORIGIN) as a:
        await a.boot()
        await a.status(1, "Charging")
        await a.status(1, "Available")  # nobody badged: the car left on its own

        async def alerted() -> bool:
            events = await server.store.read(repo.list_security_events)
            return any(e["kind"] == "unauthorised_departure" and e["detail"]["car_id"] == CAR_ID for e in events)

        await wait_until(alerted)

        async def security_alert() -> bool:  # the physical detector raised an alert from the bus event
            alerts = await server.store.read(partial(records.list_alerts, cp_id=ORIGIN))
            return any(a["kind"] == "car_left_without_rental" and not a["expected"] for a in alerts)

        await wait_until(security_alert)
    assert (await city.vehicle())["status"] == "missing"


async def test_offline_return_is_priced_at_its_own_time(city: City) -> None:
    member = await city.sign_up(5)
    server = city.server
    async with connect(server, ORIGIN) as a:
        await a.boot()
        await a.status(1, "Charging")
        assert (await a.authorize(member.badge))["status"] == "Accepted"
        left = datetime.now(UTC).replace(microsecond=0)
        await a.status(1, "Available", timestamp=left.isoformat())

        await city.wait_for_state(member, "started")
    # the destination was offline when the car came back 70 minutes later; it reports on reconnection
    back = (left + timedelta(minutes=70)).isoformat()
    catch_up(server, left + timedelta(minutes=80))  # reconnects 10 minutes after the return
    async with connect(server, DESTINATION) as b:
        await b.boot()
        await b.start_tx(1, CAR_TAG, timestamp=back)

        await city.wait_for_state(member, None)
    history = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
    assert history[0]["charged"]["billed_minutes"] == 70
    assert history[0]["charged"]["total"] == "15.00"  # 5 + 4 + 6: three started half hours


async def test_timers_release_a_badged_car_not_taken(city: City) -> None:
    member = await city.sign_up(6)
    server = city.server
    async with connect(server, ORIGIN) as a:
        await a.boot()
        await a.status(1, "Charging")
        assert (await a.authorize(member.badge))["status"] == "Accepted"
    later = datetime.now(UTC) + timedelta(minutes=6)  # Paris: released 5 minutes after the badge
    await server.store.write(partial(service.timers_op, now=later))
    assert await city.rental(member) is None
    history = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
    assert history[0]["state"] == "released"
    assert now_iso()


async def test_a_return_committed_but_never_applied_is_reconciled(city: City) -> None:
    """voltlib stopped after committing and answering the return's StartTransaction but before the
    rental subscriber ran: the start-up reconciliation closes and bills the rental."""
    member = await city.sign_up(7)
    server = city.server
    async with connect(server, ORIGIN) as a:
        await a.boot()
        await a.status(1, "Charging")
        assert (await a.authorize(member.badge))["status"] == "Accepted"
        await a.status(1, "Available")

        await city.wait_for_state(member, "started")
    back = datetime.now(UTC) + timedelta(minutes=20)
    request = m.StartTransaction(connector_id=1, id_tag=CAR_TAG, meter_start=0, timestamp=back)
    await server.store.write(partial(repo.start_transaction, cp_id=DESTINATION, req=request, now=back))
    assert (await city.rental(member))["state"] == "started"  # nobody applied it
    change = await server.store.write(partial(service.reconcile_op, now=datetime.now(UTC)))
    assert [e.state for e in change.events if isinstance(e, ev.RentalChanged)] == ["returned", "closed"]
    assert await city.rental(member) is None
    statement = (await city.client.get("/api/v1/me/invoices", headers=member.headers())).json()
    assert sorted(i["kind"] for i in statement["invoices"]) == ["rental", "subscription"]
    again = await server.store.write(partial(service.reconcile_op, now=datetime.now(UTC)))
    assert again.events == []
