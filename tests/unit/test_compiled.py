"""The compiled strict types never accept what the official schema refuses.

Every request schema of OCPP 1.6 and of the 2.0.1 actions voltlib types is compiled, a valid example
of each action takes the one-pass path, and hundreds of mutations of those examples (each property
removed, replaced by values of every JSON type, strings one character too long, date-times in
doubtful shapes, unknown keys at every level) are judged by jsonschema-rs and by the compiled type:
whenever the compiled type accepts, the schema accepts too, and the message is the one the slow path
would have built.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from voltlib.ocpp import compiled, frames, schemas, versions
from voltlib.ocpp.errors import OcppError
from voltlib.ocpp.session import CallReceived, OcppSession, Violation, _fingerprint
from voltlib.ocpp.v16 import messages as v16
from voltlib.ocpp.v201 import messages as v201

TS = "2026-12-06T17:00:00Z"
SAMPLE = {"value": "1234.5", "context": "Sample.Periodic", "format": "Raw", "measurand": "Voltage",
          "phase": "L1-N", "location": "Outlet", "unit": "V"}
EXAMPLES: dict[str, dict[str, Any]] = {
    "Authorize": {"idTag": "BADGE1"},
    "BootNotification": {"chargePointVendor": "Acme", "chargePointModel": "AC22", "chargePointSerialNumber": "S1",
                         "chargeBoxSerialNumber": "B1", "firmwareVersion": "1.2.3", "iccid": "I", "imsi": "M",
                         "meterType": "T", "meterSerialNumber": "MS"},
    "DataTransfer": {"vendorId": "com.example", "messageId": "m", "data": "{\"a\": 1}"},
    "DiagnosticsStatusNotification": {"status": "Uploaded"},
    "FirmwareStatusNotification": {"status": "Installed"},
    "Heartbeat": {},
    "MeterValues": {"connectorId": 1, "transactionId": 7, "meterValue": [{"timestamp": TS, "sampledValue": [SAMPLE]}]},
    "StartTransaction": {"connectorId": 1, "idTag": "BADGE1", "meterStart": 100, "reservationId": 3, "timestamp": TS},
    "StatusNotification": {"connectorId": 1, "errorCode": "NoError", "status": "Available", "info": "i",
                           "timestamp": TS, "vendorId": "v", "vendorErrorCode": "e"},
    "StopTransaction": {"meterStop": 200, "timestamp": TS, "transactionId": 7, "idTag": "BADGE1", "reason": "Local",
                        "transactionData": [{"timestamp": TS, "sampledValue": [SAMPLE]}]},
    "SecurityEventNotification": {"type": "TamperDetectionActivated", "timestamp": TS, "techInfo": "door"},
    "LogStatusNotification": {"status": "Uploaded", "requestId": 4},
    "SignedFirmwareStatusNotification": {"status": "SignatureVerified", "requestId": 5},
    "SignCertificate": {"csr": "-----BEGIN CERTIFICATE REQUEST-----"},
}
# One valid 2.0.1 call of each action a charge point makes, with every optional field the examples'
# mutations should reach (customData with an extra property included).
CUSTOM = {"vendorId": "com.example", "note": "kept by the schema, dropped by the type"}
IDTOKEN = {"idToken": "BADGE1", "type": "ISO14443", "additionalInfo": [{"additionalIdToken": "G1", "type": "groupId"}]}
SAMPLE_201 = {"value": 1234.5, "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
              "phase": "L1-N", "location": "Outlet", "unitOfMeasure": {"unit": "Wh", "multiplier": 0},
              "signedMeterValue": {"signedMeterData": "ZGF0YQ==", "signingMethod": "ECDSA-secp256r1",
                                   "encodingMethod": "OCMF", "publicKey": "a2V5"}}
EXAMPLES_201: dict[str, dict[str, Any]] = {
    "Authorize": {"idToken": IDTOKEN, "certificate": "-----BEGIN CERTIFICATE-----",
                  "iso15118CertificateHashData": [{"hashAlgorithm": "SHA256", "issuerNameHash": "aa",
                                                   "issuerKeyHash": "bb", "serialNumber": "01",
                                                   "responderURL": "http://ocsp.example"}]},
    "BootNotification": {"reason": "PowerUp", "customData": CUSTOM,
                         "chargingStation": {"model": "AC22", "vendorName": "Acme", "serialNumber": "S1",
                                             "firmwareVersion": "1.2.3", "modem": {"iccid": "I", "imsi": "M"}}},
    "DataTransfer": {"vendorId": "com.example", "messageId": "m", "data": {"a": [1, "b", None]}},
    "FirmwareStatusNotification": {"status": "InstallVerificationFailed", "requestId": 7},
    "Get15118EVCertificate": {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install",
                              "exiRequest": "gAQ="},
    "GetCertificateStatus": {"ocspRequestData": {"hashAlgorithm": "SHA256", "issuerNameHash": "aa",
                                                 "issuerKeyHash": "bb", "serialNumber": "01",
                                                 "responderURL": "http://ocsp.example"}},
    "Heartbeat": {},
    "LogStatusNotification": {"status": "Uploading", "requestId": 7, "customData": CUSTOM},
    "MeterValues": {"evseId": 1, "meterValue": [{"timestamp": TS, "sampledValue": [
        {"value": 230.1, "measurand": "Voltage", "phase": "L1-N", "unitOfMeasure": {"unit": "V"}}]}]},
    "NotifyReport": {"requestId": 1, "generatedAt": TS, "seqNo": 0, "tbc": False, "reportData": [{
        "component": {"name": "EVSE", "instance": "i", "evse": {"id": 1, "connectorId": 1}},
        "variable": {"name": "AvailabilityState", "instance": "v"},
        "variableAttribute": [{"type": "Actual", "value": "Available", "mutability": "ReadOnly", "persistent": False,
                               "constant": False}],
        "variableCharacteristics": {"unit": "A", "dataType": "OptionList", "minLimit": 0, "maxLimit": 32.5,
                                    "valuesList": "Available,Occupied", "supportsMonitoring": True}}]},
    "NotifyCustomerInformation": {"data": "badge used twice", "seqNo": 0, "generatedAt": TS, "requestId": 3,
                                  "tbc": False},
    "NotifyDisplayMessages": {"requestId": 2, "tbc": False, "messageInfo": [{
        "id": 7, "priority": "InFront", "state": "Idle", "startDateTime": TS, "endDateTime": TS, "transactionId": "T-1",
        "display": {"name": "Display", "evse": {"id": 1}},
        "message": {"format": "UTF8", "language": "fr", "content": "Réservé"}}]},
    "NotifyEVChargingNeeds": {"evseId": 1, "maxScheduleTuples": 12, "chargingNeeds": {
        "requestedEnergyTransfer": "DC", "departureTime": TS, "dcChargingParameters": {
            "evMaxCurrent": 125, "evMaxVoltage": 400, "energyAmount": 20000, "evMaxPower": 50000,
            "stateOfCharge": 35, "evEnergyCapacity": 60000, "fullSoC": 95, "bulkSoC": 80}}},
    "NotifyEVChargingSchedule": {"timeBase": TS, "evseId": 1, "chargingSchedule": {
        "id": 3, "chargingRateUnit": "A", "startSchedule": TS, "duration": 3600, "minChargingRate": 6.0,
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0, "numberPhases": 1}]}},
    "NotifyEvent": {"generatedAt": TS, "seqNo": 0, "tbc": False, "eventData": [{
        "eventId": 1, "timestamp": TS, "trigger": "Alerting", "cause": 0, "actualValue": "true", "techCode": "T",
        "techInfo": "door", "cleared": False, "transactionId": "T-1", "variableMonitoringId": 2,
        "eventNotificationType": "HardWiredNotification", "component": {"name": "AccessBarrier", "instance": "door"},
        "variable": {"name": "Active"}}]},
    "NotifyMonitoringReport": {"requestId": 1, "seqNo": 0, "generatedAt": TS, "tbc": False, "monitor": [{
        "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"},
        "variableMonitoring": [{"id": 3, "transaction": False, "value": 22000.5, "type": "UpperThreshold",
                                "severity": 4}]}]},
    "ReservationStatusUpdate": {"reservationId": 5, "reservationUpdateStatus": "Expired"},
    "ReportChargingProfiles": {"requestId": 4, "chargingLimitSource": "CSO", "evseId": 1, "tbc": True,
                               "chargingProfile": [{"id": 3, "stackLevel": 1, "chargingProfilePurpose": "TxProfile",
                                                    "chargingProfileKind": "Absolute", "transactionId": "tx-1",
                                                    "chargingSchedule": [{"id": 3, "startSchedule": TS,
                                                                          "chargingRateUnit": "W",
                                                                          "chargingSchedulePeriod": [
                                                                              {"startPeriod": 0, "limit": 3000.0}]}]}]},
    "NotifyChargingLimit": {"evseId": 1, "chargingLimit": {"chargingLimitSource": "EMS", "isGridCritical": True},
                            "chargingSchedule": [{"id": 9, "chargingRateUnit": "A", "chargingSchedulePeriod": [
                                {"startPeriod": 0, "limit": 16.0, "numberPhases": 1}]}]},
    "ClearedChargingLimit": {"chargingLimitSource": "SO", "evseId": 2},
    "SecurityEventNotification": {"type": "TamperDetectionActivated", "timestamp": TS, "techInfo": "door"},
    "SignCertificate": {"csr": "-----BEGIN CERTIFICATE REQUEST-----", "certificateType": "V2GCertificate"},
    "StatusNotification": {"timestamp": TS, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
    "TransactionEvent": {"eventType": "Updated", "timestamp": TS, "triggerReason": "MeterValuePeriodic", "seqNo": 3,
                         "offline": False, "numberOfPhasesUsed": 3, "cableMaxCurrent": 32, "reservationId": 5,
                         "transactionInfo": {"transactionId": "T-1", "chargingState": "Charging",
                                             "timeSpentCharging": 60, "stoppedReason": "Local", "remoteStartId": 9},
                         "idToken": IDTOKEN, "evse": {"id": 1, "connectorId": 1},
                         "meterValue": [{"timestamp": TS, "sampledValue": [SAMPLE_201]}]},
}
EXAMPLES_BY_VERSION = {"1.6": EXAMPLES, "2.0.1": EXAMPLES_201}
CASES = [(version, action) for version, examples in EXAMPLES_BY_VERSION.items() for action in sorted(examples)]
DATE_TIMES = ["2026-12-06T17:00:00", "2026-12-06t17:00:00z", "2026-12-06 17:00:00Z", "2026-12-06T17:00:00.123456789Z",
              "2026-12-06T17:00:00+25:00", "2026-12-06T23:59:60Z", "2026-02-30T17:00:00Z", "2026-12-06T24:00:00Z",
              "2026-12-06", "17:00:00Z", "2026-12-06T17:00Z", "+2026-12-06T17:00:00Z", "2026-12-06T17:00:00+0100",
              "2026-12-06T17:00:00.5+01:00", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59"]
OTHER_VALUES: list[Any] = [None, 0, -1, 1.0, 1.5, 2**31, -(2**31) - 1, True, "", "x", "Sample.periodic", [], {},
                           ["x"], [{}], {"x": 1}]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _replaced(payload: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    parent: Any = out
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return out


def _removed(payload: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    parent: Any = out
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return out


def _max_lengths(schema: Any, found: dict[str, set[int]]) -> dict[str, set[int]]:
    """The maxLength of every string property of the schema (definitions included), by name."""
    if isinstance(schema, dict):
        for name, prop in schema.get("properties", {}).items():
            if isinstance(prop, dict) and "maxLength" in prop:
                found.setdefault(name, set()).add(prop["maxLength"])
        for value in schema.values():
            _max_lengths(value, found)
    return found


def _long_strings(action: str, version: str) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Strings at and one past each maxLength of the schema, at every path of the example ending in
    a property of that name."""
    limits = _max_lengths(compiled._schema(action, version), {})
    example = EXAMPLES_BY_VERSION[version][action]
    for path in _paths(example):
        if path and isinstance(path[-1], str) and path[-1] in limits:
            for limit in sorted(limits[path[-1]]):
                yield path, "é" * limit
                yield path, "é" * (limit + 1)


