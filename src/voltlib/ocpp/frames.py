"""OCPP-J RPC frames: ``[2, id, action, payload]``, ``[3, id, payload]``, ``[4, id, code, description, details]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from voltlib.ocpp.errors import ErrorCode, OcppError

CALL = 2
CALL_RESULT = 3
CALL_ERROR = 4
MAX_MESSAGE_ID_LENGTH = 36

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


def parse_frame(text: str | bytes) -> Frame:
    """Parse one OCPP-J frame, or raise :class:`FrameError` saying what is wrong."""
    try:
        data = _decoder.decode(text)
    except msgspec.DecodeError as exc:
        raise FrameError(ErrorCode.FORMATION_VIOLATION, f"not JSON: {exc}", None) from None
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
