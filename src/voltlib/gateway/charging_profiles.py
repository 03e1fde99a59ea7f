"""What each charge point holds of charging profiles and limits (issue 17 K, issue 20 part 3).

- :class:`ProfileFollower` keeps ``installed_charging_profiles`` in step with the answers to
  SetChargingProfile and ClearChargingProfile, in either version and whoever sent them (smart
  charging, an operator's stored profile, a raw command), stores each GetCompositeSchedule answer,
  follows GetChargingProfiles answers, and drops a TxProfile when its transaction ends.
- ReportChargingProfiles (2.0.1, K09): each part stored before it is answered; the last part of a
  request for everything reconciles what voltlib knew with what the station holds.
- NotifyChargingLimit / ClearedChargingLimit (2.0.1, K11-K13): an external limit (an EMS, the grid
  operator) stored until cleared, and ``ChargingLimitChanged`` published so smart charging re-plans
  the station under it (:mod:`voltlib.energy.charging_limits`).

Payloads here were validated against their schema before they were sent or read. Joins
:mod:`voltlib.gateway.handlers_v201`'s table.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

import msgspec
from sqlalchemy import Connection

from voltlib import events as ev
from voltlib.energy.charging_limits import limit_at
from voltlib.gateway.clock import stamp
from voltlib.gateway.context import ChargePointContext, Services
from voltlib.ocpp.v16.commands import watts
from voltlib.ocpp.v201 import messages as m
from voltlib.store import charging_profiles as cps

log = logging.getLogger(__name__)

SMART_CHARGING = "voltlib:smart-charging"  # requested_by of smart charging's commands
PURPOSES = {"ChargePointMaxProfile": "ChargePointMax", "ChargingStationMaxProfile": "ChargePointMax",
            "TxDefaultProfile": "TxDefault", "TxProfile": "Tx",
            "ChargingStationExternalConstraints": "ExternalConstraints"}
Op = Callable[[Connection], Any]


def _periods(schedule: Mapping[str, Any]) -> list[dict[str, Any]]:
    unit = str(schedule.get("chargingRateUnit") or "W")
    return [{"start_s": int(p["startPeriod"]), "limit_w": round(watts(p, unit), 1),
             "number_phases": p.get("numberPhases")} for p in schedule.get("chargingSchedulePeriod") or []]


def profile_row(connector_id: int, profile: Mapping[str, Any]) -> dict[str, Any]:
    """A chargingProfile (1.6 csChargingProfiles or 2.0.1 chargingProfile, its first schedule) as a
    row of ``installed_charging_profiles``, in W."""
    v201 = "id" in profile
    schedule = profile["chargingSchedule"][0] if v201 else profile["chargingSchedule"]
    tx = profile.get("transactionId")
    return {"charging_profile_id": int(profile["id" if v201 else "chargingProfileId"]), "connector_id": connector_id,
            "purpose": PURPOSES.get(str(profile["chargingProfilePurpose"]), str(profile["chargingProfilePurpose"])),
            "stack_level": int(profile["stackLevel"]), "transaction_id": None if tx is None else str(tx),
            "profile": {"kind": profile["chargingProfileKind"], "recurrency": profile.get("recurrencyKind"),
                        "valid_from": profile.get("validFrom"), "valid_to": profile.get("validTo"),
                        "start_at": schedule.get("startSchedule"), "duration_s": schedule.get("duration"),
                        "periods": _periods(schedule)}}


def source_of(requested_by: str | None, profile_id: int) -> dict[str, Any]:
    """Who installed a profile, and the stored profile it came from (its OCPP id is id + 1000)."""
    stored = profile_id - cps.OCPP_ID_OFFSET if profile_id > cps.OCPP_ID_OFFSET else None
    return {"source": "smart-charging" if requested_by == SMART_CHARGING else "operator", "stored_profile_id": stored}


# --- followed answers ------------------------------------------------------------------------------

def _installed(cp_id: str, request: dict[str, Any], response: dict[str, Any], by: str | None,
               now: datetime) -> Op | None:
    if response.get("status") != "Accepted":
        return None
    v201 = "chargingProfile" in request
    profile = request["chargingProfile" if v201 else "csChargingProfiles"]
    row = profile_row(int(request["evseId" if v201 else "connectorId"]), profile)
    row.update(source_of(by, row["charging_profile_id"]), limit_source="CSO" if v201 else None, request_id=None)
    return partial(cps.store_installed, cp_id=cp_id, rows=[row], now=now)


def _cleared(cp_id: str, request: dict[str, Any], response: dict[str, Any], by: str | None,
             now: datetime) -> Op | None:
    """Accepted: those profiles are gone; Unknown: the station had none of them, so neither do we."""
    if response.get("status") not in ("Accepted", "Unknown"):
        return None
    criteria = request.get("chargingProfileCriteria") or request
    purpose = criteria.get("chargingProfilePurpose")
    return partial(cps.clear_installed, cp_id=cp_id, profile_id=request.get("chargingProfileId", request.get("id")),
                   connector_id=criteria.get("evseId", criteria.get("connectorId")),
                   purpose=None if purpose is None else PURPOSES.get(purpose, purpose),
                   stack_level=criteria.get("stackLevel"))


def _composite(cp_id: str, request: dict[str, Any], response: dict[str, Any], by: str | None,
               now: datetime) -> Op | None:
    if response.get("status") != "Accepted":
        return None
    schedule = response.get("schedule") or response.get("chargingSchedule")
    if schedule is None:
        return None
    connector = response.get("connectorId", request.get("connectorId", request.get("evseId", 0)))
    start = response.get("scheduleStart") or schedule.get("scheduleStart") or schedule.get("startSchedule")
    return partial(cps.store_composite, cp_id=cp_id, connector_id=int(connector),
                   schedule_start=None if start is None else _time(start), duration_s=schedule.get("duration"),
                   periods=[{"start_s": p["start_s"], "limit_w": p["limit_w"]} for p in _periods(schedule)], now=now)


def _reported(cp_id: str, request: dict[str, Any], response: dict[str, Any], by: str | None,
              now: datetime) -> Op | None:
    return partial(cps.report_answered, cp_id=cp_id, request_id=int(request["requestId"]),
                   status=str(response.get("status")), now=now)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


FOLLOWED: dict[str, Callable[[str, dict[str, Any], dict[str, Any], str | None, datetime], Op | None]] = {
    "SetChargingProfile": _installed,
    "ClearChargingProfile": _cleared,
    "GetCompositeSchedule": _composite,
    "GetChargingProfiles": _reported,
}


class ProfileFollower:
    """Keeps the stored picture of each charge point's profiles in step (see the module docstring)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def install(self) -> None:
        self.services.bus.subscribe(self.on_event, ev.CommandFinished, ev.TransactionStopped,
                                    name="charging-profiles", scope="node")

    async def on_event(self, event: ev.Event) -> None:
        """Queued, not awaited: a mirror of answers nobody waits on (smart charging's checks come by
        the thousand), written in order by the one writer; the API writes what it answers itself."""
        s = self.services
        if isinstance(event, ev.TransactionStopped):
            s.store.write_later(partial(cps.end_transaction_profiles, transaction_id=event.transaction_id))
        elif isinstance(event, ev.CommandFinished) and event.action in FOLLOWED:
            op = follow(event.charge_point_id, event.action, event.state, event.request, event.response,
                        event.requested_by, s.clock.now())
            if op is not None:
                s.store.write_later(op)


