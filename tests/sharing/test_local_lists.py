"""A badge blocked while a charge point is offline reaches that charge point's local list as soon
as it is back (simulated charge points, real WebSockets, SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest_asyncio

from tests.conformance.conftest import wait_until
from tests.conftest import PASSWORD
from tests.sharing.conftest import City
from voltlib.sim import SimOptions, SimulatedChargePoint

OPTIONS = SimOptions(connectors=1, meter_interval=60, call_timeout=5.0, connect_timeout=5.0, reconnect_min=0.2,
                     reconnect_max=0.5, tick=0.2)


@pytest_asyncio.fixture
async def posts(city: City) -> AsyncIterator[dict[str, SimulatedChargePoint]]:
    cps = {cp_id: SimulatedChargePoint(cp_id, city.server.ws_url, password=PASSWORD, options=OPTIONS)
           for cp_id in ("st-a-1", "st-b-1")}
    async with contextlib.AsyncExitStack() as stack:
        for cp in cps.values():
            cp.configuration["LocalAuthListEnabled"].value = "true"
            await cp.start()
            stack.push_async_callback(cp.stop)
            assert await cp.wait_accepted(10)
        yield cps


async def test_a_badge_blocked_while_a_charge_point_is_offline_is_pushed_when_it_is_back(
        city: City, posts: dict[str, SimulatedChargePoint]) -> None:
    online, offline = posts["st-a-1"], posts["st-b-1"]
    member = await city.sign_up(1)
    await offline.set_network(False)

    async def gone() -> bool:
        return "st-b-1" not in city.server.gateway.connections

    await wait_until(gone)
    response = await city.client.post(f"/api/v1/badges/{member.badge}/block", json={"reason": "stolen"},
                                      headers=city.server.api_headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["pushed_to"], body["reason"]) == ("Blocked", 1, "stolen")
    assert online.local_list[member.badge] == {"status": "Blocked"}
    assert member.badge not in offline.local_list

    await offline.set_network(True)

    async def caught_up() -> bool:
        return offline.local_list.get(member.badge) == {"status": "Blocked"}

    await wait_until(caught_up, timeout=15)
    assert offline.local_list_version == body["list_version"]
    # offline again: the charge point itself refuses the stolen badge, with nobody to ask
    await offline.set_network(False)
    await wait_until(gone)
    assert offline._local_status(member.badge) == "Blocked"


async def test_a_charge_point_that_never_got_a_list_gets_every_blocked_badge_at_once(city: City) -> None:
    members = [await city.sign_up(n) for n in range(3)]
    for m in members[:2]:
        response = await city.client.post(f"/api/v1/badges/{m.badge}/block", json={},
                                          headers=city.server.api_headers())
        assert response.status_code == 200, response.text
    cp = SimulatedChargePoint("st-c-1", city.server.ws_url, password=PASSWORD, options=OPTIONS)
    cp.configuration["LocalAuthListEnabled"].value = "true"
    await cp.start()
    try:
        async def synced() -> bool:
            return all(cp.local_list.get(m.badge) == {"status": "Blocked"} for m in members[:2])

        await wait_until(synced, timeout=15)
        assert members[2].badge not in cp.local_list
    finally:
        await cp.stop()
