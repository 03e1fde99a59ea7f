"""Operator endpoints of fleet energy: a station's grid limit (read, set, reset to its default)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from functools import partial
from typing import Annotated

import msgspec
from aiohttp import web
from sqlalchemy import select

from voltlib.api import models as m
from voltlib.api.framework import OPERATOR_ROLES, READ_ROLES, Problem, Query, Route, body_of, json_body, reply
from voltlib.energy import accounting, smart_charging, telematics
from voltlib.energy.smart_charging import SmartCharging
from voltlib.gateway.context import Services
from voltlib.store.tables import bays

MAX_LIMIT_W = 10_000_000.0  # 10 MW: above any station's grid connection; a typo guard


class PowerLimit(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``limit_w`` None resets the station to its default (a share of its bays' ratings)."""

    limit_w: Annotated[float, msgspec.Meta(ge=0, le=MAX_LIMIT_W)] | None
    phase_limit_w: Annotated[float, msgspec.Meta(gt=0, le=MAX_LIMIT_W)] | None = None


def energy_routes(charging: SmartCharging, services: Services) -> list[Route]:
    async def telematics_in(request: web.Request) -> web.Response:
        raw = await json_body(request)
        try:
            reading = telematics.parse(raw)
        except telematics.TelematicsError as exc:
            raise Problem(422, "invalid-telematics", str(exc)) from None
        if not await telematics.ingest(services, request.match_info["car_id"], reading):
            raise Problem(404, "unknown-vehicle", f"no vehicle {request.match_info['car_id']}")
        return reply({"car_id": request.match_info["car_id"], "soc_percent": reading.soc_percent,
                      "source": "telematics"}, status=202)

    async def get_limit(request: web.Request) -> web.Response:
        station_id = request.match_info["station_id"]
        limits = await charging.limits(station_id)
        if limits is None:
            raise Problem(404, "unknown-station", f"no station {station_id}")
        since = services.clock.now() - timedelta(minutes=15)
        drawn = await services.store.read(partial(smart_charging.drawn_now, station_id=station_id, since=since))
        planned = charging.planned({dock.split("/")[0] for dock in drawn} | await _cps(station_id))
        return reply({**dataclasses.asdict(limits), "drawn_w": round(sum(drawn.values()), 1), "drawn_by_bay": drawn,
                      "planned_w": sum(planned.values()), "planned_by_bay": planned})

    async def _cps(station_id: str) -> set[str]:
        rows = await services.store.read(lambda conn: conn.execute(
            select(bays.c.charge_point_id).where(bays.c.station_id == station_id)).scalars().all())
        return set(rows)

    async def put_limit(request: web.Request) -> web.Response:
        change = await body_of(request, PowerLimit)
        if change.limit_w is None and change.phase_limit_w is not None:
            raise Problem(422, "invalid-body", "a phase limit needs a total limit")
        try:
            limits = await charging.set_limit(request.match_info["station_id"], change.limit_w, change.phase_limit_w)
        except KeyError:
            raise Problem(404, "unknown-station", f"no station {request.match_info['station_id']}") from None
        return reply(dataclasses.asdict(limits))

    async def daily(request: web.Request) -> web.Response:
        city = request.query.get("city", "paris")
        try:
            day = date.fromisoformat(request.query["date"]) if "date" in request.query else services.clock.now().date()
        except ValueError:
            raise Problem(422, "invalid-date", "date is YYYY-MM-DD", parameter="date") from None
        report = await services.store.read(partial(accounting.daily_report, city=city, day=day,
                                                   now=services.clock.now()))
        if report is None:
            raise Problem(404, "unknown-city", f"no city {city}")
        return reply(report)

    path = "/api/v1/stations/{station_id}/power-limit"
    return [
        Route("GET", "/api/v1/energy/daily", daily, "kWh delivered per station and per vehicle on a day, "
              "and driven and charged per rental returned that day (?city=paris&date=YYYY-MM-DD, the city's "
              "time zone)", READ_ROLES, tag="energy",
              query=(Query("city", str, "default paris"), Query("date", str, "YYYY-MM-DD (default: today)")),
              returns=m.DailyEnergy),
        Route("POST", "/api/v1/vehicles/{car_id}/telematics", telematics_in, "A car's own state of charge "
              "(telematics; also over MQTT, docs/energy.md)", OPERATOR_ROLES, telematics.Telematics, tag="energy",
              returns=m.TelematicsAccepted, status=202),
        Route("GET", path, get_limit, "A station's grid limit (W), configured or default, with the power its bays "
              "report drawing now and the smart-charging plan", READ_ROLES, tag="energy",
              returns=m.GridLimitState),
        Route("PUT", path, put_limit, "Set a station's grid limit (W); null resets it; re-plans its charging now",
              OPERATOR_ROLES, PowerLimit, tag="energy", returns=m.GridLimit),
    ]
