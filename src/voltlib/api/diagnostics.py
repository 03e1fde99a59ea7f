"""OCPP 2.0.1 diagnostics and display messages in the API (issue 17, blocks N and O).

Read what stations reported: ``GET /api/v1/charge-points/{cp_id}/events`` (NotifyEvent, newest
first), ``.../monitors`` (NotifyMonitoringReport and accepted SetVariableMonitoring),
``.../display-messages`` and ``.../customer-information/{request_id}`` (the NotifyCustomerInformation
parts of one request: personal data, so each read is in the audit log). A member's data request or
clearance at a station: ``POST /api/v1/members/{member_id}/customer-information`` sends
CustomerInformation with the member's badge and identifier, audited before it is sent. The
monitoring commands themselves (GetLog, SetVariableMonitoring, SetMonitoringBase, SetMonitoringLevel,
GetMonitoringReport, ClearVariableMonitoring, SetDisplayMessage...) are raw 2.0.1 commands
(``POST .../commands/{action}``). docs/operations.md.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import partial
from typing import Any, Literal

import msgspec
from aiohttp import web
from sqlalchemy import Connection, select

from voltlib.api import models
from voltlib.api.framework import (
    PRINCIPAL,
    READ_ROLES,
    WRITE_ROLES,
    Problem,
    Route,
    body_of,
    reply,
    whole_number,
)
from voltlib.api.paging import page_request, paged
from voltlib.gateway.gateway import CommandError, Gateway
from voltlib.security import audit
from voltlib.store import diagnostics as dg
from voltlib.store import repo
from voltlib.store.tables import badges, members

MAX_REQUEST_ID = 2**31 - 1
DEFAULT_PAGE = 100  # events a page
BADGE_TYPE = "ISO14443"  # member badges are RFID cards (as the command port's)
CUSTOMER_INFORMATION_REQUESTED = "customer_information.requested"
CUSTOMER_INFORMATION_READ = "customer_information.read"


class CustomerInformationRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    charge_point_id: str
    report: bool = True  # the station sends what it holds of the member (NotifyCustomerInformation)
    clear: bool = False  # the station deletes it
    by: Literal["badge", "member_id"] = "badge"  # the one customer reference sent (N09.FR: only one)


class CustomerInformationSent(msgspec.Struct, kw_only=True):
    request_id: int  # the requestId of the station's NotifyCustomerInformation parts
    command: models.Command  # type: ignore[valid-type]


class StationEvent(msgspec.Struct, kw_only=True):
    """One NotifyEvent eventData (``station_events``); absent instance, EVSE, connector: "" and 0."""

    id: int
    charge_point_id: str
    event_id: int
    at: datetime
    received_at: datetime
    seq_no: int
    trigger: str
    notification_type: str
    component: str
    component_instance: str
    evse_id: int
    connector_id: int
    variable: str
    variable_instance: str
    actual_value: str
    cause: int | None
    tech_code: str | None
    tech_info: str | None
    cleared: bool
    transaction_id: str | None
    variable_monitoring_id: int | None
    security: str | None  # the security event it became (TamperDetectionActivated), if any


class Monitor(msgspec.Struct, kw_only=True):
    id: int
    charge_point_id: str
    monitor_id: int
    component: str
    component_instance: str
    evse_id: int
    connector_id: int
    variable: str
    variable_instance: str
    type: str
    value: float
    severity: int
    transaction: bool
    request_id: int  # 0: from an accepted SetVariableMonitoring
    updated_at: datetime


class DisplayMessage(msgspec.Struct, kw_only=True):
    id: int
    charge_point_id: str
    message_id: int
    priority: str
    state: str | None
    format: str
    language: str | None
    content: str
    evse_id: int | None
    start_at: datetime | None
    end_at: datetime | None
    transaction_id: str | None
    source: str  # set | report
    updated_at: datetime


class CustomerInformationPart(msgspec.Struct, kw_only=True):
    id: int
    charge_point_id: str
    request_id: int
    seq_no: int
    data: str
    tbc: bool
    generated_at: datetime
    received_at: datetime


def _member_badge(conn: Connection, member_id: str) -> str | bool | None:
    """The member's first badge; None when the member has none; False when no such member."""
    if conn.execute(select(members.c.id).where(members.c.id == member_id)).first() is None:
        return False
    return conn.execute(select(badges.c.id_tag).where(badges.c.member_id == member_id)
                        .order_by(badges.c.created_at, badges.c.id_tag).limit(1)).scalar()


