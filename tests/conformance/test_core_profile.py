"""OCA OCPP 1.6 conformance, central system under test: core profile (boot, sessions, reset, unlock).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp16.txt (the packaged list).
"""

from __future__ import annotations

from datetime import timedelta

from ocpp.v16 import call, call_result

from tests.conformance.conftest import Api, Station, bring_online, connect, now_iso, parse_ts, wait_until
from tests.conftest import RunningServer

CP = "OCTT-CP"
TAG = "OCTT-TAG-1"


async def _charging(cp: Station, connector_id: int = 1, tag: str = TAG) -> int:
    """Plug in, authorize, start, charge: the reusable state 'Charging' of the test document."""
    await cp.status(connector_id, "Preparing")
    assert (await cp.authorize(tag))["status"] == "Accepted"
    start = await cp.start_tx(connector_id, tag, 1000)
    assert start.id_tag_info["status"] == "Accepted"
    await cp.status(connector_id, "Charging")
    return int(start.transaction_id)


async def test_TC_001_ColdBootChargePoint(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    before = now_iso()
    async with connect(server, CP) as cp:
        boot = await cp.boot(vendor="OCTT", model="Cold-1", charge_point_serial_number="SN-1",
                             firmware_version="1.0.0")
        assert boot.status == "Accepted"
        assert boot.interval == server.settings.heartbeat_interval > 0
        assert abs(parse_ts(boot.current_time) - parse_ts(before)) < timedelta(seconds=5)
        for connector_id in (0, 1, 2):
            await cp.status(connector_id, "Available")
        beat = await cp.send(call.Heartbeat())
        assert abs(parse_ts(beat.current_time) - parse_ts(before)) < timedelta(seconds=5)
        detail = await api.charge_point(CP)
    assert detail["registration"] == "Accepted" and detail["connected"] is True
    assert (detail["vendor"], detail["model"], detail["serial_number"], detail["firmware_version"]) == \
        ("OCTT", "Cold-1", "SN-1", "1.0.0")
    assert [(c["connector_id"], c["status"]) for c in detail["connectors"]] == \
        [(0, "Available"), (1, "Available"), (2, "Available")]


async def _history(api: Api, cp_id: str, connector_id: int) -> list[tuple[str, bool]]:
    """(status, expected) of one connector, oldest first."""
    rows = await api.get(f"/api/v1/charge-points/{cp_id}/status-history")
    return [(r["status"], r["expected"]) for r in reversed(rows) if r["connector_id"] == connector_id]


async def _finish(cp: Station, tx_id: int, meter_stop: int, reason: str | None = "Local",
                  id_tag: str | None = TAG) -> None:
    stop = await cp.stop_tx(tx_id, meter_stop, reason=reason, id_tag=id_tag)
    if id_tag is not None:
        assert stop.id_tag_info["status"] == "Accepted"
    await cp.status(1, "Finishing")
    await cp.status(1, "Available")


async def test_TC_003_RegularChargingSession_PluginFirst(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        await cp.status(1, "Preparing")
        assert (await cp.authorize(TAG))["status"] == "Accepted"
        start = await cp.start_tx(1, TAG, 1000)
        assert start.id_tag_info["status"] == "Accepted" and start.transaction_id > 0
        await cp.status(1, "Charging")
        await cp.meter(1, start.transaction_id, 1500)
        await _finish(cp, start.transaction_id, 2500)
    tx = await api.transaction(CP, start.transaction_id)
    assert (tx["connector_id"], tx["id_tag"], tx["id_tag_status"], tx["meter_start"], tx["meter_stop"],
            tx["stop_reason"]) == (1, TAG, "Accepted", 1000, 2500, "Local")
    assert await _history(api, CP, 1) == [(s, True) for s in
                                          ("Available", "Preparing", "Charging", "Finishing", "Available")]
    values = await api.get(f"/api/v1/charge-points/{CP}/meter-values?transaction_id={start.transaction_id}")
    assert values[0]["sampled_value"][0]["value"] == "1500"


async def test_TC_004_1_RegularChargingSession_IdentificationFirst(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        assert (await cp.authorize(TAG))["status"] == "Accepted"
        await cp.status(1, "Preparing")
        start = await cp.start_tx(1, TAG, 0)
        assert start.id_tag_info["status"] == "Accepted"
        await cp.status(1, "Charging")
    tx = await api.transaction(CP, start.transaction_id)
    assert tx["id_tag"] == TAG and tx["stopped_at"] is None
    assert (await api.connector(CP, 1))["status"] == "Charging"


async def test_TC_004_2_RegularChargingSession_IdentificationFirst_ConnectionTimeout(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        assert (await cp.authorize(TAG))["status"] == "Accepted"
        await cp.status(1, "Preparing")
        await cp.status(1, "Available")  # ConnectionTimeOut elapsed without a cable
    assert await api.transactions(CP) == []
    assert await _history(api, CP, 1) == [("Available", True), ("Preparing", True), ("Available", True)]


async def test_TC_005_1_EVSideDisconnected_StopTransactionAndUnlock(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        tx_id = await _charging(cp)
        # StopTransactionOnEVSideDisconnect = true, UnlockConnectorOnEVSideDisconnect = true
        stop = await cp.stop_tx(tx_id, 1800, reason="EVDisconnected")
        assert stop.id_tag_info is None
        await cp.status(1, "Finishing")
        await cp.status(1, "Available")
    tx = await api.transaction(CP, tx_id)
    assert (tx["stop_reason"], tx["meter_stop"]) == ("EVDisconnected", 1800)
    assert (await api.connector(CP, 1))["status"] == "Available"


async def test_TC_007_RegularStartChargingSession_CachedId(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        await cp.status(1, "Preparing")
        start = await cp.start_tx(1, TAG, 10)  # authorized from the cache: no Authorize.req
        assert start.id_tag_info["status"] == "Accepted"
        await cp.status(1, "Charging")
    assert (await api.transaction(CP, start.transaction_id))["id_tag_status"] == "Accepted"


def _remote_start_follow_up(cp: Station, *, plugged: bool, started: list[int]) -> None:
    async def follow_up(id_tag: str, connector_id: int = 1, **_: object) -> None:
        if not plugged:
            await cp.status(connector_id, "Preparing")
        assert (await cp.authorize(id_tag))["status"] == "Accepted"  # AuthorizeRemoteTxRequests = true
        start = await cp.start_tx(connector_id, id_tag, 0)
        assert start.id_tag_info["status"] == "Accepted"
        started.append(start.transaction_id)
        await cp.status(connector_id, "Charging")

    cp.follow_ups["RemoteStartTransaction"] = follow_up


async def test_TC_010_RemoteStartChargingSession_CablePluggedInFirst(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    started: list[int] = []
    async with connect(server, CP) as cp:
        await bring_online(cp)
        await cp.status(1, "Preparing")
        _remote_start_follow_up(cp, plugged=True, started=started)
        row = await api.command(CP, "RemoteStartTransaction", {"connectorId": 1, "idTag": TAG})
        await cp.settle()
    assert cp.got("RemoteStartTransaction") == [{"connector_id": 1, "id_tag": TAG}]
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})
    tx = await api.transaction(CP, started[0])
    assert (tx["connector_id"], tx["id_tag"]) == (1, TAG)
    assert (await api.connector(CP, 1))["status"] == "Charging"


async def test_TC_011_1_RemoteStartChargingSession_RemoteStartFirst(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    started: list[int] = []
    async with connect(server, CP) as cp:
        await bring_online(cp)
        _remote_start_follow_up(cp, plugged=False, started=started)
        row = await api.command(CP, "RemoteStartTransaction", {"connectorId": 1, "idTag": TAG})
        await cp.settle()
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})
    assert (await api.transaction(CP, started[0]))["id_tag"] == TAG
    assert await _history(api, CP, 1) == [("Available", True), ("Preparing", True), ("Charging", True)]


async def test_TC_011_2_RemoteStartChargingSession_Timeout(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)

        async def no_cable(connector_id: int = 1, **_: object) -> None:
            await cp.status(connector_id, "Preparing")
            await cp.status(connector_id, "Available")  # ConnectionTimeOut: no cable was plugged in

        cp.follow_ups["RemoteStartTransaction"] = no_cable
        row = await api.command(CP, "RemoteStartTransaction", {"connectorId": 1, "idTag": TAG})
        await cp.settle()
    assert row["response"] == {"status": "Accepted"}
    assert await api.transactions(CP) == []
    assert (await api.connector(CP, 1))["status"] == "Available"


async def test_TC_012_RemoteStopChargingSession(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        tx_id = await _charging(cp)

        async def stop(transaction_id: int) -> None:
            await _finish(cp, transaction_id, 4000, reason="Remote")

        cp.follow_ups["RemoteStopTransaction"] = stop
        row = await api.command(CP, "RemoteStopTransaction", {"transactionId": tx_id})
        await cp.settle()
    assert cp.got("RemoteStopTransaction") == [{"transaction_id": tx_id}]
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})
    tx = await api.transaction(CP, tx_id)
    assert (tx["stop_reason"], tx["meter_stop"], tx["stop_id_tag"]) == ("Remote", 4000, TAG)


async def _reset(server: RunningServer, api: Api, kind: str) -> None:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        first_boot = (await api.charge_point(CP))["last_boot_at"]
        if kind == "Hard":
            async def power_cycle(**_: object) -> None:
                cp._connection.transport.abort()  # no closing handshake: the power is simply cut

            cp.follow_ups["Reset"] = power_cycle
        row = await api.command(CP, "Reset", {"type": kind})
        await cp.settle()
    assert cp.got("Reset") == [{"type": kind}]
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})
    # the station restarted: it reconnects and boots again
    async with connect(server, CP, station=cp):
        await bring_online(cp)
        detail = await api.charge_point(CP)
    assert detail["connected"] is True and parse_ts(detail["last_boot_at"]) > parse_ts(first_boot)


async def test_TC_013_HardReset(server: RunningServer, api: Api) -> None:
    await _reset(server, api, "Hard")


async def test_TC_014_SoftReset(server: RunningServer, api: Api) -> None:
    await _reset(server, api, "Soft")


async def _unlock(server: RunningServer, api: Api, connector_id: int, answer: str) -> dict[str, object]:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        cp.replies["UnlockConnector"] = call_result.UnlockConnector(status=answer)
        row = await api.command(CP, "UnlockConnector", {"connectorId": connector_id})
    assert cp.got("UnlockConnector") == [{"connector_id": connector_id}]
    assert (row["state"], row["response"]) == ("answered", {"status": answer})
    return row


async def test_TC_017_1_UnlockConnector_NoTransaction_NotFixedCable(server: RunningServer, api: Api) -> None:
    await _unlock(server, api, 1, "Unlocked")


async def test_TC_017_2_UnlockConnector_NoTransaction_FixedCable(server: RunningServer, api: Api) -> None:
    await _unlock(server, api, 1, "NotSupported")


async def test_TC_018_1_UnlockConnector_WithChargingSession(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        tx_id = await _charging(cp)

        async def stop_then_unlock(connector_id: int) -> call_result.UnlockConnector:
            # 1.6 §5.17: the transaction is stopped first; voltlib must serve this call while
            # its own UnlockConnector call is still waiting for our answer.
            await cp.stop_tx(tx_id, 3000, reason="UnlockCommand")
            return call_result.UnlockConnector(status="Unlocked")

        async def finishing(connector_id: int) -> None:
            await cp.status(connector_id, "Finishing")

        cp.replies["UnlockConnector"] = stop_then_unlock
        cp.follow_ups["UnlockConnector"] = finishing
        row = await api.command(CP, "UnlockConnector", {"connectorId": 1})
        await cp.settle()
    assert (row["state"], row["response"]) == ("answered", {"status": "Unlocked"})
    tx = await api.transaction(CP, tx_id)
    assert (tx["stop_reason"], tx["meter_stop"]) == ("UnlockCommand", 3000)
    assert (await api.connector(CP, 1))["status"] == "Finishing"


async def _authorize_refused(server: RunningServer, api: Api, tag: str, expected: str) -> None:
    async with connect(server, CP) as cp:
        await bring_online(cp)
        await cp.status(1, "Preparing")
        info = await cp.authorize(tag)
        assert info["status"] == expected
        await cp.status(1, "Available")
    assert await api.transactions(CP) == []


async def test_TC_023_1_StartChargingSession_AuthorizeInvalid(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await _authorize_refused(server, api, "UNKNOWN-TAG", "Invalid")


async def test_TC_023_2_StartChargingSession_AuthorizeExpired(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    expired = now_iso(timedelta(days=-1))
    await api.put_id_tag("EXPIRED-TAG", status="Accepted", expiry_date=expired)
    await _authorize_refused(server, api, "EXPIRED-TAG", "Expired")
    stored = await api.id_tag("EXPIRED-TAG")
    assert stored["status"] == "Accepted" and parse_ts(stored["expiry_date"]) == parse_ts(expired)


async def test_TC_023_3_StartChargingSession_AuthorizeBlocked(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await api.put_id_tag("BLOCKED-TAG", status="Blocked")
    await _authorize_refused(server, api, "BLOCKED-TAG", "Blocked")
    assert (await api.id_tag("BLOCKED-TAG"))["status"] == "Blocked"


async def test_TC_024_StartChargingSession_LockFailure(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        await cp.status(1, "Preparing")
        assert (await cp.authorize(TAG))["status"] == "Accepted"
        await cp.status(1, "Faulted", error_code="ConnectorLockFailure")
        faulted = await api.connector(CP, 1)
    assert (faulted["status"], faulted["error_code"]) == ("Faulted", "ConnectorLockFailure")
    assert await api.transactions(CP) == []


async def test_TC_026_RemoteStartChargingSession_Rejected(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        cp.replies["RemoteStartTransaction"] = call_result.RemoteStartTransaction(status="Rejected")
        row = await api.command(CP, "RemoteStartTransaction", {"connectorId": 1, "idTag": TAG})
    assert (row["state"], row["response"]) == ("answered", {"status": "Rejected"})
    assert await api.transactions(CP) == []


async def test_TC_028_RemoteStopTransaction_Rejected(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        cp.replies["RemoteStopTransaction"] = call_result.RemoteStopTransaction(status="Rejected")
        row = await api.command(CP, "RemoteStopTransaction", {"transactionId": 424242})
    assert cp.got("RemoteStopTransaction") == [{"transaction_id": 424242}]
    assert (row["state"], row["response"]) == ("answered", {"status": "Rejected"})


async def test_TC_030_UnlockConnector_UnlockFailure(server: RunningServer, api: Api) -> None:
    await _unlock(server, api, 1, "UnlockFailed")


async def test_TC_031_UnlockConnector_UnknownConnector(server: RunningServer, api: Api) -> None:
    await _unlock(server, api, 7, "NotSupported")


async def test_TC_032_1_PowerFailureBoot_StopTransactions(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        tx_id = await _charging(cp)
        power_lost_at = now_iso()
        cp._connection.transport.abort()  # power failure: no closing handshake
    # power returns: the station boots, then stops the transaction that the outage ended
    async with connect(server, CP, station=cp):
        assert (await cp.boot()).status == "Accepted"
        stop = await cp.stop_tx(tx_id, 2200, reason="PowerLoss", timestamp=power_lost_at)
        assert stop.id_tag_info is None
        for connector_id in (0, 1):
            await cp.status(connector_id, "Available")
    tx = await api.transaction(CP, tx_id)
    assert (tx["stop_reason"], tx["meter_stop"]) == ("PowerLoss", 2200)
    assert parse_ts(tx["stopped_at"]) == parse_ts(power_lost_at)
    assert (await api.connector(CP, 1))["status"] == "Available"


async def test_TC_037_1_OfflineStartTransaction_ValidIdTag(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
    started_offline = now_iso(timedelta(minutes=-10))
    async with connect(server, CP, station=cp):  # back online; the queued messages follow
        await cp.status(1, "Charging")
        start = await cp.start_tx(1, TAG, 500, timestamp=started_offline)
        assert start.id_tag_info["status"] == "Accepted"
    tx = await api.transaction(CP, start.transaction_id)
    assert parse_ts(tx["started_at"]) == parse_ts(started_offline)
    assert tx["id_tag_status"] == "Accepted" and tx["stopped_at"] is None


async def test_TC_037_3_OfflineStartTransaction_InvalidIdTag_StopOnInvalidTrue(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
    async with connect(server, CP, station=cp):
        await cp.status(1, "Charging")
        start = await cp.start_tx(1, "UNKNOWN-TAG", 500, timestamp=now_iso(timedelta(minutes=-5)))
        assert start.id_tag_info["status"] == "Invalid"
        assert start.transaction_id > 0  # a transaction id is given even when the tag is refused
        # StopTransactionOnInvalidId = true
        await cp.stop_tx(start.transaction_id, 600, reason="DeAuthorized")
        await cp.status(1, "Finishing")
    tx = await api.transaction(CP, start.transaction_id)
    assert (tx["id_tag"], tx["id_tag_status"], tx["stop_reason"]) == ("UNKNOWN-TAG", "Invalid", "DeAuthorized")


async def test_TC_039_OfflineTransaction(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
    t0, t1, t2 = (now_iso(timedelta(minutes=m)) for m in (-30, -20, -10))
    async with connect(server, CP, station=cp):  # the whole transaction happened offline
        await cp.status(1, "Available")
        start = await cp.start_tx(1, TAG, 100, timestamp=t0)
        assert start.id_tag_info["status"] == "Accepted"
        tx_id = start.transaction_id
        await cp.meter(1, tx_id, 400, timestamp=t1)
        stop = await cp.stop_tx(tx_id, 700, reason="Local", id_tag=TAG, timestamp=t2, transaction_data=[
            {"timestamp": t0, "sampledValue": [{"value": "100", "context": "Transaction.Begin"}]},
            {"timestamp": t2, "sampledValue": [{"value": "700", "context": "Transaction.End"}]}])
        assert stop.id_tag_info["status"] == "Accepted"
    tx = await api.transaction(CP, tx_id)
    assert parse_ts(tx["started_at"]) == parse_ts(t0) and parse_ts(tx["stopped_at"]) == parse_ts(t2)
    assert (tx["meter_start"], tx["meter_stop"]) == (100, 700)
    values = await api.get(f"/api/v1/charge-points/{CP}/meter-values?transaction_id={tx_id}")
    assert sorted(v["sampled_value"][0]["value"] for v in values) == ["100", "400", "700"]


async def test_TC_054_TriggerMessage(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)

        async def send_requested(requested_message: str, connector_id: int | None = None) -> None:
            if requested_message == "BootNotification":
                await cp.boot(firmware_version="2.0.0")
            elif requested_message == "Heartbeat":
                await cp.send(call.Heartbeat())
            elif requested_message == "StatusNotification":
                await cp.status(connector_id or 1, "Unavailable")
            elif requested_message == "MeterValues":
                await cp.meter(connector_id or 1, None, 777, context="Trigger")
            elif requested_message == "DiagnosticsStatusNotification":
                await cp.send(call.DiagnosticsStatusNotification(status="Idle"))
            elif requested_message == "FirmwareStatusNotification":
                await cp.send(call.FirmwareStatusNotification(status="Idle"))

        cp.follow_ups["TriggerMessage"] = send_requested
        rows = []
        for message, connector in (("BootNotification", None), ("Heartbeat", None), ("StatusNotification", 1),
                                   ("MeterValues", 1), ("DiagnosticsStatusNotification", None),
                                   ("FirmwareStatusNotification", None)):
            payload = {"requestedMessage": message, **({"connectorId": connector} if connector else {})}
            rows.append(await api.command(CP, "TriggerMessage", payload))
            await cp.settle()
    assert [r["response"] for r in rows] == [{"status": "Accepted"}] * 6
    assert [p["requested_message"] for p in cp.got("TriggerMessage")][:2] == ["BootNotification", "Heartbeat"]
    detail = await api.charge_point(CP)
    assert detail["firmware_version"] == "2.0.0"
    assert (detail["diagnostics_status"], detail["firmware_status"]) == ("Idle", "Idle")
    assert next(c for c in detail["connectors"] if c["connector_id"] == 1)["status"] == "Unavailable"
    values = await api.get(f"/api/v1/charge-points/{CP}/meter-values")
    assert values[0]["sampled_value"][0]["context"] == "Trigger"


async def test_TC_055_TriggerMessage_Rejected(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        cp.replies["TriggerMessage"] = call_result.TriggerMessage(status="Rejected")
        row = await api.command(CP, "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 5})
    assert (row["state"], row["response"]) == ("answered", {"status": "Rejected"})


async def test_TC_061_ClearAuthorizationDataInAuthorizationCache(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        row = await api.command(CP, "ClearCache", {})
    assert cp.got("ClearCache") == [{}]
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})


async def test_TC_064_DataTransferToCentralSystem(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        answer = await cp.send(call.DataTransfer(vendor_id="com.octt.unknown", message_id="Ping", data="{}"))
    assert answer.status == "UnknownVendorId"

    async def logged() -> bool:
        log = await api.get(f"/api/v1/charge-points/{CP}/messages")
        return any(m["action"] == "DataTransfer" and "com.octt.unknown" in str(m) for m in log)

    await wait_until(logged)
