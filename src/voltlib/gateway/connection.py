"""One charge point's live WebSocket: reads frames into the OCPP session, runs handlers,
sends our calls one at a time, and logs every frame."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from voltlib import events as ev
from voltlib.gateway import handlers_v16, handlers_v201
from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.errors import ErrorCode, OcppError
from voltlib.ocpp.frames import encode_call
from voltlib.ocpp.session import (
    CallReceived,
    ErrorReceived,
    OcppSession,
    ResultReceived,
    Retransmitted,
    Violation,
)
from voltlib.ocpp.v16.messages import redact
from voltlib.store import repo
from voltlib.store.tables import ocpp_messages
from voltlib.telemetry.logs import MESSAGE_ID

log = logging.getLogger(__name__)

WS_UNSUPPORTED_DATA = 1003
WS_POLICY_VIOLATION = 1008
WS_GOING_AWAY = 1001
MAX_LOGGED = 65536  # characters of a frame kept in the raw log
# Calls whose accepted content the database holds already: left out of a "compact" raw log.
STORED_ELSEWHERE = frozenset({"MeterValues", "Heartbeat"})
# The handlers of each OCPP version, picked by the session's negotiated version.
HANDLERS: dict[str, dict[str, handlers_v16.Handler] | dict[str, handlers_v201.Handler]] = {
    "1.6": handlers_v16.HANDLERS, "2.0.1": handlers_v201.HANDLERS}


@dataclass(frozen=True, slots=True)
class CallOutcome:
    state: str  # answered | failed (a CallError) | timeout | lost (closed before the answer) | offline (not sent)
    message_id: str | None = None
    payload: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str | None = None


class ChargePointConnection:
    # slots: 20,000 connections a node share a 30 KiB-per-connection budget
    __slots__ = ("_busy", "_call_lock", "_over", "_paced_since", "_pending", "_probe", "close_reason", "ctx", "session",
                 "ws")

    def __init__(self, ctx: ChargePointContext, ws: web.WebSocketResponse, session: OcppSession) -> None:
        self.ctx = ctx
        self.ws = ws
        self.session = session
        self._call_lock = asyncio.Lock()
        self._pending: tuple[str, asyncio.Future[tuple[CallOutcome, str]]] | None = None
        self._probe: asyncio.Future[bool] | None = None  # the liveness probe under way: pong (True) or gone (False)
        self._over = False  # the reading loop has ended: the socket is gone
        self._paced_since: float | None = None
        self._busy = False  # a frame of the charge point's is being handled (drain waits for its answer)
        self.close_reason = "closed by peer"

    @property
    def cp_id(self) -> str:
        return self.ctx.cp_id

    @property
    def idle(self) -> bool:
        """No frame being handled and no call of ours waiting for its answer: closing now loses nothing."""
        return not self._busy and self._pending is None

    # -- reading --

    async def run(self) -> None:
        """Read until the socket closes. Frames of one charge point are handled strictly in order.
        One coroutine for the whole loop: each frame a connection keeps suspended is ~0.2 KiB."""
        try:
            ws = self.ws
            while True:
                msg = await ws.receive()
                try:
                    if msg.type is WSMsgType.TEXT:
                        if not await self._pace():
                            break
                        self._busy = True
                        await self._on_text(msg.data)
                    elif not await self._on_other(msg):
                        break
                except Exception:  # a bug of ours in one frame's handling must not end the connection
                    log.exception("handling a frame from %s failed", self.cp_id)
                    if msg.type is not WSMsgType.TEXT:  # binary, error or close: it was ending anyway
                        break
                finally:
                    self._busy = False
        finally:
            self._over = True
            self._fail_pending("lost", "connection closed before the answer")
            self._settle_probe(False)  # a probe under way learns it now, not at its timeout

    async def _on_other(self, msg: WSMessage) -> bool:
        """A frame that is not text; False when the connection is over."""
        ws = self.ws
        if msg.type is WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type is WSMsgType.PONG:
            self._settle_probe(True)
        elif msg.type is WSMsgType.BINARY:
            await self._security("binary_frame", "warning", {"bytes": len(msg.data)})
            self.close_reason = "binary frame: OCPP-J requires text frames"
            await ws.close(code=WS_UNSUPPORTED_DATA, message=b"OCPP-J requires text frames")
            return False
        elif msg.type is WSMsgType.ERROR:
            self.close_reason = f"socket error: {ws.exception()}"
            await self._security("transport_error", "warning", {"error": str(ws.exception())})
            return False
        else:  # CLOSE, CLOSING, CLOSED
            return False
        return True

    async def _pace(self) -> bool:
        """Slow a fast peer down to its rate; hang up on one that keeps it up (a flood).
        Wall clock, even under simulated time: the rate protects this process, and the pause is real."""
        delay = self.session.pacing_delay(time.monotonic())
        if delay <= 0:
            self._paced_since = None
            return True
        now = time.monotonic()
        if self._paced_since is None:
            self._paced_since = now
        elif now - self._paced_since > self.session.limits.flood_seconds:
            await self._security("flood", "high", {"paced_seconds": round(now - self._paced_since, 1),
                                                   "rate_per_second": self.session.limits.rate_per_second})
            self.close_reason = "flood: over the message rate for too long"
            await self.ws.close(code=WS_POLICY_VIOLATION, message=b"message rate exceeded for too long")
            return False
        await asyncio.sleep(delay)
        return True

    async def _on_text(self, text: str) -> None:
        received = time.monotonic()
        event = self.session.receive(text, received)  # for the rate limit: wall time
        MESSAGE_ID.set(getattr(event, "message_id", None))  # the log lines of this frame name it
        if isinstance(event, CallReceived):
            self.ctx.stored_whole = False
            reply, refused = await self._answer(event)
            self.ctx.services.calls.answered(event.action, reply, time.monotonic() - received)
            outcome = _outcome(reply)
            if outcome == "error" or (event.action not in STORED_ELSEWHERE and not self.ctx.stored_whole) \
                    or self._log_in_full():
                self._record("charge_point", event.message_id, event.action, outcome, text, reply)
            if refused is not None:  # answered already: what is left is the detectors' count
                await self._on_violation(dataclasses.replace(refused, reply=None))
        elif isinstance(event, Retransmitted):
            self.ctx.services.calls.retransmitted(event.action)
            if event.reply is not None:
                await self._send(event.reply)
            self._record("charge_point", event.message_id, event.action, "retransmission", text, event.reply)
        elif isinstance(event, (ResultReceived, ErrorReceived)):
            self._settle(event, text)
        elif event.error.fault == "ours":  # not the charge point's doing: no violation, no security event
            self.ctx.services.calls.violation(event.action, event.error.code.wire(self.session.version), "failed")
            log.error("reading a frame from %s failed", self.cp_id, exc_info=event.error.__cause__)
            if event.reply is not None:
                await self._send(event.reply)
            self._record("charge_point", event.message_id or "", event.action, "error", text, event.reply)
        else:
            self.ctx.services.calls.violation(event.action, event.error.code.wire(self.session.version))
            self._record("charge_point", event.message_id or "", event.action, "violation", text, event.reply)
            await self._on_violation(event)

    async def _answer(self, event: CallReceived) -> tuple[str, Violation | None]:
        """The reply sent, and the violation when a handler refused the call as the peer's fault."""
        refused = None
        if self.ctx.registration != "Accepted" and event.action != "BootNotification":
            reply = self.session.fail(event.message_id, ErrorCode.SECURITY_ERROR,
                                      f"charge point is {self.ctx.registration}: only BootNotification is accepted",
                                      fault="peer", remember=False)
        else:
            handled = await self._handle(event)
            reply, refused = (handled.reply or "", handled) if isinstance(handled, Violation) else (handled, None)
        await self._send(reply)
        while self.ctx.after_reply:
            try:
                await self.ctx.after_reply.pop(0)()
            except Exception:  # the call is answered already: log, and go on with the next
                log.exception("an action after answering %s from %s failed", event.action, self.cp_id)
        return reply, refused

    async def _handle(self, event: CallReceived) -> str | Violation:
        handler = HANDLERS[self.session.version].get(event.request.ACTION)
        if handler is None:  # typed, but not wired yet (2.0.1 in progress): said so, and the call may come again
            return self.session.fail(event.message_id, ErrorCode.NOT_IMPLEMENTED,
                                     f"{event.action} is not handled yet over OCPP {self.session.version}",
                                     fault="peer", remember=False)
        try:
            return self.session.answer(event.message_id, await handler(self.ctx, event.request))
        except OcppError as exc:  # the call is wrong in a way its schema cannot say (e.g. a 2.0.1 EVSE 0)
            self.ctx.after_reply.clear()
            if exc.fault == "peer":  # logged, counted and published as any other violation
                return self.session.refuse(event.message_id, event.action, exc)
            log.warning("%s from %s refused by us: %s", event.action, self.cp_id, exc)
            return self.session.fail(event.message_id, exc.code, exc.description, fault=exc.fault)
        except Exception:
            log.exception("handler for %s from %s failed", event.action, self.cp_id)
            self.ctx.after_reply.clear()
            return self.session.fail(event.message_id, ErrorCode.INTERNAL_ERROR,
                                     "the central system failed to process this message; retry later")

    async def _on_violation(self, event: Violation) -> None:
        error = event.error
        log.info("protocol violation from %s: %s", self.cp_id, error)
        if event.reply is not None:
            await self._send(event.reply)
        count = self.session.violation_count()
        await self.ctx.services.bus.publish(ev.ProtocolViolationSeen(  # issue 5: every one, for the detectors
            charge_point_id=self.cp_id, at=self.ctx.services.clock.now(), code=error.code.value,
            description=error.description, action=event.action, message_id=event.message_id, count=count))
        if count in (1, 10, 100, 1000) or event.close:
            await self._security("protocol_violation", "warning",
                                 {"code": error.code.value, "description": error.description, "action": event.action,
                                  "message_id": event.message_id, "count": count})
        if event.close:
            self.close_reason = f"too many protocol violations ({error.code.value})"
            await self.ws.close(code=WS_POLICY_VIOLATION, message=b"too many protocol violations")

    # -- writing --

    async def _send(self, text: str) -> None:
        if self.ws.closed:
            return
        try:
            await self.ws.send_str(text)
        except ConnectionResetError:  # the peer hung up between its frame and our answer: not an error
            pass  # of ours; what it sent is committed, and it repeats the call when back (replays are idempotent)

    async def call(self, action: str, payload: dict[str, Any], timeout: float) -> CallOutcome:
        """Send one call and wait for its answer. Calls queue here: one outstanding at a time."""
        async with self._call_lock:
            if self.ws.closed:
                return CallOutcome("offline")
            message_id, text = self.session.start_call(action, payload)
            future: asyncio.Future[tuple[CallOutcome, str]] = asyncio.get_running_loop().create_future()
            self._pending = (message_id, future)
            try:
                await self._send(text)
                outcome, answer = await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                self.session.abandon_call(message_id)
                outcome, answer = CallOutcome("timeout"), None
            finally:
                self._pending = None
            outcome_name = {"answered": "result", "failed": "error"}.get(outcome.state, outcome.state)
            logged = text if redact(action, payload) is payload else encode_call(message_id, action,
                                                                                 redact(action, payload))
            self._record("central_system", message_id, action, outcome_name, logged, answer)
            return dataclasses.replace(outcome, message_id=message_id)

    def _settle(self, event: ResultReceived | ErrorReceived, text: str) -> None:
        if self._pending is None or self._pending[0] != event.message_id:
            return
        future = self._pending[1]
        if future.done():
            return
        if isinstance(event, ResultReceived):
            future.set_result((CallOutcome("answered", payload=event.payload), text))
        else:
            future.set_result((CallOutcome("failed", payload=event.details or None, error_code=event.code,
                                           error_description=event.description), text))

    def _fail_pending(self, state: str, description: str) -> None:
        if self._pending is not None and not self._pending[1].done():
            self._pending[1].set_result((CallOutcome(state, error_description=description), ""))

    async def probe(self, timeout: float) -> bool:
        """Is this socket still alive? Yes when a WebSocket ping is answered within ``timeout``; no
        at once when the socket is closed already, or as soon as the reading loop sees it close
        (a close frame, the TCP connection gone) - not only when the timeout has run out, which
        would keep a charge point that closed and reconnected at once waiting for nothing.
        Concurrent probes share one ping and its verdict."""
        if self._over or self.ws.closed:
            return False
        probe = self._probe
        if probe is None:
            probe = self._probe = asyncio.get_running_loop().create_future()
            try:
                await self.ws.ping(b"voltlib-probe")
            except (ConnectionError, RuntimeError):  # the transport is closing already
                self._settle_probe(False)
        try:
            return await asyncio.wait_for(asyncio.shield(probe), timeout)
        except TimeoutError:
            if self._probe is probe:
                self._settle_probe(False)
            return False

    def _settle_probe(self, alive: bool) -> None:
        probe, self._probe = self._probe, None
        if probe is not None and not probe.done():
            probe.set_result(alive)

    async def close(self, code: int, reason: str) -> None:
        self.close_reason = reason
        await self.ws.close(code=code, message=reason.encode()[:120])

    # -- records --

    def _log_in_full(self) -> bool:
        """Every frame of a charge point in quarantine is evidence, whatever the policy; so is every
        frame of one an operator traces (``Gateway.set_trace``)."""
        ctx = self.ctx
        services = ctx.services
        return services.settings.message_log == "full" or ctx.cp_id in services.quarantined \
            or (ctx.trace_until is not None and services.clock.now() < ctx.trace_until)

    def _record(self, initiator: str, message_id: str, action: str | None, outcome: str, request: str,
                response: str | None) -> None:
        """One row per exchange in the raw OCPP log, written with the next group commit, not awaited."""
        row = {"charge_point_id": self.cp_id, "initiator": initiator, "message_id": _storable(message_id)[:36],
               "action": _storable(action)[:40] if action else None, "outcome": outcome,
               "request": _storable(request[:MAX_LOGGED]),
               "response": _storable(response[:MAX_LOGGED]) if response else None,
               "at": self.ctx.services.clock.now()}
        self.ctx.services.store.insert_later(ocpp_messages, [row])

    async def _security(self, kind: str, severity: str, detail: dict[str, Any]) -> None:
        s = self.ctx.services
        now = s.clock.now()
        await s.store.write(partial(repo.record_security_event, kind=kind, severity=severity,
                                    charge_point_id=self.cp_id, source=self.ctx.address, detail=detail, now=now))
        await s.bus.publish(ev.SecurityIncident(charge_point_id=self.cp_id, at=now, kind=kind, severity=severity,
                                                source=self.ctx.address, detail=detail))


def _storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL: keep the evidence, escaped, rather than lose the row."""
    return text.replace("\x00", "\\u0000") if "\x00" in text else text


def _outcome(reply: str) -> str:
    return "error" if reply.startswith("[4") else "result"