def mutations(action: str, version: str = "1.6") -> Iterator[dict[str, Any]]:
    example = EXAMPLES_BY_VERSION[version][action]
    yield example
    for path in _paths(example):
        if not path:
            continue
        yield _removed(example, path)
        for value in [*OTHER_VALUES, *DATE_TIMES]:
            yield _replaced(example, path, value)
    for path in _paths(example):
        parent: Any = example
        for key in path:
            parent = parent[key]
        if isinstance(parent, dict):
            yield _replaced(example, (*path, "unexpectedKey"), "x")
        if isinstance(parent, list):
            yield _replaced(example, path, parent + parent)
    for path, text in _long_strings(action, version):
        yield _replaced(example, path, text)


def _fields(value: Any) -> Any:
    """Every field, defaults included (encoding omits defaults, by identity for strings)."""
    if isinstance(value, msgspec.Struct):
        return {f: _fields(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, list):
        return [_fields(v) for v in value]
    return value


def _frame(action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, "m-1", action, payload], ensure_ascii=False)


def test_every_request_schema_of_1_6_is_compiled() -> None:
    assert set(compiled.decoders()) == set(v16.REQUESTS)


def test_every_request_schema_of_the_typed_2_0_1_actions_is_compiled() -> None:
    assert set(compiled.decoders("2.0.1")) == set(v201.REQUESTS) == set(EXAMPLES_201)


