"""An external limit on a 2.0.1 station (issue 17 K11-K13), end to end on SQLite and PostgreSQL:
two simulated stations of one car-sharing station over real WebSockets; an EMS limits one of them
(NotifyChargingLimit), voltlib stores it, shows it, and smart charging plans under it, giving the
power it frees to the other car; the EMS lifts it (ClearedChargingLimit) and the plan is back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conformance.conftest import wait_until
from tests.conftest import PASSWORD, RunningServer
from tests.sharing.conftest import HEADER
from voltlib.security.credentials import hash_password
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import parse_snapshot
from voltlib.sharing.store import import_snapshot, upsert_city
from voltlib.sim import Car, SimOptions, SimulatedChargePoint
from voltlib.sim.dialect_v201 import DialectV201
from voltlib.store.tables import vehicles

LIMIT_W = 4_000
CAP_W = 1_200
SOCS = {1: 10.0, 2: 50.0}  # bay -> the docked car's state of charge: bay 1 charges first
SNAPSHOT = HEADER + "\n" + "9 rue L;2;2;0;0;0;operational;Paris;;st-l;STATION;48.8500, 2.3400;75009;Paris/L/9;" \
                           "operational;;0;station;ok;x\n"
pytestmark = pytest.mark.parametrize("ocpp_version", ["2.0.1"], indirect=True)
OPTIONS = SimOptions(connectors=1, connector_power_w=3_000.0, max_power_w=3_000.0, meter_interval=1,
                     call_timeout=5.0, connect_timeout=5.0, reconnect_min=0.2, reconnect_max=1.0, tick=0.1)


@pytest_asyncio.fixture
async def station(server: RunningServer) -> AsyncIterator[dict[int, SimulatedChargePoint]]:
    parsed = parse_snapshot(SNAPSHOT, car_prefix="EL")

    def seed(conn: Any) -> None:
        upsert_city(conn, builtin_cities()["paris"])
        import_snapshot(conn, "paris", parsed, security_profile=1, password_hash=hash_password(PASSWORD),
                        soc_percent=80.0, now=datetime.now(UTC))
        for bay, soc in SOCS.items():
            conn.execute(vehicles.update().where(vehicles.c.charge_point_id == f"st-l-{bay}")
                         .values(soc_percent=soc))

    await server.store.write(seed)
    cps = {bay: SimulatedChargePoint(f"st-l-{bay}", server.ws_url, password=PASSWORD, options=OPTIONS,
                                     ocpp_version="2.0.1") for bay in SOCS}
    for bay, cp in cps.items():
        cp.plug_in(1, Car(soc=SOCS[bay], max_power_w=3_000.0))
    async with contextlib.AsyncExitStack() as stack:
        for cp in cps.values():
            await cp.start()
            stack.push_async_callback(cp.stop)
        for cp in cps.values():
            assert await cp.wait_accepted(10)
        yield cps


async def test_smart_charging_plans_under_an_external_limit_until_it_is_cleared(
        server: RunningServer, station: dict[int, SimulatedChargePoint]) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=20) as api:
        assert (await api.put("/api/v1/stations/st-l/power-limit", json={"limit_w": LIMIT_W})).status_code == 200
        for bay, cp in station.items():
            cp.start_transaction(1, f"CAREL{bay:06d}")

        async def planned() -> dict[str, int]:
            return dict((await api.get("/api/v1/stations/st-l/power-limit")).json()["planned_by_bay"])

        async def plan_is(check: Any) -> bool:
            p = await planned()
            return len(p) == 2 and bool(check(p["st-l-1/1"], p["st-l-2/1"]))

        await wait_until(lambda: plan_is(lambda one, two: one == 3_000 and two == LIMIT_W - 3_000), timeout=20)

        dialect = station[1].dialect
        assert isinstance(dialect, DialectV201)
        dialect.set_external_limit(0, CAP_W, source="EMS", grid_critical=True)  # the whole of station st-l-1

        # st-l-1 under its cap; st-l-2 takes what it gives up (it had LIMIT_W - 3000 = 1000 W)
        await wait_until(lambda: plan_is(lambda one, two: one == CAP_W and two == LIMIT_W - CAP_W), timeout=20)
        held = (await api.get("/api/v1/charge-points/st-l-1/charging-profiles")).json()
        assert [(r["evse_id"], r["limit_source"], r["limit_w"], r["grid_critical"])
                for r in held["external_limits"]] == [(0, "EMS", CAP_W, True)]
        p = await planned()
        assert p["st-l-1/1"] + p["st-l-2/1"] <= LIMIT_W

        dialect.set_external_limit(0, None, source="EMS")
        await wait_until(lambda: plan_is(lambda one, two: one == 3_000 and two == LIMIT_W - 3_000), timeout=20)
        assert (await api.get("/api/v1/charge-points/st-l-1/charging-profiles")).json()["external_limits"] == []
