"""OCPP 2.0.1 beside 1.6 at the gateway (issue 16, phase 1), over real WebSockets, on SQLite and
PostgreSQL: subprotocol negotiation under the ``ocpp_versions`` setting, the B provisioning
handlers (BootNotification, Heartbeat, StatusNotification per EVSE and connector),
SecurityEventNotification and DataTransfer, the version recorded per charge point and per
connection with its change a security event, NotImplemented for what is not wired yet, and the
2.0.1 CallError codes for hostile frames."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from sqlalchemy import Connection, select

from tests.conftest import RunningServer, basic_auth, free_port, start_server
from voltlib.config import Settings
from voltlib.gateway.datatransfer import DataTransferAnswer
from voltlib.store.tables import connector_status_history, ocpp_messages

BOTH = ["1.6", "2.0.1"]
BOOT = {"chargingStation": {"vendorName": "Bolloré Mobility Charging Systems Europe", "model": "AL2",
                            "serialNumber": "SN-201", "firmwareVersion": "2.0.1-r7",
                            "modem": {"iccid": "8933", "imsi": "20801"}},
        "reason": "PowerUp"}
BOOT_16 = {"chargePointVendor": "Bolloré", "chargePointModel": "AL1"}


def now_text() -> str:
    return datetime.now(UTC).isoformat()


class Station:
    """A minimal charging station: sends calls, returns the decoded answer."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        await self.ws.send(json.dumps([2, f"m{next(self._ids)}-{uuid.uuid4().hex[:8]}", action, payload]))
        return await self.recv()

    async def raw(self, text: str) -> list[Any]:
        await self.ws.send(text)
        return await self.recv()

    async def recv(self) -> list[Any]:
        return list(json.loads(await asyncio.wait_for(self.ws.recv(), 10)))


@asynccontextmanager
async def connect(server: RunningServer, cp_id: str, subprotocols: list[str] | None = None) -> AsyncIterator[Station]:
    async with websockets.connect(f"{server.ws_url}/{cp_id}", subprotocols=subprotocols or ["ocpp2.0.1"],
                                  additional_headers=basic_auth(cp_id), open_timeout=10) as ws:
        assert ws.subprotocol in (subprotocols or ["ocpp2.0.1"])
        yield Station(ws)


@pytest_asyncio.fixture
async def server201(database_url: str) -> AsyncIterator[RunningServer]:
    """voltlib with 2.0.1 enabled beside 1.6."""
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        duplicate_probe_timeout=1.0, ocpp_versions=BOTH)
    runner, running = await start_server(settings)
    try:
        yield running
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)


async def api(server: RunningServer, method: str, path: str) -> Any:
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=15) as client:
        response = await client.request(method, path)
        assert response.status_code == 200, response.text
        return response.json()


async def events(server: RunningServer, cp_id: str) -> list[dict[str, Any]]:
    return [e for e in await api(server, "GET", "/api/v1/security-events") if e["charge_point_id"] == cp_id]


async def offered_answer(server: RunningServer, cp_id: str, subprotocols: list[str]) -> str | None:
    async with websockets.connect(f"{server.ws_url}/{cp_id}", subprotocols=subprotocols,
                                  additional_headers=basic_auth(cp_id), open_timeout=10) as ws:
        if ws.subprotocol is None:  # refused the OCPP-J way: handshake without a subprotocol, then 1002
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1002
        return ws.subprotocol


# -- negotiation --------------------------------------------------------------------------------


async def test_negotiation_prefers_2_0_1_and_still_speaks_1_6(server201: RunningServer) -> None:
    await server201.add_charge_point("CP-N")
    assert await offered_answer(server201, "CP-N", ["ocpp2.0.1"]) == "ocpp2.0.1"
    assert await offered_answer(server201, "CP-N", ["ocpp1.6", "ocpp2.0.1"]) == "ocpp2.0.1"  # whatever the order
    assert await offered_answer(server201, "CP-N", ["ocpp1.6"]) == "ocpp1.6"
    assert await offered_answer(server201, "CP-N", ["ocpp2.0"]) is None


async def test_without_2_0_1_in_the_setting_2_0_1_is_refused(database_url: str) -> None:
    assert Settings().ocpp_versions == ["1.6", "2.0.1"]  # the default: one network, both versions
    settings = Settings(database_url=database_url, port=free_port(), ocpp_versions=["1.6"])  # an operator's choice
    runner, server = await start_server(settings)
    try:
        await only_1_6(server)
    finally:
        await runner.cleanup()


async def only_1_6(server: RunningServer) -> None:
    await server.add_charge_point("CP-N")
    assert await offered_answer(server, "CP-N", ["ocpp2.0.1"]) is None
    assert await offered_answer(server, "CP-N", ["ocpp2.0.1", "ocpp1.6"]) == "ocpp1.6"
    refusal = next(e for e in await events(server, "CP-N") if e["kind"] == "no_subprotocol")
    assert refusal["detail"]["supported"] == ["ocpp1.6"]