@pytest.mark.parametrize(("version", "action"), CASES)
def test_a_valid_call_takes_the_one_pass_path(version: str, action: str) -> None:
    example = EXAMPLES_BY_VERSION[version][action]
    schemas.validate(version, action, "request", example)  # the example itself is valid
    decoded = compiled.decode_call(_frame(action, example), version)
    assert decoded is not None
    message_id, decoded_action, request = decoded
    assert (message_id, decoded_action) == ("m-1", action)
    assert isinstance(request, versions.requests(version)[action])  # handlers see the class they were written for
    slow = versions.decode_request(version, action, example)
    assert _fields(request) == _fields(slow)  # what the jsonschema-rs path builds, field by field
    assert msgspec.json.encode(request) == msgspec.json.encode(slow)  # same defaults left out


def test_a_call_of_one_version_is_not_decoded_as_the_other() -> None:
    assert compiled.decode_call(_frame("Authorize", EXAMPLES_201["Authorize"]), "1.6") is None
    assert compiled.decode_call(_frame("Authorize", EXAMPLES["Authorize"]), "2.0.1") is None
    assert compiled.decode_call(_frame("StartTransaction", EXAMPLES["StartTransaction"]), "2.0.1") is None


@pytest.mark.parametrize(("version", "action"), CASES)
def test_the_compiled_type_never_accepts_what_the_schema_refuses(version: str, action: str) -> None:
    accepted = refused_by_both = 0
    for payload in mutations(action, version):
        decoded = compiled.decode_call(_frame(action, payload), version)
        try:
            schemas.validate(version, action, "request", payload)
            schema_ok = True
        except OcppError:
            schema_ok = False
        if decoded is None:
            refused_by_both += not schema_ok
            continue
        assert schema_ok, f"{action}: compiled type accepted {payload!r}, the schema refuses it"
        slow = versions.decode_request(version, action, payload)
        assert _fields(decoded[2]) == _fields(slow)
        # a retransmission is recognised whichever path each copy took
        assert _fingerprint(action, decoded[2]) == _fingerprint(action, slow)
        accepted += 1
    assert accepted >= 1 and refused_by_both >= 1  # the corpus exercised both sides


