"""The simulated charge point speaking OCPP 2.0.1, without a network: what it queues for the
central system is valid by the official 2.0.1 schemas and says what happened at the post, and its
answers to every 2.0.1 command voltlib may send are schema-valid and do what the command says."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from tests.sim.test_answers import NOW, FixedClock, iso
from voltlib.ocpp import schemas
from voltlib.ocpp.errors import OcppError
from voltlib.sim import Car, SimulatedChargePoint
from voltlib.sim.dialect_v201 import DialectV201

TOKEN = {"idToken": "BADGE1", "type": "ISO14443"}
PROFILE = {"id": 7, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
           "chargingSchedule": [{"id": 1, "startSchedule": iso(NOW - timedelta(hours=1)), "chargingRateUnit": "W",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 3000.0},
                                                            {"startPeriod": 7200, "limit": 5000.0}]}]}

# One valid request for every central-system command the simulated 2.0.1 post implements.
REQUESTS: dict[str, dict[str, Any]] = {
    "CancelReservation": {"reservationId": 1},
    "CertificateSigned": {"certificateChain": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"},
    "ChangeAvailability": {"operationalStatus": "Inoperative", "evse": {"id": 1}},
    "ClearCache": {},
    "ClearChargingProfile": {"chargingProfileId": 7},
    "DataTransfer": {"vendorId": "com.example", "messageId": "x", "data": {"y": 1}},
    "GetBaseReport": {"requestId": 4, "reportBase": "FullInventory"},
    "GetChargingProfiles": {"requestId": 7, "chargingProfile": {}},
    "GetCompositeSchedule": {"evseId": 1, "duration": 3600, "chargingRateUnit": "W"},
    "GetLocalListVersion": {},
    "GetTransactionStatus": {"transactionId": str(uuid.uuid4())},
    "GetVariables": {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"},
                                          "variable": {"name": "HeartbeatInterval"}}]},
    "RequestStartTransaction": {"idToken": TOKEN, "remoteStartId": 5, "evseId": 1},
    "RequestStopTransaction": {"transactionId": str(uuid.uuid4())},
    "ReserveNow": {"id": 1, "expiryDateTime": iso(NOW + timedelta(minutes=15)), "idToken": TOKEN, "evseId": 2},
    "Reset": {"type": "OnIdle"},
    "SendLocalList": {"versionNumber": 3, "updateType": "Full", "localAuthorizationList": [
        {"idToken": TOKEN, "idTokenInfo": {"status": "Accepted"}}]},
    "SetChargingProfile": {"evseId": 1, "chargingProfile": PROFILE},
    "SetVariables": {"setVariableData": [{"component": {"name": "OCPPCommCtrlr"},
                                          "variable": {"name": "HeartbeatInterval"}, "attributeValue": "120"}]},
    "TriggerMessage": {"requestedMessage": "StatusNotification", "evse": {"id": 1}},
    "UnlockConnector": {"evseId": 1, "connectorId": 1},
}


def make_cp(clock: FixedClock | None = None) -> SimulatedChargePoint:
    return SimulatedChargePoint("CP-201", "ws://127.0.0.1:1/ocpp", password="p" * 20, clock=clock or FixedClock(),
                                ocpp_version="2.0.1")


def queued(cp: SimulatedChargePoint) -> list[tuple[str, dict[str, Any]]]:
    """What the post queued for the central system, each checked against the official schema."""
    out = []
    for item in cp._outbox:
        payload = cp.dialect.resolved(item)
        assert payload is not None
        schemas.validate("2.0.1", item.action, "request", payload)
        out.append((item.action, payload))
    return out


async def tick(cp: SimulatedChargePoint) -> None:
    """One turn of the post's own clock (reservations, sampling), then stop it."""
    task = asyncio.create_task(cp._tick_loop())
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_every_command_has_a_sample_request() -> None:
    assert set(REQUESTS) == set(DialectV201.COMMANDS)
    for action, payload in REQUESTS.items():
        schemas.validate("2.0.1", action, "request", payload)


