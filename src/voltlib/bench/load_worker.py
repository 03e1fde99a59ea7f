"""The simulated charge points of one load-generator process: each opens its WebSocket, boots,
waits for the window, then sends its meter values (back to back, or on the soak's timers) and
answers the server's calls meanwhile. See :mod:`voltlib.bench.load` for the run as a whole."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from typing import Any, Literal

import aiohttp
import msgspec

from voltlib.bench.load_plan import (
    FRAMES,
    LoadPlan,
    _Partial,
    _spread_enabled,
    check_loopback_url,
    source_addr,
)

_decode = msgspec.json.decode

# --------------------------------------------------------------------------
# One charge point
# --------------------------------------------------------------------------

_RESULT, _ERROR, _CLOSED = 0, 1, 2
_CLOSE_TYPES = frozenset(
    {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR}
)
# OSError covers ConnectionError and TimeoutError too.
_NET_ERRORS: tuple[type[Exception], ...] = (aiohttp.ClientError, OSError)
_CONNECT_ERRORS: tuple[type[Exception], ...] = (aiohttp.ClientError, OSError, msgspec.DecodeError)

WS = aiohttp.ClientWebSocketResponse[Literal[True]]


class _BootFailedError(Exception):
    pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"handshake HTTP {exc.status}"
    text = str(exc).split("\n", 1)[0][:80]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Worker:
    """Runs charge points ``lo..hi-1`` of a plan in the current event loop."""

    def __init__(self, url_base: str, plan: LoadPlan, lo: int, hi: int) -> None:
        self.url_base = url_base.rstrip("/")
        self.plan = plan
        self.frames = FRAMES[plan.ocpp]
        self.lo, self.hi = lo, hi
        self.stats = _Partial()
        host = check_loopback_url(url_base)
        self.spread = _spread_enabled(plan, host)
        self.sessions: dict[str | None, aiohttp.ClientSession] = {}
        self.connect_sem = asyncio.Semaphore(plan.connect_concurrency)
        self.pending = hi - lo
        self.all_ready = asyncio.Event()
        self.go = asyncio.Event()
        self.window_start = 0.0
        self.window_end = math.inf
        self.tasks: list[asyncio.Task[None]] = []
        self.awaiting: set[int] = set()  # indexes with a CALL outstanding
        self.ready: set[int] = set()  # indexes that finished connecting (or failed)
        self.ramp_t0 = 0.0
        if self.pending == 0:
            self.all_ready.set()

    # ---- coordination ------------------------------------------------------

    def start(self) -> None:
        self.ramp_t0 = time.perf_counter()
        self.tasks = [
            asyncio.create_task(self._charge_point(i), name=f"cp-{i}") for i in range(self.lo, self.hi)
        ]

    async def wait_ready(self) -> int:
        """Wait until every charge point has booted or failed (bounded by ramp_timeout_s)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_ready.wait(), self.plan.ramp_timeout_s)
        if not self.all_ready.is_set():
            # Stragglers still connecting: give up on them.
            for index, t in zip(range(self.lo, self.hi), self.tasks, strict=True):
                if not t.done() and index not in self.ready:
                    t.cancel()
            await asyncio.wait(self.tasks, timeout=0.5)
        self.stats.ramp_s = time.perf_counter() - self.ramp_t0
        return self.stats.connected

    def open_window(self) -> None:
        self.window_start = time.perf_counter()
        self.window_end = self.window_start + self.plan.duration_s
        self.go.set()

    async def finish(self) -> _Partial:
        """Wait for the window to end and the drain to finish; close everything.

        If the window was never opened (the caller failed in between), every
        charge point is stopped at once.
        """
        opened = self.go.is_set()
        if opened:
            remaining = self.window_end - time.perf_counter()
            if remaining > 0:
                await asyncio.sleep(remaining)
            self.stats.window_s = self.plan.duration_s
        pending = [t for t in self.tasks if not t.done()]
        if pending:
            drain = self.plan.drain_timeout_s + 2.0 if opened else 0.0
            _done, still = await asyncio.wait(pending, timeout=drain) if drain else (set(), set(pending))
            for t in still:
                t.cancel()
            if still:
                await asyncio.wait(still, timeout=5.0)
        for session in self.sessions.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.close(), 5.0)
        return self.stats

    def _session(self, index: int) -> aiohttp.ClientSession:
        addr = source_addr(index) if self.spread else None
        session = self.sessions.get(addr)
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=0,  # the default (100) would cap the number of open WebSockets
                local_addr=(addr, 0) if addr else None,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.plan.connect_timeout_s),
            )
            self.sessions[addr] = session
        return session

    def _mark_ready(self, index: int) -> None:
        self.ready.add(index)
        self.pending -= 1
        if self.pending <= 0:
            self.all_ready.set()

    # ---- per charge point --------------------------------------------------

    async def _charge_point(self, index: int) -> None:
        plan, st = self.plan, self.stats
        cp_id = plan.cp_id(index)
        ws: WS | None = None
        ready_marked = False
        try:
            async with self.connect_sem:
                try:
                    async with asyncio.timeout(plan.connect_timeout_s + plan.call_timeout_s):
                        ws = await self._connect(index, cp_id)
                        await self._boot(ws, index)
                except _BootFailedError as exc:
                    st.boot_rejected += 1
                    st.failure_reasons[str(exc)] += 1
                    return
                except _CONNECT_ERRORS as exc:
                    st.connect_failures += 1
                    st.failure_reasons[_reason(exc)] += 1
                    return
            st.connected += 1
            self._mark_ready(index)
            ready_marked = True
            if plan.mode == "throughput":
                await self.go.wait()  # a ramp of seconds: no ping falls due
            elif not await self._wait_for_window(ws):
                st.disconnects += 1
                return
            if plan.mode == "throughput":
                await self._throughput(ws, index)
            else:
                await self._soak(ws, index)
        except asyncio.CancelledError:
            if index in self.awaiting:
                st.unanswered += 1
            elif not ready_marked:
                st.connect_failures += 1
                st.failure_reasons["ramp timeout"] += 1
            elif self.go.is_set():
                st.stalled += 1
            raise
        finally:
            if not ready_marked:
                self._mark_ready(index)
            if ws is not None and not ws.closed:
                task = asyncio.current_task()
                if task is None or not task.cancelling():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(), 2.0)

    async def _connect(self, index: int, cp_id: str) -> WS:
        plan = self.plan
        headers = {}
        if plan.password is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(cp_id, plan.password)
        ws = await self._session(index).ws_connect(
            f"{self.url_base}/{cp_id}",
            protocols=(self.frames.SUBPROTOCOL,),
            headers=headers,
            autoping=True,
            heartbeat=None,
            compress=0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
        )
        if ws.protocol != self.frames.SUBPROTOCOL:
            await ws.close()
            raise aiohttp.ClientError(f"server did not agree subprotocol (got {ws.protocol!r})")
        return ws

    async def _boot(self, ws: WS, index: int) -> None:
        st = self.stats
        t0 = time.perf_counter()
        await ws.send_str(self.frames.boot_notification("1", index))
        kind, payload = await self._await_result(ws, "1")
        if kind == _CLOSED:
            raise ConnectionError("closed during BootNotification")
        if kind == _ERROR:
            raise _BootFailedError(f"BootNotification CALLERROR {payload}")
        st.boot_latencies.append(time.perf_counter() - t0)
        status = payload.get("status") if isinstance(payload, dict) else None
        if status != "Accepted":
            raise _BootFailedError(f"BootNotification {status}")
        await ws.send_str(self.frames.status_notification("2"))
        kind, payload = await self._await_result(ws, "2")
        if kind == _CLOSED:
            raise ConnectionError("closed during StatusNotification")
        if kind == _ERROR:
            st.call_errors += 1
            st.call_error_codes[f"StatusNotification {payload}"] += 1
        started = self.frames.transaction_started("0", index)
        if started is None:
            return
        await ws.send_str(started)  # 2.0.1: the meter values belong to a transaction the station opened
        kind, payload = await self._await_result(ws, "0")
        if kind == _CLOSED:
            raise ConnectionError("closed during TransactionEvent(Started)")
        if kind == _ERROR:
            st.call_errors += 1
            st.call_error_codes[f"TransactionEvent {payload}"] += 1

    async def _await_result(self, ws: WS, uid: str, timeout: float | None = None) -> tuple[int, Any]:
        """Read frames until the answer to CALL ``uid``; answer server CALLs meanwhile.

        Returns (_RESULT, payload), (_ERROR, error code) or (_CLOSED, None).
        Raises TimeoutError after ``timeout`` seconds (None: no per-call limit;
        throughput mode relies on the drain deadline instead, because a timeout
        around every receive costs a noticeable share of client CPU).
        """
        st = self.stats
        deadline = time.perf_counter() + timeout if timeout is not None else None
        while True:
            if deadline is None:
                msg = await ws.receive()
            else:
                async with asyncio.timeout(deadline - time.perf_counter()):
                    msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    frame = _decode(msg.data)
                except msgspec.DecodeError:
                    st.unexpected += 1
                    continue
                if not isinstance(frame, list) or len(frame) < 3:
                    st.unexpected += 1
                    continue
                kind = frame[0]
                if frame[1] == uid:
                    if kind == 3:
                        return _RESULT, frame[2]
                    if kind == 4:
                        return _ERROR, frame[2]
                if kind == 2:
                    st.server_calls += 1
                    await ws.send_str(self.frames.answer_server_call(frame))
                    continue
                st.unexpected += 1  # e.g. a late answer to a timed-out CALL
            elif msg.type in _CLOSE_TYPES:
                return _CLOSED, None
            else:
                st.unexpected += 1  # BINARY frames are not OCPP-J

    async def _call(self, ws: WS, index: int, uid: str, text: str, timeout: float | None) -> bool:
        """Send one CALL and account for its outcome; False when the connection is gone."""
        st = self.stats
        self.awaiting.add(index)
        try:
            t0 = time.perf_counter()
            try:
                await ws.send_str(text)
                kind, payload = await self._await_result(ws, uid, timeout)
            except TimeoutError:
                st.timeouts += 1
                return not ws.closed
            except _NET_ERRORS:
                kind, payload = _CLOSED, None
            t1 = time.perf_counter()
        finally:
            self.awaiting.discard(index)
        if kind == _RESULT:
            if t1 <= self.window_end:
                st.calls += 1
                st.latencies.append(t1 - t0)
            else:
                st.late_calls += 1
            return True
        if kind == _ERROR:
            st.call_errors += 1
            st.call_error_codes[str(payload)] += 1
            return True
        st.disconnects += 1
        return False

    async def _throughput(self, ws: WS, index: int) -> None:
        plan = self.plan
        rng = random.Random(plan.seed * 1_000_003 + index)
        meter = self.frames.MeterSim(index, rng, transaction_id=1 + index)
        seq = 2
        end = self.window_end
        while time.perf_counter() < end:
            seq += 1
            uid = str(seq)
            if not await self._call(ws, index, uid, meter.frame(uid), None):
                return
        if not ws.closed:
            self.stats.held += 1

    async def _wait_for_window(self, ws: WS) -> bool:
        """Keep reading until the measured window opens, as a real charge point would: the server
        pings every 30 s and hangs up on a peer that has not answered 15 s later, and connecting
        20,000 charge points takes longer than that. False if the connection closed meanwhile."""
        go = asyncio.ensure_future(self.go.wait())
        idle = asyncio.ensure_future(self._idle_until(ws, time.perf_counter() + 86_400.0))
        try:
            await asyncio.wait((go, idle), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (go, idle):
                task.cancel()
        if idle.done():  # the connection closed or broke before the window opened
            if not idle.cancelled():
                idle.exception()  # retrieved, so that asyncio does not report it as lost
            return False
        with contextlib.suppress(asyncio.CancelledError, *_NET_ERRORS):
            await idle
        return not ws.closed

    async def _idle_until(self, ws: WS, until: float) -> bool:
        """Keep reading (pings, server CALLs) until ``until``; False if the connection closed."""
        st = self.stats
        while True:
            remaining = until - time.perf_counter()
            if remaining <= 0:
                return not ws.closed
            try:
                # Not ws.receive(timeout=...): aiohttp restarts that timeout after
                # every PING it answers internally, so against a server that
                # pings more often than `remaining` it would never expire.
                async with asyncio.timeout(remaining):
                    msg = await ws.receive()
            except TimeoutError:
                return not ws.closed
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    frame = _decode(msg.data)
                except msgspec.DecodeError:
                    st.unexpected += 1
                    continue
                if isinstance(frame, list) and len(frame) >= 3 and frame[0] == 2:
                    st.server_calls += 1
                    await ws.send_str(self.frames.answer_server_call(frame))
                else:
                    st.unexpected += 1
            elif msg.type in _CLOSE_TYPES:
                return False
            else:
                st.unexpected += 1

    async def _soak(self, ws: WS, index: int) -> None:
        plan, st = self.plan, self.stats
        rng = random.Random(plan.seed * 1_000_003 + index)
        meter = self.frames.MeterSim(index, rng, transaction_id=1 + index)
        start, end = self.window_start, self.window_end
        next_hb = start + rng.uniform(0.0, plan.heartbeat_s)
        next_mv = start + rng.uniform(0.0, plan.meter_s)
        seq = 2
        while True:
            due = min(next_hb, next_mv)
            if due >= end:
                try:
                    alive = await self._idle_until(ws, end)
                except _NET_ERRORS:
                    alive = False
                if alive:
                    st.held += 1
                else:
                    st.disconnects += 1
                return
            try:
                alive = await self._idle_until(ws, due)
            except _NET_ERRORS:
                alive = False
            if not alive:
                st.disconnects += 1
                return
            seq += 1
            uid = str(seq)
            if next_mv <= next_hb:
                text = meter.frame(uid)
                next_mv += plan.meter_s
            else:
                text = self.frames.heartbeat(uid)
                next_hb += plan.heartbeat_s
            if not await self._call(ws, index, uid, text, plan.call_timeout_s):
                return
