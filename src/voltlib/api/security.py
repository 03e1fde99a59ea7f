"""Security operations endpoints (issue 5): audit log, alerts, incidents, work orders, responses.

Also ``audited``: wraps the routes that read battery telemetry or raw OCPP logs so each read is
appended to the audit log (committed) before the data is returned.
"""

from __future__ import annotations

from functools import partial

from aiohttp import web

from voltlib.api.framework import PRINCIPAL, Endpoint, Route, reply
from voltlib.gateway.gateway import Gateway
from voltlib.security import audit
from voltlib.security.roles import READ_AUDIT

# (method, path) → audit action. Routes added later that expose battery data belong here.
AUDITED_READS: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/charge-points/{cp_id}/meter-values"): audit.READ_METER_VALUES,
    ("GET", "/api/v1/charge-points/{cp_id}/messages"): audit.READ_OCPP_MESSAGES,
}


def audited(gateway: Gateway, route: Route) -> Endpoint:
    """The route's handler, recording who read what first when the route is in AUDITED_READS."""
    action = AUDITED_READS.get((route.method, route.path))
    if action is None:
        return route.handler
    s = gateway.services
    handler = route.handler

    async def reading(request: web.Request) -> web.StreamResponse:
        target = "/".join(f"{k}={v}" for k, v in sorted(request.match_info.items()))
        await s.store.write(partial(audit.append, actor=request.get(PRINCIPAL) or "?", action=action,
                                    target=target or route.path, detail={"query": dict(request.query)},
                                    now=s.clock.now()))
        return await handler(request)

    return reading


def build_routes(gateway: Gateway) -> list[Route]:
    store = gateway.services.store

    async def audit_entries(request: web.Request) -> web.Response:
        limit = request.query.get("limit", "200")
        return reply(await store.read(partial(audit.list_entries, limit=int(limit) if limit.isdigit() else 200,
                                              action=request.query.get("action"))))

    async def audit_verify(request: web.Request) -> web.Response:
        rows = await store.read(audit.read_chain)
        breaks = audit.verify(rows)
        return reply({"ok": not breaks, "entries": len(rows), "head": rows[-1]["hash"] if rows else audit.GENESIS,
                      "breaks": [{"seq": b.seq, "problem": b.problem} for b in breaks]})

    return [
        Route("GET", "/api/v1/security/audit", audit_entries, "Audit log entries, newest first", READ_AUDIT,
              tag="security"),
        Route("GET", "/api/v1/security/audit/verify", audit_verify, "Verify the audit hash chain", READ_AUDIT,
              tag="security"),
    ]