def diagnostics_routes(gateway: Gateway) -> list[Route]:
    s = gateway.services
    store = s.store

    async def known(cp_id: str) -> None:
        if await store.read(partial(repo.get_charge_point, cp_id=cp_id)) is None:
            raise Problem(404, "not-found", f"no charge point {cp_id}")

    async def events(request: web.Request) -> web.Response:
        cp_id = request.match_info["cp_id"]
        await known(cp_id)
        limit, after = page_request(request, dg.EVENTS, DEFAULT_PAGE)
        page = await store.read(partial(dg.event_page, cp_id=cp_id, after=after, limit=limit))
        return paged(request, page.rows, dg.EVENTS, page)

    async def monitors(request: web.Request) -> web.Response:
        cp_id = request.match_info["cp_id"]
        await known(cp_id)
        return reply(await store.read(partial(dg.list_monitors, cp_id=cp_id)))

    async def display_messages(request: web.Request) -> web.Response:
        cp_id = request.match_info["cp_id"]
        await known(cp_id)
        return reply(await store.read(partial(dg.list_display_messages, cp_id=cp_id)))

    async def customer_information(request: web.Request) -> web.Response:
        cp_id = request.match_info["cp_id"]
        await known(cp_id)
        request_id = _whole(request.match_info["request_id"])
        actor = request.get(PRINCIPAL) or "?"

        def op(conn: Connection) -> list[dict[str, Any]]:
            audit.append(conn, actor=actor, action=CUSTOMER_INFORMATION_READ,
                         target=f"cp_id={cp_id}/request_id={request_id}", detail={}, now=s.clock.now())
            return dg.read_customer_information(conn, cp_id, request_id)

        return reply(await store.write(op))

    async def request_customer_information(request: web.Request) -> web.Response:
        member_id = request.match_info["member_id"]
        body = await body_of(request, CustomerInformationRequest)
        if not (body.report or body.clear):
            raise Problem(422, "nothing-asked", "ask for a report, a clearance or both")
        cp_id = body.charge_point_id
        await known(cp_id)
        version = await gateway.commands.version_of(cp_id)
        if version != "2.0.1":
            raise Problem(409, "not-ocpp201", f"{cp_id} speaks OCPP {version}: it has no CustomerInformation")
        badge = await store.read(partial(_member_badge, member_id=member_id))
        if badge is False:
            raise Problem(404, "not-found", f"no member {member_id}")
        request_id = secrets.randbelow(MAX_REQUEST_ID) + 1
        payload: dict[str, Any] = {"requestId": request_id, "report": body.report, "clear": body.clear}
        if body.by == "badge" and isinstance(badge, str):
            payload["idToken"] = {"idToken": badge, "type": BADGE_TYPE}
        else:  # a member without a badge is named by voltlib's member id
            payload["customerIdentifier"] = member_id[:64]
        actor = request.get(PRINCIPAL) or "?"
        await store.write(partial(  # audited before it is sent: a clearance cannot be taken back
            audit.append, actor=actor, action=CUSTOMER_INFORMATION_REQUESTED, target=f"member={member_id}",
            detail={"charge_point_id": cp_id, "request_id": request_id, "report": body.report, "clear": body.clear,
                    "by": "badge" if "idToken" in payload else "member_id"},
            now=s.clock.now()))
        try:
            row = await gateway.send_command(cp_id, "CustomerInformation", payload, requested_by=actor)
        except CommandError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        return reply({"request_id": request_id, "command": row})

    return [
        Route("GET", "/api/v1/charge-points/{cp_id}/events", events,
              "Events a 2.0.1 station reported (NotifyEvent), newest first", READ_ROLES,
              returns=list[StationEvent], paged=True),
        Route("GET", "/api/v1/charge-points/{cp_id}/monitors", monitors,
              "The variable monitors a 2.0.1 station reported or accepted", READ_ROLES, returns=list[Monitor],
              unpaged="one row per monitor id the station holds, replaced in place and cleared with it: as many "
                      "as the station has set, never more with time"),
        Route("GET", "/api/v1/charge-points/{cp_id}/display-messages", display_messages,
              "The display messages a 2.0.1 station holds (set by voltlib or reported)", READ_ROLES,
              returns=list[DisplayMessage],
              unpaged="one row per message id the station holds, replaced in place and cleared with it: its "
                      "display's slots"),
        Route("GET", "/api/v1/charge-points/{cp_id}/customer-information/{request_id}", customer_information,
              "What a station reported of a customer for one CustomerInformation request (audited read)",
              READ_ROLES, returns=list[CustomerInformationPart],
              unpaged="the parts of one request (one per seq_no), read whole: the audited read is of the whole "
                      "answer"),
        Route("POST", "/api/v1/members/{member_id}/customer-information", request_customer_information,
              "Ask a 2.0.1 station for what it holds of a member, or to clear it (CustomerInformation; audited)",
              WRITE_ROLES, CustomerInformationRequest, tag="sharing", returns=CustomerInformationSent),
    ]


def _whole(text: str) -> int:
    number = whole_number(text, 0, MAX_REQUEST_ID)  # ASCII digits only ("²".isdigit() is true)
    if number is None:
        raise Problem(404, "not-found", f"no request {text[:40]}")
    return number
