"""The simulated charge point against a real voltlib server (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.conftest import PASSWORD, RunningServer, free_port
from voltlib.sim import Car, SimOptions, SimulatedChargePoint

FAST = SimOptions(meter_interval=1, call_timeout=5.0, connect_timeout=5.0, reconnect_min=0.2, reconnect_max=1.0,
                  boot_retry_cap=0.5, step_delay=0.1, reboot_delay=0.2, tick=0.2)


@asynccontextmanager
async def simulated(server: RunningServer, cp_id: str, **kwargs: Any) -> AsyncIterator[SimulatedChargePoint]:
    cp = SimulatedChargePoint(cp_id, kwargs.pop("url", server.ws_url), password=PASSWORD,
                              options=kwargs.pop("options", FAST), **kwargs)
    await cp.start()
    try:
        yield cp
    finally:
        await cp.stop()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        await asyncio.sleep(0.1)


def api(server: RunningServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=10)


async def test_boots_charges_and_refuses_a_blocked_badge(server: RunningServer) -> None:
    await server.add_charge_point("SIM-1")
    await server.add_id_tag("MEMBER1")
    await server.add_id_tag("THIEF", status="Blocked")
    async with simulated(server, "SIM-1") as cp, api(server) as http:
        assert await cp.wait_accepted(10)
        assert cp.registration == "Accepted"

        async def all_available() -> bool:
            detail = (await http.get("/api/v1/charge-points/SIM-1")).json()
            return [c["status"] for c in detail["connectors"]] == ["Available"] * 3

        await eventually(all_available)
        cp.plug_in(1, Car(battery_wh=30_000, soc=35))
        assert await cp.badge(1, "THIEF") == "Blocked"
        assert cp.connectors[1].transaction is None
        assert await cp.badge(1, "MEMBER1") == "Accepted"
        tx = cp.connectors[1].transaction
        assert tx is not None
        await asyncio.wait_for(tx.confirmed.wait(), 10)
        assert tx.transaction_id is not None and tx.id_tag_status == "Accepted"

        async def two_samples() -> bool:
            values = (await http.get("/api/v1/charge-points/SIM-1/meter-values",
                                     params={"transaction_id": tx.transaction_id})).json()
            return len(values) >= 2

        await eventually(two_samples)
        assert await cp.badge(1, "MEMBER1") == "Accepted"  # the same badge again stops the session
        assert await cp.wait_drained(10)
        txs = (await http.get("/api/v1/charge-points/SIM-1/transactions")).json()
        assert [t["id"] for t in txs] == [tx.transaction_id]
        assert txs[0]["meter_stop"] == tx.meter_stop and txs[0]["stop_reason"] == "Local"
        values = (await http.get("/api/v1/charge-points/SIM-1/meter-values",
                                 params={"transaction_id": tx.transaction_id})).json()
        measurands = {s["measurand"] for v in values for s in v["sampled_value"]}
        assert measurands == {"Energy.Active.Import.Register", "Power.Active.Import", "SoC"}
        detail = (await http.get("/api/v1/charge-points/SIM-1")).json()
        assert detail["vendor"] == "Bollore" and detail["connectors"][1]["status"] == "Finishing"


async def test_commands_from_the_central_system(server: RunningServer) -> None:
    await server.add_charge_point("SIM-2")
    await server.add_id_tag("MEMBER2")
    gateway = server.gateway
    async with simulated(server, "SIM-2") as cp, api(server) as http:
        assert await cp.wait_accepted(10)

        row = await gateway.send_command("SIM-2", "RemoteStartTransaction", {"idTag": "MEMBER2", "connectorId": 1})
        assert row["state"] == "answered" and row["response"] == {"status": "Accepted"}

        async def started() -> list[dict[str, Any]]:
            txs: list[dict[str, Any]] = (await http.get("/api/v1/charge-points/SIM-2/transactions")).json()
            return txs

        txs = await eventually(started)
        assert txs[0]["id_tag"] == "MEMBER2" and txs[0]["connector_id"] == 1 and txs[0]["stopped_at"] is None

        row = await gateway.send_command("SIM-2", "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"})
        assert row["response"] == {"status": "Accepted"}

        async def unavailable() -> bool:
            detail = (await http.get("/api/v1/charge-points/SIM-2")).json()
            return {c["connector_id"]: c["status"] for c in detail["connectors"]}.get(2) == "Unavailable"

        await eventually(unavailable)

        row = await gateway.send_command("SIM-2", "GetConfiguration",
                                         {"key": ["HeartbeatInterval", "MeterValueSampleInterval", "Bogus"]})
        keys = {k["key"]: k.get("value") for k in row["response"]["configurationKey"]}
        assert keys == {"HeartbeatInterval": str(server.settings.heartbeat_interval), "MeterValueSampleInterval": "1"}
        assert row["response"]["unknownKey"] == ["Bogus"]

        row = await gateway.send_command("SIM-2", "TriggerMessage", {"requestedMessage": "Heartbeat"})
        assert row["response"] == {"status": "Accepted"}
        row = await gateway.send_command("SIM-2", "DataTransfer", {"vendorId": "com.example"})
        assert row["response"] == {"status": "UnknownVendorId"}

        row = await gateway.send_command("SIM-2", "RemoteStopTransaction", {"transactionId": txs[0]["id"]})
        assert row["response"] == {"status": "Accepted"}

        async def stopped() -> bool:
            return bool((await started())[0]["stop_reason"] == "Remote")

        await eventually(stopped)

        row = await gateway.send_command("SIM-2", "GetDiagnostics", {"location": "ftp://diag.example/"})
        assert row["response"]["fileName"].startswith("diagnostics-SIM-2")

        async def uploaded() -> bool:
            return bool((await http.get("/api/v1/charge-points/SIM-2")).json()["diagnostics_status"] == "Uploaded")

        await eventually(uploaded)

        row = await gateway.send_command("SIM-2", "Reset", {"type": "Soft"})
        assert row["response"] == {"status": "Accepted"}
        await eventually(lambda: _value(cp.stats["boots"] >= 2))
        assert await cp.wait_accepted(10)


async def _value(x: bool) -> bool:
    return x


async def test_offline_transaction_is_replayed_after_reconnecting(server: RunningServer) -> None:
    await server.add_charge_point("SIM-3")
    await server.add_id_tag("MEMBER3")
    async with simulated(server, "SIM-3") as cp, api(server) as http:
        assert await cp.wait_accepted(10)
        assert await cp.authorize("MEMBER3") == "Accepted"  # online: now in the authorization cache
        await cp.set_network(False)
        await eventually(lambda: _value(not cp.connected.is_set()))
        await eventually(lambda: _value("SIM-3" not in server.gateway.connections))

        cp.plug_in(2, Car(battery_wh=30_000, soc=70))
        assert await cp.badge(2, "MEMBER3") == "Accepted"  # offline: from the cache
        tx = cp.connectors[2].transaction
        assert tx is not None
        await eventually(lambda: _value(sum(i.action == "MeterValues" for i in cp._outbox) >= 2))
        cp.stop_transaction(2, reason="Local", id_tag="MEMBER3")
        queued = [item.action for item in cp._outbox if item.persistent]
        assert queued[0] == "StartTransaction" and queued[-1] == "StopTransaction" and "MeterValues" in queued
        assert (await http.get("/api/v1/charge-points/SIM-3/transactions")).json() == []

        await cp.set_network(True)
        assert await cp.wait_accepted(10)
        assert await cp.wait_drained(10)
        assert tx.transaction_id is not None
        txs = (await http.get("/api/v1/charge-points/SIM-3/transactions")).json()
        assert len(txs) == 1 and txs[0]["id"] == tx.transaction_id and txs[0]["meter_stop"] == tx.meter_stop
        values = (await http.get("/api/v1/charge-points/SIM-3/meter-values",
                                 params={"transaction_id": tx.transaction_id})).json()
        periodic = [v for v in values if v["sampled_value"][0]["context"] == "Sample.Periodic"]
        assert len(periodic) >= 2
        assert cp.stats["boots"] == 1  # a lost connection is not a reboot


async def test_pending_registration_is_retried_until_accepted(server: RunningServer) -> None:
    await server.add_charge_point("SIM-4", registration="Pending")
    async with simulated(server, "SIM-4") as cp:
        await eventually(lambda: _value(cp.registration == "Pending"))
        assert not cp.accepted.is_set()
        await server.gateway.set_registration("SIM-4", "Accepted")
        assert await cp.wait_accepted(10)
        assert cp.stats["boots"] >= 2 and cp.heartbeat_interval == server.settings.heartbeat_interval


async def test_firmware_trigger_smart_charging_and_unlock_over_the_wire(server: RunningServer) -> None:
    await server.add_charge_point("SIM-5")
    await server.add_id_tag("MEMBER5")
    gateway = server.gateway
    async with simulated(server, "SIM-5") as cp, api(server) as http:
        assert await cp.wait_accepted(10)
        cp.plug_in(1, Car(battery_wh=30_000, soc=50))
        assert await cp.badge(1, "MEMBER5") == "Accepted"
        tx = cp.connectors[1].transaction
        assert tx is not None
        await asyncio.wait_for(tx.confirmed.wait(), 10)

        profile = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
                   "chargingProfileKind": "Relative", "transactionId": tx.transaction_id,
                   "chargingSchedule": {"chargingRateUnit": "W",
                                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 2000.0}]}}
        row = await gateway.send_command("SIM-5", "SetChargingProfile", {"connectorId": 1,
                                                                         "csChargingProfiles": profile})
        assert row["response"] == {"status": "Accepted"} and cp.connectors[1].power_w == 2000
        row = await gateway.send_command("SIM-5", "GetCompositeSchedule", {"connectorId": 1, "duration": 600})
        assert row["state"] == "answered"
        assert row["response"]["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 2000}]

        row = await gateway.send_command("SIM-5", "TriggerMessage", {"requestedMessage": "MeterValues",
                                                                     "connectorId": 1})
        assert row["response"] == {"status": "Accepted"}

        async def triggered() -> bool:
            values = (await http.get("/api/v1/charge-points/SIM-5/meter-values",
                                     params={"transaction_id": tx.transaction_id})).json()
            return any(s["context"] == "Trigger" for v in values for s in v["sampled_value"])

        await eventually(triggered)

        row = await gateway.send_command("SIM-5", "UnlockConnector", {"connectorId": 1})
        assert row["response"] == {"status": "Unlocked"}

        async def unlocked() -> bool:
            txs = (await http.get("/api/v1/charge-points/SIM-5/transactions")).json()
            return bool(txs and txs[0]["stop_reason"] == "UnlockCommand")

        await eventually(unlocked)
        assert cp.connectors[1].car is None and cp.connectors[1].status == "Available"

        row = await gateway.send_command("SIM-5", "UpdateFirmware", {"location": "https://fw.example/v1.1.bin",
                                                                     "retrieveDate": "2020-01-01T00:00:00Z"})
        assert row["response"] == {}

        async def rebooted_with_new_firmware() -> bool:
            detail = (await http.get("/api/v1/charge-points/SIM-5")).json()
            return bool(detail["firmware_status"] == "Installed" and detail["firmware_version"] == "1.1.0")

        await eventually(rebooted_with_new_firmware)


async def test_several_urls_are_tried_in_turn_when_connecting_fails(server: RunningServer) -> None:
    """Behind a load balancer a charge point may meet any node: given several URLs, a refused
    connection makes it try the next one, and it stays on the one that answered."""
    await server.add_charge_point("SIM-LB")
    gone = f"ws://127.0.0.1:{free_port()}/ocpp"  # nobody listens there
    async with simulated(server, "SIM-LB", url=[gone, server.ws_url]) as cp:
        assert await cp.wait_accepted(10)
        assert cp.stats["connect_failures"] == 1 and cp.url == f"{server.ws_url}/SIM-LB"
        assert cp.urls == [f"{gone}/SIM-LB", f"{server.ws_url}/SIM-LB"]