def test_it_offers_the_2_0_1_subprotocol_and_boots_with_a_charging_station() -> None:
    cp = make_cp()
    assert cp.dialect.subprotocol == "ocpp2.0.1" and cp.ocpp_version == "2.0.1"
    boot = cp.dialect.boot_payload()
    schemas.validate("2.0.1", "BootNotification", "request", boot)
    assert boot == {"chargingStation": {"model": "Bluestation", "vendorName": "Bollore", "serialNumber": "CP-201",
                                        "firmwareVersion": "1.0.0"}, "reason": "PowerUp"}
    action, authorize = cp.dialect.authorize_request("SIMB0000001")
    schemas.validate("2.0.1", action, "request", authorize)
    assert (action, authorize) == ("Authorize", {"idToken": {"idToken": "SIMB0000001", "type": "ISO14443"}})
    assert cp.dialect.authorize_info({"idTokenInfo": {"status": "Blocked"}}) == {"status": "Blocked"}


@pytest.mark.parametrize("action", sorted(DialectV201.COMMANDS))
async def test_every_answer_is_schema_valid(action: str) -> None:
    answer = await make_cp().answer(action, REQUESTS[action])
    schemas.validate("2.0.1", action, "response", answer)


async def test_other_actions_invalid_requests_and_1_6_commands_are_call_errors() -> None:
    cp = make_cp()
    for action in ("GetReport", "RemoteStartTransaction", "MakeCoffee"):
        with pytest.raises(OcppError) as unknown:
            await cp.answer(action, {})
        assert unknown.value.code.wire("2.0.1") == "NotImplemented"
    with pytest.raises(OcppError) as bad:
        await cp.answer("Reset", {"type": "Soft"})
    assert bad.value.code.value == "PropertyConstraintViolation"
    with pytest.raises(OcppError) as missing:
        await cp.answer("ReserveNow", {"id": 1})
    assert missing.value.code.wire("2.0.1") == "OccurrenceConstraintViolation"


async def test_a_car_docked_leaving_and_returned_is_status_and_transaction_events() -> None:
    clock = FixedClock()
    cp = make_cp(clock)
    car = Car(battery_wh=30_000, soc=50, max_power_w=6_000)
    cp.plug_in(1, car)
    tx = cp.start_transaction(1, "CAR-TAG-1")
    clock.t = NOW + timedelta(minutes=30)
    cp.dialect.transaction_sampled(cp.connectors[1], tx)
    clock.t = NOW + timedelta(minutes=40)
    assert await cp.authorize("SIMB0000001") == "Invalid"  # offline, unknown: the badge is not on the list
    cp.unplug(1)
    frames = [(a, p) for a, p in queued(cp) if p.get("evseId", p.get("evse", {}).get("id")) == 1]
    assert [(a, p.get("connectorStatus") or p["eventType"]) for a, p in frames] == [
        ("StatusNotification", "Occupied"), ("TransactionEvent", "Started"), ("TransactionEvent", "Updated"),
        ("TransactionEvent", "Ended"), ("StatusNotification", "Available")]
    started, updated, ended = (p for a, p in frames if a == "TransactionEvent")
    assert started["triggerReason"] == "CablePluggedIn" and started["idToken"] == {"idToken": "CAR-TAG-1",
                                                                                    "type": "ISO14443"}
    assert started["evse"] == {"id": 1, "connectorId": 1} and started["offline"] is True  # never connected
    assert {e["transactionInfo"]["transactionId"] for e in (started, updated, ended)} == {tx.uuid}
    assert [e["seqNo"] for e in (started, updated, ended)] == [0, 1, 2]
    assert uuid.UUID(tx.uuid)

    def values(event: dict[str, Any]) -> dict[str, float]:
        [meter] = event["meterValue"]
        return {v.get("measurand", "Energy.Active.Import.Register"): v["value"] for v in meter["sampledValue"]}

    assert values(started) == {"Energy.Active.Import.Register": 0, "SoC": 50.0}
    assert updated["triggerReason"] == "MeterValuePeriodic"
    assert values(updated) == {"Energy.Active.Import.Register": 3000, "Power.Active.Import": 6000, "SoC": 60.0}
    assert ended["triggerReason"] == "EVCommunicationLost"
    assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert values(ended) == {"Energy.Active.Import.Register": 4000}
    cp._outbox.clear()
    cp.plug_in(2, car)  # returned at another bay: Occupied, then Started with the car's own token
    cp.start_transaction(2, "CAR-TAG-1")
    [(status, occupied), (event, again)] = queued(cp)
    assert (status, occupied["evseId"], occupied["connectorStatus"]) == ("StatusNotification", 2, "Occupied")
    assert (event, again["eventType"], again["seqNo"], again["idToken"]["idToken"]) == (
        "TransactionEvent", "Started", 0, "CAR-TAG-1")
    assert again["transactionInfo"]["transactionId"] != tx.uuid


