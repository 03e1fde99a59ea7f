"""The OCPP 2.0.1 device model in the API: browse what a station reported, ask it for a new report.

``GET /api/v1/charge-points/{cp_id}/device-model`` lists the stored variables in pages (the API's
paging, :mod:`voltlib.api.paging`: ``?limit=``, ``?cursor=`` from the ``Link: rel="next"`` header), filtered by
``component``, ``variable`` and ``evse_id``. ``POST .../device-model/refresh`` sends GetBaseReport
FullInventory; the station's NotifyReport parts then replace the stored model. docs/operations.md.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import partial

import msgspec
from aiohttp import web

from voltlib.api import models
from voltlib.api.framework import PRINCIPAL, READ_ROLES, WRITE_ROLES, Problem, Query, Route, int_query, reply
from voltlib.api.paging import page_request, paged
from voltlib.gateway.gateway import CommandError, Gateway
from voltlib.store import device_model as dm
from voltlib.store import repo

DEFAULT_PAGE = 500  # a full inventory is a few hundred to a few thousand variables (at most MAX_PAGE a page)
MAX_REQUEST_ID = 2**31 - 1
NAME_FILTERS = ("component", "variable")


class Characteristics(msgspec.Struct, kw_only=True):
    data_type: str | None
    unit: str | None
    min_limit: float | None
    max_limit: float | None
    values_list: str | None
    supports_monitoring: bool | None


class DeviceModelEntry(msgspec.Struct, kw_only=True):
    """One attribute of one variable (``store/device_model.py``); absent instance, EVSE, connector: null."""

    id: int
    component: str
    component_instance: str | None
    evse_id: int | None
    connector_id: int | None
    variable: str
    variable_instance: str | None
    attribute_type: str
    value: str | None
    mutability: str | None
    constant: bool | None
    persistent: bool | None
    characteristics: Characteristics | None
    source: str
    request_id: int | None
    updated_at: datetime


class Refresh(msgspec.Struct, kw_only=True):
    request_id: int  # the requestId the station's NotifyReport parts will carry
    command: models.Command  # type: ignore[valid-type]


def device_model_routes(gateway: Gateway) -> list[Route]:
    store = gateway.services.store

    async def known(cp_id: str) -> None:
        if await store.read(partial(repo.get_charge_point, cp_id=cp_id)) is None:
            raise Problem(404, "not-found", f"no charge point {cp_id}")

    async def browse(request: web.Request) -> web.Response:
        cp_id = request.match_info["cp_id"]
        await known(cp_id)
        names = {name: request.query.get(name) or None for name in NAME_FILTERS}
        for name, value in names.items():
            if value is not None and len(value) > 50:  # 2.0.1 component and variable names: 50 characters
                raise Problem(400, "invalid-query", f"{name} has at most 50 characters", parameter=name)
        limit, after = page_request(request, dm.ORDER, DEFAULT_PAGE)
        page = await store.read(partial(dm.read_model, cp_id=cp_id, component=names["component"],
                                        variable=names["variable"], evse_id=int_query(request, "evse_id"),
                                        after=after, limit=limit))
        return paged(request, page.rows, dm.ORDER, page)

    async def refresh(request: web.Request) -> web.Response:
        cp_id = request.match_info["cp_id"]
        await known(cp_id)
        version = await gateway.commands.version_of(cp_id)
        if version != "2.0.1":
            raise Problem(409, "not-ocpp201", f"{cp_id} speaks OCPP {version}: it has no device model to report")
        request_id = secrets.randbelow(MAX_REQUEST_ID) + 1
        try:
            row = await gateway.send_command(cp_id, "GetBaseReport",
                                             {"requestId": request_id, "reportBase": dm.FULL_INVENTORY},
                                             requested_by=request.get(PRINCIPAL))
        except CommandError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        return reply({"request_id": request_id, "command": row})

    return [
        Route("GET", "/api/v1/charge-points/{cp_id}/device-model", browse,
              "The OCPP 2.0.1 device model the station reported (paged: limit, cursor; filters: component, "
              "variable, evse_id)", READ_ROLES, returns=list[DeviceModelEntry], paged=True,
              query=(Query("component", str, "component name (exact)"), Query("variable", str, "variable name (exact)"),
                     Query("evse_id", int, "EVSE id"))),
        Route("POST", "/api/v1/charge-points/{cp_id}/device-model/refresh", refresh,
              "Ask a 2.0.1 station for its full device model (GetBaseReport FullInventory); its reports replace "
              "the stored one", WRITE_ROLES, returns=Refresh),
    ]
