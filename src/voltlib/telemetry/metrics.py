"""``/metrics`` for Prometheus, through the official ``prometheus_client`` library.

Nothing on the hot path calls ``prometheus_client``: the connections, the writer threads, the GBFS
cache and the planner count in plain ints (``counters.py``), and :class:`NodeCollector` turns those
numbers into metric families when Prometheus scrapes. Each node has its own registry and endpoint;
every voltlib metric carries a ``node`` label. Who may scrape (docs/operations.md, "Metrics"):
anyone reaching ``metrics_port``, a listener of its own (meant for a private interface), and on the
main port whoever sends ``Authorization: Bearer <metrics_token>``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import Connection, func, select

from voltlib import __version__
from voltlib import events as ev
from voltlib.api.framework import Problem
from voltlib.cluster import NatsCluster
from voltlib.config import Settings
from voltlib.store import reservations as reservation_rows
from voltlib.store.tables import rentals, reservations
from voltlib.telemetry.counters import Histogram

if TYPE_CHECKING:
    from voltlib.energy.smart_charging import SmartCharging
    from voltlib.gateway.gateway import Gateway
    from voltlib.gbfs.http import FeedCache

log = logging.getLogger(__name__)
DATABASE_EVERY = 10.0  # seconds: the database-wide counts (rentals, reservations) are read at most this often
READ_WAIT = 2.0  # seconds a scrape waits for that read before serving the last counts
METRICS_PATH = "/metrics"
REGISTRY_KEY = web.AppKey("metrics-registry", CollectorRegistry)


def node_name(settings: Settings) -> str:
    """This node's name in metrics and logs: the ``node_name`` setting, else host:port."""
    return settings.node()


