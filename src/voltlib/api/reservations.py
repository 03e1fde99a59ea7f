"""Reservations as a resource (issue 20): an operator reserves a connector for an id tag (voltlib
chooses the reservation id, ReserveNow goes out in the charge point's OCPP version through the
command port), follows every reservation through its life (car sharing's holds included, marked by
their origin) and cancels one (CancelReservation). docs/operations.md "Reservations"."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any

import msgspec
from aiohttp import web
from sqlalchemy import Connection

from voltlib.api import models as m
from voltlib.api.framework import (
    PRINCIPAL,
    READ_ROLES,
    WRITE_ROLES,
    Problem,
    Query,
    Route,
    body_of,
    reply,
    whole_number,
)
from voltlib.api.paging import page_request, paged
from voltlib.domain import commands as cmd
from voltlib.gateway.gateway import Gateway
from voltlib.ocpp.v16.messages import check_utc_range
from voltlib.store import repo
from voltlib.store import reservations as rs

TAG = "reservations"
DEFAULT_PAGE = 100
DEFAULT_MINUTES = 30
MAX_HOLD = timedelta(days=1)  # a reservation is for someone on their way, not a standing allocation
ID_TAG_LENGTH = {"1.6": 20, "2.0.1": 36}  # 1.6 idTag, 2.0.1 idToken's value


class NewReservation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Hold ``connector_id`` (0: any connector of the charge point) for ``id_tag`` until ``expires_at``
    or for ``minutes`` (default 30); at most a day ahead."""

    id_tag: Annotated[str, msgspec.Meta(min_length=1, max_length=36)]
    connector_id: Annotated[int, msgspec.Meta(ge=0, le=rs.MAX_RESERVATION_ID)] = 0
    expires_at: datetime | None = None
    minutes: Annotated[int, msgspec.Meta(ge=1, le=24 * 60)] | None = None

    def __post_init__(self) -> None:
        if self.expires_at is not None:
            if self.minutes is not None:
                raise ValueError("give expires_at or minutes, not both")
            if self.expires_at.tzinfo is None:
                raise ValueError("expires_at needs its UTC offset")
            check_utc_range("expires_at", self.expires_at)


def _create(conn: Connection, cp_id: str, order: NewReservation, expires_at: datetime, by: str,
            now: datetime) -> int:
    reservation_id = rs.new_id(conn)
    rs.insert(conn, reservation_id=reservation_id, cp_id=cp_id, connector_id=order.connector_id,
              id_tag=order.id_tag, expires_at=expires_at, origin="api", requested_by=by, now=now)
    return reservation_id


