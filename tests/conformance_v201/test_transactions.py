"""OCA OCPP 2.0.1 conformance, CSMS under test: block E, transactions (part 6, 3.6).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt. The station's
transaction (:class:`tests.conformance_v201.conftest.Transaction`) walks the reusable states of the
OCTT document; the tests check what voltlib answers and what it stores: the transaction row under
the station's transactionId, its id tag, meter start and stop, stop reason, and the meter values.
"""

from __future__ import annotations

from typing import Any

from tests.conformance.conftest import Api, now_iso
from tests.conformance_v201.conftest import Station, Transaction, connect
from tests.conftest import RunningServer

CS = "OCTT-CS-201"
TOKEN = "OCTT-TOKEN-1"
INVALID = ("OCTT-UNKNOWN-9", "ISO14443")


async def tx_row(api: Api, tx: Transaction) -> dict[str, Any]:
    """voltlib's row of the station's transaction."""
    [row] = [t for t in await api.transactions(CS) if t["station_tx_id"] == tx.id]
    return row


async def online(server: RunningServer) -> None:
    await server.add_charge_point(CS)
    await server.add_id_tag(TOKEN)


def register(wh: float, context: str, **sample: Any) -> list[dict[str, Any]]:
    """One meter value: the energy register in Wh."""
    return [{"timestamp": now_iso(), "sampledValue": [{
        "value": wh, "context": context, "measurand": "Energy.Active.Import.Register",
        "unitOfMeasure": {"unit": "Wh"}, **sample}]}]


async def ended(api: Api, tx: Transaction, reason: str) -> dict[str, Any]:
    row = await tx_row(api, tx)
    assert row["stopped_at"] is not None and row["stop_reason"] == reason, row
    return row


async def charging(cs: Station) -> Transaction:
    """State EnergyTransferStarted (authorized first, then the cable)."""
    tx = cs.transaction()
    await tx.energy_transfer_started()
    return tx