async def test_a_badge_starts_and_stops_and_the_answer_is_remembered() -> None:
    cp = make_cp()
    await cp.answer("SendLocalList", REQUESTS["SendLocalList"])
    assert await cp.badge(1, "BADGE1") == "Accepted"  # offline: from the local list
    tx = cp.connectors[1].transaction
    assert tx is not None
    assert await cp.badge(1, "BADGE1") == "Accepted"
    events = [p for a, p in queued(cp) if a == "TransactionEvent"]
    assert [(e["eventType"], e["triggerReason"]) for e in events] == [("Started", "Authorized"),
                                                                      ("Ended", "StopAuthorized")]
    assert events[1]["idToken"]["idToken"] == "BADGE1" and events[1]["transactionInfo"]["stoppedReason"] == "Local"
    started = next(i for i in cp._outbox if i.payload.get("eventType") == "Started")
    cp.dialect.answered(started, {"idTokenInfo": {"status": "Accepted"}})
    assert tx.confirmed.is_set() and tx.id_tag_status == "Accepted"


async def test_an_invalid_token_in_the_answer_ends_the_transaction() -> None:
    cp = make_cp()
    cp.plug_in(1, Car())
    tx = cp.start_transaction(1, "STOLEN")
    [started] = [i for i in cp._outbox if i.action == "TransactionEvent"]
    cp.dialect.answered(started, {"idTokenInfo": {"status": "Blocked"}})
    assert cp.connectors[1].transaction is None and tx.id_tag_status == "Blocked"
    ended = [p for a, p in queued(cp) if a == "TransactionEvent"][-1]
    assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == ("Deauthorized", "DeAuthorized")