def follow(cp_id: str, action: str, state: str, request: dict[str, Any] | None, response: dict[str, Any] | None,
           requested_by: str | None, now: datetime) -> Op | None:
    """The write that keeps the picture in step with one finished command, if any (the API calls it
    too, so that what it answers is already stored: the writes are idempotent)."""
    if request is None:
        return None
    if state != "answered" or response is None:
        if action == "GetChargingProfiles" and "requestId" in request:  # never answered: never reported
            return partial(cps.report_answered, cp_id=cp_id, request_id=int(request["requestId"]),
                           status="not-sent" if state in ("offline", "refused") else "no-answer", now=now)
        return None
    try:
        return FOLLOWED[action](cp_id, request, response, requested_by, now)
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # validated: not expected
        log.warning("%s: %s not followed: %s", cp_id, action, exc)
        return None


# --- 2.0.1 requests -------------------------------------------------------------------------------

async def report_charging_profiles(ctx: ChargePointContext, req: m.ReportChargingProfiles) -> m.Reply:
    """K09: one part, committed before it is answered."""
    s = ctx.services
    rows = [{**profile_row(req.evse_id, msgspec.to_builtins(p)), "source": "station", "stored_profile_id": None,
             "limit_source": req.charging_limit_source} for p in req.charging_profile]
    await s.store.write(partial(cps.report_part, cp_id=ctx.cp_id, request_id=req.request_id, rows=rows,
                                tbc=req.tbc, now=s.clock.now()))
    return m.ReportChargingProfilesReply()


async def notify_charging_limit(ctx: ChargePointContext, req: m.NotifyChargingLimit) -> m.Reply:
    """K11/K12: the external limit stored (its first schedule, in W, its start judged by the clock
    policy) before it is answered; smart charging re-plans the station under it."""
    s = ctx.services
    now = s.clock.now()
    schedule = req.charging_schedule[0] if req.charging_schedule else None
    periods = start = limit = None
    if schedule is not None:
        periods = sorted(_periods(msgspec.to_builtins(schedule)), key=lambda p: p["start_s"])
        [start] = await stamp(ctx, m.NotifyChargingLimit.ACTION, [schedule.start_schedule or now], now)
        limit = limit_at(periods, start, now)
    evse_id = req.evse_id or 0
    source = req.charging_limit.charging_limit_source
    await s.store.write(partial(cps.store_limit, cp_id=ctx.cp_id, evse_id=evse_id, limit_source=source,
                                grid_critical=req.charging_limit.is_grid_critical, limit_w=limit, periods=periods,
                                schedule_start=start, now=now))
    await s.bus.publish(ev.ChargingLimitChanged(charge_point_id=ctx.cp_id, at=now, evse_id=evse_id,
                                                limit_source=source, limit_w=limit))
    return m.NotifyChargingLimitReply()


async def cleared_charging_limit(ctx: ChargePointContext, req: m.ClearedChargingLimit) -> m.Reply:
    """K13: that source's limit gone (from one EVSE, or everywhere when no EVSE is named)."""
    s = ctx.services
    now = s.clock.now()
    gone = await s.store.write(partial(cps.clear_limit, cp_id=ctx.cp_id, limit_source=req.charging_limit_source,
                                       evse_id=req.evse_id))
    for evse_id in gone:
        await s.bus.publish(ev.ChargingLimitChanged(charge_point_id=ctx.cp_id, at=now, evse_id=evse_id,
                                                    limit_source=req.charging_limit_source, limit_w=None))
    return m.ClearedChargingLimitReply()


HANDLERS: dict[str, Callable[[ChargePointContext, Any], Awaitable[m.Reply]]] = {
    m.ReportChargingProfiles.ACTION: report_charging_profiles,
    m.NotifyChargingLimit.ACTION: notify_charging_limit,
    m.ClearedChargingLimit.ACTION: cleared_charging_limit,
}