async def test_TC_E_01_Start_transaction_options_PowerPathClosed(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        assert (await cs.authorize())["status"] == "Accepted"
        await cs.status(1, "Occupied")
        tx = cs.transaction()
        started = await tx.event("ChargingStateChanged", id_token=tx.token, charging_state="SuspendedEVSE",
                                 meter_value=register(1000, "Transaction.Begin"))
        assert started.id_token_info["status"] == "Accepted"
        await tx.event("ChargingStateChanged", charging_state="Charging")
    row = await tx_row(api, tx)
    assert (row["connector_id"], row["id_tag"], row["id_tag_status"], row["meter_start"], row["stopped_at"]) == \
        (1, TOKEN, "Accepted", 1000, None)


async def test_TC_E_02_Start_transaction_options_EnergyTransfer(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        assert (await cs.authorize())["status"] == "Accepted"
        await cs.status(1, "Occupied")
        tx = cs.transaction()
        started = await tx.event("ChargingStateChanged", id_token=tx.token, charging_state="Charging")
    assert started.id_token_info["status"] == "Accepted"
    row = await tx_row(api, tx)
    assert (row["id_tag"], row["stopped_at"]) == (TOKEN, None)


async def test_TC_E_03_Local_start_transaction_Cable_plugin_first_Success(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        await tx.ev_connected_pre_session()
        before = await tx_row(api, tx)  # known from the plug-in, its driver not yet
        await tx.authorize()
        await tx.energy_transfer_started()
    assert (before["connector_id"], before["stopped_at"]) == (1, None)
    row = await tx_row(api, tx)
    assert (row["id"], row["id_tag"], row["id_tag_status"]) == (before["id"], TOKEN, "Accepted")
    assert (await api.connector(CS, 1))["status"] == "Occupied"


async def test_TC_E_04_Local_start_transaction_Authorization_first_Success(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        await tx.authorize()
        await tx.energy_transfer_started()
    row = await tx_row(api, tx)
    assert (row["connector_id"], row["id_tag"], row["id_tag_status"], row["stopped_at"]) == \
        (1, TOKEN, "Accepted", None)


async def test_TC_E_39_Stop_transaction_options_Deauthorized_timeout(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        await tx.authorize()
        await tx.event("EVConnectTimeout", "Ended", stopped_reason="Timeout")  # no cable within EVConnectionTimeOut
    await ended(api, tx, "Timeout")


async def test_TC_E_14_Stop_transaction_options_EVDisconnected_Charging_Station_side(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        await tx.stop_authorized()
        await tx.ev_connected_post_session()
        await tx.ev_disconnected(meter_value=register(4200, "Transaction.End"))
    row = await ended(api, tx, "EVDisconnected")
    assert row["meter_stop"] == 4200
    assert (await api.connector(CS, 1))["status"] == "Available"


async def test_TC_E_20_Stop_transaction_options_EVDisconnected_EV_side_able_to_charge_IEC_61851_1_EV(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        await tx.energy_transfer_suspended()
        await tx.ev_disconnected()
    await ended(api, tx, "EVDisconnected")


async def test_TC_E_15_Stop_transaction_options_StopAuthorized_Local(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        await tx.event("StopAuthorized", "Ended", stopped_reason="Local", id_token=tx.token,
                       meter_value=register(3000, "Transaction.End"))
    row = await ended(api, tx, "Local")
    assert row["meter_stop"] == 3000


async def test_TC_E_21_Stop_transaction_options_StopAuthorized_Remote(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)

        async def stop(transaction_id: str, **_: Any) -> None:
            assert transaction_id == tx.id
            await tx.event("RemoteStop", "Ended", stopped_reason="Remote", charging_state="EVConnected")

        cs.follow_ups["RequestStopTransaction"] = stop
        row = await api.command(CS, "RequestStopTransaction", {"transactionId": tx.id})
        await cs.settle()
    assert cs.got("RequestStopTransaction") == [{"transaction_id": tx.id}]
    assert row["response"] == {"status": "Accepted"}
    await ended(api, tx, "Remote")


async def test_TC_E_09_Start_transaction_options_EVConnected(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        await tx.ev_connected_pre_session()
    row = await tx_row(api, tx)
    assert (row["connector_id"], row["stopped_at"]) == (1, None)
    assert tx.replies[0].id_token_info is None  # no idToken: nothing to decide


async def test_TC_E_10_Start_transaction_options_Authorized_Local(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        assert (await cs.authorize())["status"] == "Accepted"
        tx = cs.transaction()
        started = await tx.event("Authorized", id_token=tx.token)
    assert started.id_token_info["status"] == "Accepted"
    assert (await tx_row(api, tx))["id_tag"] == TOKEN


async def test_TC_E_11_Start_transaction_options_DataSigned(server: RunningServer, api: Api) -> None:
    await online(server)
    signed = {"signedMeterData": "T0NUVC1TSUdORUQtMA==", "signingMethod": "ECDSA-secp256r1-SHA256",
              "encodingMethod": "OCMF", "publicKey": "T0NUVC1LRVk="}
    async with connect(server, CS) as cs:
        await cs.booted()
        assert (await cs.authorize())["status"] == "Accepted"
        await cs.status(1, "Occupied")
        tx = cs.transaction()
        started = await tx.event("SignedDataReceived", id_token=tx.token,
                                 meter_value=register(0.0, "Transaction.Begin", signedMeterValue=signed))
        await tx.event("ChargingStateChanged", charging_state="Charging")
    assert started.id_token_info["status"] == "Accepted"
    row = await tx_row(api, tx)
    assert (row["id_tag"], row["meter_start"]) == (TOKEN, 0)
    values = await api.get(f"/api/v1/charge-points/{CS}/meter-values?transaction_id={row['id']}")
    [sample] = [s for v in values for s in v["sampled_value"]]
    assert (sample["context"], sample["format"], sample["value"]) == ("Transaction.Begin", "SignedData", "0")


async def test_TC_E_12_Start_transaction_options_ParkingBayOccupied(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        reply = await tx.event("EVDetected")  # TxStartPoint ParkingBayOccupancy: the bay's sensor
    assert reply.id_token_info is None
    row = await tx_row(api, tx)
    assert (row["connector_id"], row["stopped_at"]) == (1, None)


async def test_TC_E_38_Local_start_transaction_EV_not_ready(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        await tx.authorize()
        await tx.ev_connected_pre_session()
        await tx.event("ChargingStateChanged", charging_state="SuspendedEV")
    row = await tx_row(api, tx)
    assert (row["id_tag"], row["stopped_at"]) == (TOKEN, None)


async def test_TC_E_07_Stop_transaction_options_PowerPathClosed_Local_stop(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        await tx.event("StopAuthorized", "Ended", stopped_reason="Local", id_token=tx.token)
    await ended(api, tx, "Local")


async def test_TC_E_08_Stop_transaction_options_EnergyTransfer_stopped_StopAuthorized(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        await tx.stop_authorized()
        await tx.event("ChargingStateChanged", "Ended", charging_state="EVConnected", stopped_reason="Local")
    await ended(api, tx, "Local")


async def test_TC_E_16_Stop_transaction_options_Deauthorized_Invalid_idToken(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction(id_token=INVALID)
        started = await tx.event("Authorized", id_token=tx.token)
        assert started.id_token_info["status"] in ("Invalid", "Unknown")
        await tx.event("Deauthorized", "Ended", stopped_reason="DeAuthorized")
    row = await ended(api, tx, "DeAuthorized")
    assert row["id_tag_status"] in ("Invalid", "Unknown")


async def test_TC_E_17_Stop_transaction_options_Deauthorized_EV_side_disconnect(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        await tx.energy_transfer_suspended()
        await tx.event("EVCommunicationLost", "Ended", charging_state="Idle", stopped_reason="EVDisconnected")
    await ended(api, tx, "EVDisconnected")


async def test_TC_E_22_Stop_transaction_options_EnergyTransfer_stopped_SuspendedEV(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        await tx.event("ChargingStateChanged", "Ended", charging_state="SuspendedEV", stopped_reason="StoppedByEV")
    await ended(api, tx, "StoppedByEV")


async def test_TC_E_19_Stop_transaction_options_ParkingBayUnoccupied(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        await tx.stop_authorized()
        await tx.ev_connected_post_session()
        await cs.status(1, "Available")  # the cable is out; TxStopPoint ParkingBayOccupancy keeps the transaction
        await tx.event("EVCommunicationLost", charging_state="Idle")
        open_before = (await tx_row(api, tx))["stopped_at"]
        await tx.event("EVDeparted", "Ended", stopped_reason="Local")
    assert open_before is None
    await ended(api, tx, "Local")


async def test_TC_E_26_Disconnect_cable_on_EV_side_Suspend_transaction(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        await tx.energy_transfer_suspended()
        await tx.event("EVCommunicationLost", charging_state="Idle")
        await cs.status(1, "Available")
        await cs.status(1, "Occupied")
        await tx.event("CablePluggedIn", charging_state="EVConnected")
        await tx.event("ChargingStateChanged", charging_state="Charging")
    row = await tx_row(api, tx)
    assert (row["id_tag"], row["stopped_at"]) == (TOKEN, None)  # suspended, not ended
    assert (await api.connector(CS, 1))["status"] == "Occupied"


async def _status_after_reconnect(server: RunningServer, api: Api, cs: Station, tx: Transaction | None,
                                  answer: dict[str, Any]) -> dict[str, Any]:
    """The station comes back after a connection loss; the operator asks for a transaction's status
    (GetTransactionStatus, with the station's transactionId or without one)."""
    cs.replies["GetTransactionStatus"] = answer
    payload = {} if tx is None else {"transactionId": tx.id}
    row = await api.command(CS, "GetTransactionStatus", payload)
    assert cs.got("GetTransactionStatus")[-1] == ({} if tx is None else {"transaction_id": tx.id})
    return row


async def test_TC_E_29_Check_Transaction_status_Transaction_with_id_ongoing_with_message_in_queue(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
    async with connect(server, CS, station=cs):
        row = await _status_after_reconnect(server, api, cs, tx, {"ongoingIndicator": True, "messagesInQueue": True})
        await tx.event("MeterValuePeriodic", offline=True, meter_value=register(2500, "Sample.Periodic"))
    assert row["response"] == {"ongoingIndicator": True, "messagesInQueue": True}
    tx_id = (await tx_row(api, tx))["id"]
    values = await api.get(f"/api/v1/charge-points/{CS}/meter-values?transaction_id={tx_id}")
    assert [s["value"] for v in values for s in v["sampled_value"]] == ["2500"]


async def test_TC_E_30_Check_Transaction_status_Transaction_with_id_ongoing_without_message_in_queue(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        row = await _status_after_reconnect(server, api, cs, tx, {"ongoingIndicator": True, "messagesInQueue": False})
    assert (row["state"], row["response"]) == ("answered", {"ongoingIndicator": True, "messagesInQueue": False})


async def test_TC_E_31_Check_Transaction_status_Transaction_with_id_ended_with_message_in_queue(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
    async with connect(server, CS, station=cs):
        await cs.status(1, "Available")
        first_missing = tx.seq_no
        tx.seq_no += 2  # two events still queued at the station
        await tx.event("EVCommunicationLost", "Ended", charging_state="Idle", offline=True,
                       stopped_reason="EVDisconnected")
        row = await _status_after_reconnect(server, api, cs, tx, {"ongoingIndicator": False, "messagesInQueue": True})
        await tx.event("StopAuthorized", offline=True, seq_no=first_missing, id_token=tx.token)
        await tx.event("ChargingStateChanged", offline=True, seq_no=first_missing + 1, charging_state="EVConnected")
        await server.settled()
    assert row["response"] == {"ongoingIndicator": False, "messagesInQueue": True}
    await ended(api, tx, "EVDisconnected")  # the late Updated events do not reopen it
    gaps = [e for e in await api.security_events() if e["kind"] == "transaction_seq_gap"]
    assert [(g["detail"]["expected_seq_no"], g["detail"]["received_seq_no"]) for g in gaps] == \
        [(first_missing, first_missing + 2)]


async def test_TC_E_33_Check_Transaction_status_Without_transactionId_with_message_in_queue(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
    async with connect(server, CS, station=cs):
        row = await _status_after_reconnect(server, api, cs, None, {"messagesInQueue": True})
        await tx.event("MeterValuePeriodic", offline=True, meter_value=register(2700, "Sample.Periodic"))
    assert row["response"] == {"messagesInQueue": True}
    assert (await tx_row(api, tx))["stopped_at"] is None


async def test_TC_E_34_Check_Transaction_status_Without_transactionId_without_message_in_queue(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        row = await _status_after_reconnect(server, api, cs, None, {"messagesInQueue": False})
    assert (row["state"], row["response"]) == ("answered", {"messagesInQueue": False})


async def test_TC_E_53_Reset_Sequence_Number_CSMS_accepting_seqNo_0_at_start_of_transaction(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        first = await charging(cs)
        await first.ev_disconnected()
        second = await charging(cs)  # a new transaction starts again at seqNo 0
        await second.ev_disconnected()
    assert first.replies[0] is not None and second.replies[0] is not None
    rows = {t["station_tx_id"]: t for t in await api.transactions(CS)}
    assert rows[first.id]["id"] != rows[second.id]["id"]
    assert rows[first.id]["stop_reason"] == rows[second.id]["stop_reason"] == "EVDisconnected"
    assert not [e for e in await api.security_events() if e["kind"] == "transaction_seq_gap"]
