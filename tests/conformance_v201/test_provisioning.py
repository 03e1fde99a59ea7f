"""OCA OCPP 2.0.1 conformance, CSMS under test: block B, provisioning (part 6, 3.3).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt. The operator's
"manual actions" are voltlib's API: raw commands in the station's own OCPP version
(``POST /api/v1/charge-points/{id}/commands/{action}``) and the registration endpoint.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from ocpp.exceptions import SecurityError

from tests.conformance.conftest import Api, now_iso, parse_ts
from tests.conformance_v201.conftest import Station, connect
from tests.conftest import RunningServer

CS = "OCTT-CS-201"


async def _history(api: Api, evse_id: int) -> list[str]:
    rows = await api.get(f"/api/v1/charge-points/{CS}/status-history")
    return [r["status"] for r in reversed(rows) if r["connector_id"] == evse_id]


async def test_TC_B_01_Cold_Boot_Charging_Station_Accepted(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    before = now_iso()
    async with connect(server, CS) as cs:
        boot = await cs.boot(vendor="OCTT", model="Cold-201", serialNumber="SN-201", firmwareVersion="2.0.1-a")
        assert boot.status == "Accepted"
        assert boot.interval == server.settings.heartbeat_interval > 0
        assert abs(parse_ts(boot.current_time) - parse_ts(before)) < timedelta(seconds=5)
        for evse_id in (1, 2):
            await cs.status(evse_id, "Available")
        beat = await cs.heartbeat()
        assert abs(parse_ts(beat.current_time) - parse_ts(before)) < timedelta(seconds=5)
        detail = await api.charge_point(CS)
    assert (detail["registration"], detail["ocpp_version"], detail["connected"]) == ("Accepted", "2.0.1", True)
    assert (detail["vendor"], detail["model"], detail["serial_number"], detail["firmware_version"]) == \
        ("OCTT", "Cold-201", "SN-201", "2.0.1-a")
    assert [(c["connector_id"], c["evse_connector_id"], c["status"]) for c in detail["connectors"]] == \
        [(1, 1, "Available"), (2, 1, "Available")]


async def test_TC_B_02_Cold_Boot_Charging_Station_Pending(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS, registration="Pending")
    async with connect(server, CS) as cs:
        first = await cs.boot()
        assert first.status == "Pending" and first.interval > 0
        # during the interval the CSMS may read the station (B06) before accepting it
        read = await api.command(CS, "GetVariables", {"getVariableData": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}}]})
        assert read["response"]["getVariableResult"][0]["attributeValue"] == "60"
        accepted = await api.http.post(f"/api/v1/charge-points/{CS}/registration", json={"registration": "Accepted"})
        assert accepted.status_code == 200, accepted.text
        second = await cs.boot()
        assert second.status == "Accepted" and second.interval == server.settings.heartbeat_interval
        await cs.status(1, "Available")
    assert (await api.charge_point(CS))["registration"] == "Accepted"
    assert await _history(api, 1) == ["Available"]


@pytest.mark.parametrize("registration", ["Pending", "Rejected"])
async def test_TC_B_30_Cold_Boot_Charging_Station_Pending_Rejected_SecurityError(
        server: RunningServer, api: Api, registration: str) -> None:
    await server.add_charge_point(CS, registration=registration)
    async with connect(server, CS) as cs:
        assert (await cs.boot()).status == registration
        with pytest.raises(SecurityError):
            await cs.status(1, "Available")
        with pytest.raises(SecurityError):
            await cs.heartbeat()
    assert await _history(api, 1) == []  # nothing of it stored
    assert (await api.charge_point(CS))["connectors"] == []


async def test_TC_B_31_Cold_Boot_Charging_Station_Pending_Rejected_TriggerMessage(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS, registration="Pending")
    async with connect(server, CS) as cs:
        assert (await cs.boot()).status == "Pending"
        booted: list[str] = []

        async def boot_again(requested_message: str, **_: Any) -> None:
            if requested_message == "BootNotification":
                reply = await cs.boot(reason="Triggered")
                booted.append(reply.status)
                await cs.status(1, "Available")

        cs.follow_ups["TriggerMessage"] = boot_again
        response = await api.http.post(f"/api/v1/charge-points/{CS}/registration", json={"registration": "Accepted"})
        assert response.status_code == 200
        row = await api.command(CS, "TriggerMessage", {"requestedMessage": "BootNotification"})
        await cs.settle()
    assert row["response"] == {"status": "Accepted"}
    assert cs.got("TriggerMessage") == [{"requested_message": "BootNotification"}]
    assert booted == ["Accepted"]  # before the Pending interval ran out
    assert await _history(api, 1) == ["Available"]


async def _model(server: RunningServer, api: Api) -> dict[tuple[str, str], str | None]:
    """The device model voltlib stores for the station (after the answers it follows are applied)."""
    await server.settled()
    return {(r["component"], r["variable"]): r["value"]
            for r in await api.get(f"/api/v1/charge-points/{CS}/device-model")}


def _get(*names: tuple[str, str]) -> dict[str, Any]:
    return {"getVariableData": [{"component": {"name": c}, "variable": {"name": v}} for c, v in names]}


async def test_TC_B_06_Get_Variables_single_value(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        row = await api.command(CS, "GetVariables", _get(("OCPPCommCtrlr", "OfflineThreshold")))
    [sent] = cs.got("GetVariables")
    [data] = sent["get_variable_data"]
    assert data["component"] == {"name": "OCPPCommCtrlr"} and data["variable"] == {"name": "OfflineThreshold"}
    assert data.get("attribute_type", "Actual") in ("Actual", "Target", "MinSet", "MaxSet")
    assert row["state"] == "answered"
    assert row["response"]["getVariableResult"] == [{
        "attributeStatus": "Accepted", "attributeType": "Actual", "attributeValue": "60",
        "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}}]
    assert await _model(server, api) == {("OCPPCommCtrlr", "OfflineThreshold"): "60"}  # what voltlib read


async def test_TC_B_07_Get_Variables_multiple_values(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        row = await api.command(CS, "GetVariables", _get(("OCPPCommCtrlr", "OfflineThreshold"),
                                                         ("AuthCtrlr", "AuthorizeRemoteStart")))
    [sent] = cs.got("GetVariables")
    assert [(d["component"]["name"], d["variable"]["name"]) for d in sent["get_variable_data"]] == \
        [("OCPPCommCtrlr", "OfflineThreshold"), ("AuthCtrlr", "AuthorizeRemoteStart")]
    assert [(r["variable"]["name"], r["attributeStatus"], r["attributeValue"])
            for r in row["response"]["getVariableResult"]] == \
        [("OfflineThreshold", "Accepted", "60"), ("AuthorizeRemoteStart", "Accepted", "false")]
    assert await _model(server, api) == {("OCPPCommCtrlr", "OfflineThreshold"): "60",
                                         ("AuthCtrlr", "AuthorizeRemoteStart"): "false"}


def _set(*items: tuple[str, str, str]) -> dict[str, Any]:
    return {"setVariableData": [{"component": {"name": c}, "variable": {"name": v}, "attributeValue": value}
                                for c, v, value in items]}


async def test_TC_B_09_Set_Variables_single_value(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        row = await api.command(CS, "SetVariables", _set(("OCPPCommCtrlr", "OfflineThreshold", "123")))
        again = await api.command(CS, "GetVariables", _get(("OCPPCommCtrlr", "OfflineThreshold")))
    [sent] = cs.got("SetVariables")
    [data] = sent["set_variable_data"]
    assert (data["component"]["name"], data["variable"]["name"], data["attribute_value"]) == \
        ("OCPPCommCtrlr", "OfflineThreshold", "123")
    assert data.get("attribute_type", "Actual") == "Actual"
    assert [r["attributeStatus"] for r in row["response"]["setVariableResult"]] == ["Accepted"]
    assert cs.variables[("OCPPCommCtrlr", "OfflineThreshold")] == "123"
    assert again["response"]["getVariableResult"][0]["attributeValue"] == "123"
    assert await _model(server, api) == {("OCPPCommCtrlr", "OfflineThreshold"): "123"}


async def test_TC_B_10_Set_Variables_multiple_values(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        row = await api.command(CS, "SetVariables", _set(("OCPPCommCtrlr", "OfflineThreshold", "123"),
                                                         ("AuthCtrlr", "AuthorizeRemoteStart", "false")))
    [sent] = cs.got("SetVariables")
    assert [(d["component"]["name"], d["variable"]["name"], d["attribute_value"])
            for d in sent["set_variable_data"]] == \
        [("OCPPCommCtrlr", "OfflineThreshold", "123"), ("AuthCtrlr", "AuthorizeRemoteStart", "false")]
    assert [(r["variable"]["name"], r["attributeStatus"]) for r in row["response"]["setVariableResult"]] == \
        [("OfflineThreshold", "Accepted"), ("AuthorizeRemoteStart", "Accepted")]
    assert await _model(server, api) == {("OCPPCommCtrlr", "OfflineThreshold"): "123",
                                         ("AuthCtrlr", "AuthorizeRemoteStart"): "false"}


async def test_TC_B_12_Get_Base_Report_ConfigurationInventory(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()

        async def report(request_id: int, report_base: str, **_: Any) -> None:
            await cs.report(request_id, full=report_base == "FullInventory")

        cs.follow_ups["GetBaseReport"] = report
        row = await api.command(CS, "GetBaseReport", {"requestId": 17, "reportBase": "ConfigurationInventory"})
        await cs.settle()
    assert cs.got("GetBaseReport") == [{"request_id": 17, "report_base": "ConfigurationInventory"}]
    assert row["response"] == {"status": "Accepted"}
    rows = await api.get(f"/api/v1/charge-points/{CS}/device-model")
    assert {r["request_id"] for r in rows} == {17} and {r["mutability"] for r in rows} == {"ReadWrite"}
    assert await _model(server, api) == cs.variables


async def test_TC_B_13_Get_Base_Report_FullInventory(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()

        async def report(request_id: int, report_base: str, **_: Any) -> None:
            await cs.report(request_id, full=report_base == "FullInventory", parts=3)

        cs.follow_ups["GetBaseReport"] = report
        response = await api.http.post(f"/api/v1/charge-points/{CS}/device-model/refresh")  # the operator's button
        assert response.status_code == 200, response.text
        await cs.settle()
    [sent] = cs.got("GetBaseReport")
    assert sent["report_base"] == "FullInventory" and sent["request_id"] == response.json()["request_id"] >= 0
    assert await _model(server, api) == {**cs.variables, ("ChargingStation", "Model"): "OCTT-201",
                                         ("ChargingStation", "VendorName"): "OCTT"}


async def _reboot(server: RunningServer, api: Api, cs: Station, reason: str) -> None:
    """The station restarts after a Reset: a new connection, BootNotification, its connectors."""
    async with connect(server, CS, station=cs):
        boot = await cs.boot(reason=reason)
        assert boot.status == "Accepted"
        await cs.status(1, "Available")


async def test_TC_B_20_Reset_Charging_Station_Without_ongoing_transaction_OnIdle(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        first_boot = (await api.charge_point(CS))["last_boot_at"]
        row = await api.command(CS, "Reset", {"type": "OnIdle"})
    assert cs.got("Reset") == [{"type": "OnIdle"}]
    assert row["response"] == {"status": "Accepted"}
    await _reboot(server, api, cs, "RemoteReset")
    detail = await api.charge_point(CS)
    assert detail["last_boot_at"] > first_boot and detail["registration"] == "Accepted"
    assert await _history(api, 1) == ["Available", "Available"]


async def test_TC_B_25_Reset_EVSE_Without_ongoing_transaction(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        row = await api.command(CS, "Reset", {"type": "OnIdle", "evseId": 1})
    assert cs.got("Reset") == [{"type": "OnIdle", "evse_id": 1}]
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})


PROFILE = {"configurationSlot": 1, "connectionData": {
    "messageTimeout": 30, "ocppCsmsUrl": "wss://csms.example.com/ocpp", "ocppInterface": "Wired0",
    "ocppTransport": "JSON", "ocppVersion": "OCPP20", "securityProfile": 1}}


async def test_TC_B_42_Set_new_NetworkConnectionProfile_Accepted(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        row = await api.command(CS, "SetNetworkProfile", PROFILE)
    [sent] = cs.got("SetNetworkProfile")
    assert sent["configuration_slot"] == 1
    assert sent["connection_data"] == {"message_timeout": 30, "ocpp_csms_url": "wss://csms.example.com/ocpp",
                                       "ocpp_interface": "Wired0", "ocpp_transport": "JSON",
                                       "ocpp_version": "OCPP20", "security_profile": 1}
    assert row["response"] == {"status": "Accepted"}


async def test_TC_B_44_Set_new_NetworkConnectionProfile_Failed(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        cs.replies["SetNetworkProfile"] = {"status": "Failed"}
        row = await api.command(CS, "SetNetworkProfile", PROFILE)
        await cs.heartbeat()  # the session goes on
    assert (row["state"], row["response"]) == ("answered", {"status": "Failed"})
    assert (await api.charge_point(CS))["connected"] is False


async def _reset_while_charging(server: RunningServer, api: Api, payload: dict[str, Any], answer: str,
                                ) -> tuple[Station, dict[str, Any], str]:
    """State EnergyTransferStarted, then the operator's Reset; the station answers ``answer`` and
    ends its transaction as the case says (OnIdle: after the driver stops; Immediate: at once).
    Returns the station, the command row and the station's transactionId."""
    await server.add_charge_point(CS)
    await server.add_id_tag("OCTT-TOKEN-1")
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        await tx.energy_transfer_started()
        cs.replies["Reset"] = {"status": answer}
        row = await api.command(CS, "Reset", payload)
        if payload["type"] == "OnIdle":
            await tx.stop_authorized()
            await tx.event("EVCommunicationLost", "Ended", charging_state="Idle", stopped_reason="EVDisconnected")
        else:
            await tx.event("ResetCommand", "Ended", charging_state="EVConnected", stopped_reason="ImmediateReset")
    assert cs.got("Reset") == [{_snake_key(k): v for k, v in payload.items()}]
    assert row["response"] == {"status": answer}
    return cs, row, tx.id


