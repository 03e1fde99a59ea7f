"""Assembles voltlib: store, bus, gateway and API in one aiohttp application, and runs it."""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import timedelta
from functools import partial

from aiohttp import web

from voltlib.api import routes
from voltlib.api.framework import problems
from voltlib.bus import LocalBus
from voltlib.clock import Clock, SystemClock
from voltlib.config import Settings
from voltlib.gateway.context import Services
from voltlib.gateway.datatransfer import DataTransferRouter
from voltlib.gateway.gateway import Gateway
from voltlib.security import service as security_service
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade

log = logging.getLogger(__name__)
GATEWAY_KEY = web.AppKey("gateway", Gateway)


def build_app(settings: Settings, *, clock: Clock | None = None, store: Store | None = None) -> web.Application:
    """The application, with the database migrated. Nothing listens until it is run."""
    store = store or Store(settings.database_url)
    upgrade(store.engine)
    services = Services(settings=settings, store=store, bus=LocalBus(), clock=clock or SystemClock(),
                        data_transfer=DataTransferRouter())
    gateway = Gateway(services)
    app = web.Application(middlewares=[problems], client_max_size=256 * 1024)
    app[GATEWAY_KEY] = gateway
    app.router.add_get("/ocpp/{cp_id}", gateway.handle)
    routes.install(app, gateway)
    security_service.install(gateway)  # issue 5: detectors, alerts, responses
    app.cleanup_ctx.append(_maintenance)
    app.on_shutdown.append(_shutdown)
    return app


async def _maintenance(app: web.Application):  # type: ignore[no-untyped-def]
    task = asyncio.create_task(_purge_forever(app[GATEWAY_KEY]))
    yield
    task.cancel()


async def _purge_forever(gateway: Gateway) -> None:
    """Apply the retention settings once an hour."""
    s = gateway.services
    while True:
        now = s.clock.now()
        meter_cut = now - timedelta(days=s.settings.meter_value_retention_days)
        log_cut = now - timedelta(days=s.settings.message_log_retention_days)
        await s.store.write(partial(repo.purge_meter_values, before=meter_cut))
        await s.store.write(partial(repo.purge_messages, before=log_cut))
        gateway.forget_idle_memories()
        await asyncio.sleep(3600)


async def _shutdown(app: web.Application) -> None:
    gateway = app[GATEWAY_KEY]
    await security_service.service_of(gateway).close()
    await gateway.close_all()
    bus = gateway.services.bus
    if isinstance(bus, LocalBus):
        await bus.close()
    await asyncio.get_running_loop().run_in_executor(None, gateway.services.store.close)


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
    return context


async def serve(settings: Settings, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    sites = [web.TCPSite(runner, settings.host, settings.port, backlog=4096)]
    context = tls_context(settings)
    if context is not None:
        sites.append(web.TCPSite(runner, settings.host, settings.tls_port, ssl_context=context, backlog=4096))
    for site in sites:
        await site.start()
    log.info("voltlib listening on http://%s:%d (OCPP at /ocpp/{id}, API at /api/v1)", settings.host, settings.port)
    if context is not None:
        log.info("TLS listener on https://%s:%d", settings.host, settings.tls_port)
    if ready is not None:
        ready.set()
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await runner.cleanup()
