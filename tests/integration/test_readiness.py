"""``/api/v1/ready`` for a load balancer: 200 when the database answers with the schema this code
expects and NATS (when configured) is connected; 503 problem details naming what is wrong when the
database is behind on its migrations, unreachable, or NATS is gone. ``/api/v1/health`` stays 200."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import create_engine, text

from tests.conftest import RunningServer, free_port, start_server
from tests.integration.test_cluster import NATS_URL, _require_nats
from voltlib.config import Settings
from voltlib.store.db import normalise_url
from voltlib.telemetry.readiness import _revisions

READERS = 4  # Store's reader threads (voltlib.store.db)


def _set_revision(url: str, revision: str) -> None:
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    engine.dispose()


async def test_ready_then_not_while_the_schema_is_behind(server: RunningServer, database_url: str) -> None:
    head, _ = _revisions()
    async with httpx.AsyncClient(base_url=server.url) as http:
        ready = await http.get("/api/v1/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok",
                                                               "broker": "not configured", "accepting": "ok"}}
        _set_revision(database_url, "0011")  # as if this node's code were newer than the database
        behind = await http.get("/api/v1/ready")
        assert behind.status_code == 503
        assert behind.headers["Content-Type"].startswith("application/problem+json")
        problem = behind.json()
        assert problem["title"] == "not-ready" and problem["status"] == 503
        assert problem["checks"]["migrations"].startswith(f"behind: at 0011, this node needs {head}")
        assert problem["checks"]["database"] == "ok" and "migrations: behind" in problem["detail"]
        assert (await http.get("/api/v1/health")).status_code == 200  # alive all the same
        _set_revision(database_url, "9999")  # a newer node migrated first (rolling upgrade): still ready
        newer = await http.get("/api/v1/ready")
        assert newer.status_code == 200 and newer.json()["checks"]["migrations"] == "newer"
        _set_revision(database_url, head)
        assert (await http.get("/api/v1/ready")).status_code == 200


@contextmanager
def refusing_connections(database_url: str) -> Iterator[Callable[[], None]]:
    """The PostgreSQL database of ``database_url`` refuses connections and drops those it has, until
    the ``allow`` yielded is called or the block ends."""
    name = database_url.rsplit("/", 1)[1]
    admin = create_engine(database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")

    def allow() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))

    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n "
                              "AND pid <> pg_backend_pid()"), {"n": name})
        yield allow
    finally:
        allow()
        admin.dispose()


async def test_not_ready_while_the_database_refuses_connections(server: RunningServer, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        return  # a SQLite file cannot refuse a connection; PostgreSQL can
    with refusing_connections(database_url) as allow:
        async with httpx.AsyncClient(base_url=server.url) as http:
            down = await http.get("/api/v1/ready")
            assert down.status_code == 503
            assert down.json()["checks"]["database"].startswith("unreachable")
            assert down.json()["checks"]["migrations"] == "unknown"
            allow()
            assert (await http.get("/api/v1/ready")).status_code == 200


async def test_not_ready_without_nats_when_one_is_configured(database_url: str) -> None:
    _require_nats()
    settings = Settings(database_url=database_url, port=free_port(), bus_url=NATS_URL,
                        cluster_name=f"ready{free_port()}")
    runner, node = await start_server(settings)
    try:
        async with httpx.AsyncClient(base_url=node.url) as http:
            ready = await http.get("/api/v1/ready")
            assert ready.status_code == 200 and ready.json()["checks"]["broker"] == "ok"
            cluster = node.gateway.services.cluster
            await cluster.nc.close()  # type: ignore[attr-defined]
            gone = await http.get("/api/v1/ready")
            assert gone.status_code == 503 and gone.json()["checks"]["broker"] == "not connected to NATS"
    finally:
        await runner.cleanup()


async def test_ready_while_every_reader_thread_is_busy(server: RunningServer) -> None:
    """A reconnection storm keeps the node's reader threads busy: the check does not queue behind
    them (it did, answered 503 after its 3 s, and HAProxy took the only node left for dead)."""
    release = threading.Event()
    busy = [asyncio.ensure_future(server.store.read(lambda _conn: release.wait(60))) for _ in range(READERS)]
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            ready = await http.get("/api/v1/ready")
        assert not any(task.done() for task in busy)  # the readers were busy all along
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == "ok"
    finally:
        release.set()
        await asyncio.gather(*busy)
