"""What an ISO 15118 car tells voltlib through its 2.0.1 station (block K, K15-K17; issue 17).

- **NotifyEVChargingNeeds**: the report is checked (AC or DC parameters, as the transfer mode says:
  K15.FR.06), its departure bounded by the clock policy, and stored with the session open on the EVSE
  and the time voltlib received it, committed before the answer (:func:`voltlib.domain.ev_needs.answer_needs`
  gives it). Accepted or Processing, once the answer is on the wire the station is planned again and
  the session gets its TxProfile through the command port (K15.FR.07, within the 60 s of K15.FR.08:
  the planner's coalescing is 0.2 s).
- **NotifyEVChargingSchedule**: stored; Accepted when every period of the car's schedule stays within
  the TxProfile voltlib last had accepted for that session, Rejected (ValueTooHigh) otherwise, and then
  a new TxProfile is sent (renegotiation, K15.FR.13).

An EVSE id of 0 or less names no EVSE: a CallError (PropertyConstraintViolation), as for a
TransactionEvent. Joins :mod:`voltlib.gateway.handlers_v201`'s table.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import msgspec

from voltlib import events as ev
from voltlib.domain import ev_needs
from voltlib.gateway import clock
from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.errors import ErrorCode, OcppError
from voltlib.ocpp.v201 import messages as m
from voltlib.store import ev_needs as store

log = logging.getLogger(__name__)
DEFAULT_PHASES = 3  # K01.FR.49: an AC schedule period without numberPhases means three


def _evse(evse_id: int) -> None:
    if evse_id <= 0:
        raise OcppError(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, "evseId must name an EVSE (greater than 0)")


def problem(needs: m.ChargingNeeds) -> str | None:
    """Why a report cannot be planned for (a reasonCode), or None (K15.FR.06: AC or DC parameters,
    those of the transfer mode asked)."""
    ac, dc = needs.ac_charging_parameters, needs.dc_charging_parameters
    if ac is None and dc is None:
        return "MissingParam"
    if (ac is not None and dc is not None) or (needs.requested_energy_transfer == "DC") != (dc is not None):
        return "InvalidValue"
    values = [ac.energy_amount, ac.ev_max_current] if ac is not None else [] if dc is None else [
        dc.energy_amount, dc.ev_max_current, dc.ev_max_power, dc.ev_energy_capacity]
    if any(v is not None and v < 0 for v in values):
        return "ValuePositiveOnly"
    return None


def needs_row(needs: m.ChargingNeeds) -> dict[str, Any]:
    """The report's fields in the columns of ``ev_charging_needs`` (the departure is set by the caller)."""
    ac, dc = needs.ac_charging_parameters, needs.dc_charging_parameters
    row: dict[str, Any] = {"energy_transfer": needs.requested_energy_transfer,
                           "departure_claimed": needs.departure_time}
    if ac is not None:
        phases = {"AC_two_phase": 2, "AC_three_phase": 3}.get(needs.requested_energy_transfer, 1)
        row.update(energy_wh=ac.energy_amount, max_current_a=ac.ev_max_current, min_current_a=ac.ev_min_current,
                   max_voltage_v=ac.ev_max_voltage, max_power_w=ev_needs.ac_power_w(ac.ev_max_current, phases))
    elif dc is not None:
        power = dc.ev_max_power if dc.ev_max_power is not None else dc.ev_max_current * dc.ev_max_voltage
        row.update(energy_wh=dc.energy_amount, max_current_a=dc.ev_max_current, max_voltage_v=dc.ev_max_voltage,
                   max_power_w=float(max(0, power)), soc_percent=dc.state_of_charge,
                   capacity_wh=dc.ev_energy_capacity, full_soc=dc.full_so_c, bulk_soc=dc.bulk_so_c)
    return row


