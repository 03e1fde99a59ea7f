"""The compiled strict types never accept what the official schema refuses.

Every request schema of OCPP 1.6 is compiled, a valid example of each action takes the one-pass
path, and hundreds of mutations of those examples (each property removed, replaced by values of
every JSON type, strings one character too long, date-times in doubtful shapes, unknown keys at
every level) are judged by jsonschema-rs and by the compiled type: whenever the compiled type
accepts, the schema accepts too, and the message is the one the slow path would have built.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from voltlib.ocpp import compiled, schemas
from voltlib.ocpp.errors import OcppError
from voltlib.ocpp.session import CallReceived, OcppSession, Violation, _fingerprint
from voltlib.ocpp.v16 import messages as v16

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


def _long_strings(action: str) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Strings at and one past each maxLength of the schema, by property name."""
    text = json.dumps(compiled._schema(action))
    for name in EXAMPLES[action]:
        for limit in (20, 25, 50, 255, 5500):
            if f'"{name}": {{"type": "string", "maxLength": {limit}}}' in text:
                yield (name,), "é" * limit
                yield (name,), "é" * (limit + 1)


def mutations(action: str) -> Iterator[dict[str, Any]]:
    example = EXAMPLES[action]
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
    for path, text in _long_strings(action):
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


@pytest.mark.parametrize("action", sorted(EXAMPLES))
def test_a_valid_call_takes_the_one_pass_path(action: str) -> None:
    decoded = compiled.decode_call(_frame(action, EXAMPLES[action]))
    assert decoded is not None
    message_id, decoded_action, request = decoded
    assert (message_id, decoded_action) == ("m-1", action)
    assert isinstance(request, v16.REQUESTS[action])  # handlers see the class they were written for
    slow = v16.decode_request(action, EXAMPLES[action])
    assert _fields(request) == _fields(slow)  # what the jsonschema-rs path builds, field by field
    assert msgspec.json.encode(request) == msgspec.json.encode(slow)  # same defaults left out


@pytest.mark.parametrize("action", sorted(EXAMPLES))
def test_the_compiled_type_never_accepts_what_the_schema_refuses(action: str) -> None:
    accepted = refused_by_both = 0
    for payload in mutations(action):
        decoded = compiled.decode_call(_frame(action, payload))
        try:
            schemas.validate("1.6", action, "request", payload)
            schema_ok = True
        except OcppError:
            schema_ok = False
        if decoded is None:
            refused_by_both += not schema_ok
            continue
        assert schema_ok, f"{action}: compiled type accepted {payload!r}, the schema refuses it"
        slow = v16.decode_request(action, payload)
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
