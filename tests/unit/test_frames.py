"""OCPP-J frame parsing and encoding (sans-I/O)."""

from __future__ import annotations

import json

import pytest

from voltlib.ocpp import frames
from voltlib.ocpp.errors import ErrorCode, OcppError


def test_parses_the_three_frame_kinds() -> None:
    assert frames.parse_frame('[2,"a","Heartbeat",{}]') == frames.Call("a", "Heartbeat", {})
    assert frames.parse_frame('[3,"b",{"x":1}]') == frames.CallResult("b", {"x": 1})
    assert frames.parse_frame('[4,"c","GenericError","oops",{"k":"v"}]') == frames.CallError(
        "c", "GenericError", "oops", {"k": "v"})


@pytest.mark.parametrize(
    ("text", "code", "message_id"),
    [
        ("not json", ErrorCode.FORMATION_VIOLATION, None),
        ('[2,"a","Heartbeat",{}', ErrorCode.FORMATION_VIOLATION, None),
        ('{"a": 1}', ErrorCode.FORMATION_VIOLATION, None),
        ('"text"', ErrorCode.FORMATION_VIOLATION, None),
        ("[]", ErrorCode.FORMATION_VIOLATION, None),
        ('[2,"a"]', ErrorCode.FORMATION_VIOLATION, None),
        ('[2,"a","Heartbeat"]', ErrorCode.FORMATION_VIOLATION, "a"),
        ('[2,"a","Heartbeat",{},{}]', ErrorCode.FORMATION_VIOLATION, "a"),
        ('[3,"a",{},{}]', ErrorCode.FORMATION_VIOLATION, "a"),
        ('[4,"a","GenericError",""]', ErrorCode.FORMATION_VIOLATION, "a"),
        ('[4,"a",1,"",{}]', ErrorCode.FORMATION_VIOLATION, "a"),
        ('[2,"a",7,{}]', ErrorCode.FORMATION_VIOLATION, "a"),
        ('[2,"a","Heartbeat",[]]', ErrorCode.FORMATION_VIOLATION, "a"),
        ('[2,"a","Heartbeat","{}"]', ErrorCode.FORMATION_VIOLATION, "a"),
        ('[3,"a",null]', ErrorCode.FORMATION_VIOLATION, "a"),
        ('[2,"","Heartbeat",{}]', ErrorCode.FORMATION_VIOLATION, None),
        ('[2,17,"Heartbeat",{}]', ErrorCode.FORMATION_VIOLATION, None),
        ('[2,null,"Heartbeat",{}]', ErrorCode.FORMATION_VIOLATION, None),
        (json.dumps([2, "x" * 37, "Heartbeat", {}]), ErrorCode.FORMATION_VIOLATION, None),
        ('[5,"a","Heartbeat",{}]', ErrorCode.PROTOCOL_ERROR, "a"),
        ('[6,"a",{}]', ErrorCode.PROTOCOL_ERROR, "a"),
        ('["2","a","Heartbeat",{}]', ErrorCode.PROTOCOL_ERROR, "a"),
        ('[2.0,"a","Heartbeat",{}]', ErrorCode.PROTOCOL_ERROR, "a"),
        ('[true,"a","Heartbeat",{}]', ErrorCode.PROTOCOL_ERROR, "a"),
    ],
)
def test_malformed_frames_are_rejected_with_the_right_code(text: str, code: ErrorCode, message_id: str | None) -> None:
    with pytest.raises(frames.FrameError) as info:
        frames.parse_frame(text)
    assert info.value.code is code
    assert info.value.message_id == message_id
    assert isinstance(info.value, OcppError)


def test_message_id_of_36_characters_is_accepted() -> None:
    frame = frames.parse_frame(json.dumps([2, "x" * 36, "Heartbeat", {}]))
    assert isinstance(frame, frames.Call) and frame.message_id == "x" * 36


def test_bytes_are_parsed_like_text() -> None:
    assert frames.parse_frame(b'[3,"a",{}]') == frames.CallResult("a", {})


