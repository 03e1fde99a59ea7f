"""Asyncio OCPP-J load generator for ``voltlib bench gateway``.

Every simulated charge point opens its own WebSocket to ``{url_base}/{cp_id}``
(subprotocol ``ocpp1.6`` or ``ocpp2.0.1`` as the plan says, optional HTTP Basic
auth ``cp_id:password``), sends BootNotification and a StatusNotification (2.0.1:
and a TransactionEvent(Started)), then waits until every charge point of the run
is connected.  Only then does the measurement window open:

* ``throughput``: each charge point sends meter values back to back (1.6
  MeterValues, 2.0.1 TransactionEvent(Updated)), one outstanding CALL per
  connection as OCPP-J requires, for ``duration_s``;
* ``soak``: each charge point sends Heartbeat every ``heartbeat_s`` and
  meter values every ``meter_s`` (first of each at a random offset), and holds
  its connection for ``duration_s``.

The client is aiohttp's WebSocket client.  It was picked by measurement
against :mod:`voltlib.bench.echo_server` on the 2-core benchmark machine:
aiohttp ~27k calls/s with the server pinned at ~95-100 % of its core,
``websockets`` 15-23k calls/s with the *client* pinned at ~98 % (the client
was the bottleneck), a hand-written callback-driven raw-socket client
25-30k calls/s (less user CPU than aiohttp but the same total, which is
dominated by the kernel's loopback TCP path).  ``workers > 1`` runs the load in
several processes and merges their results; it only helps on machines with
cores to spare beyond the server's.

The run is bounded: connecting gets ``ramp_timeout_s``, the window lasts
``duration_s``, CALLs still outstanding ``drain_timeout_s`` after the window
are abandoned (counted as ``unanswered``; charge points stuck elsewhere as
``stalled``), and every connection is closed.  Every connected charge point
ends up counted exactly once as held, disconnected, unanswered or stalled.
Only loopback targets are accepted.

The frames are in :mod:`voltlib.bench.frames_v16` and :mod:`voltlib.bench.frames_v201`,
what a process costs in :mod:`voltlib.bench.procstats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import multiprocessing
import os
import queue
import random
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import msgspec

from voltlib.bench import frames_v16, frames_v201
from voltlib.bench.procstats import raise_nofile_limit

Mode = Literal["throughput", "soak"]
OcppVersion = Literal["1.6", "2.0.1"]
FRAMES = {"1.6": frames_v16, "2.0.1": frames_v201}  # the frames each version's charge points send
_decode = msgspec.json.decode

#: Charge point ids: ``f"{cp_id_prefix}{index:05d}"``.
DEFAULT_CP_ID_PREFIX = "BENCH-"

_SPREAD_AUTO_THRESHOLD = 1000
_SOURCE_ADDR_COUNT = 253  # 127.0.0.2 .. 127.0.0.254

ProgressFn = Callable[[str], None]
ConnectedHook = Callable[[int], Awaitable[None]]
WindowEndHook = Callable[[], Awaitable[None]]


# --------------------------------------------------------------------------
# Plan and result
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """Everything that defines one load run, except the target URL."""

    n_charge_points: int
    mode: Mode = "throughput"
    duration_s: float = 10.0
    password: str | None = None
    workers: int = 1
    cp_id_prefix: str = DEFAULT_CP_ID_PREFIX
    heartbeat_s: float = 60.0
    meter_s: float = 30.0
    connect_concurrency: int = 200
    connect_timeout_s: float = 10.0
    ramp_timeout_s: float = 120.0
    call_timeout_s: float = 30.0
    drain_timeout_s: float = 5.0
    #: None: spread over 127.0.0.2..254 when n_charge_points > 1000.
    spread_source_addrs: bool | None = None
    seed: int = 0
    #: 1.6: MeterValues; 2.0.1: TransactionEvent(Updated) with the same meter values (frames_v201.py).
    ocpp: OcppVersion = "1.6"

    def __post_init__(self) -> None:
        if self.n_charge_points < 1:
            raise ValueError("n_charge_points must be >= 1")
        if self.mode not in ("throughput", "soak"):
            raise ValueError(f"unknown mode {self.mode!r}")
        if not 0 < self.duration_s <= 24 * 3600:
            raise ValueError("duration_s must be in (0, 86400]")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.heartbeat_s <= 0 or self.meter_s <= 0:
            raise ValueError("heartbeat_s and meter_s must be > 0")
        if self.connect_concurrency < 1:
            raise ValueError("connect_concurrency must be >= 1")
        if self.ocpp not in FRAMES:
            raise ValueError(f"unknown OCPP version {self.ocpp!r}")

    def cp_id(self, index: int) -> str:
        return f"{self.cp_id_prefix}{index:05d}"

    def cp_ids(self) -> list[str]:
        return [self.cp_id(i) for i in range(self.n_charge_points)]


@dataclass
class LoadResult:
    """Merged outcome of one run.  Latencies are in milliseconds."""

    mode: Mode
    url_base: str
    n_charge_points: int
    workers: int
    window_s: float
    ramp_s: float
    connected: int
    connect_failures: int
    boot_rejected: int
    connections_held: int
    disconnects: int
    calls: int
    calls_per_s: float
    late_calls: int
    call_errors: int
    timeouts: int
    unanswered: int
    stalled: int
    unexpected_frames: int
    server_calls: int
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    latency_mean_ms: float
    boot_p50_ms: float
    boot_p99_ms: float
    failure_reasons: dict[str, int] = field(default_factory=dict)
    call_error_codes: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        """Everything that went wrong with CALLs and connections."""
        return (
            self.connect_failures
            + self.boot_rejected
            + self.disconnects
            + self.call_errors
            + self.timeouts
            + self.unanswered
            + self.stalled
            + self.unexpected_frames
        )

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items()}
        out["errors"] = self.errors
        return out


@dataclass
class _Partial:
    """One worker's raw counts; picklable so worker processes can return it."""

    connected: int = 0
    connect_failures: int = 0
    boot_rejected: int = 0
    held: int = 0
    disconnects: int = 0
    calls: int = 0
    late_calls: int = 0
    call_errors: int = 0
    timeouts: int = 0
    unanswered: int = 0
    stalled: int = 0
    unexpected: int = 0
    server_calls: int = 0
    window_s: float = 0.0
    ramp_s: float = 0.0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    boot_latencies: array[float] = field(default_factory=lambda: array("d"))
    failure_reasons: Counter[str] = field(default_factory=Counter)
    call_error_codes: Counter[str] = field(default_factory=Counter)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _merge(url_base: str, plan: LoadPlan, parts: Sequence[_Partial]) -> LoadResult:
    lat: list[float] = []
    boot: list[float] = []
    reasons: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for p in parts:
        lat.extend(p.latencies)
        boot.extend(p.boot_latencies)
        reasons.update(p.failure_reasons)
        codes.update(p.call_error_codes)
    lat.sort()
    boot.sort()
    window = max((p.window_s for p in parts), default=0.0)
    calls = sum(p.calls for p in parts)
    return LoadResult(
        mode=plan.mode,
        url_base=url_base,
        n_charge_points=plan.n_charge_points,
        workers=len(parts),
        window_s=window,
        ramp_s=max((p.ramp_s for p in parts), default=0.0),
        connected=sum(p.connected for p in parts),
        connect_failures=sum(p.connect_failures for p in parts),
        boot_rejected=sum(p.boot_rejected for p in parts),
        connections_held=sum(p.held for p in parts),
        disconnects=sum(p.disconnects for p in parts),
        calls=calls,
        calls_per_s=calls / window if window > 0 else 0.0,
        late_calls=sum(p.late_calls for p in parts),
        call_errors=sum(p.call_errors for p in parts),
        timeouts=sum(p.timeouts for p in parts),
        unanswered=sum(p.unanswered for p in parts),
        stalled=sum(p.stalled for p in parts),
        unexpected_frames=sum(p.unexpected for p in parts),
        server_calls=sum(p.server_calls for p in parts),
        latency_p50_ms=percentile(lat, 50) * 1e3,
        latency_p90_ms=percentile(lat, 90) * 1e3,
        latency_p99_ms=percentile(lat, 99) * 1e3,
        latency_max_ms=(lat[-1] * 1e3) if lat else 0.0,
        latency_mean_ms=(sum(lat) / len(lat) * 1e3) if lat else 0.0,
        boot_p50_ms=percentile(boot, 50) * 1e3,
        boot_p99_ms=percentile(boot, 99) * 1e3,
        failure_reasons=dict(reasons.most_common(10)),
        call_error_codes=dict(codes.most_common(10)),
    )


