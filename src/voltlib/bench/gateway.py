"""`voltlib bench gateway`: voltlib against the `ocpp`-package baseline and the aiohttp echo
ceiling, under the same load on loopback, with full validation and durable storage."""

from __future__ import annotations

import asyncio
import shlex
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from voltlib.bench.compare import (
    SUBJECT,
    ServerRun,
    ServerSpec,
    baseline_spec,
    ceiling_spec,
    compare_servers,
    free_port,
)
from voltlib.bench.load import LoadPlan
from voltlib.security.credentials import hash_password
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade


def voltlib_spec(database_url: str | None = None, *, throughput: bool, python: str = sys.executable,
                 nodes: int = 1, bus_url: str = "nats://127.0.0.1:4222", ocpp: str = "1.6") -> ServerSpec:
    """voltlib on a fresh SQLite file (or ``database_url``). In throughput mode the per-connection
    rate limit is lifted: that mode measures the server's capacity, not a charge point's pace.

    ``nodes`` > 1 starts that many ``voltlib serve`` processes sharing one port (SO_REUSEPORT, the
    kernel spreads connections), one NATS bus and one database, which must then be PostgreSQL."""
    if nodes > 1 and (database_url is None or database_url.startswith("sqlite")):
        raise ValueError("several nodes share one database: give a PostgreSQL --database-url")
    port = free_port()
    url = database_url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='voltlib-bench-')) / 'bench.db'}"
    env = {"VOLTLIB_DATABASE_URL": url, "VOLTLIB_LOG_LEVEL": "WARNING"}
    if ocpp != "1.6":  # both offered, as a mixed network runs
        env["VOLTLIB_OCPP_VERSIONS"] = '["1.6", "2.0.1"]'
    if throughput:
        env |= {"VOLTLIB_RATE_PER_SECOND": "1000000", "VOLTLIB_RATE_BURST": "1000000"}
    argv = [python, "-m", "voltlib", "serve", "--port", str(port)]
    if nodes > 1:  # one process group: the bench stops every node at once
        env |= {"VOLTLIB_REUSE_PORT": "true", "VOLTLIB_BUS_URL": bus_url,
                "VOLTLIB_CLUSTER_NAME": f"bench{port}"}
        argv = ["sh", "-c", " & ".join([shlex.join(argv)] * nodes) + " & wait"]

    async def prepare(spec: ServerSpec, cp_ids: Sequence[str], password: str | None) -> None:
        await asyncio.to_thread(_register, url, list(cp_ids), password)

    return ServerSpec(name=SUBJECT, argv=argv, port=port,
                      url_base=f"ws://127.0.0.1:{port}/ocpp", env=env, prepare=prepare)


def _register(url: str, cp_ids: list[str], password: str | None) -> None:
    store = Store(url)
    try:
        upgrade(store.engine)
        password_hash = hash_password(password) if password else None  # one hash shared: setup speed only
        now = datetime.now(UTC)

        def add_all(conn: object) -> None:
            for cp_id in cp_ids:
                if repo.get_charge_point(conn, cp_id) is None:  # type: ignore[arg-type]
                    repo.add_charge_point(conn, cp_id, registration="Accepted",  # type: ignore[arg-type]
                                          security_profile=1 if password else 0, password_hash=password_hash,
                                          certificate_fingerprint=None, now=now)

        store.run_sync(add_all)
    finally:
        store.close()


def run(plan: LoadPlan, servers: Sequence[str], database_url: str | None = None, nodes: int = 1) -> list[ServerRun]:
    specs = []
    for name in servers:
        if name == "voltlib":
            specs.append(voltlib_spec(database_url, throughput=plan.mode == "throughput", nodes=nodes,
                                      ocpp=plan.ocpp))
        elif name == "baseline":
            specs.append(baseline_spec(ocpp=plan.ocpp))
        elif name == "ceiling":
            specs.append(ceiling_spec())
        else:
            raise ValueError(f"unknown server {name!r}: voltlib, baseline or ceiling")
    return asyncio.run(compare_servers(specs, plan))