# -- B provisioning -------------------------------------------------------------------------------


async def test_boot_heartbeat_and_status_per_evse_are_stored(server201: RunningServer) -> None:
    await server201.add_charge_point("CP-B")
    async with connect(server201, "CP-B") as station:
        boot = await station.call("BootNotification", BOOT)
        assert boot[0] == 3 and boot[2]["status"] == "Accepted"
        assert boot[2]["interval"] == server201.settings.heartbeat_interval
        assert datetime.fromisoformat(boot[2]["currentTime"].replace("Z", "+00:00")).tzinfo is not None
        beat = await station.call("Heartbeat", {})
        assert beat[0] == 3 and set(beat[2]) == {"currentTime"}
        for evse, connector, status in ((1, 1, "Available"), (2, 1, "Occupied"), (2, 2, "Unavailable")):
            reply = await station.call("StatusNotification", {"timestamp": now_text(), "connectorStatus": status,
                                                              "evseId": evse, "connectorId": connector})
            assert reply == [3, reply[1], {}]
        detail = await api(server201, "GET", "/api/v1/charge-points/CP-B")
        assert detail["connection_ocpp_version"] == "2.0.1"
    assert detail["ocpp_version"] == "2.0.1"
    assert detail["vendor"] == "Bolloré Mobility Cha" and detail["model"] == "AL2"  # the column keeps 20
    assert (detail["serial_number"], detail["firmware_version"]) == ("SN-201", "2.0.1-r7")
    assert (detail["iccid"], detail["imsi"]) == ("8933", "20801")
    # the EVSE is the connector row; its plug last reported is evse_connector_id
    rows = {c["connector_id"]: c for c in detail["connectors"]}
    assert set(rows) == {1, 2}
    assert (rows[1]["status"], rows[1]["evse_connector_id"]) == ("Available", 1)
    assert (rows[2]["status"], rows[2]["evse_connector_id"], rows[2]["error_code"]) == ("Unavailable", 2, "NoError")

    def history(conn: Connection) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in conn.execute(
            select(connector_status_history.c.connector_id, connector_status_history.c.evse_connector_id,
                   connector_status_history.c.status, connector_status_history.c.expected)
            .where(connector_status_history.c.charge_point_id == "CP-B").order_by(connector_status_history.c.id))]

    assert await server201.store.read(history) == [(1, 1, "Available", True), (2, 1, "Occupied", True),
                                                   (2, 2, "Unavailable", True)]


@pytest.mark.parametrize("registration", ["Pending", "Rejected"])
async def test_boot_answers_the_registration_and_only_boot_is_accepted_before(
        server201: RunningServer, registration: str) -> None:
    await server201.add_charge_point("CP-P", registration=registration)
    async with connect(server201, "CP-P") as station:
        boot = await station.call("BootNotification", BOOT)
        assert (boot[2]["status"], boot[2]["interval"]) == (registration, server201.settings.pending_retry_interval)
        beat = await station.call("Heartbeat", {})
        assert beat[0] == 4 and beat[2] == "SecurityError"  # B02.FR.09 / B03.FR.07


async def test_security_event_and_data_transfer_take_the_1_6_paths(server201: RunningServer) -> None:
    seen: list[tuple[str, str | None, str | None]] = []

    async def handler(cp_id: str, message_id: str | None, data: str | None) -> DataTransferAnswer:
        seen.append((cp_id, message_id, data))
        return DataTransferAnswer("Accepted", "ok")

    server201.gateway.services.data_transfer.register("com.voltlib.test", handler)
    await server201.add_charge_point("CP-S")
    async with connect(server201, "CP-S") as station:
        assert (await station.call("BootNotification", BOOT))[2]["status"] == "Accepted"
        reply = await station.call("SecurityEventNotification", {"type": "TamperDetectionActivated",
                                                                 "timestamp": now_text(), "techInfo": "door"})
        assert reply == [3, reply[1], {}]
        reply = await station.call("DataTransfer", {"vendorId": "com.voltlib.test", "messageId": "soc",
                                                    "data": {"soc": 80}})
        assert reply[2] == {"status": "Accepted", "data": "ok"}
        reply = await station.call("DataTransfer", {"vendorId": "com.other"})
        assert reply[2] == {"status": "UnknownVendorId"}
    assert seen == [("CP-S", "soc", '{"soc":80}')]
    await server201.settled()
    tamper = next(e for e in await events(server201, "CP-S") if e["kind"] == "charge_point:TamperDetectionActivated")
    assert tamper["severity"] == "critical" and tamper["detail"]["techInfo"] == "door"
    alerts = await api(server201, "GET", "/api/v1/security/alerts")
    assert sorted(a["kind"] for a in alerts if a["charge_point_id"] == "CP-S") == [
        "data_transfer_unknown_vendor", "tamper_detected"]  # the detectors of 1.6, unchanged


# -- the version, per charge point and per connection ---------------------------------------------