# --------------------------------------------------------------------------
# Target checks
# --------------------------------------------------------------------------


def check_loopback_url(url_base: str) -> str:
    """Return the host of ``url_base``; raise ValueError unless it is ws:// on loopback."""
    parts = urlsplit(url_base)
    if parts.scheme != "ws":
        raise ValueError(f"only ws:// URLs are supported, got {url_base!r}")
    host = parts.hostname or ""
    if host == "localhost":
        return host
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"load target must be a loopback address, got {host!r}") from None
    if not addr.is_loopback:
        raise ValueError(f"load target must be a loopback address, got {host!r}")
    return host


def _spread_enabled(plan: LoadPlan, host: str) -> bool:
    try:
        v4 = ipaddress.ip_address(host).version == 4
    except ValueError:
        v4 = False  # "localhost" may resolve to ::1: binding 127.0.0.x would fail
    if plan.spread_source_addrs is None:
        return v4 and plan.n_charge_points > _SPREAD_AUTO_THRESHOLD
    if plan.spread_source_addrs and not v4:
        raise ValueError("spreading source addresses needs an IPv4 loopback literal target")
    return plan.spread_source_addrs


def source_addr(index: int) -> str:
    """Source address for charge point ``index`` when spreading: 127.0.0.2..254."""
    return f"127.0.0.{2 + index % _SOURCE_ADDR_COUNT}"


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


