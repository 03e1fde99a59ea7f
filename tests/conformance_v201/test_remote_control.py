"""OCA OCPP 2.0.1 conformance, CSMS under test: block F, remote control (part 6, 3.7).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt.
"""

from __future__ import annotations

from typing import Any

from ocpp.v201 import call

from tests.conformance.conftest import Api, now_iso
from tests.conformance_v201.conftest import Transaction, connect
from tests.conftest import RunningServer

CS = "OCTT-CS-201"


async def _history(api: Api, evse_id: int) -> list[tuple[str, bool]]:
    rows = await api.get(f"/api/v1/charge-points/{CS}/status-history")
    return [(r["status"], r["expected"]) for r in reversed(rows) if r["connector_id"] == evse_id]


async def test_TC_F_06_Remote_unlock_Connector_Without_ongoing_transaction_Accepted(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        row = await api.command(CS, "UnlockConnector", {"evseId": 1, "connectorId": 1})
    assert cs.got("UnlockConnector") == [{"evse_id": 1, "connector_id": 1}]
    assert (row["state"], row["response"]) == ("answered", {"status": "Unlocked"})


async def test_TC_F_20_Trigger_message_Heartbeat(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        beats: list[str] = []

        async def beat(requested_message: str, **_: Any) -> None:
            beats.append((await cs.heartbeat()).current_time)

        cs.follow_ups["TriggerMessage"] = beat
        seen_before = (await api.charge_point(CS))["last_seen_at"]
        row = await api.command(CS, "TriggerMessage", {"requestedMessage": "Heartbeat"})
        await cs.settle()
        seen_after = (await api.charge_point(CS))["last_seen_at"]
    assert cs.got("TriggerMessage") == [{"requested_message": "Heartbeat"}]
    assert row["response"] == {"status": "Accepted"} and len(beats) == 1
    assert seen_after > seen_before


async def _trigger_status(server: RunningServer, api: Api, status: str) -> list[tuple[str, bool]]:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        if status != "Available":
            await cs.status(1, status)

        async def report(requested_message: str, evse: dict[str, int], **_: Any) -> None:
            await cs.status(evse["id"], status, evse.get("connector_id", 1))

        cs.follow_ups["TriggerMessage"] = report
        row = await api.command(CS, "TriggerMessage", {"requestedMessage": "StatusNotification",
                                                       "evse": {"id": 1, "connectorId": 1}})
        await cs.settle()
    assert cs.got("TriggerMessage") == [{"requested_message": "StatusNotification",
                                         "evse": {"id": 1, "connector_id": 1}}]
    assert row["response"] == {"status": "Accepted"}
    assert (await api.connector(CS, 1))["status"] == status
    assert await _history(api, 2) == [("Available", True)]  # the other EVSE untouched
    return await _history(api, 1)


async def test_TC_F_23_Trigger_message_StatusNotification_Specific_EVSE_Available(
        server: RunningServer, api: Api) -> None:
    assert [s for s, _ in await _trigger_status(server, api, "Available")] == ["Available", "Available"]


async def test_TC_F_24_Trigger_message_StatusNotification_Specific_EVSE_Occupied(
        server: RunningServer, api: Api) -> None:
    assert [s for s, _ in await _trigger_status(server, api, "Occupied")] == ["Available", "Occupied", "Occupied"]


async def test_TC_F_27_Trigger_message_NotImplemented(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        cs.replies["TriggerMessage"] = {"status": "NotImplemented"}
        row = await api.command(CS, "TriggerMessage", {"requestedMessage": "SignV2GCertificate"})
        await cs.heartbeat()  # the session goes on
    assert (row["state"], row["response"]) == ("answered", {"status": "NotImplemented"})


async def test_TC_F_15_Trigger_message_LogStatusNotification_Idle(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()

        async def log_status(**_: Any) -> None:
            await cs.send(call.LogStatusNotification(status="Idle"))

        cs.follow_ups["TriggerMessage"] = log_status
        row = await api.command(CS, "TriggerMessage", {"requestedMessage": "LogStatusNotification"})
        await cs.settle()
    assert row["response"] == {"status": "Accepted"}
    assert (await api.charge_point(CS))["log_status"] == "Idle"  # stored before it was answered


async def test_TC_F_18_Trigger_message_FirmwareStatusNotification_Idle(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()

        async def firmware_status(**_: Any) -> None:
            await cs.send(call.FirmwareStatusNotification(status="Idle"))

        cs.follow_ups["TriggerMessage"] = firmware_status
        row = await api.command(CS, "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
        await cs.settle()
    assert row["response"] == {"status": "Accepted"}
    assert (await api.charge_point(CS))["firmware_status"] == "Idle"


TOKEN = {"idToken": "OCTT-TOKEN-1", "type": "ISO14443"}


async def _remote_start(server: RunningServer, api: Api, *, plugged: bool, authorize: bool,
                        answer_tx: bool) -> tuple[Transaction, dict[str, Any], list[Any]]:
    """The operator starts a transaction remotely (RequestStartTransaction); the station answers
    Accepted (with its transactionId when one runs already) and goes on as the case says."""
    await server.add_charge_point(CS)
    await server.add_id_tag(TOKEN["idToken"])
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        if plugged:
            await tx.ev_connected_pre_session()
        replies: list[Any] = []

        async def start(remote_start_id: int, id_token: dict[str, str], **_: Any) -> None:
            if authorize:  # AuthorizeRemoteStart is true
                replies.append(await cs.authorize(id_token["id_token"], id_token["type"]))
            reply = await tx.event("RemoteStart", info={"remoteStartId": remote_start_id},
                                   id_token={"idToken": id_token["id_token"], "type": id_token["type"]})
            replies.append(reply.id_token_info)
            tx.authorized = True

        cs.replies["RequestStartTransaction"] = lambda **_: {
            "status": "Accepted", **({"transactionId": tx.id} if answer_tx else {})}
        cs.follow_ups["RequestStartTransaction"] = start
        row = await api.command(CS, "RequestStartTransaction", {"idToken": TOKEN, "remoteStartId": 42, "evseId": 1})
        await cs.settle()
        await tx.energy_transfer_started()
    [sent] = cs.got("RequestStartTransaction")
    assert sent["id_token"] == {"id_token": "OCTT-TOKEN-1", "type": "ISO14443"} and sent["remote_start_id"] == 42
    assert row["response"]["status"] == "Accepted"
    return tx, row, replies


async def _row(api: Api, tx: Transaction) -> dict[str, Any]:
    [row] = [t for t in await api.transactions(CS) if t["station_tx_id"] == tx.id]
    return row


async def test_TC_F_01_Remote_start_transaction_Cable_plugin_first(server: RunningServer, api: Api) -> None:
    tx, command, replies = await _remote_start(server, api, plugged=True, authorize=False, answer_tx=True)
    assert command["response"] == {"status": "Accepted", "transactionId": tx.id}
    assert [r["status"] for r in replies] == ["Accepted"]
    row = await _row(api, tx)
    assert (row["id_tag"], row["id_tag_status"], row["stopped_at"]) == ("OCTT-TOKEN-1", "Accepted", None)


async def test_TC_F_02_Remote_start_transaction_Remote_start_first_AuthorizeRemoteStart_is_true(
        server: RunningServer, api: Api) -> None:
    tx, command, replies = await _remote_start(server, api, plugged=False, authorize=True, answer_tx=False)
    assert command["response"] == {"status": "Accepted"}
    assert [r["status"] for r in replies] == ["Accepted", "Accepted"]  # Authorize, then the Started
    assert (await _row(api, tx))["id_tag"] == "OCTT-TOKEN-1"


async def test_TC_F_03_Remote_start_transaction_Remote_start_first_AuthorizeRemoteStart_is_false(
        server: RunningServer, api: Api) -> None:
    tx, _, replies = await _remote_start(server, api, plugged=False, authorize=False, answer_tx=False)
    assert [r["status"] for r in replies] == ["Accepted"]
    assert (await _row(api, tx))["stopped_at"] is None


async def test_TC_F_04_Remote_start_transaction_Remote_start_first_Cable_plugin_timeout(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    await server.add_id_tag(TOKEN["idToken"])
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()

        async def start(remote_start_id: int, **_: Any) -> None:
            await tx.event("RemoteStart", info={"remoteStartId": remote_start_id}, id_token=TOKEN)

        cs.follow_ups["RequestStartTransaction"] = start
        row = await api.command(CS, "RequestStartTransaction", {"idToken": TOKEN, "remoteStartId": 43})
        await cs.settle()
        timeout = await tx.event("EVConnectTimeout")  # no cable within EVConnectionTimeOut
    assert row["response"] == {"status": "Accepted"} and timeout.id_token_info is None
    assert (await _row(api, tx))["id_tag"] == "OCTT-TOKEN-1"


async def _trigger_meter_values(server: RunningServer, api: Api, evse: dict[str, int] | None) -> list[Any]:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)

        async def report(**_: Any) -> None:
            for evse_id in [evse["id"]] if evse else [1, 2]:
                await cs.send(call.MeterValues(evse_id=evse_id, meter_value=[{"timestamp": now_iso(), "sampledValue": [
                    {"value": 100.0 * evse_id, "context": "Trigger", "measurand": "Energy.Active.Import.Register"}]}]))

        cs.follow_ups["TriggerMessage"] = report
        payload: dict[str, Any] = {"requestedMessage": "MeterValues", **({"evse": evse} if evse else {})}
        row = await api.command(CS, "TriggerMessage", payload)
        await cs.settle()
    assert row["response"] == {"status": "Accepted"}
    assert cs.got("TriggerMessage")[0]["requested_message"] == "MeterValues"
    stored = await api.get(f"/api/v1/charge-points/{CS}/meter-values")
    return sorted((r["connector_id"], r["sampled_value"][0]["value"], r["sampled_value"][0]["context"])
                  for r in stored)


async def test_TC_F_11_Trigger_message_MeterValues_Specific_EVSE(server: RunningServer, api: Api) -> None:
    assert await _trigger_meter_values(server, api, {"id": 1}) == [(1, "100", "Trigger")]


async def test_TC_F_12_Trigger_message_MeterValues_All_EVSE(server: RunningServer, api: Api) -> None:
    assert await _trigger_meter_values(server, api, None) == [(1, "100", "Trigger"), (2, "200", "Trigger")]


async def _trigger_transaction_event(server: RunningServer, api: Api, evse: dict[str, int] | None) -> None:
    await server.add_charge_point(CS)
    await server.add_id_tag(TOKEN["idToken"])
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        await tx.energy_transfer_started()

        async def report(**_: Any) -> None:
            await tx.event("Trigger", charging_state="Charging", evse=True, meter_value=[{
                "timestamp": now_iso(), "sampledValue": [{"value": 1234.0, "context": "Trigger",
                                                          "measurand": "Energy.Active.Import.Register"}]}])

        cs.follow_ups["TriggerMessage"] = report
        payload: dict[str, Any] = {"requestedMessage": "TransactionEvent", **({"evse": evse} if evse else {})}
        row = await api.command(CS, "TriggerMessage", payload)
        await cs.settle()
    assert row["response"] == {"status": "Accepted"}
    tx_id = (await _row(api, tx))["id"]
    values = await api.get(f"/api/v1/charge-points/{CS}/meter-values?transaction_id={tx_id}")
    assert [(s["value"], s["context"]) for v in values for s in v["sampled_value"]] == [("1234", "Trigger")]


async def test_TC_F_13_Trigger_message_TransactionEvent_Specific_EVSE(server: RunningServer, api: Api) -> None:
    await _trigger_transaction_event(server, api, {"id": 1})


async def test_TC_F_14_Trigger_message_TransactionEvent_All_EVSE(server: RunningServer, api: Api) -> None:
    await _trigger_transaction_event(server, api, None)
