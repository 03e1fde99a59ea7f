"""The simulated charge point's network side: one real WebSocket to the central system, kept up.

It connects (the dialect's subprotocol, optional HTTP Basic auth, text frames), boots until
Accepted (Pending/Rejected: retry after ``interval``), sends Heartbeat at the interval the central
system gave, answers the central system's calls through the dialect, and delivers the outbox: status
notifications and transaction messages, in order; transaction messages survive a lost connection
and are replayed with the same message ids after reconnecting. Every wait is bounded: calls by
``call_timeout``, connecting by ``connect_timeout``, reconnection by an exponential backoff capped at
``reconnect_max``. What the messages say is the dialect's business (:mod:`voltlib.sim.dialect`),
what the hardware does the charge point's (:mod:`voltlib.sim.chargepoint`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from voltlib.clock import Clock, SystemClock
from voltlib.ocpp import frames
from voltlib.ocpp.errors import ErrorCode, OcppError
from voltlib.sim.hardware import ConfigKey, SimError, SimOptions, Transaction

if TYPE_CHECKING:
    from voltlib.sim.dialect import Dialect

log = logging.getLogger(__name__)

Payload = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]
FollowUp = Callable[[], Awaitable[None]]


class CallFailed(Exception):
    """A call of ours was answered with a CallError, or not answered in time."""

    def __init__(self, action: str, code: str, description: str) -> None:
        super().__init__(f"{action}: {code}: {description}")
        self.action, self.code, self.description = action, code, description


class NotConnected(CallFailed):
    """There is no usable connection (offline, or it closed while we waited)."""

    def __init__(self, action: str, description: str = "not connected") -> None:
        super().__init__(action, "NotConnected", description)


@dataclass
class Queued:
    action: str
    payload: Payload
    transaction: Transaction | None
    persistent: bool  # transaction messages survive a lost connection; status notifications do not
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempts: int = 0


class Link:
    """The connection and the outbox of one charge point (the base of
    :class:`~voltlib.sim.chargepoint.SimulatedChargePoint`)."""

    dialect: Dialect
    configuration: dict[str, ConfigKey]
    heartbeat_interval: int
    registration: str | None

    def __init__(self, cp_id: str, url: str | Sequence[str], *, password: str | None, options: SimOptions,
                 clock: Clock | None, sleep: Sleep | None, http: aiohttp.ClientSession | None) -> None:
        self.cp_id = cp_id
        bases = [url] if isinstance(url, str) else list(url)
        if not bases:
            raise ValueError("a charge point needs at least one central-system URL")
        self.urls = [f"{base.rstrip('/')}/{quote(cp_id, safe='')}" for base in bases]
        self._url_index = 0
        self.password = password
        self.options = options
        self.clock: Clock = clock or SystemClock()
        self._sleep: Sleep = sleep or self.clock.sleep
        self._clock_sleeps = sleep is None  # waits can then be wall-clock timeouts (cheap at scale)
        self._http = http
        self._own_http = http is None
        self.stats: Counter[str] = Counter()  # "sent:<action>", "received:<action>", "boots", "connects"...
        self.last_error: str | None = None
        # What the central system acknowledged, in order: (action, transaction id) of each transaction
        # message and security event answered. A crash drill checks each is in voltlib's database exactly once.
        self.acknowledged: list[tuple[str, int | None]] = []
        # How far this post's own clock is from the true time: every time it stamps says true + offset
        # (a post whose clock runs fast, slow, or was set wrong). It schedules by the true time.
        self.clock_offset = timedelta(0)
        self.connected = asyncio.Event()
        self.accepted = asyncio.Event()  # set while connected and registered (Accepted)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._needs_boot = True
        self._boot_now = asyncio.Event()
        self._heartbeat_changed = asyncio.Event()
        self._network_up = asyncio.Event()
        self._network_up.set()
        self._stopping = False
        self._outbox: deque[Queued] = deque()
        self._outbox_changed = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._call_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._pending: tuple[str, str, asyncio.Future[Payload]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    # -- what the charge point provides --

    def _started(self, now: datetime) -> None:
        """The charge point is switched on at ``now``."""

    async def _tick_loop(self) -> None:
        """The hardware's own clock: energy, reservations, sampling."""

    def _after_boot(self) -> None:
        """Registered again (after (re)connecting): report every connector afresh."""

    def _stamp(self, now: datetime) -> str:
        raise NotImplementedError

    # ==== lifecycle ==============================================================================

    async def start(self) -> None:
        """Connect and keep connected (reconnecting after failures) until :meth:`stop`."""
        if self._runner is not None:
            return
        if self._http is None:
            self._http = aiohttp.ClientSession()
        self._started(self.clock.now())
        self._runner = asyncio.create_task(self._run(), name=f"sim-{self.cp_id}")
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"sim-{self.cp_id}-tick")

    async def stop(self, timeout: float = 5.0) -> None:
        """Disconnect and stop every task of this charge point (within ``timeout``)."""
        self._stopping = True
        self._network_up.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), timeout)
        tasks = [t for t in (self._runner, self._ticker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        self._runner = self._ticker = None
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    async def wait_accepted(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until booted and Accepted."""
        try:
            await asyncio.wait_for(self.accepted.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def wait_drained(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until every queued message has been answered."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def set_network(self, up: bool) -> None:
        """Cut (``False``) or restore (``True``) the charge point's network link."""
        if up:
            self._network_up.set()
            return
        self._network_up.clear()
        await self._hang_up(b"network down")

    async def _hang_up(self, why: bytes) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=why)

    @property
    def url(self) -> str:
        """The URL it connects to now (the next one of :attr:`urls` after a failed attempt)."""
        return self.urls[self._url_index]

    @property
    def outbox_size(self) -> int:
        return len(self._outbox)

    def spawn(self, coro: Awaitable[None], name: str = "") -> None:
        """Run ``coro`` in the background, owned by this charge point (cancelled by :meth:`stop`)."""
        async def guarded() -> None:
            try:
                await coro
            except (CallFailed, SimError) as exc:
                log.info("%s: %s gave up: %s", self.cp_id, name or "task", exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: %s failed", self.cp_id, name or "task")

        task = asyncio.create_task(guarded(), name=f"sim-{self.cp_id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        delay = self.options.reconnect_min
        while not self._stopping:
            if not self._network_up.is_set():
                await self._wait(1.0, self._network_up)
                continue
            ws = await self._connect()
            if ws is None:
                await self._wait(delay, self._boot_now)
                delay = min(delay * 2, self.options.reconnect_max)
                continue
            delay = self.options.reconnect_min
            await self._session(ws)
            if self._needs_boot and not self._stopping:  # a reboot: stay off the network a moment
                await self._sleep(self.options.reboot_delay)

    async def _connect(self) -> aiohttp.ClientWebSocketResponse | None:
        assert self._http is not None
        subprotocol = self.dialect.subprotocol
        headers = {"Authorization": aiohttp.encode_basic_auth(self.cp_id, self.password)} if self.password else {}
        try:
            ws = await asyncio.wait_for(self._http.ws_connect(
                self.url, protocols=(subprotocol,), headers=headers, autoping=True, heartbeat=None,
                timeout=aiohttp.ClientWSTimeout(ws_close=self.options.connect_timeout), compress=0),
                self.options.connect_timeout)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.last_error = f"connect: {exc}"
            self.stats["connect_failures"] += 1
            self._url_index = (self._url_index + 1) % len(self.urls)  # the next node, if there are several
            log.info("%s: cannot connect: %s", self.cp_id, exc)
            return None
        if ws.protocol != subprotocol:
            self.last_error = f"server chose subprotocol {ws.protocol!r}"
            await ws.close()
            return None
        self.stats["connects"] += 1
        return ws

    async def _session(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self.connected.set()
        reader = asyncio.create_task(self._read(ws), name=f"sim-{self.cp_id}-read")
        online = asyncio.create_task(self._online(), name=f"sim-{self.cp_id}-online")
        try:
            await asyncio.wait({reader, online}, return_when=asyncio.FIRST_COMPLETED)
            if online.done() and not reader.done():  # _online gave up: hang up, and connect again
                if not online.cancelled() and online.exception() is not None:
                    log.error("%s: session failed", self.cp_id, exc_info=online.exception())
                await ws.close()
            await asyncio.wait({reader}, timeout=self.options.connect_timeout)
        finally:
            for task in (reader, online):
                task.cancel()
            await asyncio.wait({reader, online}, timeout=self.options.connect_timeout)
            self._ws = None
            self.connected.clear()
            self.accepted.clear()
            self._fail_pending("connection closed")
            if not ws.closed:
                await ws.close()

    async def _online(self) -> None:
        try:
            if self._needs_boot and not await self._boot():
                return
            self.accepted.set()
            # After (re)connecting: replay the transaction messages, then report every connector afresh.
            self._outbox = deque(item for item in self._outbox if item.persistent)
            self._after_boot()
        except NotConnected:
            return
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._heartbeat_loop())
                group.create_task(self._flush_loop())
        except* NotConnected:
            pass  # the connection is gone; the other loop was cancelled with it

    async def _boot(self) -> bool:
        """BootNotification until Accepted. Pending and Rejected wait the interval the central system gave."""
        while True:
            self._boot_now.clear()
            try:
                result = await self._call("BootNotification", self.dialect.boot_payload())
            except NotConnected:
                return False
            except CallFailed as exc:
                self.last_error = str(exc)
                await self._wait(self.options.reconnect_max, self._boot_now)
                continue
            self.stats["boots"] += 1
            self.registration = str(result["status"])
            interval = int(result.get("interval", 0))
            if self.registration == "Accepted":
                self._needs_boot = False
                self.dialect.booted()
                if interval > 0:
                    self._set_heartbeat(interval)
                return True
            wait = float(interval if interval > 0 else self.heartbeat_interval)
            if self.options.boot_retry_cap is not None:
                wait = min(wait, self.options.boot_retry_cap)
            log.info("%s: registration %s, retrying in %.0f s", self.cp_id, self.registration, wait)
            await self._wait(wait, self._boot_now)

    def _set_heartbeat(self, interval: int) -> None:
        self.heartbeat_interval = interval
        self.configuration["HeartbeatInterval"].value = str(interval)
        self._heartbeat_changed.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            self._heartbeat_changed.clear()
            if await self._wait(float(max(self.heartbeat_interval, 1)), self._heartbeat_changed):
                continue  # the interval changed: start counting again
            if self.heartbeat_interval > 0:
                try:
                    await self._call("Heartbeat", {})
                except NotConnected:
                    raise
                except CallFailed as exc:
                    self.last_error = str(exc)

    async def _wait(self, seconds: float, event: asyncio.Event | None = None) -> bool:
        """Sleep ``seconds`` (with the injected sleep) or until ``event`` is set; True if it was."""
        if event is not None and event.is_set():
            return True
        if event is None:
            await self._sleep(max(seconds, 0.0))
            return False
        if self._clock_sleeps:  # one timeout, no extra tasks: thousands of posts wait here at once
            try:
                async with asyncio.timeout(max(seconds, 0.0) / self.clock.factor):
                    await event.wait()
            except TimeoutError:
                return False
            return True
        sleeper = asyncio.ensure_future(self._sleep(max(seconds, 0.0)))
        waiter = asyncio.ensure_future(event.wait())
        try:
            done, _ = await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()
        return waiter in done

    # ==== the wire ===============================================================================

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                await self._on_text(msg.data)
            elif msg.type is aiohttp.WSMsgType.ERROR:
                self.last_error = f"socket error: {ws.exception()}"
                break
            else:
                log.warning("%s: ignoring a %s frame", self.cp_id, msg.type.name)

    async def _on_text(self, text: str) -> None:
        try:
            frame = frames.parse_frame(text)
        except frames.FrameError as exc:
            if exc.message_id is not None:
                with contextlib.suppress(NotConnected):
                    await self._write(frames.encode_error(exc.message_id, exc.code.wire(self.dialect.version),
                                                          exc.description))
            return
        if isinstance(frame, frames.Call):
            self.stats[f"received:{frame.action}"] += 1
            self.spawn(self._handle_call(frame), frame.action)
            return
        pending = self._pending
        if pending is None or pending[0] != frame.message_id or pending[2].done():
            log.info("%s: ignoring an answer to %s, which we are not waiting for", self.cp_id, frame.message_id)
            return
        if isinstance(frame, frames.CallResult):
            pending[2].set_result(frame.payload)
        else:
            pending[2].set_exception(CallFailed(pending[1], frame.code, frame.description))

    async def _handle_call(self, call: frames.Call) -> None:
        follow_up: FollowUp | None = None
        version = self.dialect.version
        try:
            response, follow_up = self.dialect.dispatch(call.action, call.payload)
            text = frames.encode_result(call.message_id, response)
        except OcppError as exc:
            text = frames.encode_error(call.message_id, exc.code.wire(version), exc.description, exc.details or None)
        except Exception:
            log.exception("%s: answering %s failed", self.cp_id, call.action)
            text = frames.encode_error(call.message_id, ErrorCode.INTERNAL_ERROR.wire(version),
                                       "the charge point failed to process this request")
        await self._write(text)
        if follow_up is not None:
            await follow_up()

    async def _write(self, text: str) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise NotConnected("-")
        async with self._write_lock:
            try:
                await ws.send_str(text)
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                raise NotConnected("-", str(exc)) from None

    async def _call(self, action: str, payload: Payload, *, message_id: str | None = None) -> Payload:
        """Send one call and wait (at most ``call_timeout``) for its answer. One call at a time."""
        async with self._call_lock:
            ws = self._ws
            if ws is None or ws.closed:
                raise NotConnected(action)
            message_id = message_id or str(uuid.uuid4())
            future: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
            self._pending = (message_id, action, future)
            try:
                try:
                    await self._write(frames.encode_call(message_id, action, payload))
                except NotConnected:
                    raise NotConnected(action) from None
                self.stats[f"sent:{action}"] += 1
                return await asyncio.wait_for(future, self.options.call_timeout)
            except TimeoutError:
                raise CallFailed(action, "Timeout", f"no answer in {self.options.call_timeout} s") from None
            finally:
                self._pending = None

    def _fail_pending(self, reason: str) -> None:
        pending = self._pending
        if pending is not None and not pending[2].done():
            pending[2].set_exception(NotConnected(pending[1], reason))

    # ==== the outbox: status notifications and transaction messages, in order ====================

    def _enqueue(self, action: str, payload: Payload, transaction: Transaction | None = None, *,
                 persistent: bool = True) -> None:
        self._outbox.append(Queued(action, payload, transaction, persistent))
        self._drained.clear()
        self._outbox_changed.set()

    async def _flush_loop(self) -> None:
        while True:
            while self._outbox:
                item = self._outbox[0]
                payload = self.dialect.resolved(item)
                if payload is None:
                    self._outbox.popleft()
                    continue
                try:
                    result = await self._call(item.action, payload, message_id=item.message_id)
                except NotConnected:
                    raise
                except CallFailed as exc:
                    if exc.code == "SecurityError":  # the central system no longer takes us as registered
                        self._needs_boot = True
                        raise NotConnected(item.action, "registration lost: boot again") from None
                    if exc.code == "GenericError" and "rate limit" in exc.description:
                        self.stats["rate_limited"] += 1  # replaying a backlog too fast: slow down, retry
                        await self._wait(1.0)
                        continue
                    item.attempts += 1
                    attempts = int(self.configuration["TransactionMessageAttempts"].value)
                    if not item.persistent or item.attempts >= attempts:
                        log.warning("%s: dropping %s after %d attempts: %s", self.cp_id, item.action,
                                    item.attempts, exc)
                        self._outbox.popleft()
                        self.stats["dropped"] += 1
                    else:
                        retry = int(self.configuration["TransactionMessageRetryInterval"].value)
                        await self._wait(float(retry * item.attempts))
                    continue
                if self._outbox and self._outbox[0] is item:
                    self._outbox.popleft()
                self.dialect.answered(item, result)
            self._drained.set()
            self._outbox_changed.clear()
            await self._wait(60.0, self._outbox_changed)
