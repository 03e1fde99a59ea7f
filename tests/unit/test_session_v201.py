"""The sans-I/O session speaking OCPP 2.0.1 (issue 16): typed calls, validated replies, and the
CallError codes of OCPP-J 2.0.1 (part 4, §4.3) for everything a charge point may get wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.test_compiled import EXAMPLES_201
from voltlib.ocpp.errors import ErrorCode, OcppError
from voltlib.ocpp.session import CallReceived, ErrorReceived, OcppSession, ResultReceived, Retransmitted, Violation
from voltlib.ocpp.v201 import messages as v201

TS = "2026-12-06T17:00:00Z"
STARTED = {"eventType": "Started", "timestamp": TS, "triggerReason": "Authorized", "seqNo": 0,
           "transactionInfo": {"transactionId": "T-1"}, "idToken": {"idToken": "CAR-7", "type": "Central"},
           "evse": {"id": 1, "connectorId": 1}}


def session() -> OcppSession:
    return OcppSession(version="2.0.1")


def frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, message_id, action, payload])


def code_of(event: object, message_id: str = "m") -> str:
    """The CallError code the session answers with, under ``message_id``."""
    assert isinstance(event, Violation), event
    assert event.reply is not None
    reply = json.loads(event.reply)
    assert reply[0] == 4 and reply[1] == message_id and isinstance(reply[3], str) and isinstance(reply[4], dict)
    return str(reply[2])


# --- valid calls ------------------------------------------------------------------------------


@pytest.mark.parametrize("action", sorted(EXAMPLES_201))
def test_every_typed_call_of_a_charge_point_is_received_as_its_2_0_1_message(action: str) -> None:
    event = session().receive(frame("m", action, EXAMPLES_201[action]), 0.0)
    assert isinstance(event, CallReceived) and event.action == action
    assert isinstance(event.request, v201.REQUESTS[action])
    assert action == event.request.ACTION


def test_a_transaction_event_is_typed_down_to_its_meter_values() -> None:
    event = session().receive(frame("m", "TransactionEvent", EXAMPLES_201["TransactionEvent"]), 0.0)
    assert isinstance(event, CallReceived) and isinstance(event.request, v201.TransactionEvent)
    request = event.request
    assert (request.event_type, request.seq_no, request.trigger_reason, request.offline) == (
        "Updated", 3, "MeterValuePeriodic", False)
    assert request.transaction_info.transaction_id == "T-1" and request.number_of_phases_used == 3
    assert request.id_token is not None and request.id_token.type == "ISO14443"
    assert request.meter_value is not None
    sample = request.meter_value[0].sampled_value[0]
    assert sample.value == 1234.5 and sample.phase == "L1-N" and sample.unit_of_measure is not None
    assert sample.unit_of_measure.unit == "Wh" and request.meter_value[0].timestamp.tzinfo is not None


@pytest.mark.parametrize("token_type", ["Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress",
                                        "NoAuthorization"])
def test_authorize_takes_every_id_token_type(token_type: str) -> None:
    payload = {"idToken": {"idToken": "" if token_type == "NoAuthorization" else "TOKEN", "type": token_type}}
    event = session().receive(frame("m", "Authorize", payload), 0.0)
    assert isinstance(event, CallReceived) and isinstance(event.request, v201.Authorize)
    assert event.request.id_token.type == token_type


def test_a_retransmitted_transaction_event_gets_the_same_reply() -> None:
    s = session()
    assert isinstance(s.receive(frame("m", "TransactionEvent", STARTED), 0.0), CallReceived)
    reply = v201.TransactionEventReply(id_token_info=v201.IdTokenInfo(
        status="Accepted", group_id_token=v201.IdToken(id_token="FLEET", type="Central")))
    answer = s.answer("m", reply)
    assert json.loads(answer)[2] == {"idTokenInfo": {"status": "Accepted",
                                                     "groupIdToken": {"idToken": "FLEET", "type": "Central"}}}
    again = s.receive(frame("m", "TransactionEvent", dict(reversed(list(STARTED.items())))), 1.0)
    assert isinstance(again, Retransmitted) and again.reply == answer


# --- the CallError codes of 2.0.1 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message_id", "wire"),
    [
        ('[2,"m","Heartbeat",[]]', "m", "FormatViolation"),
        (frame("m", "Heartbeat", {"extra": 1}), "m", "FormatViolation"),
        ('[2,"m","Heartbeat",{"x":' + "[" * 40 + "]" * 40 + "}]", "m", "FormatViolation"),  # beyond MAX_DEPTH
        (frame("m", "StatusNotification", {**EXAMPLES_201["StatusNotification"], "connectorStatus": "Broken"}), "m",
         "PropertyConstraintViolation"),
        (frame("m", "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M" * 21,
                                                                                   "vendorName": "V"}}), "m",
         "PropertyConstraintViolation"),
        (frame("m", "BootNotification", {"reason": "PowerUp"}), "m", "OccurrenceConstraintViolation"),
        (frame("m", "MeterValues", {"evseId": 1, "meterValue": []}), "m", "OccurrenceConstraintViolation"),
        (frame("m", "TransactionEvent", {**STARTED, "seqNo": "0"}), "m", "TypeConstraintViolation"),
        (frame("m", "TransactionEvent", {**STARTED, "timestamp": "yesterday"}), "m", "TypeConstraintViolation"),
        (frame("m", "TransactionEvent", {**STARTED, "seqNo": 2**31}), "m", "TypeConstraintViolation"),
        ('[5,"m","Heartbeat",{}]', "m", "MessageTypeNotSupported"),
        ('[7,"m",{}]', "m", "MessageTypeNotSupported"),
        (frame("m", "MakeCoffee", {}), "m", "NotImplemented"),
        (frame("m", "GetVariables", {}), "m", "NotSupported"),  # ours to send, not a charge point's
        (frame("m", "PublishFirmwareStatusNotification", {"status": "Published"}), "m", "NotSupported"),  # untyped
        ("{not json", "-1", "RpcFrameworkError"),
        ('[2,"m","Heartbeat"]', "m", "RpcFrameworkError"),
        ('[2,17,"Heartbeat",{}]', "-1", "RpcFrameworkError"),
        (json.dumps([2, "i" * 37, "Heartbeat", {}]), "-1", "RpcFrameworkError"),
    ],
)
def test_each_2_0_1_call_error_code_is_reachable(text: str, message_id: str, wire: str) -> None:
    assert code_of(session().receive(text, 0.0), message_id) == wire


def test_a_reused_message_id_is_a_protocol_error() -> None:
    s = session()
    assert isinstance(s.receive(frame("m", "TransactionEvent", STARTED), 0.0), CallReceived)
    s.answer("m", v201.TransactionEventReply())
    assert code_of(s.receive(frame("m", "TransactionEvent", {**STARTED, "seqNo": 1}), 1.0)) == "ProtocolError"


def test_a_1_6_session_keeps_the_1_6_codes() -> None:
    """The same broken frames, on a 1.6 connection: nothing of 2.0.1 leaks into 1.6."""
    legacy = OcppSession()
    assert code_of(legacy.receive('[2,"m","Heartbeat",[]]', 0.0)) == "FormationViolation"
    assert code_of(legacy.receive('[5,"m","Heartbeat",{}]', 0.0)) == "ProtocolError"
    assert code_of(legacy.receive("{not json", 0.0), "-1") == "FormationViolation"
    assert code_of(legacy.receive(frame("n", "TransactionEvent", STARTED), 0.0), "n") == "NotImplemented"


def test_a_session_speaks_only_a_version_it_knows() -> None:
    with pytest.raises(ValueError, match="not spoken here"):
        OcppSession(version="2.1")


# --- our calls and their replies --------------------------------------------------------------


def test_a_typed_command_is_validated_and_its_reply_read_back() -> None:
    s = session()
    command = v201.GetVariables(get_variable_data=[v201.GetVariableData(
        component=v201.Component(name="OCPPCommCtrlr"), variable=v201.Variable(name="HeartbeatInterval"))])
    message_id, text = s.start_call("GetVariables", command)
    assert json.loads(text)[3] == {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"},
                                                        "variable": {"name": "HeartbeatInterval"}}]}
    result = {"getVariableResult": [{"attributeStatus": "Accepted", "attributeValue": "300",
                                     "component": {"name": "OCPPCommCtrlr"},
                                     "variable": {"name": "HeartbeatInterval"}}]}
    event = s.receive(json.dumps([3, message_id, result]), 0.0)
    assert isinstance(event, ResultReceived) and event.action == "GetVariables"
    reply = v201.decode_reply(event.action, event.payload)
    assert isinstance(reply, v201.GetVariablesReply) and reply.get_variable_result[0].attribute_value == "300"


def test_a_reply_breaking_the_2_0_1_schema_is_reported_with_the_2_0_1_code() -> None:
    s = session()
    message_id, _ = s.start_call("Reset", {"type": "OnIdle", "evseId": 1})
    event = s.receive(json.dumps([3, message_id, {}]), 0.0)
    assert isinstance(event, ErrorReceived) and event.code == "OccurrenceConstraintViolation"
    message_id, _ = s.start_call("RequestStartTransaction", {"idToken": {"idToken": "CAR-7", "type": "Central"},
                                                             "remoteStartId": 1, "evseId": 1})
    event = s.receive(json.dumps([3, message_id, {"status": "Accepted", "extra": 1}]), 0.0)
    assert isinstance(event, ErrorReceived) and event.code == "FormatViolation"


def test_our_own_invalid_2_0_1_call_is_refused_before_it_is_sent() -> None:
    s = session()
    with pytest.raises(OcppError) as info:
        s.start_call("Reset", {"type": "Hard"})  # 1.6's value; 2.0.1 says Immediate or OnIdle
    assert info.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert s.outgoing is None
