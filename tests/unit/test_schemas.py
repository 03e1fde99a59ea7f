"""Validation against the official OCPP 1.6 JSON schemas and the mapping to CallError codes."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from voltlib.ocpp import schemas
from voltlib.ocpp.errors import ErrorCode, OcppError
from voltlib.ocpp.v16 import messages as m

START = {"connectorId": 1, "idTag": "BADGE1", "meterStart": 100, "timestamp": "2026-01-01T08:00:00Z"}


def code_of(action: str, payload: Any, direction: schemas.Direction = "request") -> ErrorCode:
    with pytest.raises(OcppError) as info:
        schemas.validate("1.6", action, direction, payload)
    assert info.value.fault == "peer"
    assert info.value.details["path"]
    return info.value.code


def test_known_actions_cover_both_directions_of_ocpp16() -> None:
    actions = schemas.known_actions("1.6")
    assert set(m.REQUESTS) <= actions
    assert actions >= m.COMMANDS
    assert "MakeCoffee" not in actions
    assert not any(a.endswith("Response") for a in actions)


@pytest.mark.parametrize("action", sorted(m.REQUESTS))
def test_every_request_has_a_request_and_a_response_schema(action: str) -> None:
    assert schemas._validator("1.6", action, "request") is not None
    assert schemas._validator("1.6", action, "response") is not None


def test_valid_payloads_pass() -> None:
    schemas.validate("1.6", "StartTransaction", "request", START)
    schemas.validate("1.6", "Heartbeat", "request", {})
    schemas.validate("1.6", "Reset", "response", {"status": "Accepted"})
    schemas.validate("1.6", "StartTransaction", "response",
                     {"transactionId": 5, "idTagInfo": {"status": "Accepted", "parentIdTag": "P"}})


def test_unknown_action_is_not_implemented() -> None:
    assert code_of_unknown("MakeCoffee") is ErrorCode.NOT_IMPLEMENTED


def code_of_unknown(action: str) -> ErrorCode:
    with pytest.raises(OcppError) as info:
        schemas.validate("1.6", action, "request", {})
    return info.value.code


@pytest.mark.parametrize(
    ("action", "payload", "code"),
    [
        ("Authorize", {"idTag": 5}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ("Authorize", {"idTag": None}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ("StartTransaction", {**START, "meterStart": "100"}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ("StartTransaction", {**START, "timestamp": "not a date"}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ("StartTransaction", {**START, "timestamp": "2026-02-30T00:00:00Z"}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ("StatusNotification", {"connectorId": 1, "errorCode": "Kaputt", "status": "Available"},
         ErrorCode.PROPERTY_CONSTRAINT_VIOLATION),
        ("Authorize", {"idTag": "x" * 21}, ErrorCode.PROPERTY_CONSTRAINT_VIOLATION),
        ("Authorize", {}, ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION),
        ("StopTransaction", {"meterStop": 1, "timestamp": "2026-01-01T00:00:00Z"},
         ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION),
        ("MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": []}]},
         ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION),
        ("Heartbeat", {"beat": True}, ErrorCode.FORMATION_VIOLATION),
        ("StartTransaction", {**START, "extra": 1}, ErrorCode.FORMATION_VIOLATION),
    ],
)
def test_violations_map_to_call_error_codes(action: str, payload: dict[str, Any], code: ErrorCode) -> None:
    assert code_of(action, payload) is code


def test_response_direction_uses_the_response_schema() -> None:
    assert code_of("Reset", {"status": "Maybe"}, "response") is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert code_of("Reset", {}, "response") is ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
    with pytest.raises(OcppError):
        schemas.validate("1.6", "Reset", "response", {"type": "Soft"})


def test_error_names_the_offending_field() -> None:
    with pytest.raises(OcppError) as info:
        schemas.validate("1.6", "StartTransaction", "request", {**START, "meterStart": "x"})
    assert info.value.details == {"path": "meterStart", "kind": "Type"}
    assert info.value.description.startswith("meterStart:")


def test_decode_request_gives_typed_messages() -> None:
    request = m.decode_request("MeterValues", {"connectorId": 2, "transactionId": 9, "meterValue": [
        {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "5", "unit": "kWh"}]}]})
    assert isinstance(request, m.MeterValues)
    assert request.connector_id == 2 and request.transaction_id == 9
    sample = request.meter_value[0].sampled_value[0]
    assert (sample.value, sample.unit, sample.measurand, sample.context) == ("5", "kWh",
                                                                            "Energy.Active.Import.Register",
                                                                            "Sample.Periodic")


def test_decode_rejects_out_of_range_integers() -> None:
    with pytest.raises(msgspec.ValidationError):
        m.decode_request("StopTransaction", {"transactionId": 2**31, "meterStop": 1,
                                             "timestamp": "2026-01-01T00:00:00Z"})


def test_replies_encode_with_wire_names() -> None:
    reply = m.StartTransactionReply(id_tag_info=m.IdTagInfo(status="Accepted", parent_id_tag="P"),
                                    transaction_id=7)
    wire = msgspec.to_builtins(reply)
    assert wire == {"idTagInfo": {"status": "Accepted", "parentIdTag": "P"}, "transactionId": 7}
    schemas.validate("1.6", "StartTransaction", "response", wire)
    assert msgspec.to_builtins(m.StopTransactionReply()) == {}