def test_frames_that_are_not_calls_are_left_to_the_slow_path() -> None:
    payload = EXAMPLES["Heartbeat"]
    for text in ['[3,"m-1",{}]', '[2,"m-1","Heartbeat"]', f'[2.0,"m-1","Heartbeat",{json.dumps(payload)}]',
                 '[true,"m-1","Heartbeat",{}]', '[2,"","Heartbeat",{}]', f'[2,"{"x" * 37}","Heartbeat",{{}}]',
                 '[2,"m-1","Reset",{"type":"Hard"}]', '[2,"m-1","Heartbeat",{}', '[2,"m-1","Heartbeat",{}] x',
                 '[2,"m-1","Authorize",{"idTag":"A\x00B"}]']:  # a raw NUL is not JSON
        assert compiled.decode_call(text) is None, text


def test_a_refused_payload_still_gets_the_schema_s_precise_error() -> None:
    bad = {**EXAMPLES["StatusNotification"], "status": "Broken"}
    event = OcppSession().receive(_frame("StatusNotification", bad), 0.0)
    assert isinstance(event, Violation) and event.reply is not None
    assert json.loads(event.reply)[2] == "PropertyConstraintViolation"
    good = OcppSession().receive(_frame("StatusNotification", EXAMPLES["StatusNotification"]), 0.0)
    assert isinstance(good, CallReceived) and good.request.ACTION == "StatusNotification"


