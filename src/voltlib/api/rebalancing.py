"""Operator endpoints of rebalancing (issue 4): the shortage forecast, recommended moves and the
field tasks that carry them out (every task change is audited)."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from voltlib.api import models as m
from voltlib.api.framework import (
    OPERATOR_ROLES,
    PRINCIPAL,
    Problem,
    Query,
    Route,
    body_of,
    reply,
    whole_number,
)
from voltlib.api.paging import page_request, paged
from voltlib.domain import rebalancing as rb
from voltlib.domain.idtags import MAX_ID_TOKEN
from voltlib.events import FieldTaskChanged
from voltlib.gateway.context import Services
from voltlib.security import audit
from voltlib.sharing import rebalancing as store_rb

TAG = "rebalancing"
BASE = "/api/v1/rebalancing"
DEFAULT_PAGE = 200  # field tasks a page (what the map and the crews' desk read at once)
FORECAST = (Query("city", str, "default paris"), Query("hours", int, "hours ahead (default 6)", 1, rb.MAX_HOURS),
            Query("rentals_per_day", float, "the demand to assume (default: the city's own)", 0, 1_000_000))


class NewTask(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """A recommended move as GET …/moves returns it (extra fields are ignored), or an operator's own."""

    car_id: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    from_station: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    to_station: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    city: str = "paris"
    reason: Literal["no_car", "no_bay"] | None = None
    note: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class TaskChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    action: Literal["assign", "start", "complete", "cancel"]
    assignee: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None  # for assign
    # for assign: the crew's badge (an accepted id tag of the CREW group), which may then take the car
    badge: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_TOKEN)] | None = None
    note: Annotated[str, msgspec.Meta(max_length=500)] | None = None


