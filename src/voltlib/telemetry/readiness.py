"""``GET /api/v1/ready``: may a load balancer send this node charge points and requests now?

``/api/v1/health`` stays liveness (the process answers). Ready means: the database answers within
``CHECK_TIMEOUT`` (asked on a thread of the check's own, ``Store.probe``: a node busy reading for a
reconnection storm is not a node without a database), its schema is the one this code expects (or
newer: a rolling upgrade whose first node migrated already; migrations only add), the NATS server is
connected when ``bus_url`` is set, and the node is not draining (SIGTERM, docs/operations.md). 200
with the checks, else 503 problem details naming the ones that failed.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

from aiohttp import web
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from voltlib.api.framework import Problem, Route, reply
from voltlib.api.models import Readiness
from voltlib.cluster import NatsCluster
from voltlib.store.migrate import MIGRATIONS

if TYPE_CHECKING:
    from voltlib.gateway.gateway import Gateway

CHECK_TIMEOUT = 3.0  # seconds the database may take to answer before the node is called not ready
OK = "ok"


@functools.cache
def _revisions() -> tuple[str, frozenset[str]]:
    """This code's newest migration and every one it knows."""
    script = ScriptDirectory(str(MIGRATIONS))
    heads = script.get_heads()
    return heads[0], frozenset(r.revision for r in script.walk_revisions())


def _schema(conn: Connection) -> str | None:
    """The database's Alembic revision, read directly: alembic's own reader logs two lines a call, and
    a balancer asks every few seconds."""
    conn.execute(text("SELECT 1"))
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrations_state(current: str | None) -> str:
    """``ok``, ``newer`` (a revision this code does not know: a newer node migrated), or why not."""
    head, known = _revisions()
    if current == head:
        return OK
    if current is None:
        return "no schema: run voltlib db upgrade"
    if current not in known:
        return "newer"
    return f"behind: at {current}, this node needs {head} (run voltlib db upgrade)"


async def checks(gateway: Gateway) -> dict[str, str]:
    """Every check by name: ``ok`` (or ``newer``, ``not configured``), else what is wrong."""
    s = gateway.services
    found: dict[str, str] = {}
    try:
        current = await asyncio.wait_for(s.store.probe(_schema), CHECK_TIMEOUT)  # not behind the node's reads
        found["database"] = OK
        found["migrations"] = migrations_state(current)
    except TimeoutError:
        found["database"] = f"no answer within {CHECK_TIMEOUT:g} s"
        found["migrations"] = "unknown"
    except Exception as exc:  # noqa: BLE001 (whatever the driver raises: the database is not usable)
        found["database"] = f"unreachable: {type(exc).__name__}"
        found["migrations"] = "unknown"
    if isinstance(s.bus, NatsCluster):
        found["broker"] = OK if s.bus.connected else "not connected to NATS"
    else:
        found["broker"] = "not configured"
    found["accepting"] = "draining: shutting down" if s.draining else OK
    return found


def is_ready(found: dict[str, str]) -> bool:
    return all(value in (OK, "newer", "not configured") for value in found.values())


def routes(gateway: Gateway) -> list[Route]:
    async def ready(request: web.Request) -> web.Response:
        found = await checks(gateway)
        if not is_ready(found):
            failed = ", ".join(f"{name}: {value}" for name, value in found.items()
                               if value not in (OK, "newer", "not configured"))
            raise Problem(503, "not-ready", failed, checks=found)
        return reply({"status": "ready", "checks": found})

    return [Route("GET", "/api/v1/ready", ready, "Readiness for a load balancer: database reachable, schema "
                  "current, NATS connected (when configured), not draining; 503 problem details otherwise",
                  None, tag="system", returns=Readiness)]
