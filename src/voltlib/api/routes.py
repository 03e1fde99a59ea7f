"""The API's endpoints: charge points, commands, id tags, transactions, security events."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from voltlib import __version__
from voltlib.api import models as m
from voltlib.api import raw_reservations
from voltlib.api import security as security_api
from voltlib.api.diagnostics import CUSTOMER_INFORMATION_REQUESTED
from voltlib.api.framework import (
    PRINCIPAL,
    READ_ROLES,
    WRITE_ROLES,
    Problem,
    Query,
    Route,
    authenticated,
    body_of,
    bool_query,
    int_query,
    json_object,
    number_query,
    reply,
)
from voltlib.api.id_tags import id_tag_routes
from voltlib.api.paging import MAX_PAGE, page_request, paged
from voltlib.api.reservations import reservation_routes
from voltlib.api.spec import openapi
from voltlib.api.transactions import transaction_routes
from voltlib.clock import describe as describe_clock
from voltlib.domain.idtags import MAX_ID_TOKEN, valid_id_token
from voltlib.gateway.auth import IDENTITY
from voltlib.gateway.gateway import CommandError, Gateway
from voltlib.ocpp.v16.messages import check_utc_range
from voltlib.security import audit
from voltlib.security import records as security_records
from voltlib.security.credentials import PasswordPolicyError, check_policy, hash_password
from voltlib.store import lists, repo, tables

CUSTOMER_INFORMATION = "CustomerInformation"  # a raw command that asks for or clears a customer's data

MAX_COMMAND_TIMEOUT = 300.0  # seconds an API client may ask to wait for a charge point's answer (?timeout=)


class NewChargePoint(msgspec.Struct, kw_only=True):
    id: str
    security_profile: Literal[0, 1, 2, 3] = 1
    password: str | None = None
    certificate_fingerprint: str | None = None
    registration: Literal["Accepted", "Pending", "Rejected"] = "Accepted"


class RegistrationChange(msgspec.Struct, kw_only=True):
    registration: Literal["Accepted", "Pending", "Rejected"]


MAX_TRACE_MINUTES = 24 * 60  # a trace is for looking into a problem, not a second logging policy


class TraceChange(msgspec.Struct, kw_only=True):
    minutes: Annotated[int, msgspec.Meta(ge=0, le=MAX_TRACE_MINUTES)]  # 0 stops the trace


class SecurityProfileChange(msgspec.Struct, kw_only=True):
    security_profile: Literal[0, 1, 2, 3]
    password: str | None = None  # needed when moving to profile 1 or 2 without a stored password
    certificate_fingerprint: str | None = None  # SHA-256 of the DER certificate to pin (profile 3); "" unpins
    allow_downgrade: bool = False


class IdTagChange(msgspec.Struct, kw_only=True):
    status: Literal["Accepted", "Blocked", "Expired", "Invalid"] = "Accepted"
    expiry_date: datetime | None = None
    parent_id_tag: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_TOKEN)] | None = None  # an id token

    def __post_init__(self) -> None:
        if self.expiry_date is not None:  # 0001-01-01T00:00:00+14:00 has no UTC time: a 422, not a 500
            check_utc_range("expiry_date", self.expiry_date)


def build_routes(gateway: Gateway, extra: list[Route] | None = None) -> list[Route]:
    s = gateway.services
    store, clock = s.store, s.clock

    def cp_id(request: web.Request) -> str:
        return request.match_info["cp_id"]

    async def health(request: web.Request) -> web.Response:
        return reply({"status": "ok", "version": __version__, "connected": len(gateway.connections)})

    async def bus_stats(request: web.Request) -> web.Response:
        return reply({"consumers": [dataclasses.asdict(x) for x in s.bus.stats()]})

    async def clock_now(request: web.Request) -> web.Response:
        return reply(describe_clock(clock))

    async def list_cps(request: web.Request) -> web.Response:
        limit, after = page_request(request, lists.CHARGE_POINTS, MAX_PAGE)
        page = await store.read(partial(lists.charge_point_page, after=after, limit=limit))
        rows = page.rows
        quarantined = {q["charge_point_id"] for q in await store.read(security_records.list_quarantines)}
        for row in rows:
            row["connected"] = row["id"] in gateway.connections
            row["quarantined"] = row["id"] in quarantined  # issue 5
        return paged(request, rows, lists.CHARGE_POINTS, page)

    async def add_cp(request: web.Request) -> web.Response:
        new = await body_of(request, NewChargePoint)
        if not gateway_identity_ok(new.id):
            raise Problem(422, "invalid-identity", "1 to 48 characters of A-Z a-z 0-9 . _ - : * + = @ |")
        password_hash = None
        if new.security_profile in (1, 2):
            if new.password is None:
                raise Problem(422, "password-required", "profiles 1 and 2 need a password")
            try:
                check_policy(new.password)
            except PasswordPolicyError as exc:
                raise Problem(422, "weak-password", str(exc)) from None
            password_hash = hash_password(new.password)
        if await store.read(partial(repo.get_charge_point, cp_id=new.id)) is not None:
            raise Problem(409, "exists", f"charge point {new.id} already exists")
        await store.write(partial(repo.add_charge_point, cp_id=new.id, registration=new.registration,
                                  security_profile=new.security_profile, password_hash=password_hash,
                                  certificate_fingerprint=new.certificate_fingerprint, now=clock.now()))
        return reply(await store.read(partial(repo.charge_point_detail, cp_id=new.id)), status=201)

    async def get_cp(request: web.Request) -> web.Response:
        detail = await store.read(partial(repo.charge_point_detail, cp_id=cp_id(request)))
        if detail is None:
            raise Problem(404, "not-found", f"no charge point {cp_id(request)}")
        connection = gateway.connections.get(cp_id(request))
        detail["connected"] = connection is not None
        # the live connection's OCPP version (ocpp_version: the last connection's, stored)
        detail["connection_ocpp_version"] = None if connection is None else connection.session.version
        detail["quarantined"] = await store.read(partial(security_records.active_quarantine,  # issue 5
                                                         cp_id=cp_id(request))) is not None
        return reply(detail)

    async def set_registration(request: web.Request) -> web.Response:
        change = await body_of(request, RegistrationChange)
        if not await gateway.set_registration(cp_id(request), change.registration):
            raise Problem(404, "not-found", f"no charge point {cp_id(request)}")
        return reply({"id": cp_id(request), "registration": change.registration})

    async def set_security_profile(request: web.Request) -> web.Response:
        change = await body_of(request, SecurityProfileChange)
        try:
            record = await gateway.set_security_profile(
                cp_id(request), change.security_profile, password=change.password,
                certificate_fingerprint=change.certificate_fingerprint, allow_downgrade=change.allow_downgrade,
                requested_by=request.get(PRINCIPAL))
        except CommandError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        return reply({"id": record.id, "security_profile": record.security_profile,
                      "certificate_fingerprint": record.certificate_fingerprint})

    async def set_trace(request: web.Request) -> web.Response:
        """Logging every frame of a charge point (battery data included) is audited, like reading them."""
        change = await body_of(request, TraceChange)
        try:
            traced = await gateway.set_trace(cp_id(request), change.minutes)
        except CommandError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        await store.write(partial(audit.append, actor=request.get(PRINCIPAL) or "?", action="charge_point.trace",
                                  target=traced["id"], detail={"minutes": change.minutes},
                                  now=clock.now()))
        return reply(traced)

    async def rotate_password(request: web.Request) -> web.Response:
        try:
            row = await gateway.rotate_password(cp_id(request), requested_by=request.get(PRINCIPAL))
        except CommandError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        return reply(row)

    async def history(request: web.Request) -> web.Response:
        limit, after = page_request(request, lists.STATUS_HISTORY, 100)
        page = await store.read(partial(lists.status_history_page, cp_id=cp_id(request), after=after, limit=limit))
        return paged(request, page.rows, lists.STATUS_HISTORY, page)

    async def cp_meter_values(request: web.Request) -> web.Response:
        tx = int_query(request, "transaction_id", high=2**31 - 1)  # an OCPP 1.6 transaction id is 32-bit
        limit, after = page_request(request, lists.METER_VALUES, 500)
        page = await store.read(partial(lists.meter_value_page, cp_id=cp_id(request), transaction_id=tx,
                                        after=after, limit=limit))
        return paged(request, page.rows, lists.METER_VALUES, page)

    async def cp_messages(request: web.Request) -> web.Response:
        limit, after = page_request(request, lists.MESSAGES, 100)
        page = await store.read(partial(lists.message_page, cp_id=cp_id(request), after=after, limit=limit))
        return paged(request, page.rows, lists.MESSAGES, page)

    async def cp_commands(request: web.Request) -> web.Response:
        limit, after = page_request(request, lists.COMMANDS, 100)
        page = await store.read(partial(lists.command_page, cp_id=cp_id(request), after=after, limit=limit))
        return paged(request, page.rows, lists.COMMANDS, page)

    async def send_command(request: web.Request) -> web.Response:
        """``?wait=false``: 202 once the command is stored, Location to follow it."""
        payload = await json_object(request)
        timeout = number_query(request, "timeout", low=0.1, high=MAX_COMMAND_TIMEOUT)
        wait = bool_query(request, "wait") is not False
        if request.match_info["action"] == CUSTOMER_INFORMATION:  # a customer's data: audited as the member route
            await store.write(partial(
                audit.append, actor=request.get(PRINCIPAL) or "?", action=CUSTOMER_INFORMATION_REQUESTED,
                target=f"cp_id={cp_id(request)}", now=clock.now(),
                detail={"raw": True, **{k: payload.get(k) for k in ("requestId", "report", "clear")}}))
        sending = partial(gateway.send_command, cp_id(request), request.match_info["action"], payload,
                          requested_by=request.get(PRINCIPAL), timeout=timeout, wait=wait)
        try:  # a raw ReserveNow / CancelReservation is kept in the reservations table too (issue 20)
            row = await raw_reservations.send(gateway, cp_id(request), request.match_info["action"], payload,
                                              request.get(PRINCIPAL), sending)
        except CommandError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        if wait:
            return reply(row)
        response = reply(row, 202)
        response.headers["Location"] = f"/api/v1/charge-points/{row['charge_point_id']}/commands/{row['id']}"
        return response

    async def get_command(request: web.Request) -> web.Response:
        text = request.match_info["command_id"]
        known = re.fullmatch(r"[0-9]{1,18}", text) is not None  # a bigint, ASCII digits only
        row = await store.read(partial(repo.get_command, command_id=int(text))) if known else None
        if row is None or row["charge_point_id"] != cp_id(request):
            raise Problem(404, "unknown-command", f"no command {text} of {cp_id(request)}")
        return reply(row)

    async def list_tags(request: web.Request) -> web.Response:
        limit, after = page_request(request, lists.ID_TAGS, MAX_PAGE)
        page = await store.read(partial(lists.id_tag_page, after=after, limit=limit))
        return paged(request, page.rows, lists.ID_TAGS, page)

    async def put_tag(request: web.Request) -> web.Response:
        tag = request.match_info["id_tag"]
        if not valid_id_token(tag):
            raise Problem(422, "invalid-id-tag", f"an id token has 1 to {MAX_ID_TOKEN} printable characters "
                          "(OCPP 2.0.1; 1.6's idTag: 20), no outer spaces")
        change = await body_of(request, IdTagChange)
        await store.write(partial(repo.upsert_id_tag, id_tag=tag, status=change.status,
                                  expiry_date=change.expiry_date, parent_id_tag=change.parent_id_tag,
                                  now=clock.now()))
        return reply({"id_tag": tag, "status": change.status})

    async def security_events(request: web.Request) -> web.Response:
        limit, after = page_request(request, lists.SECURITY_EVENTS, 200)
        page = await store.read(partial(lists.security_event_page, after=after, limit=limit))
        return paged(request, page.rows, lists.SECURITY_EVENTS, page)

    routes = [
        Route("GET", "/api/v1/health", health, "Liveness and version", None, tag="system", returns=m.Health),
        Route("GET", "/api/v1/bus", bus_stats, "Event bus consumers: queue depth, high water, waits",
              READ_ROLES, tag="system", returns=m.BusStats),
        Route("GET", "/api/v1/clock", clock_now, "voltlib's clock: now, factor (simulated seconds per wall second), "
              "origin and wall_start (Unix seconds), enough for a simulator to compute the same time",
              None, tag="system", returns=m.ClockNow),
        Route("GET", "/api/v1/charge-points", list_cps, "List charge points", READ_ROLES,
              returns=list[m.ChargePoint], paged=True),  # type: ignore[valid-type]
        Route("POST", "/api/v1/charge-points", add_cp, "Register a charge point", WRITE_ROLES, NewChargePoint,
              returns=m.row_model(tables.charge_points, "NewChargePointRow", exclude=repo.SECRETS,
                                  extra=(("connectors", list[m.Connector]),)),  # type: ignore[valid-type]
              status=201),
        Route("GET", "/api/v1/charge-points/{cp_id}", get_cp, "A charge point and its connectors", READ_ROLES,
              returns=m.ChargePointDetail),
        Route("POST", "/api/v1/charge-points/{cp_id}/registration", set_registration,
              "Accept, hold (Pending) or reject a charge point", WRITE_ROLES, RegistrationChange,
              returns=m.RegistrationSet),
        Route("POST", "/api/v1/charge-points/{cp_id}/security-profile", set_security_profile,
              "Set the security profile (and password or pinned certificate) required from the next connection on",
              frozenset({"admin", "security"}), SecurityProfileChange, returns=m.SecurityProfileSet),
        Route("POST", "/api/v1/charge-points/{cp_id}/rotate-password", rotate_password,
              "Send a new random AuthorizationKey (ChangeConfiguration); its hash is stored if the charge point "
              "accepts it", frozenset({"admin", "operator", "security"}), returns=m.PasswordRotation),
        Route("POST", "/api/v1/charge-points/{cp_id}/trace", set_trace,
              "Log every frame of this charge point in full for some minutes (0 stops), whatever message_log says",
              frozenset({"admin", "operator", "security"}), TraceChange, returns=m.TraceSet),
        Route("GET", "/api/v1/charge-points/{cp_id}/status-history", history, "Connector status history",
              READ_ROLES, returns=list[m.StatusChange], paged=True),  # type: ignore[valid-type]
        Route("GET", "/api/v1/charge-points/{cp_id}/meter-values", cp_meter_values,
              "Meter values (all measurands), newest first", READ_ROLES, returns=list[m.MeterValue], paged=True,
              query=(Query("transaction_id", int, "only this transaction's"),)),
        Route("GET", "/api/v1/charge-points/{cp_id}/messages", cp_messages, "Raw OCPP message log",
              frozenset({"admin", "security"}), returns=list[m.OcppExchange], paged=True),  # type: ignore[valid-type]
        Route("GET", "/api/v1/charge-points/{cp_id}/commands", cp_commands, "Commands sent and their outcome",
              READ_ROLES, returns=list[m.Command], paged=True),  # type: ignore[valid-type]
        Route("POST", "/api/v1/charge-points/{cp_id}/commands/{action}", send_command,
              "Send an OCPP command in the charge point's version (body = the request payload) and wait for "
              "its answer; ?wait=false: 202 at once, follow the Location", WRITE_ROLES, returns=m.Command,
              query=(Query("timeout", float, f"seconds to wait for the answer (0.1 to {MAX_COMMAND_TIMEOUT:g})"),
                     Query("wait", bool, "false: answer 202 once stored, the command goes on (default true)"))),
        Route("GET", "/api/v1/charge-points/{cp_id}/commands/{command_id}", get_command,
              "One command and its state: queued, answered, failed, timeout, lost, offline or refused", READ_ROLES,
              returns=m.Command),
        Route("GET", "/api/v1/id-tags", list_tags, "List id tags", READ_ROLES, tag="id tags",
              returns=list[m.IdTag], paged=True),  # type: ignore[valid-type]
        Route("PUT", "/api/v1/id-tags/{id_tag}", put_tag, "Create or change an id tag", WRITE_ROLES, IdTagChange,
              tag="id tags", returns=m.IdTagSet),
        Route("GET", "/api/v1/security-events", security_events, "Security events", frozenset({"admin", "security"}),
              tag="security", returns=list[m.SecurityEvent], paged=True),  # type: ignore[valid-type]
    ]
    routes += transaction_routes(gateway)  # issue 20
    routes += reservation_routes(gateway)
    routes += id_tag_routes(gateway)
    routes += security_api.build_routes(gateway)  # issue 5
    routes.extend(extra or [])
    document: list[dict[str, Any]] = []  # built once every route, this one included, is declared

    async def openapi_json(request: web.Request) -> web.Response:
        return reply(document[0])

    routes.append(Route("GET", "/api/v1/openapi.json", openapi_json, "This document (OpenAPI 3.1)", None,
                        tag="system", returns=m.OpenApiDocument))
    document.append(openapi(routes, __version__))
    return routes


def gateway_identity_ok(identity: str) -> bool:
    return IDENTITY.match(identity) is not None


def install(app: web.Application, gateway: Gateway, extra: list[Route] | None = None) -> None:
    for route in build_routes(gateway, extra):
        app.router.add_route(route.method, route.path, authenticated(gateway.services.store, route.roles,
                                                                     security_api.audited(gateway, route)))