# --------------------------------------------------------------------------
# Running: one process or K worker processes
# --------------------------------------------------------------------------


def _split(n: int, k: int) -> list[tuple[int, int]]:
    base, extra = divmod(n, k)
    out: list[tuple[int, int]] = []
    lo = 0
    for i in range(k):
        hi = lo + base + (1 if i < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def _worker_process_main(
    url_base: str,
    plan: LoadPlan,
    lo: int,
    hi: int,
    ready_q: Any,
    go_evt: Any,
    result_q: Any,
    cpus: tuple[int, ...] | None,
) -> None:
    if cpus:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)
    raise_nofile_limit()

    async def body() -> _Partial:
        worker = _Worker(url_base, plan, lo, hi)
        worker.start()
        connected = await worker.wait_ready()
        ready_q.put(connected)
        go_timeout = plan.ramp_timeout_s + 120.0
        if not await asyncio.to_thread(go_evt.wait, go_timeout):
            for t in worker.tasks:
                t.cancel()
        worker.open_window()
        return await worker.finish()

    try:
        result = asyncio.run(body())
    except BaseException as exc:  # report instead of leaving the parent waiting
        result_q.put(("error", f"{type(exc).__name__}: {exc}"))
        raise
    result_q.put(("ok", result))


async def run_plan(
    url_base: str,
    plan: LoadPlan,
    *,
    on_connected: ConnectedHook | None = None,
    on_window_end: WindowEndHook | None = None,
    progress: ProgressFn | None = None,
    worker_cpus: Sequence[int] | None = None,
) -> LoadResult:
    """Run ``plan`` against ``url_base`` (``ws://127.0.0.1:P/ocpp``, no trailing cp id).

    ``on_connected(n_connected)`` runs after the ramp and before the window
    opens (sample server RSS there); ``on_window_end()`` right after the window
    closes, before the drain (sample server CPU there).  ``worker_cpus`` pins
    worker processes (only used when ``plan.workers > 1``).
    """
    check_loopback_url(url_base)
    nofile = raise_nofile_limit()
    say = progress or (lambda _msg: None)
    per_process = math.ceil(plan.n_charge_points / plan.workers)
    if per_process + 64 > nofile:
        say(f"warning: RLIMIT_NOFILE is {nofile}, fewer than {per_process} connections per process")
    if plan.workers == 1:
        worker = _Worker(url_base, plan, 0, plan.n_charge_points)
        worker.start()
        try:
            connected = await worker.wait_ready()
            say(f"connected {connected}/{plan.n_charge_points} in {worker.stats.ramp_s:.1f}s")
            if on_connected is not None:
                await on_connected(connected)
            worker.open_window()
            await asyncio.sleep(plan.duration_s)
            if on_window_end is not None:
                await on_window_end()
        finally:
            parts = [await worker.finish()]
        return _merge(url_base, plan, parts)
    return await _run_processes(url_base, plan, on_connected, on_window_end, say, worker_cpus)


