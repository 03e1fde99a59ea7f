"""Smart charging end to end: a station whose cars want more than its grid limit, four simulated
charge points obeying the profiles voltlib sends, real WebSockets, SQLite and PostgreSQL.

What the charge points really draw is watched in process every 20 ms (their meters are the
simulated hardware), and their MeterValues are read back through the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from tests.conformance.conftest import wait_until
from tests.conftest import BOTH_VERSIONS, RunningServer
from tests.energy.conftest import docked_station
from tests.sharing.conftest import HEADER
from voltlib.sim import Car, SimulatedChargePoint

LIMIT_W = 6_000
SOCS = {1: 90.0, 2: 10.0, 3: 50.0, 4: 25.0}  # bay -> the docked car's state of charge
SNAPSHOT = HEADER + "\n" + "9 rue E;4;4;0;0;0;operational;Paris;;st-e;STATION;48.8500, 2.3400;75009;Paris/E/9;" \
                           "operational;;0;station;ok;x\n"
pytestmark = pytest.mark.parametrize("ocpp_version", BOTH_VERSIONS, indirect=True)


@pytest_asyncio.fixture
async def station(server: RunningServer) -> AsyncIterator[dict[int, SimulatedChargePoint]]:
    cars = {bay: Car(soc=soc, max_power_w=3_000.0) for bay, soc in SOCS.items()}
    async with docked_station(server, SNAPSHOT, station="st-e", car_prefix="EN", cars=cars,
                              ocpp_version=server.station_version) as cps:
        yield cps


def drawn(cps: dict[int, SimulatedChargePoint]) -> dict[int, float]:
    return {bay: cp.connector(1).power_w for bay, cp in cps.items()}


async def test_cars_charge_in_priority_order_and_the_station_never_goes_over(
        server: RunningServer, station: dict[int, SimulatedChargePoint]) -> None:
    api = httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=20)
    async with api:
        response = await api.put("/api/v1/stations/st-e/power-limit", json={"limit_w": LIMIT_W})
        assert response.status_code == 200, response.text
        assert response.json()["configured"] is True and response.json()["rated_total_w"] == 12_000

        async def safe_start_installed() -> bool:  # TxDefaultProfile, sent when each charge point booted
            now = datetime.now(UTC)
            return all(cp.profiles.connector_limit(1, now, None, None) is not None for cp in station.values())

        await wait_until(safe_start_installed, timeout=15)
        peak = 0.0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, sum(drawn(station).values()))
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        for bay, cp in station.items():  # each car's charging session starts
            cp.start_transaction(1, f"CAREN{bay:06d}")

        async def planned() -> bool:
            p = drawn(station)
            return p[2] == 3_000 and p[4] > p[3] and sum(p.values()) >= LIMIT_W - 50

        await wait_until(planned, timeout=20)
        power = drawn(station)
        assert power[2] >= power[4] > power[3] >= power[1] > 0  # 10 %, 25 %, 50 %, 90 %: keep-warm for all
        assert sum(power.values()) <= LIMIT_W

        station[2].unplug(1)  # the lowest car leaves: the next ones take its share, under the limit

        async def replanned() -> bool:
            p = drawn(station)
            return p[2] == 0 and p[4] == 3_000 and p[3] > power[3]

        await wait_until(replanned, timeout=20)
        await asyncio.sleep(2.5)  # two more meter samples at the new plan
        watcher.cancel()
        assert 0 < peak <= LIMIT_W

        meter = {bay: await _last_power(api, f"st-e-{bay}") for bay in (1, 3, 4)}
        assert meter[4] >= meter[3] >= meter[1] and sum(meter.values()) <= LIMIT_W
        commands = sorted((await api.get("/api/v1/charge-points/st-e-4/commands")).json(), key=lambda c: c["id"])
    checked, planned = 0, None
    v201 = server.station_version == "2.0.1"  # each version's words for the same profile and schedule
    for command in commands:  # each TxProfile is followed by GetCompositeSchedule, which must agree
        profile = command["request"].get("chargingProfile" if v201 else "csChargingProfiles", {})
        if profile.get("chargingProfilePurpose") == "TxProfile":
            schedule = profile["chargingSchedule"][0] if v201 else profile["chargingSchedule"]
            planned = schedule["chargingSchedulePeriod"][0]["limit"]
        elif command["action"] == "GetCompositeSchedule":
            periods = command["response"]["schedule" if v201 else "chargingSchedule"]["chargingSchedulePeriod"]
            assert periods[0]["limit"] == planned
            checked += 1
    assert checked >= 2  # the first plan and the re-plan after the unplug


async def _last_power(api: httpx.AsyncClient, cp_id: str) -> float:
    rows = (await api.get(f"/api/v1/charge-points/{cp_id}/meter-values")).json()
    latest = max(rows, key=lambda r: r["timestamp"])
    return next(float(s["value"]) for s in latest["sampled_value"] if s.get("measurand") == "Power.Active.Import")