async def test_charging_profiles_limit_the_power() -> None:
    cp = make_cp()
    cp.plug_in(1, Car(battery_wh=30_000, soc=20, max_power_w=7_400))
    tx = cp.start_transaction(1, "BADGE1")
    assert cp.connectors[1].power_w == 7_400
    assert await cp.answer("SetChargingProfile", REQUESTS["SetChargingProfile"]) == {"status": "Accepted"}
    assert cp.connectors[1].power_w == 3_000
    station_max = {"id": 8, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationMaxProfile",
                   "chargingProfileKind": "Relative", "chargingSchedule": [
                       {"id": 2, "chargingRateUnit": "A",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 2.0}]}]}
    assert (await cp.answer("SetChargingProfile", {"evseId": 1, "chargingProfile": station_max}))["status"] == \
        "Rejected"  # the station's profile belongs on EVSE 0
    assert (await cp.answer("SetChargingProfile", {"evseId": 0, "chargingProfile": station_max}))["status"] == \
        "Accepted"
    assert cp.connectors[1].power_w == pytest.approx(2.0 * 230 * 3)
    tx_profile = {**PROFILE, "id": 9, "chargingProfilePurpose": "TxProfile", "stackLevel": 2}
    assert (await cp.answer("SetChargingProfile", {"evseId": 1, "chargingProfile": tx_profile}))["status"] == \
        "Rejected"  # a TxProfile names its transaction
    wrong = {**tx_profile, "transactionId": str(uuid.uuid4())}
    assert (await cp.answer("SetChargingProfile", {"evseId": 1, "chargingProfile": wrong}))["status"] == "Rejected"
    external = {**PROFILE, "id": 10, "chargingProfilePurpose": "ChargingStationExternalConstraints"}
    assert (await cp.answer("SetChargingProfile", {"evseId": 0, "chargingProfile": external}))["status"] == \
        "Rejected"
    await cp.answer("ClearChargingProfile", {"chargingProfileCriteria": {"chargingProfilePurpose":
                                                                         "ChargingStationMaxProfile"}})
    mine = {**tx_profile, "transactionId": tx.uuid, "chargingSchedule": [
        {"id": 3, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1500.0}]}],
        "chargingProfileKind": "Relative"}
    assert (await cp.answer("SetChargingProfile", {"evseId": 1, "chargingProfile": mine}))["status"] == "Accepted"
    assert cp.connectors[1].power_w == 1_500
    schedule = await cp.answer("GetCompositeSchedule", {"evseId": 1, "duration": 600})
    assert schedule["schedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 1500}]
    schemas.validate("2.0.1", "GetCompositeSchedule", "response", schedule)
    assert (await cp.answer("ClearChargingProfile", {}))["status"] == "Accepted"
    assert cp.connectors[1].power_w == 7_400
    assert (await cp.answer("ClearChargingProfile", {"chargingProfileId": 99}))["status"] == "Unknown"


async def test_reservations_expire_with_a_status_update() -> None:
    clock = FixedClock()
    cp = make_cp(clock)
    assert (await cp.answer("ReserveNow", REQUESTS["ReserveNow"]))["status"] == "Accepted"
    assert cp.connectors[2].status == "Reserved"
    assert await cp.badge(2, "SOMEONE") == "Reserved"
    anywhere = {**REQUESTS["ReserveNow"], "id": 2}
    del anywhere["evseId"]
    assert (await cp.answer("ReserveNow", anywhere))["status"] == "Accepted"  # the first free EVSE
    assert cp.connectors[1].reservation is not None and cp.connectors[1].reservation.reservation_id == 2
    assert (await cp.answer("ReserveNow", {**anywhere, "id": 3}))["status"] == "Occupied"  # none free
    assert (await cp.answer("CancelReservation", {"reservationId": 2}))["status"] == "Accepted"
    assert (await cp.answer("CancelReservation", {"reservationId": 2}))["status"] == "Rejected"
    cp._outbox.clear()
    clock.t = NOW + timedelta(minutes=16)
    await tick(cp)
    assert cp.connectors[2].reservation is None
    assert queued(cp) == [("ReservationStatusUpdate", {"reservationId": 1, "reservationUpdateStatus": "Expired"}),
                          ("StatusNotification", {"timestamp": queued(cp)[1][1]["timestamp"],
                                                  "connectorStatus": "Available", "evseId": 2, "connectorId": 1})]


async def test_reservation_used_by_its_token_is_named_in_the_started_event() -> None:
    cp = make_cp()
    await cp.answer("ReserveNow", REQUESTS["ReserveNow"])
    cp.start_transaction(2, "BADGE1", trigger="Authorized")
    [started] = [p for a, p in queued(cp) if a == "TransactionEvent"]
    assert started["reservationId"] == 1 and cp.connectors[2].reservation is None


async def test_remote_start_and_stop() -> None:
    cp = make_cp()
    answer, start = cp.dialect.dispatch("RequestStartTransaction", REQUESTS["RequestStartTransaction"])
    assert answer == {"status": "Accepted"} and start is not None
    await start()
    tx = cp.connectors[1].transaction
    assert tx is not None and tx.remote_start_id == 5
    [started] = [p for a, p in queued(cp) if a == "TransactionEvent"]
    assert started["triggerReason"] == "RemoteStart" and started["transactionInfo"]["remoteStartId"] == 5
    assert (await cp.answer("RequestStartTransaction", REQUESTS["RequestStartTransaction"]))["status"] == "Rejected"
    status = await cp.answer("GetTransactionStatus", {"transactionId": tx.uuid})
    assert status == {"messagesInQueue": True, "ongoingIndicator": True}
    assert (await cp.answer("RequestStopTransaction", REQUESTS["RequestStopTransaction"]))["status"] == "Rejected"
    answer, stop = cp.dialect.dispatch("RequestStopTransaction", {"transactionId": tx.uuid})
    assert answer == {"status": "Accepted"} and stop is not None
    await stop()
    ended = [p for a, p in queued(cp) if a == "TransactionEvent"][-1]
    assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == ("RemoteStop", "Remote")


async def test_variables_are_the_posts_settings() -> None:
    cp = make_cp()
    got = await cp.answer("GetVariables", {"getVariableData": [
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}},
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}},
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "Nope"}},
        {"component": {"name": "CoffeeCtrlr"}, "variable": {"name": "Sugar"}},
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
         "attributeType": "MaxSet"}]})
    assert [(r["attributeStatus"], r.get("attributeValue")) for r in got["getVariableResult"]] == [
        ("Accepted", "60"), ("Rejected", None), ("UnknownVariable", None), ("UnknownComponent", None),
        ("NotSupportedAttributeType", None)]
    set_ = await cp.answer("SetVariables", {"setVariableData": [
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}, "attributeValue": "15"},
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "attributeValue": "-3"},
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "SecurityProfile"}, "attributeValue": "2"},
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}, "attributeValue": "n" * 24},
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxStartedMeasurands"},
         "attributeValue": "Voltage"}]})
    assert [r["attributeStatus"] for r in set_["setVariableResult"]] == [
        "Accepted", "Rejected", "Rejected", "Accepted", "Rejected"]
    assert cp.configuration["MeterValueSampleInterval"].value == "15" and cp.password == "n" * 24
    await cp.answer("SetVariables", REQUESTS["SetVariables"])
    assert cp.heartbeat_interval == 120


