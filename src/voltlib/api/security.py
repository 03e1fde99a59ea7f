"""Security operations endpoints (issue 5): audit log, alerts, incidents, work orders, responses.

Also ``audited``: wraps the routes that read battery telemetry or raw OCPP logs so each read is
appended to the audit log (committed) before the data is returned.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from voltlib.api import models as m
from voltlib.api.framework import (
    PRINCIPAL,
    Endpoint,
    Problem,
    Query,
    Route,
    body_of,
    bool_query,
    json_object,
    reply,
    whole_number,
)
from voltlib.api.paging import page_request, paged
from voltlib.gateway.gateway import Gateway
from voltlib.security import audit, records, thresholds, workorders
from voltlib.security.incidents import LifecycleError
from voltlib.security.response import BLOCK_BADGE, QUARANTINE, RELEASE, ROTATE, Policy, Responder, ResponseError
from voltlib.security.roles import HANDLE_ALERTS, OWN_WORK, PLAN_WORK, READ_AUDIT, RESPOND, SEE_ALERTS
from voltlib.security.service import service_of
from voltlib.store import lists

BLOCK_BADGE_ROLES = frozenset({"admin", "operator", "security"})  # customer service handles lost badges too


class BlockBadge(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "lost"  # lost | stolen | ...


class IncidentChange(msgspec.Struct, kw_only=True):
    action: Literal["acknowledge", "resolve"]
    note: str | None = None


class NewWorkOrder(msgspec.Struct, kw_only=True):
    technician: str
    badge: str
    charge_points: list[str]
    starts_at: datetime
    ends_at: datetime
    purpose: str


class Respond(msgspec.Struct, kw_only=True):
    action: Literal["quarantine", "release", "rotate_credentials", "block_badge"]
    charge_point_id: str | None = None  # default: the incident's charge point
    id_tag: str | None = None  # for block_badge
    reason: str | None = None


class QuarantineRequest(msgspec.Struct, kw_only=True):
    reason: str

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
    s = gateway.services
    store, clock = s.store, s.clock
    policy = Policy()

    def responder() -> Responder:
        """The security service's own: one memory of what is in quarantine, whoever acts."""
        return service_of(gateway).responder

    def who(request: web.Request) -> str:
        return request.get(PRINCIPAL) or "?"

    def int_param(request: web.Request, name: str) -> int:
        value = request.match_info[name]
        number = whole_number(value)
        if number is None:
            raise Problem(404, "not-found", f"no {name} {value}")
        return number

    async def get_thresholds(request: web.Request) -> web.Response:
        return reply(thresholds.as_wire(service_of(gateway).detectors.tuning))

    async def put_thresholds(request: web.Request) -> web.Response:
        # Checked by tuning_from, not by decoding ThresholdChange: the same rules (both are made from
        # Tuning), and the named 422 invalid-threshold problem clients already get.
        changes = await json_object(request)
        detectors = service_of(gateway).detectors
        try:
            detectors.tuning = thresholds.tuning_from(changes, detectors.tuning)
        except thresholds.ThresholdError as exc:
            raise Problem(422, "invalid-threshold", str(exc)) from None
        await store.write(partial(audit.append, actor=who(request), action="security.thresholds.changed",
                                  target="detectors", detail=changes, now=clock.now()))
        return reply(thresholds.as_wire(detectors.tuning))

    async def audit_entries(request: web.Request) -> web.Response:
        limit, after = page_request(request, lists.AUDIT, 200)
        page = await store.read(partial(lists.audit_page, action=request.query.get("action"), after=after,
                                        limit=limit))
        return paged(request, page.rows, lists.AUDIT, page)

    async def audit_verify(request: web.Request) -> web.Response:
        rows = await store.read(audit.read_chain)
        breaks = audit.verify(rows)
        return reply({"ok": not breaks, "entries": len(rows), "head": rows[-1]["hash"] if rows else audit.GENESIS,
                      "breaks": [{"seq": b.seq, "problem": b.problem} for b in breaks]})

    async def alerts(request: web.Request) -> web.Response:
        expected = bool_query(request, "expected")
        limit, after = page_request(request, lists.ALERTS, 200)
        page = await store.read(partial(lists.alert_page, cp_id=request.query.get("charge_point_id") or None,
                                        expected=expected, after=after, limit=limit))
        return paged(request, page.rows, lists.ALERTS, page)

    async def incidents(request: web.Request) -> web.Response:
        limit, after = page_request(request, lists.INCIDENTS, 200)
        page = await store.read(partial(lists.incident_page, state=request.query.get("state") or None, after=after,
                                        limit=limit))
        return paged(request, page.rows, lists.INCIDENTS, page)

    async def incident(request: web.Request) -> web.Response:
        found = await store.read(partial(records.get_incident, incident_id=int_param(request, "incident_id")))
        if found is None:
            raise Problem(404, "not-found", "no such incident")
        return reply(with_suggestions(found))

    def with_suggestions(found: dict[str, Any]) -> dict[str, Any]:
        kinds = {a["kind"] for a in found["alerts"]}
        return {**found, "suggested_responses": sorted({r for k in kinds for r in policy.suggested(k)})}

    async def change_incident(request: web.Request) -> web.Response:
        change = await body_of(request, IncidentChange)
        if change.action == "resolve" and not (change.note or "").strip():
            raise Problem(422, "note-required", "say how the incident was resolved")
        incident_id = int_param(request, "incident_id")
        try:
            row = await store.write(partial(records.change_incident, incident_id=incident_id, action=change.action,
                                            by=who(request), note=change.note, now=clock.now()))
        except LifecycleError as exc:
            raise Problem(409, "invalid-transition", str(exc)) from None
        if row is None:
            raise Problem(404, "not-found", "no such incident")
        await store.write(partial(audit.append, actor=who(request), action=f"incident.{change.action}",
                                  target=str(incident_id), detail={"note": change.note}, now=clock.now()))
        return reply(with_suggestions(row))

    async def respond(request: web.Request) -> web.Response:
        incident_id = int_param(request, "incident_id")
        found = await store.read(partial(records.get_incident, incident_id=incident_id))
        if found is None:
            raise Problem(404, "not-found", "no such incident")
        order = await body_of(request, Respond)
        cp = order.charge_point_id or found["charge_point_id"]
        reason = order.reason or f"incident {incident_id}: {found['title']}"
        return reply(await _act(order.action, cp, order.id_tag, who(request), reason, incident_id))

    async def _act(action: str, cp: str | None, id_tag: str | None, by: str, reason: str,
                   incident_id: int | None) -> dict[str, object]:
        """The response's outcome, tagged with its ``action`` (the answer's schema is a union)."""
        return {"action": action, **await _carry_out(action, cp, id_tag, by, reason, incident_id)}

    async def _carry_out(action: str, cp: str | None, id_tag: str | None, by: str, reason: str,
                         incident_id: int | None) -> dict[str, Any]:
        try:
            if action == BLOCK_BADGE:
                if not id_tag:
                    raise Problem(422, "id-tag-required", "block_badge needs id_tag")
                return await responder().block_badge(id_tag, by=by)
            if not cp:
                raise Problem(422, "charge-point-required", "this response needs a charge point")
            if action == QUARANTINE:
                return await responder().quarantine(cp, by=by, reason=reason, incident_id=incident_id)
            if action == RELEASE:
                return await responder().release(cp, by=by)
            if action == ROTATE:
                return await responder().rotate(cp, by=by)
        except ResponseError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        raise Problem(422, "unknown-action", action)

    async def quarantine(request: web.Request) -> web.Response:
        body = await body_of(request, QuarantineRequest)
        return reply(await _act(QUARANTINE, request.match_info["cp_id"], None, who(request), body.reason, None))

    async def release(request: web.Request) -> web.Response:
        return reply(await _act(RELEASE, request.match_info["cp_id"], None, who(request), "", None))

    async def rotate(request: web.Request) -> web.Response:
        return reply(await _act(ROTATE, request.match_info["cp_id"], None, who(request), "", None))

    async def block(request: web.Request) -> web.Response:
        body = await body_of(request, BlockBadge)
        try:
            return reply({"action": BLOCK_BADGE, **await responder().block_badge(
                request.match_info["id_tag"], by=who(request), reason=body.reason)})
        except ResponseError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None

    async def list_quarantines(request: web.Request) -> web.Response:
        limit, after = page_request(request, lists.QUARANTINES, 200)
        page = await store.read(partial(lists.quarantine_page, active_only=request.query.get("all") != "true",
                                        after=after, limit=limit))
        return paged(request, page.rows, lists.QUARANTINES, page)

    async def cp_quarantine(request: web.Request) -> web.Response:
        row = await store.read(partial(records.active_quarantine, cp_id=request.match_info["cp_id"]))
        return reply({"charge_point_id": request.match_info["cp_id"], "quarantined": row is not None,
                      "quarantine": row})

    async def add_work_order(request: web.Request) -> web.Response:
        new = await body_of(request, NewWorkOrder)
        try:
            workorders.check(new.charge_points, new.starts_at, new.ends_at, new.purpose, new.badge)
        except workorders.InvalidWorkOrder as exc:
            raise Problem(422, "invalid-work-order", str(exc)) from None
        if new.starts_at.tzinfo is None or new.ends_at.tzinfo is None:
            raise Problem(422, "invalid-work-order", "give times with a UTC offset")
        order_id = await store.write(partial(
            records.add_work_order, technician=new.technician, badge=new.badge, charge_points=new.charge_points,
            starts_at=new.starts_at, ends_at=new.ends_at, purpose=new.purpose, created_by=who(request),
            now=clock.now()))
        await store.write(partial(audit.append, actor=who(request), action="work_order.create", target=str(order_id),
                                  detail={"technician": new.technician, "charge_points": new.charge_points,
                                          "starts_at": new.starts_at, "ends_at": new.ends_at,
                                          "purpose": new.purpose}, now=clock.now()))
        return reply(await store.read(partial(records.get_work_order, order_id=order_id)), status=201)

    async def work_order_list(request: web.Request, technician: str | None) -> web.Response:
        limit, after = page_request(request, lists.WORK_ORDERS, 200)
        page = await store.read(partial(lists.work_order_page, technician=technician, after=after, limit=limit))
        return paged(request, page.rows, lists.WORK_ORDERS, page)

    async def list_work_orders(request: web.Request) -> web.Response:
        return await work_order_list(request, request.query.get("technician") or None)

    async def my_work_orders(request: web.Request) -> web.Response:
        return await work_order_list(request, who(request))

    async def cancel_work_order(request: web.Request) -> web.Response:
        order_id = int_param(request, "order_id")
        if not await store.write(partial(records.cancel_work_order, order_id=order_id, now=clock.now())):
            raise Problem(404, "not-found", "no such open work order")
        await store.write(partial(audit.append, actor=who(request), action="work_order.cancel", target=str(order_id),
                                  detail={}, now=clock.now()))
        return reply(await store.read(partial(records.get_work_order, order_id=order_id)))

    base = "/api/v1/security"
    return [
        Route("GET", f"{base}/audit", audit_entries, "Audit log entries, newest first", READ_AUDIT, tag="security",
              returns=list[m.AuditEntry], paged=True,  # type: ignore[valid-type]
              query=(Query("action", str, "only this action (e.g. transaction.close)"),)),
        Route("GET", f"{base}/thresholds", get_thresholds, "Detector thresholds in force (durations in seconds)",
              SEE_ALERTS, tag="security", returns=thresholds.Thresholds),
        Route("PUT", f"{base}/thresholds", put_thresholds, "Change detector thresholds now (partial; validated; "
              "audited; until restart, see security_thresholds)", RESPOND, thresholds.ThresholdChange,
              tag="security", returns=thresholds.Thresholds),
        Route("GET", f"{base}/audit/verify", audit_verify, "Verify the audit hash chain", READ_AUDIT, tag="security",
              returns=m.AuditVerification),
        Route("GET", f"{base}/alerts", alerts, "Alerts, newest first", SEE_ALERTS, tag="security",
              returns=list[m.Alert], paged=True,  # type: ignore[valid-type]
              query=(Query("charge_point_id", str, "only this charge point's"),
                     Query("expected", bool, "true: inside a work order; false: not"))),
        Route("GET", f"{base}/incidents", incidents, "Incidents, newest first", SEE_ALERTS, tag="security",
              returns=list[m.Incident], paged=True,  # type: ignore[valid-type]
              query=(Query("state", ("open", "acknowledged", "resolved")),)),
        Route("GET", f"{base}/incidents/{{incident_id}}", incident, "An incident, its alerts and suggested responses",
              SEE_ALERTS, tag="security", returns=m.IncidentDetail),
        Route("POST", f"{base}/incidents/{{incident_id}}/lifecycle", change_incident,
              "Acknowledge or resolve (with a note) an incident", HANDLE_ALERTS, IncidentChange, tag="security",
              returns=m.IncidentDetail),
        Route("POST", f"{base}/incidents/{{incident_id}}/respond", respond,
              "Apply a response to an incident's charge point or badge; the answer says which (action)", RESPOND,
              Respond, tag="security", returns=m.SecurityResponse),
        Route("GET", f"{base}/quarantines", list_quarantines, "Charge points in quarantine, newest first",
              SEE_ALERTS, tag="security", returns=list[m.Quarantine], paged=True,  # type: ignore[valid-type]
              query=(Query("all", bool, "true: released ones too (the history)"),)),
        Route("GET", "/api/v1/charge-points/{cp_id}/quarantine", cp_quarantine, "Is this charge point in quarantine",
              SEE_ALERTS, tag="security", returns=m.QuarantineState),
        Route("POST", "/api/v1/charge-points/{cp_id}/quarantine", quarantine,
              "Quarantine: ChangeAvailability Inoperative, remote starts refused, flagged", RESPOND,
              QuarantineRequest, tag="security", returns=m.QuarantineStarted),
        Route("POST", "/api/v1/charge-points/{cp_id}/release", release,
              "Release the quarantine: ChangeAvailability Operative", RESPOND, tag="security",
              returns=m.QuarantineReleased),
        Route("POST", "/api/v1/charge-points/{cp_id}/rotate-credentials", rotate,
              "Security response: new AuthorizationKey (audited)", RESPOND, tag="security",
              returns=m.CredentialsRotated),
        Route("POST", "/api/v1/badges/{id_tag}/block", block, "Block a lost or stolen badge everywhere: refused "
              "online at once, pushed to every charge point's local list (offline ones when they are back), audited",
              BLOCK_BADGE_ROLES, BlockBadge, tag="security", returns=m.BadgeBlocked),
        Route("POST", f"{base}/work-orders", add_work_order, "Plan a field intervention", PLAN_WORK, NewWorkOrder,
              tag="security", returns=m.WorkOrder, status=201),
        Route("GET", f"{base}/work-orders", list_work_orders, "Work orders, newest first", PLAN_WORK,
              tag="security", returns=list[m.WorkOrder], paged=True,  # type: ignore[valid-type]
              query=(Query("technician", str, "only this technician's"),)),
        Route("GET", f"{base}/work-orders/mine", my_work_orders, "The calling technician's work orders", OWN_WORK,
              tag="security", returns=list[m.WorkOrder], paged=True),  # type: ignore[valid-type]
        Route("POST", f"{base}/work-orders/{{order_id}}/cancel", cancel_work_order, "Cancel a work order", PLAN_WORK,
              tag="security", returns=m.WorkOrder),
    ]