def test_the_compiler_refuses_what_it_cannot_express() -> None:
    with pytest.raises(compiled.SchemaNotCompiled):
        compiled.strict_type(v16.Authorize, {"type": "object", "properties": {
            "idTag": {"type": "string", "pattern": "^[A-Z]+$"}}, "required": ["idTag"]})
    with pytest.raises(compiled.SchemaNotCompiled):  # a class field the schema does not have
        compiled.strict_type(v16.Authorize, {"type": "object", "properties": {}})
    with pytest.raises(compiled.SchemaNotCompiled):
        compiled.strict_type(v16.Authorize, {"type": "object", "properties": {"idTag": {"type": "integer"}}})


@pytest.mark.parametrize(("action", "payload"), [
    ("Authorize", {"idTag": "BADGE\u00001"}),
    ("MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": "9999-12-31T23:59:59-23:59",
                                                       "sampledValue": [SAMPLE]}]}),
    ("StartTransaction", {**EXAMPLES["StartTransaction"], "timestamp": "0001-01-01T00:00:00+01:00"}),
])
def test_what_the_schema_admits_but_cannot_be_stored_is_refused_on_the_slow_path(action: str,
                                                                                  payload: dict[str, Any]) -> None:
    text = _frame(action, payload)
    assert compiled.decode_call(text) is None  # not an exception: the frame goes the slow way
    event = OcppSession().receive(text, 0.0)
    assert isinstance(event, Violation) and event.reply is not None
    assert json.loads(event.reply)[2] == "TypeConstraintViolation", event.reply


def test_every_typed_2_0_1_message_of_either_direction_matches_its_schema() -> None:
    """The classes we send and read back (GetVariables, its reply...) follow the official schemas too:
    every field is a property of the schema under its wire name, of the schema's type."""
    for direction, classes in (("request", {**v201.REQUESTS, **v201.COMMANDS}), ("response", v201.REPLIES)):
        for action, cls in classes.items():
            schema = schemas.load("2.0.1", action, direction)
            assert schema is not None, (action, direction)
            compiled.strict_type(cls, schema)  # raises SchemaNotCompiled on any disagreement