def reservation_routes(gateway: Gateway) -> list[Route]:
    s = gateway.services
    store, clock = s.store, s.clock

    async def one_of(request: web.Request) -> dict[str, Any]:
        text = request.match_info["reservation_id"]
        number = whole_number(text, 0, rs.MAX_RESERVATION_ID)
        row = None if number is None else await store.read(partial(rs.get, reservation_id=number, now=clock.now()))
        if row is None:
            raise Problem(404, "not-found", f"no reservation {text}")
        return row

    async def listing(request: web.Request, charge_point: str | None) -> web.Response:
        where = rs.ReservationFilter(
            charge_point=charge_point or request.query.get("charge_point") or None,
            id_tag=request.query.get("id_tag") or None, status=_choice(request, "status", rs.STATUSES),
            origin=_choice(request, "origin", rs.ORIGINS))
        limit, after = page_request(request, rs.ORDER, DEFAULT_PAGE)
        page = await store.read(partial(rs.page, where=where, now=clock.now(), after=after, limit=limit))
        return paged(request, page.rows, rs.ORDER, page)

    async def all_reservations(request: web.Request) -> web.Response:
        return await listing(request, None)

    async def cp_reservations(request: web.Request) -> web.Response:
        return await listing(request, request.match_info["cp_id"])

    async def one(request: web.Request) -> web.Response:
        return reply(await one_of(request))

    async def make(request: web.Request) -> web.Response:
        cp_id = request.match_info["cp_id"]
        order = await body_of(request, NewReservation)
        record = await store.read(partial(repo.get_charge_point, cp_id=cp_id))
        if record is None:
            raise Problem(404, "not-found", f"no charge point {cp_id}")
        version = await gateway.commands.version_of(cp_id)
        if len(order.id_tag) > ID_TAG_LENGTH.get(version, 20):
            raise Problem(422, "invalid-id-tag", f"an OCPP {version} id tag has at most {ID_TAG_LENGTH[version]} "
                          "characters")
        now = clock.now()
        expires_at = order.expires_at or now + timedelta(minutes=order.minutes or DEFAULT_MINUTES)
        if not now < expires_at <= now + MAX_HOLD:
            raise Problem(422, "invalid-expiry", f"expires_at must be after now and at most {MAX_HOLD} ahead")
        by = request.get(PRINCIPAL) or "?"
        reservation_id = await store.write(partial(_create, cp_id=cp_id, order=order, expires_at=expires_at, by=by,
                                                   now=now))
        try:
            outcome = await gateway.commands.send(cp_id, cmd.Reserve(order.connector_id, reservation_id, order.id_tag,
                                                                     expires_at), requested_by=by)
        except cmd.CommandRefused as exc:  # e.g. in quarantine: kept as Failed, the refusal told
            await store.write(partial(rs.answered, reservation_id=reservation_id, state="refused", status=None,
                                      now=clock.now()))
            raise Problem(exc.status, exc.title, exc.detail, reservation_id=reservation_id) from None
        await store.write(partial(rs.answered, reservation_id=reservation_id, state=outcome.state,
                                  status=outcome.status, now=clock.now()))
        row = await store.read(partial(rs.get, reservation_id=reservation_id, now=clock.now()))
        response = reply(row, 201)
        response.headers["Location"] = f"/api/v1/reservations/{reservation_id}"
        return response

    async def cancel(request: web.Request) -> web.Response:
        row = await one_of(request)
        if row["origin"] != "api":
            raise Problem(409, "car-sharing-hold", "a car-sharing hold ends with its rental (the member's "
                          "cancellation, or POST /api/v1/rentals/{id}/end)", reservation=row)
        if row["status"] not in rs.OPEN:
            raise Problem(409, "not-open", f"reservation {row['id']} is {row['status']}", reservation=row)
        by = request.get(PRINCIPAL) or "?"
        try:
            outcome = await gateway.commands.send(row["charge_point_id"], cmd.CancelReservation(row["id"]),
                                                  requested_by=by)
        except cmd.CommandRefused as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        if outcome.state != "answered":
            raise Problem(502, "not-cancelled", f"CancelReservation {outcome.state}: the charge point may still hold "
                          "it (until its expiry)", command=dict(outcome.record))
        await store.write(partial(rs.end, reservation_id=row["id"], status="Cancelled", now=clock.now(),
                                  detail=rs.cancel_detail(by, outcome.status)))
        return reply(await store.read(partial(rs.get, reservation_id=row["id"], now=clock.now())))

    declared = (Query("charge_point", str, "only this charge point's"), Query("id_tag", str, "only this id tag's"),
                Query("status", rs.STATUSES, "as of now (an open one past its expiry is Expired)"),
                Query("origin", rs.ORIGINS, "who asked for it: the operator API or car sharing"))
    many = list[m.Reservation]  # type: ignore[valid-type]
    return [
        Route("GET", "/api/v1/reservations", all_reservations, "Reservations (the API's and car sharing's), newest "
              "first", READ_ROLES, tag=TAG, returns=many, paged=True, query=declared),
        Route("GET", "/api/v1/reservations/{reservation_id}", one, "One reservation and its status", READ_ROLES,
              tag=TAG, returns=m.Reservation),
        Route("DELETE", "/api/v1/reservations/{reservation_id}", cancel,
              "Cancel an open reservation made through the API (CancelReservation)", WRITE_ROLES, tag=TAG,
              returns=m.Reservation),
        Route("GET", "/api/v1/charge-points/{cp_id}/reservations", cp_reservations,
              "A charge point's reservations, newest first (the same filters but charge_point)", READ_ROLES, tag=TAG,
              returns=many, paged=True, query=declared[1:]),
        Route("POST", "/api/v1/charge-points/{cp_id}/reservations", make,
              "Reserve a connector for an id tag: voltlib chooses the reservation id and sends ReserveNow in the "
              "charge point's version; the answer is the reservation (Accepted, or what the charge point said)",
              WRITE_ROLES, NewReservation, tag=TAG, returns=m.Reservation, status=201),
    ]


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name) or None
    if value is not None and value not in allowed:
        raise Problem(400, "invalid-query", f"{name} is one of {', '.join(allowed)}", parameter=name)
    return value
