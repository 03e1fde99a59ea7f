"""Charging profiles as a resource (issue 20 part 3; OCPP 2.0.1 block K, issue 17).

- ``/api/v1/charging-profiles``: an operator's stored profiles (create, list, get, delete), checked
  before they are stored (problem details on what no charge point would take).
- ``/api/v1/charge-points/{cp_id}/charging-profiles``: install a stored profile by id on a connector
  (SetChargingProfile in the charge point's version, through the command port), list what the
  charge point holds (what voltlib installed, what a 2.0.1 station reported, the last composite
  schedule of each connector, the external limits it notified), clear by id, purpose, connector or
  stack level (ClearChargingProfile), refresh (GetCompositeSchedule; GetChargingProfiles on 2.0.1).

Smart charging's own profiles (ids 1-3, docs/energy.md) are listed read-only: a clear or an install
that would remove or replace one is refused (409), since the planner would not know it is gone.
docs/operations.md, "Charging profiles".
"""

from __future__ import annotations

import secrets
from functools import partial
from typing import Any

from aiohttp import web
from sqlalchemy import Connection, select

from voltlib.api import charging_profile_models as cm
from voltlib.api.framework import PRINCIPAL, READ_ROLES, WRITE_ROLES, Problem, Route, body_of, reply, whole_number
from voltlib.api.paging import page_request, paged
from voltlib.domain import commands as c
from voltlib.gateway.charging_profiles import follow
from voltlib.gateway.gateway import CommandError, Gateway
from voltlib.store import charging_profiles as cps
from voltlib.store import repo
from voltlib.store.pages import Order, fetch
from voltlib.store.tables import charging_profiles, connectors, transactions

PROFILES = Order((charging_profiles.c.id,), descending=False)
TAG = "charging profiles"
MAX_REQUEST_ID = 2**31 - 1


def _number(text: str, what: str, high: int = 2**31 - 1) -> int:
    value = whole_number(text, 0, high)
    if value is None:
        raise Problem(404, "not-found", f"no {what} {text[:40]}")
    return value


def _held(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "read_only": r["source"] == "smart-charging"} for r in rows]


def _open_transaction(conn: Connection, transaction_id: int, cp_id: str, connector_id: int) -> bool:
    return conn.execute(select(transactions.c.id).where(
        transactions.c.id == transaction_id, transactions.c.charge_point_id == cp_id,
        transactions.c.connector_id == connector_id, transactions.c.stopped_at.is_(None))).first() is not None


def _connectors(conn: Connection, cp_id: str) -> list[int]:
    return sorted(conn.execute(select(connectors.c.connector_id).where(connectors.c.charge_point_id == cp_id))
                  .scalars())


def power_limit(stored: dict[str, Any], transaction_id: int | None, now: Any) -> c.PowerLimit:
    """A stored profile as the command port's neutral profile, its OCPP id = its id + 1000."""
    periods = tuple(c.Period(int(p["start_s"]), round(float(p["limit_w"]))) for p in stored["periods"])
    return c.PowerLimit(stored["charging_profile_id"], stored["purpose"], periods, stored["start_at"] or now,
                        stored["stack_level"], stored["duration_s"], transaction_id,
                        stored["periods"][0].get("number_phases"),
                        stored["kind"], stored["recurrency"], stored["valid_from"], stored["valid_to"])


