"""Car-sharing endpoints: members (sign up, subscribe, reserve, rentals, invoices) and operators."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any

import msgspec
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from voltlib.api import models as m
from voltlib.api.framework import (
    MEMBER,
    MEMBER_ROLES,
    OPERATOR_ROLES,
    PRINCIPAL,
    READ_ROLES,
    Problem,
    Query,
    Route,
    body_of,
    reply,
)
from voltlib.api.paging import MAX_PAGE, page_request, paged
from voltlib.domain.money import Money
from voltlib.energy.accounting import rental_energy
from voltlib.security.credentials import hash_api_token, new_api_token
from voltlib.sharing import store as ss
from voltlib.sharing.codec import rental_from_dict, rental_to_dict
from voltlib.sharing.eligibility import car_range_km, subscription_until
from voltlib.sharing.service import SharingError, SharingService
from voltlib.store import lists, repo
from voltlib.store.pages import cut

TAG = "car sharing"
DEFAULT_STATIONS = 50  # a page of stations (1,119 in Paris: the whole city is two pages of 1,000)
MONTH = Query("month", str, "YYYY-MM: that month's statement (UTC)")


class SignUp(msgspec.Struct, kw_only=True):
    city: str
    name: str
    email: str
    licence_number: str
    licence_expiry: datetime


class MemberChange(msgspec.Struct, kw_only=True):
    licence_verified: bool | None = None
    payment_ok: bool | None = None


class Subscribe(msgspec.Struct, kw_only=True):
    plan_code: str


class CarReservation(msgspec.Struct, kw_only=True):
    car_id: str | None = None
    station_id: str | None = None  # any rentable car docked there
    trip_km: Annotated[float, msgspec.Meta(gt=0, le=500)] | None = None  # the car must have 1.25 x this range


class BayReservation(msgspec.Struct, kw_only=True):
    station_id: str


class ForceEnd(msgspec.Struct, kw_only=True):
    reason: str
    bill: bool = True


def _problem(exc: SharingError) -> Problem:
    return Problem(exc.status, exc.code, exc.detail, **exc.extra)


def _money(minor: int, currency: str) -> str:
    return str(Money(minor, currency).amount())


def sharing_routes(sharing: SharingService) -> list[Route]:
    s = sharing.services
    store, clock = s.store, s.clock

    def me(request: web.Request) -> str:
        member_id = request.get(MEMBER)
        if not isinstance(member_id, str):
            raise Problem(403, "not-a-member", "this endpoint needs a member token")
        return member_id

    async def with_energy(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rentals as the API shows them, each with its ``energy`` (driven and charged kWh; null
        for a reservation whose car never left)."""
        energy = await store.read(partial(rental_energy, found=[rental_from_dict(r) for r in rows]))
        return [{**_rental(r), "energy": energy.get(r["rental_id"])} for r in rows]

    async def guarded(work: Any) -> Any:
        try:
            return await work
        except SharingError as exc:
            raise _problem(exc) from None

    # -- public --

    async def sign_up(request: web.Request) -> web.Response:
        body = await body_of(request, SignUp)
        if body.licence_expiry.tzinfo is None:
            raise Problem(422, "invalid-body", "licence_expiry needs a time zone")
        if "@" not in body.email or len(body.email) > 254:
            raise Problem(422, "invalid-email", "not an e-mail address")
        if await store.read(partial(ss.get_city, code=body.city)) is None:
            raise Problem(422, "unknown-city", f"no city {body.city!r}")
        member_id, badge, token = f"m-{secrets.token_hex(6)}", secrets.token_hex(8).upper(), new_api_token()
        member = {"id": member_id, "city": body.city, "name": body.name[:128], "email": body.email.lower(),
                  "licence_number": body.licence_number[:32], "licence_expiry": body.licence_expiry,
                  "licence_verified": False, "payment_ok": True, "plan_code": None, "subscribed_until": None}
        now = clock.now()

        def create(conn: Any) -> None:
            ss.create_member(conn, member, badge, now)
            repo.add_api_token(conn, f"member:{member_id}", "member", hash_api_token(token), now, member_id)

        try:
            await store.write(create)
        except IntegrityError:
            raise Problem(409, "email-taken", "a member with this e-mail exists") from None
        return reply({"member_id": member_id, "badge": badge, "token": token,
                      "note": "the token is shown once; the licence is verified by an operator"}, 201)

    async def list_stations(request: web.Request) -> web.Response:
        city = request.query.get("city")
        rows = await store.read(partial(ss.station_availability, city=city))
        near = request.query.get("near")
        if near:
            try:
                lat, lon = (float(x) for x in near.split(","))
            except ValueError:
                raise Problem(400, "invalid-near", "near=LAT,LON", parameter="near") from None
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):  # NaN and infinities too
                raise Problem(400, "invalid-near", "near=LAT,LON, a latitude from -90 to 90 and a longitude from "
                                                   "-180 to 180", parameter="near")
            for row in rows:
                row["distance_m"] = round(ss.distance_m(lat, lon, row["latitude"], row["longitude"]))
            rows.sort(key=lambda r: r["distance_m"])
        if request.query.get("with") == "cars":
            rows = [r for r in rows if r["cars"] > 0]
        elif request.query.get("with") == "bays":
            rows = [r for r in rows if r["free_bays"] > 0]
        order = lists.NEAREST if near else lists.STATIONS
        limit, after = page_request(request, order, DEFAULT_STATIONS)
        page = cut(rows, order, after, limit)
        return paged(request, page.rows, order, page)

    async def station(request: web.Request) -> web.Response:
        station_id = request.match_info["station_id"]
        rows = await store.read(partial(ss.station_availability, station_id=station_id))
        found = rows[0] if rows else None
        if found is None:
            raise Problem(404, "unknown-station", f"no station {station_id}")
        found["bays_detail"] = await store.read(partial(ss.station_bays, station_id=station_id))
        cars = await store.read(partial(ss.vehicles_at_station, station_id=station_id))
        found["vehicles"] = [_vehicle(c) for c in cars]
        return reply(found)

    # -- member --

    async def my_profile(request: web.Request) -> web.Response:
        member = await store.read(partial(ss.get_member, member_id=me(request)))
        return reply(member)

    async def subscribe(request: web.Request) -> web.Response:
        member_id, body = me(request), await body_of(request, Subscribe)
        member = await store.read(partial(ss.get_member, member_id=member_id))
        assert member is not None
        city = await store.read(partial(ss.get_city, code=member["city"]))
        assert city is not None
        plan = city.plans.get(body.plan_code)
        if plan is None:
            raise Problem(422, "unknown-plan", f"plans here: {', '.join(sorted(city.plans))}")
        now = clock.now()

        def op(conn: Any) -> None:
            until = subscription_until(now, plan.period_days)
            ss.update_member(conn, member_id, plan_code=plan.code, subscribed_until=until)
            ss.invoice_subscription(conn, member_id, plan, now)

        await store.write(op)
        return reply(await store.read(partial(ss.get_member, member_id=member_id)))

    async def reserve_car(request: web.Request) -> web.Response:
        body = await body_of(request, CarReservation)
        if (body.car_id is None) == (body.station_id is None):
            raise Problem(422, "invalid-body", "give car_id or station_id")
        rental = await guarded(sharing.reserve_car(me(request), car_id=body.car_id, station_id=body.station_id,
                                                   trip_km=body.trip_km))
        return reply(_rental(rental_to_dict(rental)), 201)

    async def reserve_bay(request: web.Request) -> web.Response:
        body = await body_of(request, BayReservation)
        rental = await guarded(sharing.reserve_bay(me(request), body.station_id))
        return reply(_rental(rental_to_dict(rental)), 201)

    async def cancel(request: web.Request) -> web.Response:
        rental = await guarded(sharing.cancel(me(request)))
        return reply(_rental(rental_to_dict(rental)))

    async def current(request: web.Request) -> web.Response:
        found = await store.read(partial(ss.live_rental_of_member, member_id=me(request)))
        return reply({"rental": None if found is None else _rental(rental_to_dict(found[0]))})

    async def rental_list(request: web.Request, member_id: str | None) -> web.Response:
        limit, after = page_request(request, lists.RENTALS, 200)
        page = await store.read(partial(lists.rental_page, member_id=member_id, after=after, limit=limit))
        return paged(request, await with_energy(page.rows), lists.RENTALS, page)

    async def statement(request: web.Request, member_id: str | None) -> web.Response:
        month = request.query.get("month") or None
        limit, after = page_request(request, lists.INVOICES, 500)
        page, totals = await store.read(partial(lists.invoice_page, member_id=member_id, month=_month(month),
                                                after=after, limit=limit))
        return paged(request, _statement(page.rows, totals, month), lists.INVOICES, page)

    async def my_rentals(request: web.Request) -> web.Response:
        return await rental_list(request, me(request))

    async def my_invoices(request: web.Request) -> web.Response:
        return await statement(request, me(request))

    # -- operator --

    async def list_cities(request: web.Request) -> web.Response:
        return reply(await store.read(ss.list_cities))

    async def list_members(request: web.Request) -> web.Response:
        limit, after = page_request(request, lists.MEMBERS, 500)
        page = await store.read(partial(lists.member_page, after=after, limit=limit))
        return paged(request, page.rows, lists.MEMBERS, page)

    async def get_member(request: web.Request) -> web.Response:
        member = await store.read(partial(ss.get_member, member_id=request.match_info["member_id"]))
        if member is None:
            raise Problem(404, "unknown-member", "no such member")
        return reply(member)

    async def change_member(request: web.Request) -> web.Response:
        member_id, body = request.match_info["member_id"], await body_of(request, MemberChange)
        values = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
        if not values:
            raise Problem(422, "invalid-body", "nothing to change")
        if not await store.write(partial(ss.update_member, member_id=member_id, **values)):
            raise Problem(404, "unknown-member", "no such member")
        return reply(await store.read(partial(ss.get_member, member_id=member_id)))

    async def list_vehicles(request: web.Request) -> web.Response:
        limit, after = page_request(request, lists.VEHICLES, MAX_PAGE)
        page = await store.read(partial(lists.vehicle_page, city=request.query.get("city") or None, after=after,
                                        limit=limit))
        return paged(request, [_vehicle(r) for r in page.rows], lists.VEHICLES, page)

    async def list_rentals(request: web.Request) -> web.Response:
        return await rental_list(request, request.query.get("member") or None)

    async def get_rental(request: web.Request) -> web.Response:
        found = await store.read(partial(ss.load_rental, rental_id=request.match_info["rental_id"]))
        if found is None:
            raise Problem(404, "unknown-rental", "no such rental")
        return reply((await with_energy([rental_to_dict(found[0])]))[0])

    async def force_end(request: web.Request) -> web.Response:
        body = await body_of(request, ForceEnd)
        rental = await guarded(sharing.force_end(request.match_info["rental_id"], request[PRINCIPAL], body.reason,
                                                 body.bill))
        return reply(_rental(rental_to_dict(rental)))

    async def invoices(request: web.Request) -> web.Response:
        return await statement(request, request.query.get("member") or None)

    return [
        Route("POST", "/api/v1/members", sign_up, "Sign up: returns the member id, a badge and a member token "
              "(shown once). The licence must then be verified by an operator", None, SignUp, tag=TAG,
              returns=m.SignedUp, status=201),
        Route("GET", "/api/v1/stations", list_stations, "Stations with cars docked and free bays; "
              "by id, or nearest first with ?near=LAT,LON (?city=, ?with=cars|bays)", None, tag=TAG,
              query=(Query("city", str, "only this city's"), Query("near", str, "LAT,LON: nearest first"),
                     Query("with", ("cars", "bays"), "only those with a car docked, or a free bay")),
              returns=list[m.Station], paged=True),  # type: ignore[valid-type]
        Route("GET", "/api/v1/stations/{station_id}", station, "One station: bays, cars with state of charge and "
              "range", None, tag=TAG, returns=m.StationDetail),
        Route("GET", "/api/v1/me", my_profile, "The member's profile and badges", MEMBER_ROLES, tag=TAG,
              returns=m.MemberDetail),
        Route("POST", "/api/v1/me/subscription", subscribe, "Subscribe to a plan of the member's city (invoiced)",
              MEMBER_ROLES, Subscribe, tag=TAG, returns=m.MemberDetail),
        Route("POST", "/api/v1/me/reservation", reserve_car, "Reserve a car (by id, or any rentable car at a "
              "station) for the city's car hold time", MEMBER_ROLES, CarReservation, tag=TAG, returns=m.Rental,
              status=201),
        Route("POST", "/api/v1/me/reservation/bay", reserve_bay, "Reserve a free bay at the destination station",
              MEMBER_ROLES, BayReservation, tag=TAG, returns=m.Rental, status=201),
        Route("DELETE", "/api/v1/me/reservation", cancel, "Cancel the reservation", MEMBER_ROLES, tag=TAG,
              returns=m.Rental),
        Route("GET", "/api/v1/me/rental", current, "The current reservation or rental, or null", MEMBER_ROLES,
              tag=TAG, returns=m.CurrentRental),
        Route("GET", "/api/v1/me/rentals", my_rentals, "Rental history, with kWh driven and charged per rental",
              MEMBER_ROLES, tag=TAG, paged=True, returns=list[m.Rental]),
        Route("GET", "/api/v1/me/invoices", my_invoices, "Invoices; ?month=YYYY-MM gives that month's statement",
              MEMBER_ROLES, tag=TAG, returns=m.Statement, paged=True, query=(MONTH,)),
        Route("GET", "/api/v1/cities", list_cities, "Cities, their plans and rental policy", READ_ROLES, tag=TAG,
              returns=list[m.City],  # type: ignore[valid-type]
              unpaged="the cities an operator configured (voltlib city add): a handful"),
        Route("GET", "/api/v1/members", list_members, "Members, in order of sign-up", OPERATOR_ROLES, tag=TAG,
              returns=list[m.Member], paged=True),  # type: ignore[valid-type]
        Route("GET", "/api/v1/members/{member_id}", get_member, "One member", OPERATOR_ROLES, tag=TAG,
              returns=m.MemberDetail),
        Route("PATCH", "/api/v1/members/{member_id}", change_member, "Verify a licence, set payment standing",
              OPERATOR_ROLES, MemberChange, tag=TAG, returns=m.MemberDetail),
        Route("GET", "/api/v1/vehicles", list_vehicles, "Vehicles with dock, state of charge and range; ?city=",
              READ_ROLES, tag=TAG, returns=list[m.Vehicle], paged=True,  # type: ignore[valid-type]
              query=(Query("city"),)),
        Route("GET", "/api/v1/rentals", list_rentals, "Rentals and reservations, newest first, with kWh driven "
              "and charged; ?member=",
              OPERATOR_ROLES, tag=TAG, paged=True, query=(Query("member", str, "only this member's"),),
              returns=list[m.Rental]),
        Route("GET", "/api/v1/rentals/{rental_id}", get_rental, "One rental, with kWh driven and charged",
              OPERATOR_ROLES, tag=TAG, returns=m.Rental),
        Route("POST", "/api/v1/rentals/{rental_id}/force-end", force_end, "End a rental (billed up to now unless "
              "bill is false); raises an alert", OPERATOR_ROLES, ForceEnd, tag=TAG, returns=m.Rental),
        Route("GET", "/api/v1/invoices", invoices, "Invoices; ?member=, ?month=YYYY-MM", OPERATOR_ROLES, tag=TAG,
              returns=m.Statement, paged=True, query=(Query("member", str, "only this member's"), MONTH)),
    ]


def _rental(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k not in ("seen", "plan")}
    out["plan_code"] = data["plan"]["code"]
    return out


def _vehicle(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "range_km": None if (km := car_range_km(row)) is None else round(km, 1)}


def _month(month: str | None) -> tuple[datetime, datetime] | None:
    """The UTC bounds of ``YYYY-MM`` (invoices are dated in UTC)."""
    if month is None:
        return None
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise Problem(400, "invalid-month", "month=YYYY-MM", parameter="month") from None
    return start, (start + timedelta(days=32)).replace(day=1)


def _statement(rows: list[dict[str, Any]], totals: list[tuple[str, int]], month: str | None) -> dict[str, Any]:
    """A page of invoices; the totals are of every invoice the filter selects, across all pages."""
    for row in rows:
        row["total"] = _money(row["total_minor"], row["currency"])
    return {"month": month, "invoices": rows,
            "totals": [{"currency": c, "total_minor": v, "total": _money(v, c)} for c, v in totals]}