async def test_a_change_of_version_is_recorded_and_alerted(server201: RunningServer) -> None:
    await server201.add_charge_point("CP-V")
    async with connect(server201, "CP-V", ["ocpp1.6"]) as station:
        assert (await station.call("BootNotification", BOOT_16))[2]["status"] == "Accepted"
        assert (await api(server201, "GET", "/api/v1/charge-points/CP-V"))["connection_ocpp_version"] == "1.6"
    async with connect(server201, "CP-V", ["ocpp1.6"]) as station:  # the same version again: nothing to say
        assert (await station.call("Heartbeat", {}))[0] == 3
    assert "ocpp_version_changed" not in [e["kind"] for e in await events(server201, "CP-V")]
    async with connect(server201, "CP-V") as station:
        assert (await station.call("BootNotification", BOOT))[2]["status"] == "Accepted"
        detail = await api(server201, "GET", "/api/v1/charge-points/CP-V")
        assert (detail["ocpp_version"], detail["connection_ocpp_version"]) == ("2.0.1", "2.0.1")
    changed = [e for e in await events(server201, "CP-V") if e["kind"] == "ocpp_version_changed"]
    assert [(e["severity"], e["detail"]) for e in changed] == [("warning", {"from": "1.6", "to": "2.0.1"})]
    await server201.settled()
    alerts = await api(server201, "GET", "/api/v1/security/alerts")
    alert = next(a for a in alerts if a["kind"] == "ocpp_version_changed")
    assert alert["charge_point_id"] == "CP-V" and alert["severity"] == "warning"
    listed = next(r for r in await api(server201, "GET", "/api/v1/charge-points") if r["id"] == "CP-V")
    assert listed["ocpp_version"] == "2.0.1"


# -- not wired yet, and hostile frames ------------------------------------------------------------


async def test_a_call_not_typed_yet_is_answered_not_supported_and_recorded(server201: RunningServer) -> None:
    """Every typed 2.0.1 request has its handler now; a 2.0.1 action voltlib does not type yet (a
    local controller's PublishFirmwareStatusNotification, here) is NotSupported, recorded in the raw
    log, and the session goes on."""
    await server201.add_charge_point("CP-I")
    async with connect(server201, "CP-I") as station:
        assert (await station.call("BootNotification", BOOT))[2]["status"] == "Accepted"
        reply = await station.call("PublishFirmwareStatusNotification", {"status": "Idle"})
        assert reply[0] == 4 and reply[2] == "NotSupported"
        assert (await station.call("Heartbeat", {}))[0] == 3  # the session goes on

    def logged(conn: Connection) -> list[Any]:
        return [r[0] for r in conn.execute(select(ocpp_messages.c.action).where(
            ocpp_messages.c.charge_point_id == "CP-I", ocpp_messages.c.action == "PublishFirmwareStatusNotification"))]

    await server201.gateway.services.store.write(lambda conn: None)  # the raw log goes with the next commit
    assert await server201.store.read(logged) == ["PublishFirmwareStatusNotification"]


async def test_hostile_frames_get_the_2_0_1_codes(server201: RunningServer) -> None:
    await server201.add_charge_point("CP-H")
    async with connect(server201, "CP-H") as station:
        assert (await station.call("BootNotification", BOOT))[2]["status"] == "Accepted"
        cases = [
            ('[2, "h1", "BootNotification", {"reason": "PowerUp"}]', "OccurrenceConstraintViolation"),
            ('[2, "h2", "Heartbeat", {"unexpected": 1}]', "FormatViolation"),  # not 1.6's FormationViolation
            ('[2, "h3", "StatusNotification", {"timestamp": "now", "connectorStatus": "Available", '
             '"evseId": 1, "connectorId": 1}]', "TypeConstraintViolation"),
            ('[2, "h4", "StatusNotification", {"timestamp": "2026-12-07T05:00:00Z", "connectorStatus": "Open", '
             '"evseId": 1, "connectorId": 1}]', "PropertyConstraintViolation"),
            ('[2, "h5", "StatusNotification", {"timestamp": "2026-12-07T05:00:00Z", '
             '"connectorStatus": "Available", "evseId": "one", "connectorId": 1}]', "TypeConstraintViolation"),
            ('[7, "h6", "Heartbeat", {}]', "MessageTypeNotSupported"),
            ('[2, "h7", "Heartbeat"]', "RpcFrameworkError"),
            ('[2, "h8", "NoSuchAction", {}]', "NotImplemented"),
        ]
        got = []
        for frame, _ in cases:
            reply = await station.raw(frame)
            got.append(reply[2] if reply[0] == 4 else reply)
        assert got == [code for _, code in cases]
        assert (await station.call("Heartbeat", {}))[0] == 3  # never a crash, nor a hang
    await server201.settled()
    violations = [e for e in await events(server201, "CP-H") if e["kind"] == "protocol_violation"]
    assert violations and violations[0]["detail"]["code"] == "OccurrenceConstraintViolation"  # 2.0.1's spelling
