"""The OCPP-J session state machine, fed text frames with an injected clock."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from voltlib.ocpp.errors import ErrorCode, OcppError
from voltlib.ocpp.session import (
    CallReceived,
    ErrorReceived,
    Limits,
    MessageIdMemory,
    OcppSession,
    ResultReceived,
    Retransmitted,
    TokenBucket,
    Violation,
)
from voltlib.ocpp.v16 import messages as m

START = {"connectorId": 1, "idTag": "BADGE1", "meterStart": 100, "timestamp": "2026-01-01T08:00:00Z"}


def frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, message_id, action, payload])


def reply_of(event: Violation) -> list[Any]:
    assert event.reply is not None
    return list(json.loads(event.reply))


def violation(session: OcppSession, text: str, now: float = 0.0) -> Violation:
    event = session.receive(text, now)
    assert isinstance(event, Violation), event
    return event


# --- calls ------------------------------------------------------------------------------------


def test_valid_call_is_decoded_to_its_typed_message() -> None:
    event = OcppSession().receive(frame("1", "StartTransaction", START), 0.0)
    assert isinstance(event, CallReceived)
    assert event.action == "StartTransaction" and event.message_id == "1"
    assert isinstance(event.request, m.StartTransaction)
    assert event.request.id_tag == "BADGE1" and event.request.meter_start == 100
    assert event.request.timestamp.tzinfo is not None
    assert json.loads(msgspec.json.encode(event.request)) == START  # nothing lost or added


@pytest.mark.parametrize(
    ("text", "reply_id", "wire"),
    [
        ("{not json", "-1", "FormationViolation"),
        ('{"a":1}', "-1", "FormationViolation"),
        ("[2]", "-1", "FormationViolation"),
        ('[2,"m","Heartbeat"]', "m", "FormationViolation"),
        ('[3,"m",{},1]', "m", "FormationViolation"),
        ('[9,"m","Heartbeat",{}]', "m", "ProtocolError"),
        ('[2,"","Heartbeat",{}]', "-1", "FormationViolation"),
        ('[2,12,"Heartbeat",{}]', "-1", "FormationViolation"),
        (json.dumps([2, "i" * 37, "Heartbeat", {}]), "-1", "FormationViolation"),
        ('[2,"m","Heartbeat",[]]', "m", "FormationViolation"),
        ('[2,"m","Heartbeat",null]', "m", "FormationViolation"),
    ],
)
def test_frame_errors_are_answered_with_a_call_error(text: str, reply_id: str, wire: str) -> None:
    event = violation(OcppSession(), text)
    reply = reply_of(event)
    assert reply[0] == 4 and reply[1] == reply_id and reply[2] == wire
    assert isinstance(reply[3], str) and reply[4] == {}
    assert not event.close


def test_unknown_action_is_not_implemented() -> None:
    event = violation(OcppSession(), frame("1", "MakeCoffee", {}))
    assert event.error.code is ErrorCode.NOT_IMPLEMENTED
    assert reply_of(event)[:3] == [4, "1", "NotImplemented"]


@pytest.mark.parametrize("action", ["Reset", "RemoteStartTransaction", "ChangeConfiguration", "GetConfiguration"])
def test_central_system_action_from_a_charge_point_is_not_supported(action: str) -> None:
    event = violation(OcppSession(), frame("1", action, {}))
    assert event.error.code is ErrorCode.NOT_SUPPORTED
    assert reply_of(event)[:3] == [4, "1", "NotSupported"]
    assert event.action == action


@pytest.mark.parametrize(
    ("action", "payload", "wire"),
    [
        ("Authorize", {"idTag": 5}, "TypeConstraintViolation"),
        ("StartTransaction", {**START, "connectorId": "1"}, "TypeConstraintViolation"),
        ("StartTransaction", {**START, "meterStart": 1.5}, "TypeConstraintViolation"),
        ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Bogus"},
         "PropertyConstraintViolation"),
        ("Authorize", {"idTag": "x" * 21}, "PropertyConstraintViolation"),
        ("BootNotification", {"chargePointVendor": "v" * 21, "chargePointModel": "m"}, "PropertyConstraintViolation"),
        ("Authorize", {}, "OccurenceConstraintViolation"),
        ("StartTransaction", {k: v for k, v in START.items() if k != "idTag"}, "OccurenceConstraintViolation"),
        ("MeterValues", {"connectorId": 1, "meterValue": []}, "OccurenceConstraintViolation"),
        ("Heartbeat", {"extra": 1}, "FormationViolation"),
        ("Authorize", {"idTag": "A", "idtag": "B"}, "FormationViolation"),
    ],
)
def test_schema_violations_map_to_ocpp_codes(action: str, payload: dict[str, Any], wire: str) -> None:
    event = violation(OcppSession(), frame("7", action, payload))
    reply = reply_of(event)
    assert reply[:3] == [4, "7", wire]
    assert event.action == action


@pytest.mark.parametrize(
    "timestamp",
    ["yesterday", "2026-01-01", "2026-01-01T08:00:00", "2026-13-01T08:00:00Z", "2026-01-01 08:00:00Z", ""],
)
def test_bad_date_time_is_a_type_constraint_violation(timestamp: str) -> None:
    event = violation(OcppSession(), frame("1", "StartTransaction", {**START, "timestamp": timestamp}))
    assert reply_of(event)[2] == "TypeConstraintViolation"


@pytest.mark.parametrize(
    "payload",
    [
        {**START, "meterStart": 2**31},
        {**START, "meterStart": 10**30},
        {**START, "connectorId": -1},
        {**START, "timestamp": "0001-01-01T00:00:00+14:00"},
        {**START, "idTag": "A\u0000B"},
    ],
)
def test_values_that_cannot_be_stored_are_rejected_as_the_peers_fault(payload: dict[str, Any]) -> None:
    event = violation(OcppSession(), frame("1", "StartTransaction", payload))
    assert event.error.fault == "peer"
    assert reply_of(event)[2] in ("TypeConstraintViolation", "PropertyConstraintViolation")


def test_offset_timestamps_are_accepted() -> None:
    event = OcppSession().receive(frame("1", "StartTransaction", {**START, "timestamp": "2026-01-01T09:00:00+01:00"}),
                                  0.0)
    assert isinstance(event, CallReceived)


# --- retransmissions and message ids -----------------------------------------------------------


def test_identical_retransmission_returns_the_stored_reply() -> None:
    session = OcppSession()
    event = session.receive(frame("1", "StartTransaction", START), 0.0)
    assert isinstance(event, CallReceived)
    answer = session.answer("1", m.StartTransactionReply(id_tag_info=m.IdTagInfo(status="Accepted"),
                                                         transaction_id=42))
    again = session.receive(frame("1", "StartTransaction", dict(reversed(list(START.items())))), 1.0)
    assert isinstance(again, Retransmitted)
    assert again.reply == answer and json.loads(answer) == [3, "1", {"idTagInfo": {"status": "Accepted"},
                                                                    "transactionId": 42}]


def test_same_id_with_different_payload_is_a_protocol_error() -> None:
    session = OcppSession()
    assert isinstance(session.receive(frame("1", "StartTransaction", START), 0.0), CallReceived)
    session.answer("1", {"transactionId": 1, "idTagInfo": {"status": "Accepted"}})
    event = violation(session, frame("1", "StartTransaction", {**START, "meterStart": 101}), 1.0)
    assert event.error.code is ErrorCode.PROTOCOL_ERROR
    assert reply_of(event)[:3] == [4, "1", "ProtocolError"]
    other_action = violation(session, frame("1", "Heartbeat", {}), 2.0)
    assert other_action.error.code is ErrorCode.PROTOCOL_ERROR


def test_memory_survives_across_sessions_sharing_it() -> None:
    memory = MessageIdMemory()
    first = OcppSession(memory=memory)
    assert isinstance(first.receive(frame("abc", "Heartbeat", {}), 0.0), CallReceived)
    answer = first.answer("abc", {"currentTime": "2026-01-01T00:00:00Z"})
    second = OcppSession(memory=memory)
    event = second.receive(frame("abc", "Heartbeat", {}), 0.0)
    assert isinstance(event, Retransmitted) and event.reply == answer
    unrelated = OcppSession()
    assert isinstance(unrelated.receive(frame("abc", "Heartbeat", {}), 0.0), CallReceived)


def test_memory_evicts_the_oldest_beyond_capacity() -> None:
    memory = MessageIdMemory(capacity=3)
    session = OcppSession(memory=memory)
    for i in range(4):
        assert isinstance(session.receive(frame(f"id{i}", "Heartbeat", {}), float(i)), CallReceived)
        session.answer(f"id{i}", {"currentTime": "2026-01-01T00:00:00Z"})
    assert memory.lookup("id0") is None
    assert all(memory.lookup(f"id{i}") is not None for i in (1, 2, 3))
    assert isinstance(session.receive(frame("id0", "Heartbeat", {}), 5.0), CallReceived)
    assert isinstance(session.receive(frame("id3", "Heartbeat", {}), 5.0), Retransmitted)


def test_internal_failure_is_forgotten_so_the_call_can_be_retried() -> None:
    session = OcppSession()
    assert isinstance(session.receive(frame("1", "Heartbeat", {}), 0.0), CallReceived)
    text = session.fail("1", ErrorCode.INTERNAL_ERROR, "db down")
    assert json.loads(text)[:3] == [4, "1", "InternalError"]
    assert isinstance(session.receive(frame("1", "Heartbeat", {}), 1.0), CallReceived)


def test_peer_fault_failure_is_remembered_for_retransmissions() -> None:
    session = OcppSession()
    assert isinstance(session.receive(frame("1", "Heartbeat", {}), 0.0), CallReceived)
    text = session.fail("1", ErrorCode.SECURITY_ERROR, "pending", fault="peer")
    event = session.receive(frame("1", "Heartbeat", {}), 1.0)
    assert isinstance(event, Retransmitted) and event.reply == text


def test_invalid_call_is_not_remembered() -> None:
    session = OcppSession()
    violation(session, frame("1", "Authorize", {}))
    assert isinstance(session.receive(frame("1", "Authorize", {"idTag": "A"}), 0.0), CallReceived)


# --- limits -----------------------------------------------------------------------------------


def test_token_bucket_refills_with_time() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(10.4) is False
    assert bucket.take(10.5) is True
    assert bucket.take(10.5) is False
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_rate_limit_answers_generic_error_then_closes_after_strike_limit() -> None:
    limits = Limits(rate_per_second=1.0, burst=2.0, rate_strikes_before_close=3, violations_before_close=1000)
    session = OcppSession(limits=limits)
    assert isinstance(session.receive(frame("a", "Heartbeat", {}), 0.0), CallReceived)
    assert isinstance(session.receive(frame("b", "Heartbeat", {}), 0.0), CallReceived)
    first = violation(session, frame("c", "Heartbeat", {}), 0.0)
    assert reply_of(first)[:3] == [4, "c", "GenericError"] and not first.close
    assert not violation(session, frame("d", "Heartbeat", {}), 0.0).close
    assert session.violation_count() == 2
    # Time passes: the bucket refills and calls go through again.
    assert isinstance(session.receive(frame("e", "Heartbeat", {}), 1.0), CallReceived)
    third = violation(session, frame("f", "Heartbeat", {}), 1.0)
    assert third.close and reply_of(third)[2] == "GenericError"


def test_rate_limit_does_not_apply_to_answers() -> None:
    session = OcppSession(limits=Limits(rate_per_second=1.0, burst=1.0))
    message_id, _ = session.start_call("Reset", {"type": "Soft"})
    assert isinstance(session.receive(frame("a", "Heartbeat", {}), 0.0), CallReceived)
    assert isinstance(session.receive(json.dumps([3, message_id, {"status": "Accepted"}]), 0.0), ResultReceived)


def test_violations_counter_closes_the_session() -> None:
    session = OcppSession(limits=Limits(violations_before_close=3))
    assert not violation(session, "garbage").close
    assert not violation(session, frame("1", "MakeCoffee", {})).close
    last = violation(session, frame("2", "Authorize", {}))
    assert last.close and last.reply is not None
    assert session.violation_count() == 3


def test_oversize_frame_closes_without_reply() -> None:
    session = OcppSession(limits=Limits(max_frame_bytes=1024))
    text = frame("1", "DataTransfer", {"vendorId": "v", "data": "x" * 2000})
    event = violation(session, text)
    assert event.close and event.reply is None
    assert event.error.code is ErrorCode.FORMATION_VIOLATION


def test_oversize_is_measured_in_utf8_bytes() -> None:
    session = OcppSession(limits=Limits(max_frame_bytes=1024))
    text = json.dumps([2, "1", "DataTransfer", {"vendorId": "v", "data": "é" * 600}], ensure_ascii=False)
    assert len(text) < 1024 < len(text.encode())
    assert violation(session, text).close


def test_frame_just_under_the_limit_is_accepted() -> None:
    session = OcppSession(limits=Limits(max_frame_bytes=1024))
    base = frame("1", "DataTransfer", {"vendorId": "v", "data": ""})
    text = frame("1", "DataTransfer", {"vendorId": "v", "data": "x" * (1024 - len(base))})
    assert len(text) == 1024
    assert isinstance(session.receive(text, 0.0), CallReceived)


# --- our calls ---------------------------------------------------------------------------------


def test_only_one_outgoing_call_at_a_time() -> None:
    session = OcppSession()
    message_id, text = session.start_call("Reset", {"type": "Hard"})
    assert json.loads(text) == [2, message_id, "Reset", {"type": "Hard"}]
    with pytest.raises(RuntimeError):
        session.start_call("Reset", {"type": "Soft"})
    event = session.receive(json.dumps([3, message_id, {"status": "Accepted"}]), 0.0)
    assert isinstance(event, ResultReceived)
    assert event.action == "Reset" and event.payload == {"status": "Accepted"}
    second_id, _ = session.start_call("Reset", {"type": "Soft"})
    assert second_id != message_id


def test_start_call_validates_our_payload() -> None:
    session = OcppSession()
    with pytest.raises(OcppError) as info:
        session.start_call("Reset", {"type": "Sideways"})
    assert info.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert session.outgoing is None


def test_result_for_unknown_id_is_a_violation_without_reply() -> None:
    session = OcppSession()
    event = violation(session, json.dumps([3, "nope", {}]))
    assert event.reply is None and event.message_id == "nope"
    assert event.error.code is ErrorCode.PROTOCOL_ERROR
    message_id, _ = session.start_call("ClearCache", {})
    other = violation(session, json.dumps([4, "other", "GenericError", "", {}]))
    assert other.reply is None
    assert session.outgoing is not None and session.outgoing.message_id == message_id


def test_call_error_answer_becomes_error_received() -> None:
    session = OcppSession()
    message_id, _ = session.start_call("ClearCache", {})
    event = session.receive(json.dumps([4, message_id, "NotImplemented", "no", {"a": 1}]), 0.0)
    assert isinstance(event, ErrorReceived)
    assert (event.action, event.code, event.description, event.details) == ("ClearCache", "NotImplemented", "no",
                                                                             {"a": 1})
    assert session.outgoing is None


def test_schema_invalid_result_becomes_error_received() -> None:
    session = OcppSession()
    message_id, _ = session.start_call("Reset", {"type": "Soft"})
    event = session.receive(json.dumps([3, message_id, {"status": "Maybe"}]), 0.0)
    assert isinstance(event, ErrorReceived)
    assert event.code == "PropertyConstraintViolation" and event.details == {"payload": {"status": "Maybe"}}
    message_id, _ = session.start_call("Reset", {"type": "Soft"})
    event = session.receive(json.dumps([3, message_id, {}]), 0.0)
    assert isinstance(event, ErrorReceived) and event.code == "OccurenceConstraintViolation"


def test_abandoned_call_makes_a_late_answer_a_violation() -> None:
    session = OcppSession()
    message_id, _ = session.start_call("Reset", {"type": "Soft"})
    session.abandon_call("someone-else")
    assert session.outgoing is not None
    session.abandon_call(message_id)
    assert session.outgoing is None
    event = violation(session, json.dumps([3, message_id, {"status": "Accepted"}]))
    assert event.reply is None and event.message_id == message_id
    session.start_call("Reset", {"type": "Soft"})  # a new call may start after abandoning


def test_pacing_delay_tells_how_long_to_wait_instead_of_refusing() -> None:
    from voltlib.ocpp.session import Limits

    session = OcppSession(limits=Limits(rate_per_second=10.0, burst=2.0))
    assert session.pacing_delay(0.0) == 0.0
    for i in range(2):
        assert session.receive(f'[2,"p{i}","Heartbeat",{{}}]', 0.0).__class__.__name__ == "CallReceived"
    assert session.pacing_delay(0.0) == pytest.approx(0.1)
    assert session.pacing_delay(0.05) == pytest.approx(0.05)
    assert session.pacing_delay(0.1) == 0.0
    assert session.receive('[2,"p2","Heartbeat",{}]', 0.1).__class__.__name__ == "CallReceived"


def test_a_reused_id_with_an_invalid_payload_is_a_protocol_error_not_a_schema_error() -> None:
    """What was remembered was valid, so an invalid call under its id is another message."""
    session = OcppSession()
    assert isinstance(session.receive(frame("1", "Authorize", {"idTag": "A"}), 0.0), CallReceived)
    session.answer("1", {"idTagInfo": {"status": "Accepted"}})
    assert violation(session, frame("1", "Authorize", {}), 1.0).error.code is ErrorCode.PROTOCOL_ERROR
    assert violation(session, frame("1", "NoSuchAction", {}), 1.0).error.code is ErrorCode.PROTOCOL_ERROR
    spaced = '[2, "1", "Authorize", { "idTag" : "A" }]'
    assert isinstance(session.receive(spaced, 2.0), Retransmitted)


def test_an_empty_answer_is_kept_compactly_and_sent_back_identical() -> None:
    memory = MessageIdMemory()
    session = OcppSession(memory=memory)
    meter = {"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T08:00:00Z",
                                               "sampledValue": [{"value": "10"}]}]}
    assert isinstance(session.receive(frame("m-1", "MeterValues", meter), 0.0), CallReceived)
    answer = session.answer("m-1", m.EmptyReply())
    seen = memory.lookup("m-1")
    assert seen is not None and seen.reply == ""  # no text kept for the most common answer
    event = session.receive(frame("m-1", "MeterValues", meter), 1.0)
    assert isinstance(event, Retransmitted) and event.reply == answer == '[3,"m-1",{}]'


def test_nesting_beyond_the_limit_is_a_formation_violation_answered_under_the_call_s_id() -> None:
    """Issue 22: a payload nesting a few thousand arrays raised RecursionError out of the session."""
    session = OcppSession()
    for depth in (40, 3000, 15000):
        deep = "[" * depth + "]" * depth
        event = violation(session, f'[2,"d{depth}","Authorize",{{"idTag":{deep}}}]')
        assert reply_of(event)[:3] == [4, f"d{depth}", "FormationViolation"]
    assert session.violation_count() == 3


def test_a_failure_of_ours_on_one_frame_is_an_internal_error_and_the_session_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from voltlib.ocpp import compiled

    session = OcppSession()

    def broken(text: str) -> None:
        raise KeyError("a bug")

    with monkeypatch.context() as patched:
        patched.setattr(compiled, "decode_call", broken)
        event = violation(session, frame("b1", "Heartbeat", {}))
        answer = violation(session, '[3,"r1",{}]')
    assert reply_of(event)[:3] == [4, "b1", "InternalError"]
    assert event.error.fault == "ours" and isinstance(event.error.__cause__, KeyError)
    assert answer.reply is None and answer.error.fault == "ours"
    assert session.violation_count() == 0  # not held against the charge point
    assert isinstance(session.receive(frame("b1", "Heartbeat", {}), 0.0), CallReceived)  # retried, and served
