"""The simulated charge point's answers to every central-system command are schema-valid,
and its state machine does what the command says (no network needed)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from voltlib.ocpp import schemas
from voltlib.ocpp.errors import OcppError
from voltlib.ocpp.v16.messages import COMMANDS
from voltlib.sim import Car, SimulatedChargePoint
from voltlib.sim.profiles import format_time

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class FixedClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.t = now

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return (self.t - NOW).total_seconds()

    factor = 1.0

    async def sleep(self, seconds: float) -> None:
        """Time only moves when the test moves it; a waiter still lets others run."""
        await asyncio.sleep(0)


def iso(t: datetime) -> str:
    return format_time(t)


PROFILE = {"chargingProfileId": 7, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
           "chargingProfileKind": "Absolute",
           "chargingSchedule": {"startSchedule": iso(NOW - timedelta(hours=1)), "chargingRateUnit": "W",
                                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 3000.0},
                                                           {"startPeriod": 7200, "limit": 5000.0}]}}

# One valid request for every central-system command of OCPP 1.6 (core, profiles, security whitepaper).
REQUESTS: dict[str, dict[str, Any]] = {
    "CancelReservation": {"reservationId": 1},
    "CertificateSigned": {"certificateChain": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"},
    "ChangeAvailability": {"connectorId": 1, "type": "Inoperative"},
    "ChangeConfiguration": {"key": "HeartbeatInterval", "value": "120"},
    "ClearCache": {},
    "ClearChargingProfile": {"id": 7},
    "DataTransfer": {"vendorId": "com.example", "messageId": "x", "data": "y"},
    "DeleteCertificate": {"certificateHashData": {"hashAlgorithm": "SHA256", "issuerNameHash": "a" * 64,
                                                  "issuerKeyHash": "b" * 64, "serialNumber": "01"}},
    "ExtendedTriggerMessage": {"requestedMessage": "LogStatusNotification"},
    "GetCompositeSchedule": {"connectorId": 1, "duration": 86400, "chargingRateUnit": "A"},
    "GetConfiguration": {"key": ["HeartbeatInterval", "NoSuchKey"]},
    "GetDiagnostics": {"location": "ftp://diag.example/upload"},
    "GetInstalledCertificateIds": {"certificateType": "CentralSystemRootCertificate"},
    "GetLocalListVersion": {},
    "GetLog": {"logType": "SecurityLog", "requestId": 4, "log": {"remoteLocation": "https://logs.example/up"}},
    "InstallCertificate": {"certificateType": "ManufacturerRootCertificate",
                           "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"},
    "RemoteStartTransaction": {"idTag": "BADGE1", "connectorId": 1},
    "RemoteStopTransaction": {"transactionId": 42},
    "ReserveNow": {"connectorId": 2, "expiryDate": iso(NOW + timedelta(minutes=15)), "idTag": "BADGE2",
                   "reservationId": 1},
    "Reset": {"type": "Soft"},
    "SendLocalList": {"listVersion": 3, "updateType": "Full",
                      "localAuthorizationList": [{"idTag": "BADGE1", "idTagInfo": {"status": "Accepted"}}]},
    "SetChargingProfile": {"connectorId": 1, "csChargingProfiles": PROFILE},
    "SignedUpdateFirmware": {"requestId": 9, "firmware": {
        "location": "https://fw.example/fw.bin", "retrieveDateTime": iso(NOW),
        "signingCertificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "signature": "c2lnbmF0dXJl"}},
    "TriggerMessage": {"requestedMessage": "StatusNotification", "connectorId": 1},
    "UnlockConnector": {"connectorId": 1},
    "UpdateFirmware": {"location": "https://fw.example/fw.bin", "retrieveDate": iso(NOW)},
}


def make_cp() -> SimulatedChargePoint:
    return SimulatedChargePoint("CP-T", "ws://127.0.0.1:1/ocpp", password="p" * 20, clock=FixedClock())


def test_every_command_has_a_sample_request() -> None:
    assert set(REQUESTS) == set(COMMANDS)
    for action, payload in REQUESTS.items():
        schemas.validate("1.6", action, "request", payload)


@pytest.mark.parametrize("action", sorted(COMMANDS))
async def test_every_answer_is_schema_valid(action: str) -> None:
    cp = make_cp()
    answer = await cp.answer(action, REQUESTS[action])
    schemas.validate("1.6", action, "response", answer)


async def test_invalid_request_and_unknown_action_are_call_errors() -> None:
    cp = make_cp()
    with pytest.raises(OcppError) as bad:
        await cp.answer("Reset", {"type": "Sideways"})
    assert bad.value.code.value == "PropertyConstraintViolation"
    with pytest.raises(OcppError) as unknown:
        await cp.answer("MakeCoffee", {})
    assert unknown.value.code.value == "NotImplemented"


async def test_configuration_keys() -> None:
    cp = make_cp()
    got = await cp.answer("GetConfiguration", {"key": ["HeartbeatInterval", "AuthorizationKey", "Nope"]})
    keys = {k["key"]: k for k in got["configurationKey"]}
    assert keys["HeartbeatInterval"] == {"key": "HeartbeatInterval", "readonly": False, "value": "300"}
    assert "value" not in keys["AuthorizationKey"]  # write-only
    assert got["unknownKey"] == ["Nope"]
    everything = await cp.answer("GetConfiguration", {})
    assert {"MeterValueSampleInterval", "NumberOfConnectors"} <= {k["key"] for k in everything["configurationKey"]}
    assert (await cp.answer("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "15"})) == {
        "status": "Accepted"}
    assert cp.configuration["MeterValueSampleInterval"].value == "15"
    assert (await cp.answer("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "-3"}))["status"] == "Rejected"
    assert (await cp.answer("ChangeConfiguration", {"key": "NumberOfConnectors", "value": "5"}))["status"] == "Rejected"
    assert (await cp.answer("ChangeConfiguration", {"key": "Nope", "value": "1"}))["status"] == "NotSupported"
    assert (await cp.answer("ChangeConfiguration", {"key": "AuthorizationKey", "value": "short"}))["status"] == \
        "Rejected"
    assert (await cp.answer("ChangeConfiguration", {"key": "AuthorizationKey", "value": "n" * 24}))["status"] == \
        "Accepted"
    assert cp.password == "n" * 24
    assert (await cp.answer("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}))["status"] == \
        "Accepted"
    assert cp.heartbeat_interval == 60


async def test_local_list_versions() -> None:
    cp = make_cp()
    assert await cp.answer("GetLocalListVersion", {}) == {"listVersion": 0}
    assert (await cp.answer("SendLocalList", REQUESTS["SendLocalList"]))["status"] == "Accepted"
    assert await cp.answer("GetLocalListVersion", {}) == {"listVersion": 3}
    stale = {"listVersion": 3, "updateType": "Differential", "localAuthorizationList": [{"idTag": "B2"}]}
    assert (await cp.answer("SendLocalList", stale))["status"] == "VersionMismatch"
    diff = {"listVersion": 4, "updateType": "Differential", "localAuthorizationList": [
        {"idTag": "BADGE1"}, {"idTag": "B2", "idTagInfo": {"status": "Blocked"}}]}
    assert (await cp.answer("SendLocalList", diff))["status"] == "Accepted"
    assert cp.local_list == {"B2": {"status": "Blocked"}}
    assert await cp.authorize("B2") == "Blocked"  # offline: from the local list


async def test_reservation_and_availability() -> None:
    cp = make_cp()
    assert (await cp.answer("ReserveNow", REQUESTS["ReserveNow"]))["status"] == "Accepted"
    assert cp.connectors[2].status == "Reserved"
    assert (await cp.answer("ReserveNow", {**REQUESTS["ReserveNow"], "connectorId": 0}))["status"] == "Rejected"
    assert await cp.badge(2, "SOMEONE") == "Reserved"
    assert (await cp.answer("CancelReservation", {"reservationId": 1}))["status"] == "Accepted"
    assert cp.connectors[2].status == "Available"
    assert (await cp.answer("CancelReservation", {"reservationId": 1}))["status"] == "Rejected"
    assert (await cp.answer("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}))["status"] == "Accepted"
    assert cp.connectors[1].status == "Unavailable"
    cp.start_transaction(2, "BADGE1")
    assert (await cp.answer("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}))["status"] == "Scheduled"
    cp.stop_transaction(2)
    assert cp.connectors[2].status == "Unavailable"
    assert (await cp.answer("ChangeAvailability", {"connectorId": 0, "type": "Operative"}))["status"] == "Accepted"
    assert cp.connectors[1].status == "Available"
    assert cp.connectors[2].status == "Finishing"  # the car is still plugged in


async def test_reservation_expires() -> None:
    clock = FixedClock()
    cp = SimulatedChargePoint("CP-T", "ws://127.0.0.1:1/ocpp", clock=clock)
    await cp.answer("ReserveNow", REQUESTS["ReserveNow"])
    assert cp.connectors[2].reservation is not None
    clock.t = NOW + timedelta(minutes=16)
    cp._refresh()
    reservation = cp.connectors[2].reservation
    assert reservation is not None and reservation.expiry <= clock.t  # expired; the tick loop clears it


async def test_charging_profile_limits_power_and_composite_schedule() -> None:
    cp = make_cp()
    cp.plug_in(1, Car(battery_wh=30_000, soc=20, max_power_w=7_400))
    cp.start_transaction(1, "BADGE1")
    assert cp.connectors[1].power_w == 7_400
    assert (await cp.answer("SetChargingProfile", REQUESTS["SetChargingProfile"]))["status"] == "Accepted"
    assert cp.connectors[1].power_w == 3_000
    schedule = await cp.answer("GetCompositeSchedule", {"connectorId": 1, "duration": 7200, "chargingRateUnit": "W"})
    periods = schedule["chargingSchedule"]["chargingSchedulePeriod"]
    assert periods == [{"startPeriod": 0, "limit": 3000}, {"startPeriod": 3600, "limit": 5000}]
    cp_max = {"chargingProfileId": 8, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile",
              "chargingProfileKind": "Relative", "chargingSchedule": {
                  "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 2.0}]}}
    assert (await cp.answer("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": cp_max}))["status"] == \
        "Rejected"  # a ChargePointMaxProfile belongs on connector 0
    assert (await cp.answer("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": cp_max}))["status"] == \
        "Accepted"
    assert cp.connectors[1].power_w == pytest.approx(2.0 * 230 * 3)
    tx_profile = {**PROFILE, "chargingProfileId": 9, "chargingProfilePurpose": "TxProfile"}
    assert (await cp.answer("SetChargingProfile", {"connectorId": 2, "csChargingProfiles": tx_profile}))[
        "status"] == "Rejected"  # no transaction on connector 2
    assert (await cp.answer("ClearChargingProfile", {}))["status"] == "Accepted"
    assert cp.connectors[1].power_w == 7_400
    assert (await cp.answer("ClearChargingProfile", {"id": 99}))["status"] == "Unknown"
    zero = {**PROFILE, "chargingSchedule": {**PROFILE["chargingSchedule"],
                                            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 0.0}]}}
    await cp.answer("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": zero})
    assert cp.connectors[1].status == "SuspendedEVSE"


async def test_energy_and_soc_follow_the_clock() -> None:
    clock = FixedClock()
    cp = SimulatedChargePoint("CP-T", "ws://127.0.0.1:1/ocpp", clock=clock)
    car = Car(battery_wh=30_000, soc=50, max_power_w=6_000)
    cp.plug_in(1, car)
    assert cp.connectors[1].status == "Preparing"
    tx = cp.start_transaction(1, "BADGE1")
    assert cp.connectors[1].status == "Charging"
    clock.t = NOW + timedelta(minutes=30)
    sample = cp._sample(cp.connectors[1], "Sample.Periodic")
    values = {v["measurand"]: v["value"] for v in sample["sampledValue"]}
    assert values == {"Energy.Active.Import.Register": "3000", "Power.Active.Import": "6000", "SoC": "60.0"}
    clock.t = NOW + timedelta(hours=10)
    cp._refresh()
    assert car.full and cp.connectors[1].status == "SuspendedEV"
    stopped = cp.stop_transaction(1, reason="Local", id_tag="BADGE1")
    assert stopped is tx and tx.meter_stop == 15_000  # 50 % of 30 kWh
    assert cp.connectors[1].status == "Finishing"
    cp.unplug(1)
    assert cp.connectors[1].status == "Available"
    queued = [(item.action, item.payload.get("status")) for item in cp._outbox
              if item.payload.get("connectorId") == 1]
    assert queued[:4] == [("StatusNotification", "Preparing"), ("StartTransaction", None),
                          ("StatusNotification", "Charging"), ("StatusNotification", "SuspendedEV")]
