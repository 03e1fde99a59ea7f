"""Assembles voltlib: store, bus, gateway and API in one aiohttp application, and runs it."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import partial

from aiohttp import web
from aiohttp.typedefs import Middleware

from voltlib.api import routes
from voltlib.api.charging_profiles import charging_profile_routes
from voltlib.api.contracts import contract_routes
from voltlib.api.device_model import device_model_routes
from voltlib.api.diagnostics import diagnostics_routes
from voltlib.api.energy import energy_routes
from voltlib.api.framework import problems
from voltlib.api.rebalancing import rebalancing_routes
from voltlib.api.sharing import sharing_routes
from voltlib.bus import LocalBus
from voltlib.clock import Clock, ScaledClock, SystemClock, period
from voltlib.cluster import NatsCluster, SingleNode
from voltlib.config import Settings
from voltlib.energy.estimation import SocTracker
from voltlib.energy.smart_charging import SmartCharging
from voltlib.energy.telematics import MqttTelematics
from voltlib.gateway import proxies
from voltlib.gateway.certificate_renewal import CertificateRenewal
from voltlib.gateway.certificates import CertificateIssuer
from voltlib.gateway.charging_profiles import ProfileFollower
from voltlib.gateway.context import Services
from voltlib.gateway.datatransfer import DataTransferRouter
from voltlib.gateway.device_model import DeviceModelFollower
from voltlib.gateway.drain import close_when_idle
from voltlib.gateway.gateway import Gateway
from voltlib.gateway.monitoring_v201 import MonitoringFollower
from voltlib.gateway.reservation_answers import ReservationFollower
from voltlib.gateway.tls import MAX_HANDSHAKES, RELOAD_EVERY, ContextSource, HandshakeWatcher, TlsSite
from voltlib.gbfs import http as gbfs_http
from voltlib.gbfs.dbsource import DatabaseSource
from voltlib.gbfs.http import SnapshotSource
from voltlib.gcpolicy import GcPolicy
from voltlib.security import adapters
from voltlib.security import service as security_service
from voltlib.security.ca import CertificateAuthority
from voltlib.security.response import set_badge_blocker
from voltlib.sharing.service import SharingService
from voltlib.sharing.station_holds import StationHolds
from voltlib.sharing.store import seed_cities
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.telemetry import logs, metrics, readiness
from voltlib.web.app import Dashboard

log = logging.getLogger(__name__)
GATEWAY_KEY = web.AppKey("gateway", Gateway)
GBFS_KEY = web.AppKey("gbfs", gbfs_http.FeedCache)
SHARING_KEY = web.AppKey("sharing", SharingService)
CHARGING_KEY = web.AppKey("smart-charging", SmartCharging)
SOC_KEY = web.AppKey("soc-tracker", SocTracker)
PURGE_MIN_WALL = 60.0  # under a high time scale, purge at most once a wall minute


def build_app(settings: Settings, *, clock: Clock | None = None, store: Store | None = None,
              gbfs_source: SnapshotSource | None = None) -> web.Application:
    """The application, with the database migrated. Nothing listens until it is run.
    ``gbfs_source`` replaces the database as the origin of the GBFS files (tests, benchmarks)."""
    store = store or Store(settings.database_url)
    upgrade(store.engine)
    store.run_sync(seed_cities)
    cluster = NatsCluster(settings.bus_url, settings.cluster_name) if settings.bus_url else None
    services = Services(settings=settings, store=store, bus=cluster or LocalBus(), clock=clock or clock_for(settings),
                        data_transfer=DataTransferRouter(), cluster=cluster or SingleNode())
    gateway = Gateway(services)
    if settings.certificate_authority_factory is not None:  # an external CA behind its adapter
        services.certificate_authority = adapters.load(settings.certificate_authority_factory, settings)
    elif settings.ca_cert is not None and settings.ca_key is not None:
        services.certificate_authority = CertificateAuthority.from_files(settings.ca_cert, settings.ca_key,
                                                                         settings.charge_point_cert_days)
    if settings.v2g_backend is not None:
        services.v2g_backend = adapters.load(settings.v2g_backend, settings)
    if services.certificate_authority is not None or services.v2g_backend is not None:
        CertificateIssuer(gateway, services.certificate_authority, services.v2g_backend).install()
    middlewares: list[Middleware] = [problems, logs.request_context]
    if settings.trusted_proxies:  # behind a load balancer: the client's address from X-Forwarded-For
        middlewares.append(proxies.forwarded(settings.trusted_proxies))
    app = web.Application(middlewares=middlewares, client_max_size=256 * 1024)
    app[GATEWAY_KEY] = gateway
    app.router.add_get("/ocpp/{cp_id}", gateway.handle)
    sharing = SharingService(gateway)
    sharing.install()
    StationHolds(sharing).install()  # 2.0.1 stations end holds themselves (ReservationStatusUpdate)
    DeviceModelFollower(services).install()  # GetVariables / SetVariables answers update the device model
    MonitoringFollower(services).install()  # monitors and display messages set or cleared (2.0.1 N, O)
    ProfileFollower(services).install()  # what each charge point holds of charging profiles (issue 17 K)
    ReservationFollower(services).install()  # every ReserveNow / CancelReservation answer in reservations (issue 20)
    app[SHARING_KEY] = sharing
    charging = SmartCharging(gateway)
    if settings.smart_charging:
        charging.install()
    app[CHARGING_KEY] = charging
    soc = SocTracker(services)
    soc.install()
    app[SOC_KEY] = soc
    routes.install(app, gateway, sharing_routes(sharing) + energy_routes(charging, services)
                   + rebalancing_routes(services) + readiness.routes(gateway) + device_model_routes(gateway)
                   + diagnostics_routes(gateway) + contract_routes(services) + charging_profile_routes(gateway))
    security_service.install(gateway)  # issue 5: detectors, alerts, responses
    set_badge_blocker(gateway, sharing.block_badge)  # "block badge" also pushes to charge points' local lists
    _install_web(app, gateway, gbfs_source)
    metrics.install(app, gateway, gbfs=app[GBFS_KEY], charging=charging)  # docs/operations.md, "Metrics"
    if cluster is not None:
        app.cleanup_ctx.append(partial(_joined, cluster))
    app.cleanup_ctx.append(_maintenance)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_close_store)
    return app


def clock_for(settings: Settings) -> Clock:
    """The wall clock, or simulated time when ``time_scale`` or ``time_origin`` is set."""
    if settings.time_scale == 1.0 and settings.time_origin is None:
        return SystemClock()
    if settings.time_origin is not None and settings.time_wall_start is not None:
        return ScaledClock(settings.time_origin, settings.time_scale, settings.time_wall_start)
    return ScaledClock.starting_now(settings.time_scale, settings.time_origin)


def _install_web(app: web.Application, gateway: Gateway, source: SnapshotSource | None) -> None:
    """Open data (GBFS under /gbfs) and the operator dashboard (/dashboard); see docs/web.md."""
    s = gateway.services
    database = DatabaseSource(s.store)
    cache = gbfs_http.FeedCache(source or database, s.clock, resolve=database.cities_of if source is None else None)
    gbfs_http.follow(cache, s.bus)
    gbfs_http.install(app, cache)
    app[GBFS_KEY] = cache
    paths = [r.canonical for r in app.router.resources()]
    features = {"quarantine": "/api/v1/charge-points/{cp_id}/quarantine" in paths,
                "incidents": "/api/v1/security/incidents" in paths,
                "stations": "/api/v1/stations/{station_id}" in paths}
    # login sessions last 12 hours of a person's day, not of the simulated city: wall clock
    Dashboard(s.store, s.bus, SystemClock(), tile_url=s.settings.dashboard_tile_url, features=features).install(app)


async def _maintenance(app: web.Application):  # type: ignore[no-untyped-def]
    gateway = app[GATEWAY_KEY]
    s = gateway.services
    # before the first charge point: which are in quarantine (commands refused, every frame logged)
    await security_service.service_of(gateway).load()
    # the commands this node left under way when it stopped: lost, not queued for ever (issue 20). Nodes
    # sharing a port need their own node_name to tell theirs apart: without, theirs are left as they are.
    alone, named = s.settings.bus_url is None, s.settings.node_name is not None or not s.settings.reuse_port
    lost = await s.store.write(partial(repo.lose_commands, node=s.settings.node(), alone=alone,
                                       now=s.clock.now())) if alone or named else 0
    if lost:
        log.warning("%d command(s) under way when voltlib stopped marked lost", lost)
    tasks = [asyncio.create_task(_purge_forever(gateway)), asyncio.create_task(app[SHARING_KEY].run_timers())]
    settings = gateway.services.settings
    if settings.smart_charging:
        tasks.append(asyncio.create_task(app[CHARGING_KEY].run()))
    if gateway.services.certificate_authority is not None:  # renew the certificates it issued before they lapse
        tasks.append(asyncio.create_task(CertificateRenewal(gateway).run()))
    tasks.append(asyncio.create_task(app[SOC_KEY].run()))
    if settings.telematics_mqtt_url:
        tasks.append(asyncio.create_task(MqttTelematics(gateway.services, settings.telematics_mqtt_url).run()))
    if settings.gc_freeze_interval > 0:
        policy = GcPolicy(settings.gc_freeze_interval, settings.gc_full_collect_interval)
        tasks.append(asyncio.create_task(_gc_forever(policy)))
    yield
    for task in tasks:
        task.cancel()


async def _gc_forever(policy: GcPolicy) -> None:
    """Wall clock on purpose, even under simulated time: garbage collection is about this process."""
    while True:
        await asyncio.sleep(policy.freeze_interval)
        policy.tick(time.monotonic())


async def _purge_forever(gateway: Gateway) -> None:
    """Apply the retention settings once an hour (of voltlib's clock: retention is in its days)."""
    s = gateway.services
    while True:
        now = s.clock.now()
        meter_cut = now - timedelta(days=s.settings.meter_value_retention_days)
        log_cut = now - timedelta(days=s.settings.message_log_retention_days)
        await s.store.write(partial(repo.purge_meter_values, before=meter_cut))
        await s.store.write(partial(repo.purge_messages, before=log_cut))
        gateway.forget_idle_memories()
        await s.clock.sleep(period(s.clock, 3600.0, PURGE_MIN_WALL))


async def _joined(cluster: NatsCluster, app: web.Application):  # type: ignore[no-untyped-def]
    """Connected to the other nodes before the first charge point or request is served."""
    await cluster.connect()
    yield
    await cluster.close()


async def _shutdown(app: web.Application) -> None:
    gateway = app[GATEWAY_KEY]
    await app[SHARING_KEY].close()
    await security_service.service_of(gateway).close()
    await gateway.close_all()
    app[GBFS_KEY].close()
    bus = gateway.services.bus
    if isinstance(bus, LocalBus):
        await bus.close()


async def _close_store(app: web.Application) -> None:
    """Last: after the background loops (cleanup_ctx) are cancelled, none of them can read any more."""
    await asyncio.get_running_loop().run_in_executor(None, app[GATEWAY_KEY].services.store.close)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.tls_port:
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise ValueError("tls_port needs tls_cert and tls_key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca is not None:
        context.load_verify_locations(settings.tls_client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL  # profile 3 charge points present one; profile 2 ones need not
    if settings.tls_client_crl is not None:
        if settings.tls_client_ca is None:
            raise ValueError("tls_client_crl needs tls_client_ca")
        context.load_verify_locations(settings.tls_client_crl)  # OpenSSL reads the CRLs of a PEM file too
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF  # and then wants the CA's: a missing CRL refuses
    return context


def tls_site(runner: web.AppRunner, settings: Settings, watcher: HandshakeWatcher, *, backlog: int = 128,
             reuse_port: bool | None = None, reload_every: float = RELOAD_EVERY,
             max_handshakes: int = MAX_HANDSHAKES) -> TlsSite | None:
    """The TLS listener, its context built again when a certificate, key or CRL file changes."""
    if tls_context(settings) is None:
        return None
    files = [f for f in (settings.tls_cert, settings.tls_key, settings.tls_client_ca, settings.tls_client_crl)
             if f is not None]
    contexts = ContextSource(partial(_tls_context, settings), files, every=reload_every)
    return TlsSite(runner, settings.host, settings.tls_port, contexts=contexts, watcher=watcher, backlog=backlog,
                   reuse_port=reuse_port, max_handshakes=max_handshakes)


def _tls_context(settings: Settings) -> ssl.SSLContext:
    context = tls_context(settings)
    assert context is not None
    return context


async def serve(settings: Settings, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    reuse = settings.reuse_port or None
    sites = [web.TCPSite(runner, settings.host, settings.port, backlog=4096, reuse_port=reuse)]
    secure = tls_site(runner, settings, app[GATEWAY_KEY], backlog=4096, reuse_port=reuse)
    if secure is not None:
        sites.append(secure)
    for site in sites:
        await site.start()
    log.info("voltlib listening on http://%s:%d (OCPP at /ocpp/{id}, API at /api/v1)", settings.host, settings.port)
    if secure is not None:
        log.info("TLS listener on https://%s:%d", settings.host, settings.tls_port)
    if ready is not None:
        ready.set()
    if stop is None:  # the voltlib serve process: SIGTERM (and Ctrl-C) drain the node
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        await drain(app[GATEWAY_KEY], sites)
    finally:
        await runner.cleanup()


async def drain(gateway: Gateway, sites: Sequence[web.BaseSite]) -> None:
    """Stop taking charge points and requests, let the calls under way be answered, close every
    socket with 1001; ``runner.cleanup`` then commits what is still queued and the process exits."""
    services = gateway.services
    services.draining = True  # /api/v1/ready and any WebSocket upgrade still reaching us answer 503 from now on
    log.info("draining: no new connections; %d charge points to close", len(gateway.connections))
    for site in sites:
        await site.stop()
    idle, cut = await close_when_idle(gateway, services.settings.drain_timeout)
    log.info("drained: %d charge points closed after their calls were answered, %d cut short", idle, cut)
