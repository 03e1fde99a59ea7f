"""A real voltlib server whose GBFS cities come from a fixed synthetic snapshot (the car-sharing
tables are not needed for what these tests check), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial

import pytest_asyncio
from aiohttp import web

from tests.conftest import RunningServer, free_port
from voltlib.config import Settings
from voltlib.gbfs.sample import synthetic_city
from voltlib.gbfs.source import StaticSource
from voltlib.security.credentials import hash_api_token
from voltlib.server import GATEWAY_KEY, build_app
from voltlib.store import repo

NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


class WebServer(RunningServer):
    source: StaticSource
    app: web.Application

    async def new_token(self, role: str) -> str:
        token = f"vlt_{role}_" + uuid.uuid4().hex
        await self.store.write(partial(repo.add_api_token, name=f"{role}-{uuid.uuid4().hex[:6]}", role=role,
                                        token_hash=hash_api_token(token), now=datetime.now(UTC)))
        return token


@pytest_asyncio.fixture
async def web_server(database_url: str) -> AsyncIterator[WebServer]:
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        duplicate_probe_timeout=1.0)
    source = StaticSource(synthetic_city("paris", 40, now=NOW), synthetic_city("lyon", 10, now=NOW, seed=3,
                                                                              centre=(45.76, 4.84)))
    app = build_app(settings, gbfs_source=source)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    gateway = app[GATEWAY_KEY]
    running = WebServer(f"http://{settings.host}:{settings.port}", f"ws://{settings.host}:{settings.port}/ocpp", "",
                        gateway, gateway.services.store, settings)
    running.source, running.app = source, app
    running.token = await running.new_token("admin")
    try:
        yield running
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)