def rebalancing_routes(services: Services) -> list[Route]:
    store, clock = services.store, services.clock

    async def announce(task: dict[str, Any]) -> None:  # after the commit: the maps draw it live
        await services.bus.publish(FieldTaskChanged(
            charge_point_id="", at=clock.now(), task_id=task["id"], city=task["city"], car_id=task["car_id"],
            from_station=task["from_station"], to_station=task["to_station"], state=task["state"]))

    def who(request: web.Request) -> str:
        return request.get(PRINCIPAL) or "?"

    def params(request: web.Request) -> tuple[str, int, float | None]:
        city = request.query.get("city", "paris")
        try:
            hours = int(request.query.get("hours", "6"))
        except ValueError:
            raise Problem(422, "invalid-query", "hours is a whole number", parameter="hours") from None
        try:
            per_day = float(request.query["rentals_per_day"]) if "rentals_per_day" in request.query else None
        except ValueError:
            raise Problem(422, "invalid-query", "rentals_per_day is a number", parameter="rentals_per_day") from None
        if not 1 <= hours <= rb.MAX_HOURS:
            raise Problem(422, "invalid-hours", f"hours is 1 to {rb.MAX_HOURS}", parameter="hours")
        if per_day is not None and not 0 <= per_day <= 1_000_000:
            raise Problem(422, "invalid-rentals-per-day", "rentals_per_day is 0 to 1,000,000",
                          parameter="rentals_per_day")
        return city, hours, per_day

    async def state_of(city: str) -> store_rb.CityState:
        state = await store.read(partial(store_rb.city_state, city=city))
        if state is None:
            raise Problem(404, "unknown-city", f"no city {city}")
        return state

    async def forecast(request: web.Request) -> web.Response:
        city, hours, per_day = params(request)
        state = await state_of(city)
        # O(stations²) the first time for a city (cached after): off the event loop
        report = await asyncio.to_thread(store_rb.forecast_report, state, now=clock.now(), hours=hours,
                                         per_day=per_day, short_only=request.query.get("short") == "true")
        return reply(report)

    async def moves(request: web.Request) -> web.Response:
        city, hours, per_day = params(request)
        limit = whole_number(request.query.get("max", str(rb.DEFAULT_MAX_MOVES)), 0, 200)
        if limit is None:
            raise Problem(422, "invalid-max", "max is 0 to 200 moves", parameter="max")
        state = await state_of(city)
        tasks = await store.read(partial(store_rb.live_tasks, city=city))
        report = await asyncio.to_thread(store_rb.moves_report, state, tasks, now=clock.now(), hours=hours,
                                         per_day=per_day, max_moves=limit)
        return reply(report)

    async def create(request: web.Request) -> web.Response:
        body, by, now = await body_of(request, NewTask), who(request), clock.now()

        def op(conn: Connection) -> dict[str, Any]:  # the task and its audit entry commit together
            task = store_rb.create_task(conn, city=body.city, car_id=body.car_id, from_station=body.from_station,
                                        to_station=body.to_station, reason=body.reason, by=by, now=now,
                                        note=body.note)
            audit.append(conn, actor=by, action="rebalancing.task.create", target=str(task["id"]),
                         detail={"car_id": body.car_id, "from": body.from_station, "to": body.to_station,
                                 "reason": body.reason}, now=now)
            return task

        try:
            task = await store.write(op)
        except store_rb.TaskRefused as exc:
            raise Problem(exc.status, exc.code, exc.detail) from None
        except IntegrityError:  # another node created one for this car first
            raise Problem(409, "car-has-task", f"car {body.car_id} already has a live task") from None
        await announce(task)
        return reply(task, status=201)

    async def list_tasks(request: web.Request) -> web.Response:
        state = request.query.get("state")
        if state is not None and state not in {s.value for s in rb.TaskState}:
            raise Problem(422, "invalid-state", f"state is one of {', '.join(s.value for s in rb.TaskState)}",
                          parameter="state")
        limit, after = page_request(request, store_rb.TASKS, DEFAULT_PAGE)
        page = await store.read(partial(store_rb.task_page, city=request.query.get("city"), state=state,
                                        after=after, limit=limit))
        return paged(request, page.rows, store_rb.TASKS, page)

    def task_id(request: web.Request) -> int:
        value = request.match_info["task_id"]
        number = whole_number(value)
        if number is None:
            raise Problem(404, "unknown-task", f"no task {value}")
        return number

    async def get_task(request: web.Request) -> web.Response:
        found = await store.read(partial(store_rb.get_task, task_id=task_id(request)))
        if found is None:
            raise Problem(404, "unknown-task", f"no task {task_id(request)}")
        return reply(found)

    async def transition(request: web.Request) -> web.Response:
        change, tid, by, now = await body_of(request, TaskChange), task_id(request), who(request), clock.now()

        def op(conn: Connection) -> dict[str, Any] | None:  # the change and its audit entry commit together
            row = store_rb.transition_task(conn, tid, action=change.action, by=by, now=now,
                                           assignee=change.assignee, note=change.note, badge=change.badge)
            if row is not None:
                audit.append(conn, actor=by, action=f"rebalancing.task.{change.action}", target=str(tid),
                             detail={"assignee": change.assignee, "note": change.note, "badge": change.badge},
                             now=now)
            return row

        try:
            row = await store.write(op)
        except rb.TaskTransitionError as exc:
            raise Problem(409, "invalid-transition", str(exc), state=exc.state.value, action=exc.action) from None
        except rb.InvalidTask as exc:
            raise Problem(422, "invalid-task", str(exc)) from None
        if row is None:
            raise Problem(404, "unknown-task", f"no task {tid}")
        await announce(row)
        return reply(row)

    return [
        Route("GET", f"{BASE}/forecast", forecast, "Expected rentable cars, free bays and missed pickups/returns per "
              "station and hour, with each station's first 'no car' and 'no bay' hour (?city=paris&hours=6"
              "&rentals_per_day=&short=true)", OPERATOR_ROLES, tag=TAG, returns=m.Forecast,
              query=(*FORECAST, Query("short", bool, "true: only the stations that will run short"))),
        Route("GET", f"{BASE}/moves", moves, "Recommended moves (a car from a station that can spare it to one that "
              "will run short, or out of one that will fill up), most urgent first; live tasks counted as done "
              "(?city=&hours=&rentals_per_day=&max=20)", OPERATOR_ROLES, tag=TAG, returns=m.Moves,
              query=(*FORECAST, Query("max", int, "moves at most (0 to 200)", 0, 200))),
        Route("POST", f"{BASE}/tasks", create, "Create a field task from a move (proposed); one live task per car; "
              "audited", OPERATOR_ROLES, NewTask, tag=TAG, returns=m.FieldTask, status=201),
        Route("GET", f"{BASE}/tasks", list_tasks, "Field tasks, newest first (?city=&state=)", OPERATOR_ROLES,
              tag=TAG, query=(Query("city", str, "only this city's"),
                              Query("state", tuple(s.value for s in rb.TaskState), "only those in this state")),
              returns=list[m.FieldTask], paged=True),  # type: ignore[valid-type]
        Route("GET", f"{BASE}/tasks/{{task_id}}", get_task, "One field task with its history (who, what, when)",
              OPERATOR_ROLES, tag=TAG, returns=m.FieldTask),
        Route("POST", f"{BASE}/tasks/{{task_id}}/transition", transition, "assign (needs assignee; "
              "badge: the crew's badge, which may then take the car at its charge point), start, complete or "
              "cancel; a change the lifecycle does not allow is 409; audited", OPERATOR_ROLES,
              TaskChange, tag=TAG, returns=m.FieldTask),
    ]