def _snake_key(key: str) -> str:
    return {"evseId": "evse_id"}.get(key, key)


async def _stopped(api: Api, station_tx_id: str, reason: str) -> None:
    [row] = [t for t in await api.transactions(CS) if t["station_tx_id"] == station_tx_id]
    assert row["stopped_at"] is not None and row["stop_reason"] == reason, row


async def test_TC_B_21_Reset_Charging_Station_With_Ongoing_Transaction_OnIdle(
        server: RunningServer, api: Api) -> None:
    cs, _, tx_id = await _reset_while_charging(server, api, {"type": "OnIdle"}, "Scheduled")
    await _stopped(api, tx_id, "EVDisconnected")
    await _reboot(server, api, cs, "ScheduledReset")
    assert (await api.connector(CS, 1))["status"] == "Available"


async def test_TC_B_22_Reset_Charging_Station_With_Ongoing_Transaction_Immediate(
        server: RunningServer, api: Api) -> None:
    cs, _, tx_id = await _reset_while_charging(server, api, {"type": "Immediate"}, "Accepted")
    await _stopped(api, tx_id, "ImmediateReset")
    async with connect(server, CS, station=cs):
        assert (await cs.boot(reason="RemoteReset")).status == "Accepted"
        await cs.status(1, "Occupied")  # the car is still plugged in
    assert (await api.connector(CS, 1))["status"] == "Occupied"


async def test_TC_B_26_Reset_EVSE_With_Ongoing_Transaction_OnIdle(server: RunningServer, api: Api) -> None:
    _, _, tx_id = await _reset_while_charging(server, api, {"type": "OnIdle", "evseId": 1}, "Scheduled")
    await _stopped(api, tx_id, "EVDisconnected")


async def test_TC_B_27_Reset_EVSE_With_Ongoing_Transaction_Immediate(server: RunningServer, api: Api) -> None:
    _, _, tx_id = await _reset_while_charging(server, api, {"type": "Immediate", "evseId": 1}, "Accepted")
    await _stopped(api, tx_id, "ImmediateReset")
