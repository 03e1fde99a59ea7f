"""The OCPP-J session state machine for one charge point connection, without I/O.

Feed it every text frame with :meth:`OcppSession.receive`; it returns what happened as events.
Ask it for the text to send with :meth:`answer`, :meth:`fail` and :meth:`start_call`. It knows
nothing of sockets, databases or clocks: the caller passes ``now`` in.

It speaks the connection's ``version``, "1.6" or "2.0.1": a call is decoded to that version's typed
message (:mod:`voltlib.ocpp.v16.messages` or :mod:`voltlib.ocpp.v201.messages`), validated against
that version's schemas, and refused with that version's CallError codes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from voltlib.ocpp import compiled, frames, schemas, versions
from voltlib.ocpp.errors import ErrorCode, Fault, OcppError

# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallReceived:
    """A valid call: answer it with :meth:`OcppSession.answer` or :meth:`OcppSession.fail`."""

    message_id: str
    action: str
    request: versions.Request


@dataclass(frozen=True, slots=True)
class Retransmitted:
    """The peer sent a call again with the same id and payload; ``reply`` is our original answer."""

    message_id: str
    action: str
    reply: str | None


@dataclass(frozen=True, slots=True)
class ResultReceived:
    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """The peer answered our call with a CallError, or with a result that broke the schema."""

    message_id: str
    action: str
    code: str
    description: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Violation:
    """The peer broke the protocol. ``reply`` is the CallError to send, if any; ``close`` asks to hang up."""

    error: OcppError
    reply: str | None
    action: str | None = None
    message_id: str | None = None
    close: bool = False


Event = CallReceived | Retransmitted | ResultReceived | ErrorReceived | Violation


# --- memory of message ids, kept per charge point across its connections ----------------------


class _Seen(NamedTuple):
    fingerprint: int
    reply: str | None  # None: not answered yet; EMPTY_RESULT: answered with an empty CallResult


EMPTY_RESULT = ""  # kept instead of ``[3,"<id>",{}]``, the answer to most calls, and rebuilt when asked


_encoder = msgspec.json.Encoder()


def _fingerprint(action: str, request: versions.Request) -> int:
    """Tells a retransmission from a reused message id. Taken of the typed message, so the same
    call with its JSON keys in another order or other spacing is the same; a 64-bit keyed hash is
    enough to tell two calls of one charge point apart, and costs a third of a cryptographic digest."""
    return hash((action, _encoder.encode(request)))


class MessageIdMemory:
    """The last ``capacity`` call ids a charge point used, with our answers.

    Small on purpose: a charge point retransmits the call it got no answer for, not old ones.
    Replays over longer windows are for the security detectors, which read the persistent message
    log. Every connection carries one, so each entry is kept compact (~0.2 KiB: a plain dict in
    insertion order, a tuple, and no text for an empty CallResult).

    Lives as long as the charge point is known, not just one connection, so that a call
    retransmitted after a reconnect is recognised.
    """

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._seen: dict[str, _Seen] = {}

    def lookup(self, message_id: str) -> _Seen | None:
        return self._seen.get(message_id)

    def reply(self, message_id: str, seen: _Seen) -> str | None:
        """Our answer to ``message_id``, as it was sent."""
        if seen.reply == EMPTY_RESULT:
            return frames.encode_result(message_id, {})
        return seen.reply

    def remember(self, message_id: str, fingerprint: int) -> None:
        self._seen[message_id] = _Seen(fingerprint, None)
        if len(self._seen) > self.capacity:
            del self._seen[next(iter(self._seen))]  # the oldest: dicts keep insertion order

    def store_reply(self, message_id: str, reply: str) -> None:
        seen = self._seen.get(message_id)
        if seen is not None:
            empty = reply.startswith("[3,") and reply.endswith(",{}]")  # our CallResult, its payload {}
            self._seen[message_id] = seen._replace(reply=EMPTY_RESULT if empty else reply)

    def forget(self, message_id: str) -> None:
        self._seen.pop(message_id, None)


# --- rate limiting ----------------------------------------------------------------------------


@dataclass(slots=True)
class TokenBucket:
    """``rate`` messages per second on average, ``burst`` at once."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def _refill(self, now: float) -> None:
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_time(self, now: float) -> float:
        """Seconds until a token is available (0.0 if one is), without taking it."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True, slots=True)
class Limits:
    """Explicit per-connection limits (documented in docs/operations.md)."""

    max_frame_bytes: int = 64 * 1024
    rate_per_second: float = 20.0
    burst: float = 200.0
    flood_seconds: float = 60.0  # paced continuously this long: a flood, not a backlog replay
    rate_strikes_before_close: int = 100
    violations_before_close: int = 50


# --- the session ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Outgoing:
    message_id: str
    action: str


@dataclass
class OcppSession:
    """One connection's protocol state. ``version`` is the negotiated OCPP version."""

    version: str = "1.6"
    memory: MessageIdMemory = field(default_factory=MessageIdMemory)
    limits: Limits = field(default_factory=Limits)
    outgoing: _Outgoing | None = None
    _bucket: TokenBucket = field(init=False)
    _rate_strikes: int = 0
    _violations: int = 0

    def __post_init__(self) -> None:
        if self.version not in versions.SUPPORTED:
            raise ValueError(f"OCPP {self.version!r} is not spoken here (only {', '.join(versions.SUPPORTED)})")
        self._bucket = TokenBucket(self.limits.rate_per_second, self.limits.burst)

    # -- input --

    def receive(self, text: str, now: float) -> Event:
        """Interpret one text frame received at monotonic time ``now``. Never raises: a failure of
        ours on one frame is a :class:`Violation` whose error is an ``InternalError`` of ``fault``
        "ours" (the exception is its ``__cause__``), answered like any other, and the session goes on."""
        try:
            return self._receive(text, now)
        except Exception as exc:  # noqa: BLE001  # a bug of ours must not end the connection
            return self._internal_error(text, exc)

    def _internal_error(self, text: str, exc: Exception) -> Violation:
        message_id = frames.readable_message_id(text, calls_only=True)  # a call is answered; an answer is not
        if message_id is not None:
            self.memory.forget(message_id)  # the charge point may retry it
        error = OcppError(ErrorCode.INTERNAL_ERROR, "the central system failed to read this message; retry later",
                          fault="ours")
        error.__cause__ = exc
        return self._violation(error, message_id, None, count=False)

    def _receive(self, text: str, now: float) -> Event:
        limit = self.limits.max_frame_bytes
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit):
            return self._violation(OcppError(ErrorCode.FORMATION_VIOLATION, "frame too large"), None, None, close=True)
        valid = compiled.decode_call(text, self.version)
        if valid is not None:  # the common case, in one pass; anything else takes the path that explains
            message_id, action, request = valid
            if not self._bucket.take(now):
                return self._rate_limited(message_id, action)
            return self._accept(message_id, action, request, self.memory.lookup(message_id))
        try:
            frame = frames.parse_frame(text, self.version)
        except frames.FrameError as exc:
            return self._violation(exc, exc.message_id or "-1", None)
        if isinstance(frame, frames.Call):
            if not self._bucket.take(now):
                return self._rate_limited(frame.message_id, frame.action)
            return self._receive_call(frame)
        return self._receive_answer(frame)

    def _rate_limited(self, message_id: str, action: str) -> Violation:
        self._rate_strikes += 1
        error = OcppError(ErrorCode.GENERIC_ERROR, "rate limit exceeded, slow down")
        close = self._rate_strikes >= self.limits.rate_strikes_before_close
        return self._violation(error, message_id, action, close=close, count=False)

    def _receive_call(self, call: frames.Call) -> Event:
        seen = self.memory.lookup(call.message_id)
        if call.action not in versions.requests(self.version):
            if seen is not None:
                return self._reused(call.message_id, call.action)
            known = call.action in schemas.known_actions(self.version)
            code = ErrorCode.NOT_SUPPORTED if known else ErrorCode.NOT_IMPLEMENTED
            return self._violation(OcppError(code, f"action {call.action!r} is not accepted from a charge point"),
                                   call.message_id, call.action)
        try:
            schemas.validate(self.version, call.action, "request", call.payload)
            request = versions.decode_request(self.version, call.action, call.payload)
        except (OcppError, msgspec.ValidationError) as exc:
            if seen is not None:  # the remembered call was valid: this one is another message
                return self._reused(call.message_id, call.action)
            error = exc if isinstance(exc, OcppError) else OcppError(ErrorCode.TYPE_CONSTRAINT_VIOLATION, str(exc))
            return self._violation(error, call.message_id, call.action)
        return self._accept(call.message_id, call.action, request, seen)

    def _accept(self, message_id: str, action: str, request: versions.Request, seen: _Seen | None) -> Event:
        """A valid call: new, retransmitted, or another message under a used id."""
        fingerprint = _fingerprint(action, request)
        if seen is not None:
            if seen.fingerprint == fingerprint:
                return Retransmitted(message_id, action, self.memory.reply(message_id, seen))
            return self._reused(message_id, action)
        self.memory.remember(message_id, fingerprint)
        return CallReceived(message_id, action, request)

    def _reused(self, message_id: str, action: str) -> Violation:
        error = OcppError(ErrorCode.PROTOCOL_ERROR, "message id already used for a different message")
        return self._violation(error, message_id, action)

    def _receive_answer(self, frame: frames.CallResult | frames.CallError) -> Event:
        pending = self.outgoing
        if pending is None or pending.message_id != frame.message_id:
            error = OcppError(ErrorCode.PROTOCOL_ERROR, "answer to a call we did not make (or that timed out)")
            return self._violation(error, None, None, message_id=frame.message_id)
        self.outgoing = None
        if isinstance(frame, frames.CallError):
            return ErrorReceived(frame.message_id, pending.action, frame.code, frame.description, frame.details)
        try:
            schemas.validate(self.version, pending.action, "response", frame.payload)
        except OcppError as exc:
            return ErrorReceived(frame.message_id, pending.action, exc.code.wire(self.version),
                                 f"invalid response: {exc.description}", {"payload": frame.payload})
        return ResultReceived(frame.message_id, pending.action, frame.payload)

    def _violation(
        self,
        error: OcppError,
        reply_to: str | None,
        action: str | None,
        *,
        close: bool = False,
        count: bool = True,
        message_id: str | None = None,
    ) -> Violation:
        if count:
            self._violations += 1
        close = close or self._violations >= self.limits.violations_before_close
        reply = None
        if reply_to is not None:
            reply = frames.encode_error(reply_to, error.code.wire(self.version), error.description, error.details)
        return Violation(error, reply, action, message_id or reply_to, close)

    def pacing_delay(self, now: float) -> float:
        """How long to wait before handling the next frame so the peer stays within its rate.

        Pacing (answering later) rather than refusing keeps a charge point that replays a
        backlog of offline transactions from losing data; frames received without pacing
        beyond the bucket get a GenericError instead.
        """
        return self._bucket.wait_time(now)

    def violation_count(self) -> int:
        return self._violations + self._rate_strikes

    # -- output --

    def answer(self, message_id: str, reply: msgspec.Struct | dict[str, Any]) -> str:
        """The CallResult text for a call we accepted; remembered for retransmissions."""
        text = frames.encode_result(message_id, reply)
        self.memory.store_reply(message_id, text)
        return text

    def fail(self, message_id: str, code: ErrorCode, description: str, *, fault: Fault = "ours",
             remember: bool = True) -> str:
        """The CallError text for a call we could not process. An internal failure, or a refusal that
        depends on state that may change (``remember=False``), is not remembered, so the charge point
        may retry it."""
        if fault == "ours" or not remember:
            self.memory.forget(message_id)
        text = frames.encode_error(message_id, code.wire(self.version), description)
        if fault == "peer" and remember:
            self.memory.store_reply(message_id, text)
        return text

    def refuse(self, message_id: str, action: str, error: OcppError) -> Violation:
        """A call its schema allows but the protocol's rules do not (a handler's ``OcppError`` of the
        peer's fault, e.g. a 2.0.1 EVSE 0): answered with ``error``, remembered for retransmissions,
        and counted like any other violation towards ``violations_before_close``."""
        violation = self._violation(error, message_id, action)
        assert violation.reply is not None
        self.memory.store_reply(message_id, violation.reply)
        return violation

    def start_call(self, action: str, payload: dict[str, Any] | msgspec.Struct) -> tuple[str, str]:
        """Validate and frame a call of ours (a payload, or a typed message such as
        :class:`voltlib.ocpp.v201.messages.GetVariables`). Only one may be outstanding: the caller queues."""
        if self.outgoing is not None:
            raise RuntimeError("a call is already outstanding on this connection")
        if isinstance(payload, msgspec.Struct):
            payload = msgspec.to_builtins(payload)
        schemas.validate(self.version, action, "request", payload)
        message_id = str(uuid.uuid4())
        self.outgoing = _Outgoing(message_id, action)
        return message_id, frames.encode_call(message_id, action, payload)

    def abandon_call(self, message_id: str) -> None:
        """Give up waiting (timeout): a late answer will then be reported as a violation."""
        if self.outgoing is not None and self.outgoing.message_id == message_id:
            self.outgoing = None
