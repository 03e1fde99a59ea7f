"""A simulated OCPP 2.0.1 charge point against a real voltlib (real WebSocket, SQLite and
PostgreSQL): boot, statuses per EVSE, a security event and the device model reach voltlib without
a single protocol error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from sqlalchemy import select

from tests.conftest import RunningServer, free_port, start_server
from tests.sim.test_chargepoint import FAST, eventually, simulated
from voltlib.config import Settings
from voltlib.sim import Car
from voltlib.store.tables import ocpp_messages


@pytest_asyncio.fixture
async def server201(database_url: str) -> AsyncIterator[RunningServer]:
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        duplicate_probe_timeout=1.0, ocpp_versions=["1.6", "2.0.1"])
    runner, running = await start_server(settings)
    try:
        yield running
    finally:
        await runner.cleanup()


async def test_a_2_0_1_post_boots_reports_its_evses_and_a_tamper_alarm(server201: RunningServer) -> None:
    server = server201
    await server.add_charge_point("SIM-201")
    async with simulated(server, "SIM-201", options=FAST, ocpp_version="2.0.1") as cp, \
            httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=10) as http:
        assert await cp.wait_accepted(10) and cp.registration == "Accepted"

        async def statuses_are(*expected: str) -> bool:
            detail = (await http.get("/api/v1/charge-points/SIM-201")).json()
            assert detail["connection_ocpp_version"] == "2.0.1"
            return [c["status"] for c in sorted(detail["connectors"], key=lambda c: c["connector_id"])] == [*expected]

        await eventually(lambda: statuses_are("Available", "Available"))
        cp.plug_in(2, Car())
        await eventually(lambda: statuses_are("Available", "Occupied"))
        cp.report_security_event("TamperDetectionActivated", "cabinet door forced")
        assert await cp.wait_drained(10)

        async def tamper() -> bool:
            found = (await http.get("/api/v1/security-events")).json()
            return any(e["charge_point_id"] == "SIM-201" and e["kind"] == "charge_point:TamperDetectionActivated"
                       for e in found)

        await eventually(tamper)
        refresh = await http.post("/api/v1/charge-points/SIM-201/device-model/refresh")
        assert refresh.status_code == 200, refresh.text
        assert refresh.json()["command"]["response"] == {"status": "Accepted"}

        async def reported() -> bool:
            model = (await http.get("/api/v1/charge-points/SIM-201/device-model",
                                    params={"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"})).json()
            return [(e["value"], e["mutability"]) for e in model] == [(str(cp.heartbeat_interval), "ReadWrite")]

        await eventually(reported)
    assert cp.stats["sent:BootNotification"] == 1 and cp.stats["dropped"] == 0
    bad = await server.store.read(lambda c: c.execute(select(ocpp_messages.c.action).where(
        ocpp_messages.c.outcome.in_(("violation", "error")))).all())
    assert bad == []