async def _run_processes(
    url_base: str,
    plan: LoadPlan,
    on_connected: ConnectedHook | None,
    on_window_end: WindowEndHook | None,
    say: ProgressFn,
    worker_cpus: Sequence[int] | None,
) -> LoadResult:
    ctx = multiprocessing.get_context("spawn")
    ready_q = ctx.Queue()
    result_q = ctx.Queue()
    go_evt = ctx.Event()
    cpus = tuple(worker_cpus) if worker_cpus else None
    procs = [
        ctx.Process(
            target=_worker_process_main,
            args=(url_base, plan, lo, hi, ready_q, go_evt, result_q, cpus),
            name=f"voltlib-bench-load-{i}",
            daemon=True,
        )
        for i, (lo, hi) in enumerate(_split(plan.n_charge_points, plan.workers))
    ]
    for p in procs:
        p.start()
    parts: list[_Partial] = []
    try:
        connected = 0
        deadline = time.monotonic() + plan.ramp_timeout_s + 60.0
        for _ in procs:
            timeout = max(deadline - time.monotonic(), 0.1)
            try:
                connected += await asyncio.to_thread(ready_q.get, True, timeout)
            except queue.Empty:
                raise RuntimeError("load worker processes did not finish connecting") from None
        say(f"connected {connected}/{plan.n_charge_points} over {len(procs)} processes")
        if on_connected is not None:
            await on_connected(connected)
        go_evt.set()
        await asyncio.sleep(plan.duration_s)
        if on_window_end is not None:
            await on_window_end()
        deadline = time.monotonic() + plan.drain_timeout_s + 30.0
        for _ in procs:
            timeout = max(deadline - time.monotonic(), 0.1)
            try:
                status, payload = await asyncio.to_thread(result_q.get, True, timeout)
            except queue.Empty:
                raise RuntimeError("load worker processes did not report") from None
            if status != "ok":
                raise RuntimeError(f"load worker failed: {payload}")
            parts.append(payload)
    finally:
        go_evt.set()
        for p in procs:
            await asyncio.to_thread(p.join, 10.0)
            if p.is_alive():
                p.terminate()
                await asyncio.to_thread(p.join, 5.0)
    return _merge(url_base, plan, parts)


async def run_load(
    url_base: str,
    n_charge_points: int,
    mode: Mode = "throughput",
    duration_s: float = 10.0,
    *,
    password: str | None = None,
    workers: int = 1,
    heartbeat_s: float = 60.0,
    meter_s: float = 30.0,
    cp_id_prefix: str = DEFAULT_CP_ID_PREFIX,
    connect_concurrency: int = 200,
    ramp_timeout_s: float = 120.0,
    call_timeout_s: float = 30.0,
    drain_timeout_s: float = 5.0,
    spread_source_addrs: bool | None = None,
    seed: int = 0,
    ocpp: OcppVersion = "1.6",
    on_connected: ConnectedHook | None = None,
    on_window_end: WindowEndHook | None = None,
    progress: ProgressFn | None = None,
) -> LoadResult:
    """Convenience wrapper: build a :class:`LoadPlan` and :func:`run_plan` it."""
    plan = LoadPlan(
        n_charge_points=n_charge_points,
        mode=mode,
        duration_s=duration_s,
        password=password,
        workers=workers,
        heartbeat_s=heartbeat_s,
        meter_s=meter_s,
        cp_id_prefix=cp_id_prefix,
        connect_concurrency=connect_concurrency,
        ramp_timeout_s=ramp_timeout_s,
        call_timeout_s=call_timeout_s,
        drain_timeout_s=drain_timeout_s,
        spread_source_addrs=spread_source_addrs,
        seed=seed,
        ocpp=ocpp,
    )
    return await run_plan(
        url_base, plan, on_connected=on_connected, on_window_end=on_window_end, progress=progress
    )