def charging_profile_routes(gateway: Gateway) -> list[Route]:
    s = gateway.services
    store, clock = s.store, s.clock

    async def known_cp(cp_id: str) -> None:
        if cp_id not in gateway.connections and await store.read(partial(repo.get_charge_point, cp_id=cp_id)) is None:
            raise Problem(404, "not-found", f"no charge point {cp_id}")

    async def stored_or_404(text: str) -> dict[str, Any]:
        row = await store.read(partial(cps.get_profile, profile_id=_number(text, "charging profile", 2**62)))
        if row is None:
            raise Problem(404, "not-found", f"no charging profile {text[:40]}")
        return row

    async def send(request: web.Request, cp_id: str, command: c.Command) -> dict[str, Any]:
        """Through the command port; the picture of what the charge point holds is stored before
        the answer goes back (the follower's write, idempotent, made here too)."""
        by = request.get(PRINCIPAL)
        try:
            outcome = await gateway.commands.send(cp_id, command, requested_by=by or "?")
        except c.CommandRefused as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        except CommandError as exc:
            raise Problem(exc.status, exc.title, exc.detail) from None
        row = dict(outcome.record)
        op = follow(cp_id, row["action"], row["state"], row["request"], row.get("response"), row["requested_by"],
                    clock.now())
        if op is not None:
            await store.write(op)
        return {"status": outcome.status, "command": row}

    # --- the stored profiles ---

    async def create(request: web.Request) -> web.Response:
        new = await body_of(request, cm.NewChargingProfile)
        wrong = cm.profile_problems(new)
        if wrong:
            raise Problem(422, "invalid-profile", "; ".join(wrong), errors=wrong)
        values = {"name": new.name, "purpose": new.purpose, "stack_level": new.stack_level, "kind": new.kind,
                  "recurrency": new.recurrency, "start_at": new.start_at, "duration_s": new.duration_s,
                  "valid_from": new.valid_from, "valid_to": new.valid_to,
                  "periods": [{"start_s": p.start_s, "limit_w": p.limit_w, "number_phases": new.number_phases}
                              for p in new.periods],
                  "created_by": (request.get(PRINCIPAL) or "?")[:64], "created_at": clock.now()}
        row = await store.write(partial(cps.create_profile, values=values))
        if row is None:
            raise Problem(409, "exists", f"a charging profile is named {new.name} already")
        return reply(row, 201)

    async def list_stored(request: web.Request) -> web.Response:
        limit, after = page_request(request, PROFILES, 100)
        page = await store.read(lambda conn: fetch(conn, select(charging_profiles), PROFILES, after, limit))
        return paged(request, [cps.with_ocpp_id(row) for row in page.rows], PROFILES, page)

    async def get_stored(request: web.Request) -> web.Response:
        row = await stored_or_404(request.match_info["profile_id"])
        row["installed_on"] = await store.read(partial(cps.installed_from, profile_id=row["id"]))
        return reply(row)

    async def delete_stored(request: web.Request) -> web.Response:
        row = await stored_or_404(request.match_info["profile_id"])
        holders = await store.read(partial(cps.installed_from, profile_id=row["id"]))
        if holders:
            raise Problem(409, "installed", f"{', '.join(holders[:10])} hold(s) it: clear it there first",
                          charge_points=holders)
        await store.write(partial(cps.delete_profile, profile_id=row["id"]))
        return reply({"id": row["id"], "deleted": True})

    # --- on a charge point ---

    async def install(request: web.Request) -> web.Response:
        cp_id = request.match_info["cp_id"]
        body = await body_of(request, cm.Install)
        stored = await stored_or_404(str(body.profile_id))
        await known_cp(cp_id)
        if stored["purpose"] == "ChargePointMax" and body.connector_id != 0:
            raise Problem(422, "invalid-connector", "a ChargePointMax profile goes on connector 0 (the whole "
                          "charge point)")
        if (stored["purpose"] == "Tx") != (body.transaction_id is not None):
            raise Problem(422, "invalid-transaction", "a Tx profile, and only it, names its transaction_id")
        if body.transaction_id is not None and (body.connector_id == 0 or not await store.read(partial(
                _open_transaction, transaction_id=body.transaction_id, cp_id=cp_id, connector_id=body.connector_id))):
            raise Problem(409, "no-open-transaction",
                          f"transaction {body.transaction_id} is not open on {cp_id} connector {body.connector_id}")
        held = await store.read(partial(cps.list_installed, cp_id=cp_id))
        replaced = [r for r in held if r["source"] == "smart-charging" and r["connector_id"] == body.connector_id
                    and r["purpose"] == stored["purpose"] and r["stack_level"] == stored["stack_level"]]
        if replaced:  # same purpose and stack level on the same connector: the charge point would replace it
            raise Problem(409, "owned-by-smart-charging", f"it would replace smart charging's profile "
                          f"{replaced[0]['charging_profile_id']}: store it at another stack level")
        limit = power_limit(stored, body.transaction_id, clock.now())
        return reply(await send(request, cp_id, c.LimitPower(body.connector_id, limit)))

    async def held(request: web.Request) -> web.Response:
        cp_id = request.match_info["cp_id"]
        await known_cp(cp_id)
        rows = await store.read(partial(cps.list_installed, cp_id=cp_id))
        return reply({"charge_point_id": cp_id, "profiles": _held(rows),
                      "composite_schedules": await store.read(partial(cps.list_composites, cp_id=cp_id)),
                      "external_limits": await store.read(partial(cps.list_limits, cp_ids=[cp_id]))})

    async def clear(request: web.Request, cp_id: str, body: cm.Clear) -> web.Response:
        await known_cp(cp_id)
        hit = await store.read(partial(cps.matching_installed, cp_id=cp_id, profile_id=body.charging_profile_id,
                                       connector_id=body.connector_id, purpose=body.purpose,
                                       stack_level=body.stack_level))
        owned = sorted({r["charging_profile_id"] for r in hit if r["source"] == "smart-charging"})
        if owned:
            raise Problem(409, "owned-by-smart-charging", f"it would clear smart charging's profile(s) "
                          f"{', '.join(map(str, owned))}: narrow the criteria", profiles=owned)
        command = c.ClearLimits(body.charging_profile_id, body.connector_id, body.purpose, body.stack_level)
        return reply(await send(request, cp_id, command))

    async def clear_matching(request: web.Request) -> web.Response:
        return await clear(request, request.match_info["cp_id"], await body_of(request, cm.Clear))

    async def clear_one(request: web.Request) -> web.Response:
        profile_id = _number(request.match_info["charging_profile_id"], "charging profile")
        return await clear(request, request.match_info["cp_id"], cm.Clear(charging_profile_id=profile_id))

    async def refresh(request: web.Request) -> web.Response:
        cp_id = request.match_info["cp_id"]
        body = await body_of(request, cm.ProfileRefresh)
        await known_cp(cp_id)
        wanted = body.connector_ids if body.connector_ids is not None else [
            0, *await store.read(partial(_connectors, cp_id=cp_id))]
        composites = [await send(request, cp_id, c.ReadSchedule(connector, body.duration_s))
                      for connector in sorted(set(wanted))]
        report = None
        if await gateway.commands.version_of(cp_id) == "2.0.1":
            request_id = secrets.randbelow(MAX_REQUEST_ID) + 1
            await store.write(partial(cps.create_report, cp_id=cp_id, request_id=request_id, full=True,
                                      now=clock.now()))
            await send(request, cp_id, c.ReadProfiles(request_id))
            report = await store.read(partial(cps.get_report, cp_id=cp_id, request_id=request_id))
        return reply({"composites": composites, "report": report})

    async def report(request: web.Request) -> web.Response:
        cp_id = request.match_info["cp_id"]
        request_id = _number(request.match_info["request_id"], "report")
        row = await store.read(partial(cps.get_report, cp_id=cp_id, request_id=request_id))
        if row is None:
            raise Problem(404, "not-found", f"no GetChargingProfiles request {request_id} of {cp_id}")
        return reply(row)

    stored_path, cp_path = "/api/v1/charging-profiles", "/api/v1/charge-points/{cp_id}/charging-profiles"
    return [
        Route("POST", stored_path, create, "Store a charging profile (limits in W), checked first; install it by "
              "id on charge points", WRITE_ROLES, cm.NewChargingProfile, tag=TAG, returns=cm.StoredChargingProfile,
              status=201),
        Route("GET", stored_path, list_stored, "The stored charging profiles, oldest first", READ_ROLES, tag=TAG,
              returns=list[cm.StoredChargingProfile], paged=True),
        Route("GET", stored_path + "/{profile_id}", get_stored, "One stored profile, and the charge points that "
              "hold it", READ_ROLES, tag=TAG, returns=cm.StoredChargingProfile),
        Route("DELETE", stored_path + "/{profile_id}", delete_stored, "Delete a stored profile (409 while a charge "
              "point holds it)", WRITE_ROLES, tag=TAG, returns=cm.ProfileDeleted),
        Route("GET", cp_path, held, "What a charge point holds: profiles voltlib installed or the station "
              "reported (smart charging's read-only), composite schedules, external limits", READ_ROLES, tag=TAG,
              returns=cm.ChargePointProfiles),
        Route("POST", cp_path, install, "Install a stored profile on a connector (0: the whole charge point): "
              "SetChargingProfile in its OCPP version", WRITE_ROLES, cm.Install, tag=TAG, returns=cm.ProfileCommand),
        Route("POST", cp_path + "/clear", clear_matching, "Clear profiles by id, or by connector, purpose and "
              "stack level (ClearChargingProfile); never smart charging's", WRITE_ROLES, cm.Clear, tag=TAG,
              returns=cm.ProfileCommand),
        Route("DELETE", cp_path + "/{charging_profile_id}", clear_one, "Clear one profile by its OCPP id "
              "(ClearChargingProfile)", WRITE_ROLES, tag=TAG, returns=cm.ProfileCommand),
        Route("POST", cp_path + "/refresh", refresh, "Read back what the charge point holds: GetCompositeSchedule "
              "per connector; a 2.0.1 station also reports every profile (GetChargingProfiles)", WRITE_ROLES,
              cm.ProfileRefresh, tag=TAG, returns=cm.Refreshed),
        Route("GET", cp_path + "/reports/{request_id}", report, "A GetChargingProfiles request: its status and the "
              "ReportChargingProfiles parts received", READ_ROLES, tag=TAG, returns=cm.ProfileReport),
    ]