class NodeCollector:
    """Reads this node's counters at scrape time (a ``prometheus_client`` custom collector)."""

    def __init__(self, gateway: Gateway, node: str, *, gbfs: FeedCache | None = None,
                 charging: SmartCharging | None = None) -> None:
        self.gateway, self.node, self.gbfs, self.charging = gateway, node, gbfs, charging
        self.security_events: dict[tuple[str, str], int] = {}  # (kind, severity) -> count
        self._rentals: dict[str, int] = {}
        self._reservations: dict[tuple[str, str], int] = {}  # (status as of now, origin) -> count
        self._read_at = float("-inf")  # monotonic: the last read's end, ok or not
        self._counted_at: float | None = None  # the last read that succeeded
        self._reading: asyncio.Future[tuple[dict[str, int], dict[tuple[str, str], int]]] | None = None
        gateway.services.bus.watch(self._on_incident, ev.SecurityIncident, name="metrics", scope="node")

    def _on_incident(self, event: ev.Event) -> None:
        assert isinstance(event, ev.SecurityIncident)
        key = (event.kind, event.severity)
        self.security_events[key] = self.security_events.get(key, 0) + 1

    async def refresh(self) -> None:
        """Read what only the database knows, at most every ``DATABASE_EVERY`` seconds, waiting at
        most ``READ_WAIT``: a scrape never fails or stalls on a database that is down or a node whose
        readers are busy; it serves the last counts, whose age ``voltlib_database_counts_age_seconds``
        tells (one read at a time: a slow one is picked up by a later scrape)."""
        if self._reading is None and time.monotonic() - self._read_at >= DATABASE_EVERY:
            counts = partial(_sharing_counts, now=self.gateway.services.clock.now())
            self._reading = asyncio.ensure_future(self.gateway.services.store.read(counts))
        if self._reading is None:
            return
        done, _ = await asyncio.wait({self._reading}, timeout=READ_WAIT)
        if not done:
            return
        reading, self._reading, self._read_at = self._reading, None, time.monotonic()
        try:
            self._rentals, self._reservations = reading.result()
            self._counted_at = self._read_at
        except Exception as exc:  # noqa: BLE001 (whatever the driver raises: served stale, said once a read)
            log.warning("metrics: the database counts could not be read (%s): serving the last ones",
                        type(exc).__name__)

    def collect(self) -> Iterable[Metric]:
        node = self.node
        s = self.gateway.services
        info = GaugeMetricFamily("voltlib_node_info", "This node and its voltlib version", labels=["node", "version"])
        info.add_metric([node, __version__], 1)
        yield info
        yield from self._connections()
        yield from self._calls()
        yield from self._writers()
        yield from self._bus()
        peers = GaugeMetricFamily("voltlib_cluster_peers", "Other gateway nodes heard from lately", labels=["node"])
        connected = GaugeMetricFamily("voltlib_cluster_connected", "1 while connected to the NATS server "
                                      "(always 1 for a node alone)", labels=["node"])
        cluster = s.bus if isinstance(s.bus, NatsCluster) else None
        peers.add_metric([node], cluster.peers if cluster is not None else 0)
        connected.add_metric([node], 1 if cluster is None or cluster.connected else 0)
        yield peers
        yield connected
        yield from self._security()
        yield from self._sharing()
        yield from self._work()

    def _connections(self) -> Iterable[Metric]:
        by_version: dict[str, int] = {"1.6": 0, "2.0.1": 0}
        for connection in list(self.gateway.connections.values()):
            version = connection.session.version
            by_version[version] = by_version.get(version, 0) + 1
        family = GaugeMetricFamily("voltlib_charge_points_connected", "Charge points connected to this node",
                                   labels=["node", "ocpp_version"])
        for version, count in sorted(by_version.items()):
            family.add_metric([self.node, version], count)
        yield family

    def _calls(self) -> Iterable[Metric]:
        stats = self.gateway.services.calls
        calls = CounterMetricFamily("voltlib_ocpp_calls", "Calls from charge points, by action and outcome "
                                    "(result, error, retransmission, violation, failed)",
                                    labels=["node", "action", "outcome"])
        for (action, outcome), count in sorted(stats.calls.items()):
            calls.add_metric([self.node, action, outcome], count)
        yield calls
        errors = CounterMetricFamily("voltlib_ocpp_call_errors", "CallErrors sent to charge points, by code",
                                     labels=["node", "code"])
        for code, count in sorted(stats.errors.items()):
            errors.add_metric([self.node, code], count)
        yield errors
        latency = HistogramMetricFamily("voltlib_ocpp_call_duration_seconds", "From a call's frame read to its "
                                        "answer sent (the commit included)", labels=["node", "action"])
        for action, histogram in sorted(stats.latency.items()):
            _add(latency, [self.node, action], histogram)
        yield latency

    def _writers(self) -> Iterable[Metric]:
        store = self.gateway.services.store
        sizes = HistogramMetricFamily("voltlib_db_commit_batch_size", "Writes per group commit, by writer thread",
                                      labels=["node", "writer"])
        seconds = HistogramMetricFamily("voltlib_db_commit_duration_seconds", "One group commit: its writes, "
                                        "the commit and the callers woken, by writer thread",
                                        labels=["node", "writer"])
        for writer, stats in sorted(store.writer_stats.items()):
            _add(sizes, [self.node, writer], stats.batch_size)
            _add(seconds, [self.node, writer], stats.commit_seconds)
        yield sizes
        yield seconds
        depth = GaugeMetricFamily("voltlib_db_writer_queue_depth", "Writes handed to the writer threads, "
                                  "not committed yet", labels=["node"])
        depth.add_metric([self.node], max(0, store.queued))
        yield depth

    def _bus(self) -> Iterable[Metric]:
        s = self.gateway.services
        now = s.clock.now()
        depth = GaugeMetricFamily("voltlib_bus_consumer_queue_depth", "Events waiting for a bus subscriber",
                                  labels=["node", "consumer", "scope"])
        lag = GaugeMetricFamily("voltlib_bus_consumer_lag_seconds", "How far behind a subscriber is: the age "
                                "of the event it took last while others wait (0 when none waits)",
                                labels=["node", "consumer"])
        handled = CounterMetricFamily("voltlib_bus_consumer_events", "Events a bus consumer handled",
                                      labels=["node", "consumer", "kind"])
        for stats in s.bus.stats():
            handled.add_metric([self.node, stats.name, stats.kind], stats.handled)
            if stats.kind != "subscriber":
                continue
            depth.add_metric([self.node, stats.name, stats.scope], stats.queued)
            behind = 0.0
            if stats.queued and stats.current_at is not None:
                behind = max(0.0, (now - stats.current_at).total_seconds())
            lag.add_metric([self.node, stats.name], behind)
        yield depth
        yield lag
        yield handled

    def _security(self) -> Iterable[Metric]:
        events = CounterMetricFamily("voltlib_security_events", "Security events recorded by this node, by kind",
                                     labels=["node", "kind", "severity"])
        for (kind, severity), count in sorted(self.security_events.items()):
            events.add_metric([self.node, kind, severity], count)
        yield events
        alerts = CounterMetricFamily("voltlib_security_alerts", "New security alerts raised by this node's "
                                     "detectors, by kind", labels=["node", "kind", "severity"])
        from voltlib.security.service import service_of  # the security layer imports the gateway

        try:
            raised = dict(service_of(self.gateway).alerts_by_kind)
        except KeyError:  # security operations not installed (some tests)
            raised = {}
        for (kind, severity), count in sorted(raised.items()):
            alerts.add_metric([self.node, kind, severity], count)
        yield alerts

    def _sharing(self) -> Iterable[Metric]:
        rental = GaugeMetricFamily("voltlib_rentals", "Rentals in the database by state (network-wide, read "
                                   f"at most every {DATABASE_EVERY:g} s)", labels=["node", "state"])
        reservation = GaugeMetricFamily("voltlib_reservations", "Reservations by status as of now (Requested, "
                                        "Accepted, a refusal, Used, Cancelled, Expired...) and origin (api, "
                                        "car-sharing); network-wide", labels=["node", "state", "origin"])
        for state, count in sorted(self._rentals.items()):
            rental.add_metric([self.node, state], count)
        for (status, origin), count in sorted(self._reservations.items()):
            reservation.add_metric([self.node, status, origin], count)
        yield rental
        yield reservation
        if self._counted_at is not None:
            age = GaugeMetricFamily("voltlib_database_counts_age_seconds", "Seconds since the rentals and "
                                    "reservations counts were last read from the database", labels=["node"])
            age.add_metric([self.node], time.monotonic() - self._counted_at)
            yield age

    def _work(self) -> Iterable[Metric]:
        rebuild = HistogramMetricFamily("voltlib_gbfs_rebuild_duration_seconds", "One city's GBFS files rebuilt "
                                        "(snapshot read and encoding)", labels=["node"])
        age = GaugeMetricFamily("voltlib_gbfs_age_seconds", "Seconds since a city's GBFS files were rebuilt",
                                labels=["node", "system_id"])
        if self.gbfs is not None:
            _add(rebuild, [self.node], self.gbfs.rebuild_seconds)
            now = time.monotonic()
            for city, built in sorted(self.gbfs.built_at.items()):
                age.add_metric([self.node, city], now - built)
        yield rebuild
        yield age
        plan = HistogramMetricFamily("voltlib_smart_charging_plan_duration_seconds", "One smart-charging re-plan "
                                     "of the changed stations, commands to charge points included", labels=["node"])
        if self.charging is not None:
            _add(plan, [self.node], self.charging.plan_seconds)
        yield plan


