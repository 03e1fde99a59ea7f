"""A simulated OCPP 1.6J charge point with N connectors, over its own real WebSocket.

It is meant to behave like a small, honest piece of hardware, for tests, demos and the city
simulator:

- it connects (subprotocol ``ocpp1.6``, optional HTTP Basic auth, text frames), sends
  BootNotification and obeys the answer (Pending/Rejected: retry after ``interval``), then sends
  Heartbeat at the interval the central system gave, and a StatusNotification on every connector
  state change;
- members badge (Authorize, StartTransaction), charge (MeterValues every
  ``MeterValueSampleInterval``: energy register, power, and the car's state of charge when the
  car reports one) and stop (StopTransaction);
- it answers every central-system command of OCPP 1.6 (core, smart charging, reservation,
  local list, firmware, remote trigger, security whitepaper), see :meth:`answer`;
- transaction messages (StartTransaction, StopTransaction, MeterValues) are kept in an ordered
  outbox that survives a lost connection and is replayed, with the same message ids, after
  reconnecting; the server's answer to a replayed StartTransaction fills in the transaction id
  of the messages queued after it.

All time comes from the injected :class:`voltlib.clock.Clock` (timestamps, metering) and the
injected ``sleep`` (intervals; by default the clock's own), so a city simulator can run it faster
than the wall clock. Transport waits (``call_timeout``, ``connect_timeout``) are wall seconds. Every
wait is bounded: calls by ``call_timeout``, connecting by ``connect_timeout``, reconnection by
an exponential backoff capped at ``reconnect_max``.
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
from typing import Any
from urllib.parse import quote

import aiohttp

from voltlib.clock import Clock, SystemClock
from voltlib.ocpp import frames, schemas
from voltlib.ocpp.errors import ErrorCode, OcppError
from voltlib.ocpp.v16.messages import COMMANDS
from voltlib.sim.profiles import ProfileStore, format_time, parse_time

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp1.6"
VERSION = "1.6"
Payload = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]
FollowUp = Callable[[], Awaitable[None]]

TRIGGERABLE = frozenset({"BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
                         "Heartbeat", "MeterValues", "StatusNotification"})
EXTENDED_TRIGGERABLE = frozenset({"BootNotification", "LogStatusNotification", "FirmwareStatusNotification",
                                  "Heartbeat", "MeterValues", "SignChargePointCertificate", "StatusNotification"})


class CallFailed(Exception):
    """A call of ours was answered with a CallError, or not answered in time."""

    def __init__(self, action: str, code: str, description: str) -> None:
        super().__init__(f"{action}: {code}: {description}")
        self.action, self.code, self.description = action, code, description


class NotConnected(CallFailed):
    """There is no usable connection (offline, or it closed while we waited)."""

    def __init__(self, action: str, description: str = "not connected") -> None:
        super().__init__(action, "NotConnected", description)


class SimError(Exception):
    """The simulation was asked something its hardware cannot do (no such connector, busy...)."""


# --- the physical world --------------------------------------------------------------------------


@dataclass
class Car:
    """A car plugged into a connector. ``battery_wh`` None: the car does not report a state of charge."""

    battery_wh: float | None = 30_000.0  # an Autolib' Bluecar has a 30 kWh LMP battery
    soc: float = 40.0  # percent
    max_power_w: float = 7_400.0

    @property
    def full(self) -> bool:
        return self.battery_wh is not None and self.soc >= 100.0

    def demand_w(self) -> float:
        return 0.0 if self.full else self.max_power_w

    def absorb(self, energy_wh: float) -> float:
        """Take up to ``energy_wh``; return what the battery actually took."""
        if self.battery_wh is None:
            return energy_wh
        room = max(0.0, (100.0 - self.soc) / 100.0 * self.battery_wh)
        taken = min(room, energy_wh)
        self.soc = min(100.0, self.soc + taken / self.battery_wh * 100.0)
        return taken


@dataclass
class Transaction:
    local_id: int
    connector_id: int
    id_tag: str
    meter_start: int
    started_at: datetime
    reservation_id: int | None = None
    transaction_id: int | None = None  # the central system's id, once StartTransaction is answered
    id_tag_status: str | None = None  # idTagInfo.status of that answer
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    stopped_at: datetime | None = None
    meter_stop: int | None = None


@dataclass
class Reservation:
    reservation_id: int
    connector_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry: datetime


@dataclass
class Connector:
    connector_id: int
    status: str = "Available"
    error_code: str = "NoError"
    energy_wh: float = 0.0  # the meter's Energy.Active.Import.Register
    power_w: float = 0.0
    car: Car | None = None
    transaction: Transaction | None = None
    reservation: Reservation | None = None
    operative: bool = True
    scheduled_operative: bool | None = None  # a ChangeAvailability waiting for the transaction to end
    finished: bool = False  # a transaction ended and the car is still plugged in
    updated_at: datetime | None = None
    next_sample_at: datetime | None = None
    reported: str | None = None  # the status last queued for the central system


@dataclass
class _Queued:
    action: str
    payload: Payload
    transaction: Transaction | None
    persistent: bool  # transaction messages survive a lost connection; status notifications do not
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempts: int = 0


@dataclass
class _Key:
    value: str
    readonly: bool = False
    kind: str = "str"  # int | bool | str | csl
    write_only: bool = False


@dataclass(frozen=True)
class SimOptions:
    """How one simulated charge point is built and how patient it is."""

    connectors: int = 2
    vendor: str = "Bollore"
    model: str = "Bluestation"
    firmware_version: str = "1.0.0"
    serial_number: str | None = None
    connector_power_w: float = 7_400.0  # hardware limit of each connector
    max_power_w: float = 22_000.0  # supply of the whole charge point, shared by its connectors
    meter_interval: int = 60  # MeterValueSampleInterval until the central system changes it
    heartbeat_interval: int = 300  # until BootNotification says otherwise
    call_timeout: float = 10.0
    connect_timeout: float = 10.0
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    boot_retry_cap: float | None = None  # cap on the Pending/Rejected retry interval (tests)
    step_delay: float = 1.0  # between diagnostics/firmware/log status notifications
    reboot_delay: float = 1.0  # how long a Reset keeps the charge point off the network
    tick: float = 1.0  # how often energy, reservations and sampling are updated


def _iso(value: datetime) -> str:
    return format_time(value)


def _bool(text: str) -> bool:
    return text.strip().lower() == "true"


class SimulatedChargePoint:
    """One charge point. ``url`` is the central system's OCPP endpoint without the identity,
    e.g. ``ws://127.0.0.1:8180/ocpp``; the identity is appended. Several URLs (the nodes behind a
    load balancer, as the charge point would meet them): it keeps to the one that last answered and,
    when connecting fails, tries the next one in turn."""

    def __init__(self, cp_id: str, url: str | Sequence[str], *, password: str | None = None,
                 options: SimOptions | None = None, clock: Clock | None = None, sleep: Sleep | None = None,
                 http: aiohttp.ClientSession | None = None) -> None:
        self.cp_id = cp_id
        bases = [url] if isinstance(url, str) else list(url)
        if not bases:
            raise ValueError("a charge point needs at least one central-system URL")
        self.urls = [f"{base.rstrip('/')}/{quote(cp_id, safe='')}" for base in bases]
        self._url_index = 0
        self.password = password
        self.options = options or SimOptions()
        self.clock: Clock = clock or SystemClock()
        self._sleep: Sleep = sleep or self.clock.sleep
        self._clock_sleeps = sleep is None  # waits can then be wall-clock timeouts (cheap at scale)
        self._http = http
        self._own_http = http is None
        o = self.options
        self.connectors: dict[int, Connector] = {i: Connector(i) for i in range(1, o.connectors + 1)}
        self.operative = True  # connector 0: the charge point as a whole
        self.firmware_version = o.firmware_version
        self.registration: str | None = None  # the last BootNotification answer
        self.heartbeat_interval = o.heartbeat_interval
        self.configuration = self._default_configuration()
        self.profiles = ProfileStore(o.connectors)
        self.local_list: dict[str, Payload] = {}
        self.local_list_version = 0
        self.auth_cache: dict[str, Payload] = {}
        self.diagnostics_status = "Idle"
        self.firmware_status = "Idle"
        self.log_status = "Idle"
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
        self._outbox: deque[_Queued] = deque()
        self._outbox_changed = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._call_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._pending: tuple[str, str, asyncio.Future[Payload]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._local_ids = 0

    def _stamp(self, now: datetime) -> str:
        """A time as this post's clock reads it (``clock_offset`` from the truth)."""
        return _iso(now + self.clock_offset)

    # ==== lifecycle ==============================================================================

    async def start(self) -> None:
        """Connect and keep connected (reconnecting after failures) until :meth:`stop`."""
        if self._runner is not None:
            return
        if self._http is None:
            self._http = aiohttp.ClientSession()
        now = self.clock.now()
        for c in self.connectors.values():
            c.updated_at = now
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
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"network down")

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
        headers = {"Authorization": aiohttp.encode_basic_auth(self.cp_id, self.password)} if self.password else {}
        try:
            ws = await asyncio.wait_for(self._http.ws_connect(
                self.url, protocols=(SUBPROTOCOL,), headers=headers, autoping=True, heartbeat=None,
                timeout=aiohttp.ClientWSTimeout(ws_close=self.options.connect_timeout), compress=0),
                self.options.connect_timeout)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.last_error = f"connect: {exc}"
            self.stats["connect_failures"] += 1
            self._url_index = (self._url_index + 1) % len(self.urls)  # the next node, if there are several
            log.info("%s: cannot connect: %s", self.cp_id, exc)
            return None
        if ws.protocol != SUBPROTOCOL:
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
            for c in self.connectors.values():
                c.reported = None
            self._report(0)
            self._refresh()
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
                result = await self._call("BootNotification", self._boot_payload())
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
                if interval > 0:
                    self._set_heartbeat(interval)
                return True
            wait = float(interval if interval > 0 else self.heartbeat_interval)
            if self.options.boot_retry_cap is not None:
                wait = min(wait, self.options.boot_retry_cap)
            log.info("%s: registration %s, retrying in %.0f s", self.cp_id, self.registration, wait)
            await self._wait(wait, self._boot_now)

    def _boot_payload(self) -> Payload:
        o = self.options
        payload: Payload = {"chargePointVendor": o.vendor[:20], "chargePointModel": o.model[:20],
                            "firmwareVersion": self.firmware_version[:50],
                            "meterType": "SimMeter", "chargePointSerialNumber": (o.serial_number or self.cp_id)[:25]}
        return payload

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
                    await self._write(frames.encode_error(exc.message_id, exc.code.wire(VERSION), exc.description))
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
        try:
            response, follow_up = self._dispatch(call.action, call.payload)
            text = frames.encode_result(call.message_id, response)
        except OcppError as exc:
            text = frames.encode_error(call.message_id, exc.code.wire(VERSION), exc.description, exc.details or None)
        except Exception:
            log.exception("%s: answering %s failed", self.cp_id, call.action)
            text = frames.encode_error(call.message_id, ErrorCode.INTERNAL_ERROR.wire(VERSION),
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
        self._outbox.append(_Queued(action, payload, transaction, persistent))
        self._drained.clear()
        self._outbox_changed.set()

    def _resolved(self, item: _Queued) -> Payload | None:
        """The payload to send, with the central system's transaction id filled in (None: drop it)."""
        tx = item.transaction
        if tx is None or item.action == "StartTransaction":
            return item.payload
        if tx.transaction_id is None:
            if item.action == "StopTransaction":
                return None  # its StartTransaction was never accepted: nothing to stop
            return {k: v for k, v in item.payload.items() if k != "transactionId"}
        return {**item.payload, "transactionId": tx.transaction_id}

    async def _flush_loop(self) -> None:
        while True:
            while self._outbox:
                item = self._outbox[0]
                payload = self._resolved(item)
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
                self._on_answer(item, result)
            self._drained.set()
            self._outbox_changed.clear()
            await self._wait(60.0, self._outbox_changed)

    def _on_answer(self, item: _Queued, result: Payload) -> None:
        tx = item.transaction
        if tx is not None:
            self.acknowledged.append((item.action, int(result["transactionId"]) if item.action == "StartTransaction"
                                      else tx.transaction_id))
        elif item.action == "SecurityEventNotification":
            self.acknowledged.append((item.action, None))
        if item.action == "StartTransaction" and tx is not None:
            tx.transaction_id = int(result["transactionId"])
            info: Payload = result.get("idTagInfo", {})
            tx.id_tag_status = str(info.get("status", "Invalid"))
            self._cache(tx.id_tag, info)
            tx.confirmed.set()
            c = self.connectors[tx.connector_id]
            if (tx.id_tag_status != "Accepted" and c.transaction is tx
                    and _bool(self.configuration["StopTransactionOnInvalidId"].value)):
                self.stop_transaction(tx.connector_id, reason="DeAuthorized")
        elif item.action == "StopTransaction" and "idTagInfo" in result and "idTag" in item.payload:
            self._cache(str(item.payload["idTag"]), result["idTagInfo"])

    # ==== connectors and their state =============================================================

    def connector(self, connector_id: int) -> Connector:
        try:
            return self.connectors[connector_id]
        except KeyError:
            raise SimError(f"{self.cp_id} has no connector {connector_id}") from None

    def _desired_status(self, c: Connector) -> str:
        if c.error_code != "NoError":
            return "Faulted"
        if c.transaction is not None:
            if c.power_w > 0:
                return "Charging"
            return "SuspendedEV" if c.car is not None and c.car.demand_w() == 0 else "SuspendedEVSE"
        if not (c.operative and self.operative):
            return "Unavailable"
        if c.reservation is not None:
            return "Reserved"
        if c.car is not None:
            return "Finishing" if c.finished else "Preparing"
        return "Available"

    def _refresh(self, c: Connector | None = None) -> None:
        """Integrate energy, recompute every connector's power and status, and report the changes.
        (Power is shared between connectors, so one connector's change can change the others'.)"""
        self._rebalance()
        for connector in self.connectors.values():
            connector.status = self._desired_status(connector)
            if connector.status != connector.reported:
                connector.reported = connector.status
                self._report(connector.connector_id)

    def _report(self, connector_id: int) -> None:
        self._enqueue("StatusNotification", self._status_payload(connector_id), persistent=False)

    def _status_payload(self, connector_id: int) -> Payload:
        if connector_id == 0:
            status, error = ("Available" if self.operative else "Unavailable"), "NoError"
        else:
            c = self.connectors[connector_id]
            status, error = c.status, c.error_code
        return {"connectorId": connector_id, "errorCode": error, "status": status,
                "timestamp": self._stamp(self.clock.now())}

    def _advance(self, c: Connector) -> None:
        """Integrate the energy delivered since the last update."""
        now = self.clock.now()
        if c.updated_at is not None and c.power_w > 0:
            seconds = max(0.0, (now - c.updated_at).total_seconds())
            energy = c.power_w * seconds / 3600.0
            if c.car is not None:
                energy = c.car.absorb(energy)
            c.energy_wh += energy
        c.updated_at = now

    def _rebalance(self) -> None:
        """Share the charge point's power between charging connectors, within every profile's limit."""
        for c in self.connectors.values():
            self._advance(c)  # at the old power, up to now
        now = self.clock.now()
        charging = [c for c in self.connectors.values() if c.transaction is not None]
        supply = self.options.max_power_w
        cp_limit = self.profiles.charge_point_limit(now)
        if cp_limit is not None:
            supply = min(supply, cp_limit)
        share = supply / len(charging) if charging else 0.0
        for c in self.connectors.values():
            tx = c.transaction
            if tx is None:
                c.power_w = 0.0
                continue
            limit = min(self.options.connector_power_w, share)
            connector_limit = self.profiles.connector_limit(c.connector_id, now, tx.transaction_id, tx.started_at)
            if connector_limit is not None:
                limit = min(limit, connector_limit)
            demand = c.car.demand_w() if c.car is not None else self.options.connector_power_w
            c.power_w = max(0.0, min(limit, demand))

    def _active_transaction(self, connector_id: int) -> int | None:
        c = self.connectors.get(connector_id)
        if c is None or c.transaction is None:
            return None
        return c.transaction.transaction_id or -c.transaction.local_id

    async def _tick_loop(self) -> None:
        while True:
            now = self.clock.now()
            for c in self.connectors.values():
                if c.reservation is not None and c.reservation.expiry <= now:
                    log.info("%s: reservation %d expired", self.cp_id, c.reservation.reservation_id)
                    c.reservation = None
            self._refresh()
            for c in self.connectors.values():
                interval = int(self.configuration["MeterValueSampleInterval"].value)
                tx = c.transaction
                if tx is not None and interval > 0 and c.next_sample_at is not None and now >= c.next_sample_at:
                    self._enqueue("MeterValues", {"connectorId": c.connector_id, "transactionId": 0,
                                                  "meterValue": [self._sample(c, "Sample.Periodic")]}, tx)
                    c.next_sample_at = now + timedelta(seconds=interval)
            await self._sleep(self.options.tick)

    def _sample(self, c: Connector, context: str) -> Payload:
        """One MeterValue of the measurands in MeterValuesSampledData."""
        self._advance(c)
        wanted = {m.strip() for m in self.configuration["MeterValuesSampledData"].value.split(",")}
        values: list[Payload] = []
        if "Energy.Active.Import.Register" in wanted:
            values.append({"value": str(int(c.energy_wh)), "context": context, "measurand":
                           "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"})
        if "Power.Active.Import" in wanted:
            values.append({"value": str(int(c.power_w)), "context": context, "measurand": "Power.Active.Import",
                           "location": "Outlet", "unit": "W"})
        if "SoC" in wanted and c.car is not None and c.car.battery_wh is not None:
            values.append({"value": f"{c.car.soc:.1f}", "context": context, "measurand": "SoC", "location": "EV",
                           "unit": "Percent"})
        return {"timestamp": self._stamp(self.clock.now()), "sampledValue": values}

    # ==== what people do at the charge point =====================================================

    def plug_in(self, connector_id: int, car: Car | None = None) -> None:
        """A car is plugged into the connector."""
        c = self.connector(connector_id)
        if c.car is not None:
            raise SimError(f"connector {connector_id} already has a car")
        c.car = car or Car()
        c.finished = False
        self._refresh(c)

    def unplug(self, connector_id: int) -> None:
        """The car leaves (a running transaction ends with reason EVDisconnected)."""
        c = self.connector(connector_id)
        if c.transaction is not None:
            self.stop_transaction(connector_id, reason="EVDisconnected")
        c.car = None
        c.finished = False
        self._refresh(c)

    async def authorize(self, id_tag: str) -> str:
        """The idTagInfo status for ``id_tag``: asked to the central system when online, else from
        the local authorization list and cache (LocalAuthorizeOffline)."""
        local = self._local_status(id_tag)
        if local == "Accepted" and _bool(self.configuration["LocalPreAuthorize"].value):
            return local
        if self.accepted.is_set():
            try:
                result = await self._call("Authorize", {"idTag": id_tag})
            except CallFailed:
                pass
            else:
                info: Payload = result["idTagInfo"]
                self._cache(id_tag, info)
                return str(info["status"])
        if not _bool(self.configuration["LocalAuthorizeOffline"].value):
            return "Invalid"
        if local is not None:
            return local
        return "Accepted" if _bool(self.configuration["AllowOfflineTxForUnknownId"].value) else "Invalid"

    def _local_status(self, id_tag: str) -> str | None:
        info = None
        if _bool(self.configuration["LocalAuthListEnabled"].value):
            info = self.local_list.get(id_tag)
        if info is None and _bool(self.configuration["AuthorizationCacheEnabled"].value):
            info = self.auth_cache.get(id_tag)
        if info is None:
            return None
        status = str(info.get("status", "Invalid"))
        expiry = info.get("expiryDate")
        if status == "Accepted" and expiry and parse_time(str(expiry)) <= self.clock.now():
            return "Expired"
        return status

    def _cache(self, id_tag: str, info: Payload) -> None:
        if _bool(self.configuration["AuthorizationCacheEnabled"].value) and "status" in info:
            self.auth_cache[id_tag] = dict(info)

    async def badge(self, connector_id: int, id_tag: str) -> str:
        """A member presents a badge at a connector: stop their own transaction there, or authorize
        and start one. Returns the authorization status (``Accepted`` when it started or stopped)."""
        c = self.connector(connector_id)
        tx = c.transaction
        if tx is not None:
            if tx.id_tag != id_tag:
                return "Occupied"
            self.stop_transaction(connector_id, reason="Local", id_tag=id_tag)
            return "Accepted"
        if c.status in ("Unavailable", "Faulted"):
            return "Unavailable"
        if c.reservation is not None and id_tag not in (c.reservation.id_tag, c.reservation.parent_id_tag):
            return "Reserved"
        status = await self.authorize(id_tag)
        self.stats[f"badge:{status}"] += 1
        if status == "Accepted" and c.transaction is None:
            self.start_transaction(connector_id, id_tag)
        return status

    def start_transaction(self, connector_id: int, id_tag: str) -> Transaction:
        """Start charging now (authorization already done); StartTransaction goes to the outbox."""
        c = self.connector(connector_id)
        if c.transaction is not None:
            raise SimError(f"connector {connector_id} is already in a transaction")
        if c.status in ("Unavailable", "Faulted"):
            raise SimError(f"connector {connector_id} is {c.status}")
        if c.car is None:
            c.car = Car()
        self._advance(c)
        reservation_id = None
        if c.reservation is not None and id_tag in (c.reservation.id_tag, c.reservation.parent_id_tag):
            reservation_id = c.reservation.reservation_id
            c.reservation = None
        now = self.clock.now()
        self._local_ids += 1
        tx = Transaction(self._local_ids, connector_id, id_tag, int(c.energy_wh), now, reservation_id)
        if c.status != "Preparing":  # the cable and the badge: Preparing comes first
            c.status = c.reported = "Preparing"
            self._report(connector_id)
        payload: Payload = {"connectorId": connector_id, "idTag": id_tag, "meterStart": tx.meter_start,
                            "timestamp": self._stamp(now)}
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        self._enqueue("StartTransaction", payload, tx)
        c.transaction = tx
        c.finished = False
        interval = int(self.configuration["MeterValueSampleInterval"].value)
        c.next_sample_at = now + timedelta(seconds=interval) if interval > 0 else None
        self.stats["transactions_started"] += 1
        self._refresh(c)
        return tx

    def stop_transaction(self, connector_id: int, *, reason: str = "Local", id_tag: str | None = None
                         ) -> Transaction | None:
        """Stop the connector's transaction; StopTransaction goes to the outbox."""
        c = self.connector(connector_id)
        tx = c.transaction
        if tx is None:
            return None
        end = self._sample(c, "Transaction.End")
        now = self.clock.now()
        tx.stopped_at, tx.meter_stop = now, int(c.energy_wh)
        payload: Payload = {"transactionId": 0, "meterStop": tx.meter_stop, "timestamp": self._stamp(now),
                            "reason": reason, "transactionData": [end]}
        if id_tag is not None:
            payload["idTag"] = id_tag
        self._enqueue("StopTransaction", payload, tx)
        c.transaction = None
        c.power_w = 0.0
        c.next_sample_at = None
        c.finished = c.car is not None
        self.profiles.end_transaction(connector_id)
        if c.scheduled_operative is not None:
            c.operative, c.scheduled_operative = c.scheduled_operative, None
        self.stats["transactions_stopped"] += 1
        self._refresh(c)
        return tx

    def set_fault(self, connector_id: int, error_code: str | None) -> None:
        """Make a connector Faulted with ``error_code`` (e.g. ``GroundFailure``), or clear it with None."""
        c = self.connector(connector_id)
        c.error_code = error_code or "NoError"
        if error_code is not None and c.transaction is not None:
            self.stop_transaction(connector_id, reason="Other")
        self._refresh(c)

    def report_security_event(self, kind: str, tech_info: str | None = None) -> None:
        """SecurityEventNotification (security whitepaper), e.g. ``TamperDetectionActivated``."""
        payload: Payload = {"type": kind, "timestamp": self._stamp(self.clock.now())}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        self._enqueue("SecurityEventNotification", payload)

    # ==== central-system commands ================================================================

    async def answer(self, action: str, payload: Payload) -> Payload:
        """The answer to one central-system command, without its follow-up actions (for tests and
        inspection). Raises :class:`OcppError` for a request that must be answered with a CallError."""
        return self._dispatch(action, payload)[0]

    def _dispatch(self, action: str, payload: Payload) -> tuple[Payload, FollowUp | None]:
        if action not in COMMANDS:
            raise OcppError(ErrorCode.NOT_IMPLEMENTED, f"{action} is not a central-system command of OCPP 1.6")
        schemas.validate(VERSION, action, "request", payload)
        handler = getattr(self, f"_on_{action}", None)
        if handler is None:  # pragma: no cover - every command has a handler
            raise OcppError(ErrorCode.NOT_SUPPORTED, f"{action} is not supported")
        result: tuple[Payload, FollowUp | None] = handler(payload)
        return result

    # -- core --

    def _on_RemoteStartTransaction(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        id_tag = str(p["idTag"])
        connector_id = p.get("connectorId")
        chosen: Connector | None = None
        if connector_id is None:
            free = [c for c in self.connectors.values() if c.transaction is None
                    and c.status in ("Available", "Preparing", "Finishing")]
            with_car = [c for c in free if c.car is not None]
            chosen = (with_car or free)[0] if (with_car or free) else None
        else:
            chosen = self.connectors.get(int(connector_id))
        if chosen is None or chosen.transaction is not None or chosen.status in ("Unavailable", "Faulted"):
            return {"status": "Rejected"}, None
        if chosen.reservation is not None and id_tag not in (chosen.reservation.id_tag,
                                                             chosen.reservation.parent_id_tag):
            return {"status": "Rejected"}, None
        profile = p.get("chargingProfile")
        if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
            return {"status": "Rejected"}, None
        target = chosen.connector_id

        async def start() -> None:
            if (_bool(self.configuration["AuthorizeRemoteTxRequests"].value)
                    and await self.authorize(id_tag) != "Accepted"):
                return
            if self.connectors[target].transaction is not None:
                return
            tx = self.start_transaction(target, id_tag)
            if profile is not None:
                self.profiles.install(target, profile, tx.transaction_id or -tx.local_id)
                self._refresh(self.connectors[target])

        return {"status": "Accepted"}, start

    def _on_RemoteStopTransaction(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        wanted = int(p["transactionId"])
        found = [c.connector_id for c in self.connectors.values()
                 if c.transaction is not None and c.transaction.transaction_id == wanted]
        if not found:
            return {"status": "Rejected"}, None

        async def stop() -> None:
            self.stop_transaction(found[0], reason="Remote")

        return {"status": "Accepted"}, stop

    def _on_Reset(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        kind = str(p["type"])

        async def reboot() -> None:
            await self.reboot(hard=kind == "Hard")

        return {"status": "Accepted"}, reboot

    async def reboot(self, *, hard: bool = False) -> None:
        """Reset: stop transactions, (soft: send what is queued first), drop the connection, boot again."""
        for c in self.connectors.values():
            if c.transaction is not None:
                self.stop_transaction(c.connector_id, reason="HardReset" if hard else "SoftReset")
        if not hard:
            await self.wait_drained(self.options.call_timeout)
        self._needs_boot = True
        self.stats["reboots"] += 1
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"rebooting")

    def _on_UnlockConnector(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        connector_id = int(p["connectorId"])
        if connector_id not in self.connectors:
            return {"status": "NotSupported"}, None

        async def unlock() -> None:
            c = self.connectors[connector_id]
            if c.transaction is not None:
                self.stop_transaction(connector_id, reason="UnlockCommand")
            if c.car is not None:
                self.unplug(connector_id)

        return {"status": "Unlocked"}, unlock

    def _on_ChangeAvailability(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        connector_id = int(p["connectorId"])
        operative = p["type"] == "Operative"
        if connector_id != 0 and connector_id not in self.connectors:
            return {"status": "Rejected"}, None
        targets = list(self.connectors.values()) if connector_id == 0 else [self.connectors[connector_id]]
        status = "Accepted"
        if connector_id == 0 and self.operative != operative:
            self.operative = operative
            self._report(0)
        for c in targets:
            if c.transaction is not None and c.operative != operative:
                c.scheduled_operative = operative
                status = "Scheduled"
            else:
                c.operative, c.scheduled_operative = operative, None
            self._refresh(c)
        return {"status": status}, None

    def _on_GetConfiguration(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        keys: list[str] = list(p.get("key") or self.configuration)
        known: list[Payload] = []
        unknown: list[str] = []
        for key in keys:
            entry = self.configuration.get(key)
            if entry is None:
                unknown.append(key[:50])
                continue
            item: Payload = {"key": key, "readonly": entry.readonly}
            if not entry.write_only:
                item["value"] = entry.value[:500]
            known.append(item)
        answer: Payload = {"configurationKey": known}
        if unknown:
            answer["unknownKey"] = unknown
        return answer, None

    def _on_ChangeConfiguration(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        key, value = str(p["key"]), str(p["value"])
        entry = self.configuration.get(key)
        if entry is None:
            return {"status": "NotSupported"}, None
        if entry.readonly or not self._valid_value(key, entry, value):
            return {"status": "Rejected"}, None
        entry.value = value.strip().lower() if entry.kind == "bool" else value.strip() if entry.kind == "int" else value
        if key == "HeartbeatInterval":
            self._set_heartbeat(int(value))
        elif key == "AuthorizationKey":
            self.password = value  # used from the next connection on
        elif key == "MeterValueSampleInterval":
            now = self.clock.now()
            for c in self.connectors.values():
                if c.transaction is not None:
                    c.next_sample_at = now + timedelta(seconds=int(value)) if int(value) > 0 else None
        return {"status": "Accepted"}, None

    @staticmethod
    def _valid_value(key: str, entry: _Key, value: str) -> bool:
        if entry.kind == "int":
            try:
                return int(value.strip()) >= 0
            except ValueError:
                return False
        if entry.kind == "bool":
            return value.strip().lower() in ("true", "false")
        if key == "AuthorizationKey":  # passwordString of the security whitepaper: 16 to 40 characters
            return 16 <= len(value) <= 40
        if key == "MeterValuesSampledData":
            allowed = {"Energy.Active.Import.Register", "Power.Active.Import", "SoC"}
            return all(v.strip() in allowed for v in value.split(",") if v.strip())
        return True

    def _on_ClearCache(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        self.auth_cache.clear()
        return {"status": "Accepted"}, None

    def _on_DataTransfer(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        return {"status": "UnknownVendorId"}, None

    # -- local authorization list --

    def _on_GetLocalListVersion(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        if not _bool(self.configuration["LocalAuthListEnabled"].value):
            return {"listVersion": -1}, None
        return {"listVersion": self.local_list_version}, None

    def _on_SendLocalList(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        if not _bool(self.configuration["LocalAuthListEnabled"].value):
            return {"status": "NotSupported"}, None
        version, entries = int(p["listVersion"]), list(p.get("localAuthorizationList") or [])
        if len(entries) > int(self.configuration["SendLocalListMaxLength"].value):
            return {"status": "Failed"}, None
        if p["updateType"] == "Full":
            if any("idTagInfo" not in e for e in entries):
                return {"status": "Failed"}, None
            new_list = {str(e["idTag"]): dict(e["idTagInfo"]) for e in entries}
        else:
            if version <= self.local_list_version:
                return {"status": "VersionMismatch"}, None
            new_list = dict(self.local_list)
            for e in entries:
                if "idTagInfo" in e:
                    new_list[str(e["idTag"])] = dict(e["idTagInfo"])
                else:
                    new_list.pop(str(e["idTag"]), None)
        if len(new_list) > int(self.configuration["LocalAuthListMaxLength"].value):
            return {"status": "Failed"}, None
        self.local_list, self.local_list_version = new_list, version
        return {"status": "Accepted"}, None

    # -- reservation --

    def _on_ReserveNow(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        connector_id, reservation_id = int(p["connectorId"]), int(p["reservationId"])
        if connector_id == 0 and not _bool(self.configuration["ReserveConnectorZeroSupported"].value):
            return {"status": "Rejected"}, None
        c = self.connectors.get(connector_id)
        if c is None:
            return {"status": "Rejected"}, None
        for other in self.connectors.values():  # the same reservation id replaces the old reservation
            if other.reservation is not None and other.reservation.reservation_id == reservation_id:
                other.reservation = None
                self._refresh(other)
        if c.status == "Faulted":
            return {"status": "Faulted"}, None
        if c.status == "Unavailable":
            return {"status": "Unavailable"}, None
        if c.transaction is not None or c.car is not None or c.reservation is not None:
            return {"status": "Occupied"}, None
        c.reservation = Reservation(reservation_id, connector_id, str(p["idTag"]), p.get("parentIdTag"),
                                    parse_time(str(p["expiryDate"])))
        self._refresh(c)
        return {"status": "Accepted"}, None

    def _on_CancelReservation(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        reservation_id = int(p["reservationId"])
        for c in self.connectors.values():
            if c.reservation is not None and c.reservation.reservation_id == reservation_id:
                c.reservation = None
                self._refresh(c)
                return {"status": "Accepted"}, None
        return {"status": "Rejected"}, None

    # -- smart charging --

    def _on_SetChargingProfile(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        connector_id = int(p["connectorId"])
        status = self.profiles.install(connector_id, p["csChargingProfiles"], self._active_transaction(connector_id))
        for c in self.connectors.values():
            self._refresh(c)
        return {"status": status}, None

    def _on_ClearChargingProfile(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        removed = self.profiles.clear(p.get("id"), p.get("connectorId"), p.get("chargingProfilePurpose"),
                                      p.get("stackLevel"))
        for c in self.connectors.values():
            self._refresh(c)
        return {"status": "Accepted" if removed else "Unknown"}, None

    def _on_GetCompositeSchedule(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        connector_id = int(p["connectorId"])
        if connector_id != 0 and connector_id not in self.connectors:
            return {"status": "Rejected"}, None
        now = self.clock.now()
        unit = str(p.get("chargingRateUnit") or "W")
        tx = self.connectors[connector_id].transaction if connector_id else None
        hardware = self.options.max_power_w if connector_id == 0 else self.options.connector_power_w
        schedule = self.profiles.composite(connector_id, now, int(p["duration"]), unit, hardware,
                                           tx.transaction_id if tx else None, tx.started_at if tx else None)
        return {"status": "Accepted", "connectorId": connector_id, "scheduleStart": self._stamp(now),
                "chargingSchedule": schedule}, None

    # -- remote trigger --

    def _on_TriggerMessage(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        return self._trigger(str(p["requestedMessage"]), p.get("connectorId"), TRIGGERABLE, extended=False)

    def _on_ExtendedTriggerMessage(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        return self._trigger(str(p["requestedMessage"]), p.get("connectorId"), EXTENDED_TRIGGERABLE, extended=True)

    def _trigger(self, message: str, connector_id: int | None, supported: frozenset[str], *,
                 extended: bool) -> tuple[Payload, FollowUp | None]:
        if message not in supported:
            return {"status": "NotImplemented"}, None
        if connector_id is not None and connector_id != 0 and connector_id not in self.connectors:
            return {"status": "Rejected"}, None
        return {"status": "Accepted"}, lambda: self._send_triggered(message, connector_id, extended)

    async def _send_triggered(self, message: str, connector_id: int | None, extended: bool) -> None:
        if message == "BootNotification":
            if not self.accepted.is_set():
                self._boot_now.set()
                return
            result = await self._call("BootNotification", self._boot_payload())
            self.registration = str(result["status"])
            if self.registration == "Accepted" and int(result.get("interval", 0)) > 0:
                self._set_heartbeat(int(result["interval"]))
        elif message == "Heartbeat":
            await self._call("Heartbeat", {})
        elif message == "StatusNotification":
            ids = [connector_id] if connector_id is not None else [0, *self.connectors]
            for i in ids:
                await self._call("StatusNotification", self._status_payload(i))
        elif message == "MeterValues":
            ids = [connector_id] if connector_id else list(self.connectors)
            for i in ids:
                c = self.connectors[i]
                payload: Payload = {"connectorId": i, "meterValue": [self._sample(c, "Trigger")]}
                if c.transaction is not None and c.transaction.transaction_id is not None:
                    payload["transactionId"] = c.transaction.transaction_id
                await self._call("MeterValues", payload)
        elif message == "DiagnosticsStatusNotification":
            await self._call("DiagnosticsStatusNotification", {"status": self.diagnostics_status})
        elif message == "FirmwareStatusNotification":
            if extended:
                await self._call("SignedFirmwareStatusNotification", {"status": self.firmware_status})
            else:
                status = self.firmware_status if self.firmware_status in _PLAIN_FIRMWARE_STATUSES else "Idle"
                await self._call("FirmwareStatusNotification", {"status": status})
        elif message == "LogStatusNotification":
            await self._call("LogStatusNotification", {"status": self.log_status})
        elif message == "SignChargePointCertificate":
            await self._call("SignCertificate", {"csr": self._csr()})

    def _csr(self) -> str:
        """A PEM certificate signing request for a fresh key, CN = the charge point's identity."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.cp_id),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.options.vendor)])
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    # -- firmware, diagnostics, logs --

    def _on_GetDiagnostics(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        name = f"diagnostics-{self.cp_id}-{self.clock.now():%Y%m%dT%H%M%S}.log"[:255]

        async def upload() -> None:
            for status in ("Uploading", "Uploaded"):
                self.diagnostics_status = status
                await self._call("DiagnosticsStatusNotification", {"status": status})
                await self._sleep(self.options.step_delay)
            self.diagnostics_status = "Idle"

        return {"fileName": name}, upload

    def _on_UpdateFirmware(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        retrieve = parse_time(str(p["retrieveDate"]))

        async def update() -> None:
            delay = (retrieve - self.clock.now()).total_seconds()
            if delay > 0:
                await self._sleep(min(delay, 3600.0))
            for status in ("Downloading", "Downloaded", "Installing", "Installed"):
                self.firmware_status = status
                await self._call("FirmwareStatusNotification", {"status": status})
                await self._sleep(self.options.step_delay)
            self._install_firmware()

        return {}, update

    def _on_SignedUpdateFirmware(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        request_id = int(p["requestId"])
        retrieve = parse_time(str(p["firmware"]["retrieveDateTime"]))

        async def update() -> None:
            delay = (retrieve - self.clock.now()).total_seconds()
            if delay > 0:
                await self._sleep(min(delay, 3600.0))
            for status in ("Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"):
                self.firmware_status = status
                await self._call("SignedFirmwareStatusNotification", {"status": status, "requestId": request_id})
                await self._sleep(self.options.step_delay)
            self._install_firmware()

        return {"status": "Accepted"}, update

    def _install_firmware(self) -> None:
        """The new firmware runs after a reboot: the next BootNotification reports it."""
        parts = self.firmware_version.split(".")
        if len(parts) >= 2 and parts[1].isdigit():
            parts[1] = str(int(parts[1]) + 1)
            self.firmware_version = ".".join(parts)
        else:
            self.firmware_version = f"{self.firmware_version}+1"
        self.firmware_status = "Idle"
        self.spawn(self.reboot(hard=False), "firmware-reboot")

    def _on_GetLog(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        request_id = int(p["requestId"])
        name = f"{str(p['logType']).lower()}-{self.cp_id}-{request_id}.log"[:255]

        async def upload() -> None:
            for status in ("Uploading", "Uploaded"):
                self.log_status = status
                await self._call("LogStatusNotification", {"status": status, "requestId": request_id})
                await self._sleep(self.options.step_delay)
            self.log_status = "Idle"

        return {"status": "Accepted", "filename": name}, upload

    # -- certificates (security whitepaper): this simulated hardware keeps no certificate store --

    def _on_CertificateSigned(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        return {"status": "Rejected"}, None

    def _on_InstallCertificate(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        return {"status": "Rejected"}, None

    def _on_GetInstalledCertificateIds(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        return {"status": "NotFound"}, None

    def _on_DeleteCertificate(self, p: Payload) -> tuple[Payload, FollowUp | None]:
        return {"status": "NotFound"}, None

    # ==== configuration ==========================================================================

    def _default_configuration(self) -> dict[str, _Key]:
        o = self.options
        return {
            "AllowOfflineTxForUnknownId": _Key("false", kind="bool"),
            "AuthorizationCacheEnabled": _Key("true", kind="bool"),
            "AuthorizationKey": _Key(self.password or "", kind="str", write_only=True),
            "AuthorizeRemoteTxRequests": _Key("false", kind="bool"),
            "ChargeProfileMaxStackLevel": _Key("10", readonly=True, kind="int"),
            "ChargingScheduleAllowedChargingRateUnit": _Key("Current,Power", readonly=True, kind="csl"),
            "ChargingScheduleMaxPeriods": _Key("24", readonly=True, kind="int"),
            "ClockAlignedDataInterval": _Key("0", kind="int"),
            "ConnectionTimeOut": _Key("60", kind="int"),
            "GetConfigurationMaxKeys": _Key("50", readonly=True, kind="int"),
            "HeartbeatInterval": _Key(str(o.heartbeat_interval), kind="int"),
            "LocalAuthListEnabled": _Key("true", kind="bool"),
            "LocalAuthListMaxLength": _Key("1000", readonly=True, kind="int"),
            "LocalAuthorizeOffline": _Key("true", kind="bool"),
            "LocalPreAuthorize": _Key("false", kind="bool"),
            "MaxChargingProfilesInstalled": _Key("10", readonly=True, kind="int"),
            "MeterValueSampleInterval": _Key(str(o.meter_interval), kind="int"),
            "MeterValuesSampledData": _Key("Energy.Active.Import.Register,Power.Active.Import,SoC", kind="csl"),
            "NumberOfConnectors": _Key(str(o.connectors), readonly=True, kind="int"),
            "ReserveConnectorZeroSupported": _Key("false", readonly=True, kind="bool"),
            "ResetRetries": _Key("1", kind="int"),
            "SecurityProfile": _Key("1" if self.password else "0", readonly=True, kind="int"),
            "SendLocalListMaxLength": _Key("1000", readonly=True, kind="int"),
            "StopTransactionOnEVSideDisconnect": _Key("true", readonly=True, kind="bool"),
            "StopTransactionOnInvalidId": _Key("true", kind="bool"),
            "SupportedFeatureProfiles": _Key("Core,FirmwareManagement,LocalAuthListManagement,Reservation,"
                                             "SmartCharging,RemoteTrigger", readonly=True, kind="csl"),
            "TransactionMessageAttempts": _Key("3", kind="int"),
            "TransactionMessageRetryInterval": _Key("5", kind="int"),
            "UnlockConnectorOnEVSideDisconnect": _Key("true", readonly=True, kind="bool"),
        }


_PLAIN_FIRMWARE_STATUSES = frozenset({"Downloaded", "DownloadFailed", "Downloading", "Idle", "InstallationFailed",
                                      "Installing", "Installed"})
