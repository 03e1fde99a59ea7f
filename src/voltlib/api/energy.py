"""Operator endpoints of fleet energy: a station's grid limit (read, set, reset to its default)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import msgspec
from aiohttp import web

from voltlib.api.framework import OPERATOR_ROLES, READ_ROLES, Problem, Route, body_of, reply
from voltlib.energy.smart_charging import SmartCharging

MAX_LIMIT_W = 10_000_000.0  # 10 MW: above any station's grid connection; a typo guard


class PowerLimit(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``limit_w`` None resets the station to its default (a share of its bays' ratings)."""

    limit_w: Annotated[float, msgspec.Meta(ge=0, le=MAX_LIMIT_W)] | None
    phase_limit_w: Annotated[float, msgspec.Meta(gt=0, le=MAX_LIMIT_W)] | None = None


def energy_routes(charging: SmartCharging) -> list[Route]:
    async def get_limit(request: web.Request) -> web.Response:
        limits = await charging.limits(request.match_info["station_id"])
        if limits is None:
            raise Problem(404, "unknown-station", f"no station {request.match_info['station_id']}")
        return reply(dataclasses.asdict(limits))

    async def put_limit(request: web.Request) -> web.Response:
        change = await body_of(request, PowerLimit)
        if change.limit_w is None and change.phase_limit_w is not None:
            raise Problem(422, "invalid-body", "a phase limit needs a total limit")
        try:
            limits = await charging.set_limit(request.match_info["station_id"], change.limit_w, change.phase_limit_w)
        except KeyError:
            raise Problem(404, "unknown-station", f"no station {request.match_info['station_id']}") from None
        return reply(dataclasses.asdict(limits))

    path = "/api/v1/stations/{station_id}/power-limit"
    return [
        Route("GET", path, get_limit, "A station's grid limit (W), configured or default", READ_ROLES, tag="energy"),
        Route("PUT", path, put_limit, "Set a station's grid limit (W); null resets it; re-plans its charging now",
              OPERATOR_ROLES, PowerLimit, tag="energy"),
    ]