def _add(family: HistogramMetricFamily, labels: list[str], histogram: Histogram) -> None:
    family.add_metric(labels, histogram.buckets(), histogram.sum)


def _sharing_counts(conn: Connection, now: datetime) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Rentals by state; reservations by status as the API reads it now (an open one past its
    expiry is Expired) and origin: one truth for the operator's and car sharing's holds."""
    by_state = conn.execute(select(rentals.c.state, func.count()).group_by(rentals.c.state))
    status = reservation_rows.status_at(now).label("status")
    origin = reservations.c.origin
    by_status = conn.execute(select(status, origin, func.count()).group_by(status, origin))
    return ({str(state): int(count) for state, count in by_state},
            {(str(s), str(origin)): int(count) for s, origin, count in by_status})


def install(app: web.Application, gateway: Gateway, *, gbfs: FeedCache | None = None,
            charging: SmartCharging | None = None) -> NodeCollector:
    """This node's registry, ``/metrics`` on the main port behind ``metrics_token`` (when set) and on
    a listener of its own at ``metrics_port`` (when set)."""
    settings = gateway.services.settings
    registry = CollectorRegistry()
    collector = NodeCollector(gateway, node_name(settings), gbfs=gbfs, charging=charging)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    app[REGISTRY_KEY] = registry
    exposition = make_aiohttp_handler(registry, disable_compression=True)

    async def scrape(request: web.Request) -> web.StreamResponse:
        await collector.refresh()
        response: web.StreamResponse = await exposition(request)
        return response

    if settings.metrics_token is not None:
        app.router.add_get(METRICS_PATH, _guarded(scrape, settings.metrics_token.get_secret_value()))
    if settings.metrics_port:

        def listener(_app: web.Application) -> AsyncIterator[None]:
            return _listener(scrape, settings)

        app.cleanup_ctx.append(listener)
    return collector


def _guarded(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
             token: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    expected = f"Bearer {token}".encode()

    async def guarded(request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise Problem(401, "unauthorized", "/metrics needs 'Authorization: Bearer <metrics_token>'")
        return await handler(request)

    return guarded


async def _listener(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                    settings: Settings) -> AsyncIterator[None]:
    """``/metrics`` alone, open, on ``metrics_host:metrics_port``, for as long as the application runs."""
    metrics_app = web.Application()
    metrics_app.router.add_get(METRICS_PATH, handler)
    runner = web.AppRunner(metrics_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
    log.info("metrics on http://%s:%d%s", settings.metrics_host, settings.metrics_port, METRICS_PATH)
    try:
        yield
    finally:
        await runner.cleanup()