async def notify_ev_charging_needs(ctx: ChargePointContext, req: m.NotifyEVChargingNeeds) -> m.Reply:
    """K15/K17: stored, answered, then planned (see the module docstring)."""
    _evse(req.evse_id)
    s = ctx.services
    now = s.clock.now()
    needs = req.charging_needs
    row = {**needs_row(needs), "max_schedule_tuples": req.max_schedule_tuples, "departure_at": None}
    if needs.departure_time is not None:
        row["departure_at"] = await clock.departure(ctx, m.NotifyEVChargingNeeds.ACTION, needs.departure_time, now)
    found = problem(needs)
    planned = s.settings.smart_charging and ctx.is_bay

    def decide(session: store.OpenSession | None) -> tuple[str, str | None, float | None]:
        status, reason = ev_needs.answer_needs(found, session is not None,
                                               session is not None and session.token_known, planned)
        soc = row.get("soc_percent")
        return status, reason, float(soc) if soc is not None else None if session is None else session.soc_percent

    status, reason, session = await s.store.write(partial(store.record_needs, cp_id=ctx.cp_id, evse_id=req.evse_id,
                                                          row=row, decide=decide, now=now))
    if status == "Rejected":
        log.info("%s: NotifyEVChargingNeeds on EVSE %s rejected (%s)", ctx.cp_id, req.evse_id, reason)
    elif session is not None:
        ctx.after_reply.append(partial(s.bus.publish, ev.CarNeedsReported(
            charge_point_id=ctx.cp_id, at=now, connector_id=req.evse_id, transaction_id=session.transaction_id)))
    return m.NotifyEVChargingNeedsReply(status=status, status_info=_info(reason))


def periods_w(schedule: dict[str, Any]) -> ev_needs.Periods:
    """A chargingSchedule's periods in W, in order (A converted at the nominal voltage)."""
    unit = schedule.get("chargingRateUnit", "W")
    out = []
    for p in sorted(schedule.get("chargingSchedulePeriod") or [], key=lambda p: int(p["startPeriod"])):
        limit = float(p["limit"])
        watts = limit if unit == "W" else ev_needs.ac_power_w(limit, int(p.get("numberPhases") or DEFAULT_PHASES))
        out.append((float(p["startPeriod"]), watts))
    return out


async def notify_ev_charging_schedule(ctx: ChargePointContext, req: m.NotifyEVChargingSchedule) -> m.Reply:
    """K15.FR.10-13: the car's schedule held to voltlib's TxProfile for the session."""
    _evse(req.evse_id)
    s = ctx.services
    now = s.clock.now()
    schedule: dict[str, Any] = msgspec.to_builtins(req.charging_schedule)
    car = periods_w(schedule)

    def decide(session: store.OpenSession | None, profile: dict[str, Any] | None
               ) -> tuple[str, str | None, float | None]:
        if session is None:
            return "Rejected", "TxNotFound", None
        if profile is None or not profile.get("chargingSchedule"):
            return "Accepted", None, None  # voltlib set no limit for it: nothing to exceed
        ours_schedule = profile["chargingSchedule"][0]
        ours = periods_w(ours_schedule)
        start = ours_schedule.get("startSchedule")
        our_start = _time(str(start)) if start else req.time_base
        highest = max((w for _, w in ours), default=None)
        if ev_needs.within(car, req.time_base, ours, our_start):
            return "Accepted", None, highest
        return "Rejected", "ValueTooHigh", highest

    status, reason, session = await s.store.write(partial(
        store.record_schedule, cp_id=ctx.cp_id, evse_id=req.evse_id, time_base=req.time_base, schedule=schedule,
        max_w=max((w for _, w in car), default=0.0), decide=decide, now=now))
    if reason == "ValueTooHigh" and session is not None:
        log.info("%s: the car's schedule on EVSE %s exceeds voltlib's limit: renegotiating", ctx.cp_id, req.evse_id)
        ctx.after_reply.append(partial(s.bus.publish, ev.CarNeedsReported(
            charge_point_id=ctx.cp_id, at=now, connector_id=req.evse_id, transaction_id=session.transaction_id,
            renegotiate=True)))
    return m.NotifyEVChargingScheduleReply(status=status, status_info=_info(reason))


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _info(reason: str | None) -> m.StatusInfo | None:
    return None if reason is None else m.StatusInfo(reason_code=reason)


HANDLERS: dict[str, Callable[[ChargePointContext, Any], Awaitable[m.Reply]]] = {
    m.NotifyEVChargingNeeds.ACTION: notify_ev_charging_needs,
    m.NotifyEVChargingSchedule.ACTION: notify_ev_charging_schedule,
}
