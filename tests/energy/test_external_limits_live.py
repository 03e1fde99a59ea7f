"""An external limit on a 2.0.1 station (issue 17 K11-K13), end to end on SQLite and PostgreSQL:
two simulated stations of one car-sharing station over real WebSockets; an EMS limits one of them
(NotifyChargingLimit), voltlib stores it, shows it, and smart charging plans under it, giving the
power it frees to the other car; the EMS lifts it (ClearedChargingLimit) and the plan is back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conformance.conftest import wait_until
from tests.conftest import RunningServer
from tests.energy.conftest import docked_station
from tests.sharing.conftest import HEADER
from voltlib.sim import Car, SimulatedChargePoint
from voltlib.sim.dialect_v201 import DialectV201

LIMIT_W = 4_000
CAP_W = 1_200
SOCS = {1: 10.0, 2: 50.0}  # bay -> the docked car's state of charge: bay 1 charges first
SNAPSHOT = HEADER + "\n" + "9 rue L;2;2;0;0;0;operational;Paris;;st-l;STATION;48.8500, 2.3400;75009;Paris/L/9;" \
                           "operational;;0;station;ok;x\n"
pytestmark = pytest.mark.parametrize("ocpp_version", ["2.0.1"], indirect=True)


@pytest_asyncio.fixture
async def station(server: RunningServer) -> AsyncIterator[dict[int, SimulatedChargePoint]]:
    cars = {bay: Car(soc=soc, max_power_w=3_000.0) for bay, soc in SOCS.items()}
    async with docked_station(server, SNAPSHOT, station="st-l", car_prefix="EL", cars=cars,
                              ocpp_version="2.0.1") as cps:
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