def test_a_wire_name_given_by_hand_is_kept_by_the_compiled_type() -> None:
    payload = EXAMPLES_201["Authorize"]
    decoded = compiled.decode_call(_frame("Authorize", payload), "2.0.1")
    assert decoded is not None and isinstance(decoded[2], v201.Authorize)
    hashes = decoded[2].iso15118_certificate_hash_data
    assert hashes is not None and hashes[0].responder_url == "http://ocsp.example"
    assert b'"responderURL":"http://ocsp.example"' in msgspec.json.encode(decoded[2])


class _Bounded(msgspec.Struct, rename="camel", kw_only=True):
    soc: v201.Int32
    levels: list[v201.Int32]


@pytest.mark.parametrize(("payload", "ok"), [
    ({"soc": 0, "levels": [1]}, True), ({"soc": 100, "levels": [1, 2]}, True), ({"soc": -1, "levels": [1]}, False),
    ({"soc": 101, "levels": [1]}, False), ({"soc": 5, "levels": []}, False), ({"soc": 5, "levels": [1, 2, 3]}, False),
    ({"soc": 5, "levels": [2**31]}, False),  # the class's own 32-bit bound is kept beside the schema's
])
def test_minimum_maximum_and_max_items_are_compiled(payload: dict[str, Any], ok: bool) -> None:
    schema = {"type": "object", "additionalProperties": False, "required": ["soc", "levels"], "properties": {
        "soc": {"type": "integer", "minimum": 0.0, "maximum": 100.0},
        "levels": {"type": "array", "additionalItems": False, "minItems": 1, "maxItems": 2,
                   "items": {"type": "integer", "minimum": 0}}}}
    decoder = msgspec.json.Decoder(compiled.strict_type(_Bounded, schema))
    try:
        decoder.decode(json.dumps(payload))
        accepted = True
    except msgspec.ValidationError:
        accepted = False
    assert accepted is ok


def test_a_2_0_1_payload_that_cannot_be_stored_is_refused_on_the_slow_path() -> None:
    """A NUL anywhere, even inside DataTransfer's untyped data, is a TypeConstraintViolation."""
    text = _frame("DataTransfer", {"vendorId": "com.example", "data": {"k": ["A\u0000B"]}})
    assert compiled.decode_call(text, "2.0.1") is None
    event = OcppSession(version="2.0.1").receive(text, 0.0)
    assert isinstance(event, Violation) and event.reply is not None
    assert json.loads(event.reply)[2] == "TypeConstraintViolation", event.reply


@pytest.mark.parametrize("action", sorted(EXAMPLES_201))
def test_a_2_0_1_call_read_from_text_has_the_same_fingerprint_on_both_paths(action: str) -> None:
    """Defaults written out ("Sample.Periodic", "Outlet", the unit "Wh") are left out of the encoding
    on both paths, whatever string objects each decoder made, so a retransmission is recognised even
    when its copies took different paths."""
    payload = copy.deepcopy(EXAMPLES_201[action])
    if action == "TransactionEvent":
        payload["meterValue"][0]["sampledValue"].append({"value": 1, "context": "Sample.Periodic", "location": "Outlet",
                                                         "unitOfMeasure": {"unit": "Wh", "multiplier": 0}})
    text = _frame(action, payload)
    fast = compiled.decode_call(text, "2.0.1")
    assert fast is not None
    call = frames.parse_frame(text, "2.0.1")
    assert isinstance(call, frames.Call)
    slow = versions.decode_request("2.0.1", action, call.payload)
    assert msgspec.json.encode(fast[2]) == msgspec.json.encode(slow)
    assert _fingerprint(action, fast[2]) == _fingerprint(action, slow)
