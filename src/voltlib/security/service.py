"""The security service: a bus subscriber that runs the detectors, checks work orders, persists
alerts and incidents, notifies a webhook and applies the automatic responses.

Thin on purpose: the rules are in detectors.py, incidents.py, workorders.py and response.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import weakref
from collections.abc import Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
from sqlalchemy import Connection

from voltlib import events as ev
from voltlib.security import records, recovery
from voltlib.security.detectors import (
    CROSSING,
    NETWORK_KINDS,
    UPLOAD_ACTIONS,
    Detectors,
    Signal,
    Tuning,
    check_upload_location,
)
from voltlib.security.response import Policy, Responder
from voltlib.security.thresholds import tuning_from
from voltlib.security.workorders import badge_orders, covering
from voltlib.store import repo

if TYPE_CHECKING:
    from voltlib.gateway.gateway import Gateway

log = logging.getLogger(__name__)
ORDER_EVENTS = (ev.BootNotified, ev.FirmwareStatusChanged, ev.DiagnosticsStatusChanged, ev.LogStatusChanged)
WEBHOOK_ATTEMPTS = 3
CHARGE_POINT_CLOCK = (ev.ChargePointSecurityEvent, ev.ConnectorStatusChanged)
REMOTE_MEMORY = (ev.BootNotified, ev.ChargePointConnected, ev.TransactionStarted, ev.TransactionStopped,
                 ev.QuarantineChanged, ev.IdTagAuthorized)
PLACES_REFRESH = 600.0  # seconds: a badge at a charge point of unknown place reads the stations again
# The register stored before a connector's first reading on this node is read for many connectors
# at once: the first readings of SEED_WINDOW (wall seconds), then those that came meanwhile, at most
# SEED_BATCH a statement. A reconnection storm of 10,000 charge points, one read each, raised the
# soak's p99 tenfold (docs/benchmarks.md).
SEED_WINDOW = 0.05
SEED_BATCH = 200


class SecurityService:
    def __init__(self, gateway: Gateway, *, tuning: Tuning | None = None, policy: Policy | None = None,
                 webhook_url: str | None = None, auto_response: bool = True,
                 upload_allow: tuple[str, ...] = ()) -> None:
        self.gateway = gateway
        self.services = gateway.services
        self.detectors = Detectors(tuning)
        self.policy = policy or Policy()
        self.responder = Responder(gateway)
        self.webhook_url = webhook_url
        self.auto_response = auto_response
        self.upload_allow = upload_allow
        self.alerts = 0
        self.alerts_by_kind: dict[tuple[str, str], int] = {}  # (kind, severity) -> new alerts (metrics)
        self.webhook_failures = 0
        self._loaded = False
        self._located = 0.0  # monotonic time the charge points' places were last read
        self._loading = asyncio.Lock()  # two subscribers (this node's events, the others') share one load
        self._tasks: set[asyncio.Task[Any]] = set()
        # connector → its readings waiting for the register stored before the first (``_seed``)
        self._unseeded: dict[tuple[str, int], list[ev.MeterValuesReceived]] = {}
        self._seeding: asyncio.Task[None] | None = None
        self.seed_reads = 0  # statements that read stored registers

    @classmethod
    def from_settings(cls, gateway: Gateway) -> SecurityService:
        s = gateway.services.settings
        base = Tuning(rated_power_w=s.security_rated_power_w, upload_allow=tuple(s.security_upload_allow))
        return cls(gateway, tuning=tuning_from(s.security_thresholds, base),
                   webhook_url=s.security_webhook_url, auto_response=s.security_auto_response,
                   upload_allow=tuple(s.security_upload_allow))

    def install(self) -> None:
        """Node scope for the detectors: each charge point's events are judged, and their signals
        recorded, once, by the node holding it. From the other nodes only what a node cannot see
        alone: their failed logins and unknown identities (counted per source and identity over the
        whole network), and what they learnt of their charge points, which may reconnect here."""
        bus = self.services.bus
        bus.subscribe(self.handle, name="security", scope="node")
        bus.subscribe(self.handle_remote, ev.SecurityIncident, name="security-correlations", scope="remote")
        bus.watch(self.learn_remote, *REMOTE_MEMORY, name="security-memory", scope="remote")

    async def settle(self) -> None:
        """Wait for the responses and webhooks started so far (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the subscriber --

    async def load(self) -> None:
        """What the detectors remember of every charge point, and which are in quarantine: done at
        start-up (server.py), before the first charge point connects; an event handled first waits."""
        async with self._loading:
            if self._loaded:
                return
            store = self.services.store
            for cp_id, inventory in (await store.read(records.load_inventory)).items():
                self.detectors.remember(cp_id, inventory)
            active = await store.read(partial(records.list_quarantines, active_only=True))
            self.responder.quarantined.update(q["charge_point_id"] for q in active)
            await self._locate()
            self._loaded = True
            await self.recover()

    async def recover(self) -> int:
        """Alerts of the security events stored before the last stop and never alerted on (voltlib
        stopped between the answer and the alert): security/recovery.py. Returns the alerts raised."""
        store, raised = self.services.store, 0
        try:
            lost = await store.read(partial(recovery.lost_signals,
                                            since=self.services.clock.now() - recovery.RECOVERY_WINDOW))
            for signal in lost:
                one = await store.write(partial(recovery.recover, signal=signal))
                if one is not None:
                    raised += self._alerted(one.signal, one.recorded, one.expected)
        except Exception:  # a start-up must not fail for it: the events are still there next time
            log.exception("security alerts of the stored events could not be recovered")
        if raised:
            log.warning("recovered %d security alerts from stored events", raised)
        return raised

    async def _locate(self) -> None:
        self.detectors.locate(await self.services.store.read(records.charge_point_places))
        self._located = time.monotonic()

    async def handle(self, event: ev.Event) -> None:
        store = self.services.store
        if not self._loaded:
            await self.load()
        if isinstance(event, ev.MeterValuesReceived) and self._waits_for_register(event):
            return
        key = recovery.occurrence_of(event)  # what the alert keeps of this occurrence (start-up recovery)
        if isinstance(event, CHARGE_POINT_CLOCK):  # their time is the charge point's: never trust it for windows
            event = msgspec.structs.replace(event, at=self.services.clock.now())
        cp = event.charge_point_id
        signals: list[Signal] = []
        if isinstance(event, ORDER_EVENTS) \
                and not (isinstance(event, ev.BootNotified) and not self.detectors.firmware_changes(event)):
            for command in await store.read(partial(_recent_orders, cp_id=cp)):
                self.detectors.ordered(cp, command["action"], command["created_at"])
        if isinstance(event, ev.CommandFinished) and event.action in UPLOAD_ACTIONS:
            signal = await self._location(event)
            if signal is not None:
                signals.append(signal)
        if isinstance(event, (ev.IdTagAuthorized, ev.TransactionStarted)):
            signals.extend(await self._badge(event))
        if isinstance(event, ev.IdTagAuthorized) and not self.detectors.knows_place(cp) \
                and time.monotonic() - self._located > PLACES_REFRESH:  # a station added since
            await self._locate()
        if isinstance(event, ev.ChargePointConnected) and cp in self.responder.quarantined:
            self._spawn(self.responder.quarantine(cp, by="voltlib", reason="still in quarantine at reconnection"))
        signals.extend(recovery.keyed(signal, key) for signal in self.detectors.feed(event))
        for signal in signals:
            await self.process(signal)

    def _waits_for_register(self, event: ev.MeterValuesReceived) -> bool:
        """Hold a connector's readings until the register stored before the first is known here."""
        key = (event.charge_point_id, event.connector_id)
        waiting = self._unseeded.get(key)
        if waiting is not None:  # in order, behind the first
            waiting.append(event)
            return True
        if event.energy_wh is None or not self.detectors.needs_register(*key):
            return False
        self._unseeded[key] = [event]
        if self._seeding is None or self._seeding.done():
            self._seeding = asyncio.get_running_loop().create_task(self._seed())
            self._tasks.add(self._seeding)
            self._seeding.add_done_callback(self._tasks.discard)
        return True

    async def _seed(self) -> None:
        """Read the stored registers of the waiting connectors, a batch a statement, then judge their
        readings. A failed read leaves them compared with nothing, as a first reading was before."""
        await asyncio.sleep(SEED_WINDOW)  # wall time: gathering a storm's first readings
        while self._unseeded:
            keys = list(itertools.islice(self._unseeded, SEED_BATCH))
            wanted = [(cp, connector, self._unseeded[(cp, connector)][0].at) for cp, connector in keys]
            self.seed_reads += 1
            try:
                registers = await self.services.store.read(partial(records.registers_before, wanted=wanted))
            except Exception:
                log.exception("stored registers of %d connectors could not be read", len(keys))
                registers = {}
            signals: list[Signal] = []
            for key in keys:
                self.detectors.seed_meter(*key, registers.get(key))
                for event in self._unseeded.pop(key):
                    signals.extend(self.detectors.feed(event))
            for signal in signals:
                await self.process(signal)

    async def handle_remote(self, event: ev.Event) -> None:
        """Another node's incident, for the counts over the whole network."""
        assert isinstance(event, ev.SecurityIncident)
        if not self._loaded:
            await self.load()
        for signal in self.detectors.correlate(event):
            await self.process(signal)

    def learn_remote(self, event: ev.Event) -> None:
        """Another node's news of a charge point held there (inline: memory only, no I/O)."""
        if isinstance(event, ev.QuarantineChanged):
            if event.active:
                self.responder.quarantined.add(event.charge_point_id)
            else:
                self.responder.quarantined.discard(event.charge_point_id)
            return
        self.detectors.learn(event)

    async def process(self, signal: Signal) -> records.Recorded:
        store = self.services.store
        order = None
        if signal.physical and signal.charge_point_id:
            order = covering(await store.read(partial(records.live_work_orders, at=signal.at)),
                             signal.charge_point_id, signal.at)
        expected = order is not None or signal.kind == "technician_check_in"
        work_order_id = order.id if order is not None else signal.detail.get("work_order_id")
        shared = (bool(self.services.settings.bus_url) and signal.kind in NETWORK_KINDS) \
            or (signal.kind in recovery.RECOVERED_KINDS and CROSSING in signal.detail)
        recorded = await store.write(partial(records.record_signal, signal=signal, expected=expected,
                                             work_order_id=work_order_id, shared=shared))
        self._alerted(signal, recorded, expected)
        return recorded

    def _alerted(self, signal: Signal, recorded: records.Recorded, expected: bool) -> bool:
        """What follows a new unexpected alert: the log, the webhook, the automatic responses."""
        if not recorded.new_alert or expected:
            return False
        self.alerts += 1
        key = (signal.kind, signal.severity)
        self.alerts_by_kind[key] = self.alerts_by_kind.get(key, 0) + 1
        log.warning("security alert %s (%s) at %s from %s", signal.kind, signal.severity, signal.charge_point_id,
                    signal.source, extra={"charge_point_id": signal.charge_point_id})
        if self.webhook_url:
            self._spawn(self._notify(signal, recorded))
        if self.auto_response and signal.charge_point_id:
            for action in self.policy.automatic(signal, expected):
                if action == "quarantine":
                    self._spawn(self.responder.quarantine(
                        signal.charge_point_id, by="voltlib:policy", reason=f"automatic: {signal.kind}",
                        incident_id=recorded.incident_id))
        return True

    # -- helpers --

    async def _location(self, event: ev.CommandFinished) -> Signal | None:
        row = await self.services.store.read(partial(_command, command_id=event.command_id))
        if row is None:
            return None
        request = row["request"] or {}
        location = request.get("location") or (request.get("log") or {}).get("remoteLocation") \
            or (request.get("firmware") or {}).get("location")
        return check_upload_location(event.charge_point_id, event.action, location, self.upload_allow, event.at)

    async def _badge(self, event: ev.IdTagAuthorized | ev.TransactionStarted) -> list[Signal]:
        """Human detector: a technician's badge checks in on its work order, or is an alert when no
        order of theirs covers this charge point now."""
        store = self.services.store
        orders = badge_orders(await store.read(partial(records.live_work_orders, at=event.at)), event.id_tag)
        if not orders:
            return []
        cp = event.charge_point_id
        order = covering(orders, cp, event.at)
        if order is not None:
            await store.write(partial(records.check_in, order_id=order.id, at=event.at))
            return [Signal("human", "technician_check_in", "info", cp, None, event.at, False,
                           {"work_order_id": order.id, "technician": order.technician, "badge": event.id_tag})]
        return [Signal("human", "badge_outside_work_order", "high", cp, None, event.at, True,
                       {"badge": event.id_tag, "technician": orders[0].technician,
                        "work_orders": [o.id for o in orders]})]

    async def _notify(self, signal: Signal, recorded: records.Recorded) -> None:
        assert self.webhook_url is not None
        body = {"alert_id": recorded.alert_id, "incident_id": recorded.incident_id,
                "new_incident": recorded.new_incident, "kind": signal.kind, "severity": signal.severity,
                "detector": signal.detector, "charge_point_id": signal.charge_point_id, "source": signal.source,
                "at": signal.at.isoformat(), "detail": signal.detail,
                "suggested_responses": list(self.policy.suggested(signal.kind))}
        async with httpx.AsyncClient(timeout=5.0) as client:
            for attempt in range(WEBHOOK_ATTEMPTS):
                try:
                    response = await client.post(self.webhook_url, json=body)
                    if response.status_code < 300:
                        return
                except httpx.HTTPError as exc:
                    log.info("webhook attempt %d failed: %s", attempt + 1, exc)
                if attempt + 1 < WEBHOOK_ATTEMPTS:
                    await asyncio.sleep(0.5 * 2**attempt)  # wall time: a retry against a real peer
        self.webhook_failures += 1
        log.error("security webhook failed %d times for alert %d", WEBHOOK_ATTEMPTS, recorded.alert_id)


def _recent_orders(conn: Connection, cp_id: str) -> list[dict[str, Any]]:
    return [c for c in repo.list_commands(conn, cp_id, limit=50)
            if c["action"] in UPLOAD_ACTIONS and c["state"] != "offline"]


def _command(conn: Connection, command_id: int) -> dict[str, Any] | None:
    return repo.get_command(conn, command_id)


_running: weakref.WeakKeyDictionary[Gateway, SecurityService] = weakref.WeakKeyDictionary()


def install(gateway: Gateway) -> SecurityService:
    """Create the service from the settings and subscribe it to the gateway's bus."""
    service = SecurityService.from_settings(gateway)
    service.install()
    _running[gateway] = service
    return service


def service_of(gateway: Gateway) -> SecurityService:
    return _running[gateway]