async def test_the_base_report_is_the_device_model_without_secrets() -> None:
    cp = make_cp()
    answer, report = cp.dialect.dispatch("GetBaseReport", REQUESTS["GetBaseReport"])
    assert answer == {"status": "Accepted"} and report is not None
    await report()
    [(action, notify)] = queued(cp)
    assert action == "NotifyReport" and (notify["requestId"], notify["seqNo"]) == (4, 0)
    variables = {(d["component"]["name"], d["variable"]["name"]): d["variableAttribute"][0]
                 for d in notify["reportData"]}
    assert variables[("OCPPCommCtrlr", "HeartbeatInterval")]["value"] == "300"
    assert variables[("SecurityCtrlr", "SecurityProfile")]["mutability"] == "ReadOnly"
    assert variables[("SecurityCtrlr", "BasicAuthPassword")] == {"mutability": "WriteOnly", "persistent": True}
    assert (await cp.answer("GetBaseReport", {"requestId": 5, "reportBase": "SummaryInventory"}))["status"] == \
        "NotSupported"


async def test_local_list_versions_and_cache() -> None:
    cp = make_cp()
    assert await cp.answer("GetLocalListVersion", {}) == {"versionNumber": 0}
    assert (await cp.answer("SendLocalList", REQUESTS["SendLocalList"]))["status"] == "Accepted"
    assert await cp.answer("GetLocalListVersion", {}) == {"versionNumber": 3}
    stale = {"versionNumber": 3, "updateType": "Differential", "localAuthorizationList": [
        {"idToken": {"idToken": "B2", "type": "ISO14443"}}]}
    assert (await cp.answer("SendLocalList", stale))["status"] == "VersionMismatch"
    diff = {"versionNumber": 4, "updateType": "Differential", "localAuthorizationList": [
        {"idToken": TOKEN}, {"idToken": {"idToken": "B2", "type": "ISO14443"}, "idTokenInfo": {"status": "Blocked"}}]}
    assert (await cp.answer("SendLocalList", diff))["status"] == "Accepted"
    assert cp.local_list == {"B2": {"status": "Blocked"}}
    assert await cp.authorize("B2") == "Blocked"
    cp.auth_cache["X"] = {"status": "Accepted"}
    assert await cp.answer("ClearCache", {}) == {"status": "Accepted"} and cp.auth_cache == {}
    assert await cp.answer("DataTransfer", REQUESTS["DataTransfer"]) == {"status": "UnknownVendorId"}


async def test_availability_reset_and_unlock() -> None:
    cp = make_cp()
    assert (await cp.answer("ChangeAvailability", REQUESTS["ChangeAvailability"]))["status"] == "Accepted"
    assert cp.connectors[1].status == "Unavailable"
    cp.plug_in(2, Car())
    cp.start_transaction(2, "BADGE1")
    assert (await cp.answer("ChangeAvailability", {"operationalStatus": "Inoperative"}))["status"] == "Scheduled"
    statuses = [(p["evseId"], p["connectorStatus"]) for a, p in queued(cp) if a == "StatusNotification"]
    assert statuses == [(1, "Unavailable"), (2, "Available"), (2, "Occupied")]  # no station-wide status in 2.0.1
    assert (await cp.answer("UnlockConnector", {"evseId": 2, "connectorId": 1}))["status"] == \
        "OngoingAuthorizedTransaction"
    assert (await cp.answer("UnlockConnector", {"evseId": 9, "connectorId": 1}))["status"] == "UnknownConnector"
    assert (await cp.answer("Reset", {"type": "OnIdle"}))["status"] == "Scheduled"
    assert (await cp.answer("Reset", {"type": "Immediate", "evseId": 1}))["status"] == "Rejected"
    assert (await cp.answer("TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": 1}}))[
        "status"] == "Rejected"  # no transaction there
    assert (await cp.answer("TriggerMessage", {"requestedMessage": "TransactionEvent"}))["status"] == "Accepted"
    assert (await cp.answer("TriggerMessage", {"requestedMessage": "SignV2GCertificate"}))["status"] == \
        "NotImplemented"
    cp.stop_transaction(2)
    assert cp.connectors[2].status == "Unavailable"  # the scheduled change, once the transaction ended
    assert (await cp.answer("ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 0}}))[
        "status"] == "Accepted"
    assert cp.connectors[1].status == "Available"
