"""Shared fixtures: a real database (SQLite file or PostgreSQL) and a real voltlib server on a
loopback port. PostgreSQL tests skip when no server is reachable, except on CI (CI=true),
where they fail instead."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import create_engine, text

from voltlib.bus import LocalBus
from voltlib.cluster import NatsCluster
from voltlib.config import Settings
from voltlib.gateway.gateway import Gateway
from voltlib.security.credentials import hash_api_token, hash_password
from voltlib.security.service import service_of
from voltlib.server import GATEWAY_KEY, build_app
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import metadata

PG_ADMIN_URL = os.environ.get("VOLTLIB_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PASSWORD = "correct-horse-battery-9"  # 23 bytes: within OCPP's 16-40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def basic_auth(cp_id: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{cp_id}:{password}".encode()).decode()}


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of our own for this test session, dropped at the end."""
    name = f"voltlib_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required on CI and is not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that uses this runs twice: on a fresh SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'voltlib.db'}"
    url: str = request.getfixturevalue("pg_database")
    store = Store(url)
    upgrade(store.engine)
    store.close()
    _truncate_all(url)
    return url


@dataclass
class RunningServer:
    url: str
    ws_url: str
    token: str
    gateway: Gateway
    store: Store
    settings: Settings
    station_version: str = "1.6"  # the OCPP version tests.conformance.conftest.connect speaks

    async def add_charge_point(self, cp_id: str, *, profile: int = 1, password: str = PASSWORD,
                               registration: str = "Accepted", fingerprint: str | None = None) -> None:
        await self.store.write(partial(
            repo.add_charge_point, cp_id=cp_id, registration=registration, security_profile=profile,
            password_hash=hash_password(password) if profile in (1, 2) else None,
            certificate_fingerprint=fingerprint, now=datetime.now(UTC)))

    async def add_id_tag(self, id_tag: str, status: str = "Accepted", **kwargs: Any) -> None:
        await self.store.write(partial(repo.upsert_id_tag, id_tag=id_tag, status=status,
                                       expiry_date=kwargs.get("expiry_date"),
                                       parent_id_tag=kwargs.get("parent_id_tag"), now=datetime.now(UTC)))

    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def settled(self) -> None:
        """Every event this server has received handled, and what its security service started finished."""
        bus = self.gateway.services.bus
        assert isinstance(bus, (LocalBus, NatsCluster))
        await bus.drain()
        await service_of(self.gateway).settle()
        await bus.drain()


async def start_server(settings: Settings) -> tuple[web.AppRunner, RunningServer]:
    app = build_app(settings)
    gateway = app[GATEWAY_KEY]
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    token = "vlt_test_" + uuid.uuid4().hex
    store = gateway.services.store
    await store.write(partial(repo.add_api_token, name=f"test-{uuid.uuid4().hex[:6]}", role="admin",
                              token_hash=hash_api_token(token), now=datetime.now(UTC)))
    base = f"http://{settings.host}:{settings.port}"
    return runner, RunningServer(base, f"ws://{settings.host}:{settings.port}/ocpp", token, gateway, store, settings)


BOTH_VERSIONS = ["1.6", "2.0.1"]


@pytest.fixture
def ocpp_version(request: pytest.FixtureRequest) -> str:
    """The OCPP version the test charge points speak: 1.6 unless a suite parametrises it
    (``pytest.mark.parametrize("ocpp_version", BOTH_VERSIONS, indirect=True)``)."""
    return str(getattr(request, "param", "1.6"))


@pytest_asyncio.fixture
async def server(database_url: str, ocpp_version: str) -> AsyncIterator[RunningServer]:
    """voltlib listening on a free loopback port, on SQLite and on PostgreSQL; with 2.0.1 enabled
    beside 1.6 when the test's charge points speak 2.0.1."""
    versions = {"ocpp_versions": BOTH_VERSIONS} if ocpp_version == "2.0.1" else {}
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        duplicate_probe_timeout=1.0, **versions)
    runner, running = await start_server(settings)
    running.station_version = ocpp_version
    try:
        yield running
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)