def test_encoders_round_trip() -> None:
    call = frames.encode_call("m1", "Reset", {"type": "Soft"})
    assert json.loads(call) == [2, "m1", "Reset", {"type": "Soft"}]
    assert frames.parse_frame(call) == frames.Call("m1", "Reset", {"type": "Soft"})
    assert json.loads(frames.encode_result("m2", {"a": 1})) == [3, "m2", {"a": 1}]
    assert json.loads(frames.encode_error("m3", "GenericError", "d")) == [4, "m3", "GenericError", "d", {}]
    assert json.loads(frames.encode_error("m3", "GenericError", "d", {"x": 1}))[4] == {"x": 1}


@pytest.mark.parametrize("code", list(ErrorCode))
def test_error_code_wire_spelling_round_trips(code: ErrorCode) -> None:
    for version in ("1.6", "2.0.1"):
        assert ErrorCode.from_wire(code.wire(version)) is code


def test_occurrence_is_misspelt_on_ocpp_16_only() -> None:
    code = ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
    assert code.wire("1.6") == "OccurenceConstraintViolation"
    assert code.wire("2.0.1") == "OccurrenceConstraintViolation"
    assert ErrorCode.from_wire("OccurrenceConstraintViolation") is code
    assert ErrorCode.from_wire("NoSuchCode") is None


@pytest.mark.parametrize(
    ("code", "wire"),
    [
        (ErrorCode.NOT_IMPLEMENTED, "NotImplemented"),
        (ErrorCode.NOT_SUPPORTED, "NotSupported"),
        (ErrorCode.INTERNAL_ERROR, "InternalError"),
        (ErrorCode.PROTOCOL_ERROR, "ProtocolError"),
        (ErrorCode.SECURITY_ERROR, "SecurityError"),
        (ErrorCode.FORMATION_VIOLATION, "FormationViolation"),
        (ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, "PropertyConstraintViolation"),
        (ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, "OccurenceConstraintViolation"),
        (ErrorCode.TYPE_CONSTRAINT_VIOLATION, "TypeConstraintViolation"),
        (ErrorCode.GENERIC_ERROR, "GenericError"),
    ],
)
def test_ocpp16_wire_names(code: ErrorCode, wire: str) -> None:
    assert code.wire("1.6") == wire


def test_ocpp_error_description_is_bounded() -> None:
    error = OcppError(ErrorCode.GENERIC_ERROR, "x" * 1000)
    assert len(error.description) == 255 and error.fault == "peer" and error.details == {}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_is_bounded_before_decoding() -> None:
    """A few thousand levels made the decoder raise RecursionError (issue 22); the limit is explicit."""
    for kind in ('[2,"deep","DataTransfer",{"data":%s}]', '[3,"deep",{"x":%s}]'):
        assert isinstance(frames.parse_frame(kind % _nested(frames.MAX_DEPTH - 2)), (frames.Call, frames.CallResult))
        for depth in (frames.MAX_DEPTH - 1, 5000, 60000):
            with pytest.raises(frames.FrameError) as info:
                frames.parse_frame(kind % _nested(depth))
            assert info.value.code is ErrorCode.FORMATION_VIOLATION
            assert info.value.message_id == "deep"
            assert f"deeper than {frames.MAX_DEPTH}" in info.value.description


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps([2, "a", "DataTransfer", {"vendorId": "v", "data": "[{" * 100 + '\\"[' * 50}])
    assert not frames.too_deep(text)
    assert isinstance(frames.parse_frame(text), frames.Call)
    assert frames.too_deep('[2,"a\\"[",' + _nested(40) + "]")


def test_the_message_id_of_an_undecodable_frame_is_read_from_its_start() -> None:
    assert frames.readable_message_id(' [ 2 , "id-1", ' + "[" * 99) == "id-1"
    assert frames.readable_message_id('[2,"a\\"b",') == 'a"b'
    assert frames.readable_message_id('[3,"r",') == "r"
    assert frames.readable_message_id('[3,"r",', calls_only=True) is None
    for text in ('[2,"",', '[2,' + json.dumps("x" * 37) + ",", '[22,"a",', '{"a":1}', '[2,"\\ud800",', '[2,"a'):
        assert frames.readable_message_id(text) is None, text
