"""OCPP-J RPC frames: ``[2, id, action, payload]``, ``[3, id, payload]``, ``[4, id, code, description, details]``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from voltlib.ocpp.errors import ErrorCode, OcppError

CALL = 2
CALL_RESULT = 3
CALL_ERROR = 4
MAX_MESSAGE_ID_LENGTH = 36
# Arrays and objects nested deeper than this make a frame malformed. The deepest legitimate 1.6
# frame nests 6 levels (SetChargingProfile: frame, payload, csChargingProfiles, chargingSchedule,
# chargingSchedulePeriod, period); without a bound, a few thousand levels exhaust the decoders'
# recursion (RecursionError) and jsonschema-rs's (ValueError at ~250). docs/operations.md, "Limits".
MAX_DEPTH = 32

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# the message id of a frame, read without decoding it: '[', a message type, ',', a JSON string
_HEAD_ID = re.compile(r'[ \t\r\n]*\[[ \t\r\n]*([234])[ \t\r\n]*,[ \t\r\n]*("(?:[^"\\\x00-\x1f]|\\.){1,216}")')

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Call:
    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    message_id: str
    code: str
    description: str
    details: dict[str, Any]


Frame = Call | CallResult | CallError


class FrameError(OcppError):
    """The text is not an OCPP-J frame. ``message_id`` is set when one could be read."""

    def __init__(self, code: ErrorCode, description: str, message_id: str | None) -> None:
        super().__init__(code, description)
        self.message_id = message_id


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Do arrays and objects nest deeper than ``limit`` in the JSON ``text``? Brackets inside
    strings do not count. Cheap for most frames: one with fewer brackets cannot be too deep."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def readable_message_id(text: str, *, calls_only: bool = False) -> str | None:
    """The message id of a frame that cannot be decoded (too deep, say), if its start shows one."""
    match = _HEAD_ID.match(text)
    if match is None or (calls_only and match.group(1) != str(CALL)):
        return None
    try:
        message_id = _decoder.decode(match.group(2))
    except msgspec.DecodeError:
        return None
    return message_id if isinstance(message_id, str) and len(message_id) <= MAX_MESSAGE_ID_LENGTH else None


def parse_frame(text: str | bytes) -> Frame:
    """Parse one OCPP-J frame, or raise :class:`FrameError` saying what is wrong."""
    checked = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if too_deep(checked):
        raise FrameError(ErrorCode.FORMATION_VIOLATION, f"arrays and objects nest deeper than {MAX_DEPTH} levels",
                         readable_message_id(checked))
    try:
        data = _decoder.decode(text)
    except msgspec.DecodeError as exc:
        raise FrameError(ErrorCode.FORMATION_VIOLATION, f"not JSON: {exc}", None) from None
    except UnicodeEncodeError:  # a str with a lone surrogate: a caller decoded bytes leniently
        raise FrameError(ErrorCode.FORMATION_VIOLATION, "not valid Unicode text", None) from None
    if not isinstance(data, list) or len(data) < 3:
        raise FrameError(ErrorCode.FORMATION_VIOLATION, "a frame must be a JSON array of 3 to 5 elements", None)
    kind, message_id = data[0], data[1]
    if isinstance(kind, bool) or not isinstance(kind, int):  # 2.0 == 2 and True == 1 in Python
        kind = repr(kind)
    if not isinstance(message_id, str) or not message_id or len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise FrameError(ErrorCode.FORMATION_VIOLATION, "message id must be a string of 1 to 36 characters", None)
    if kind == CALL and len(data) == 4:
        if not isinstance(data[2], str):
            raise FrameError(ErrorCode.FORMATION_VIOLATION, "action must be a string", message_id)
        if not isinstance(data[3], dict):
            raise FrameError(ErrorCode.FORMATION_VIOLATION, "payload must be a JSON object", message_id)
        return Call(message_id, data[2], data[3])
    if kind == CALL_RESULT and len(data) == 3:
        if not isinstance(data[2], dict):
            raise FrameError(ErrorCode.FORMATION_VIOLATION, "payload must be a JSON object", message_id)
        return CallResult(message_id, data[2])
    if kind == CALL_ERROR and len(data) == 5:
        code, description, details = data[2], data[3], data[4]
        if not (isinstance(code, str) and isinstance(description, str) and isinstance(details, dict)):
            raise FrameError(ErrorCode.FORMATION_VIOLATION, "malformed CallError", message_id)
        return CallError(message_id, code, description, details)
    if kind in (CALL, CALL_RESULT, CALL_ERROR):
        raise FrameError(ErrorCode.FORMATION_VIOLATION, f"wrong number of elements for message type {kind}", message_id)
    raise FrameError(ErrorCode.PROTOCOL_ERROR, f"unknown message type {kind!r}", message_id)


def encode_call(message_id: str, action: str, payload: Any) -> str:
    return _encoder.encode([CALL, message_id, action, payload]).decode()


def encode_result(message_id: str, payload: Any) -> str:
    return _encoder.encode([CALL_RESULT, message_id, payload]).decode()


def encode_error(message_id: str, code: str, description: str, details: dict[str, Any] | None = None) -> str:
    return _encoder.encode([CALL_ERROR, message_id, code, description, details or {}]).decode()
