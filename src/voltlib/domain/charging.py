"""Smart charging for one station: share a grid limit among the plugged-in cars.

Pure and typed: no I/O, no clock reads (the planning instant is a parameter).

The rule (documented in ``docs/energy.md``), applied at every planning instant:

1. **Caps.** Each session has its own maximum now: ``min(connector max, keep-warm + charge-curve power at its SoC)``.
   Nothing ever exceeds it.
2. **Keep-warm first.** Every plugged car gets its keep-warm power. If the station (or a phase) cannot
   supply all keep-warm, keep-warm is shared in proportion to need, the crumbs left by integer watts go
   in priority order, and :attr:`Allocation.keep_warm_shortfall_w` reports what is missing; only a car on
   another, unsaturated phase can then still charge.
3. **Priority order** for the remaining capacity:
   tier 0 *reserved*: cars with a departure/reservation whose required SoC (or range) is not reached,
   least laxity first (laxity = time to departure − time to reach the requirement at the connector's power);
   tier 1 *low*: other cars below the minimum-SoC floor (:attr:`PlannerPolicy.floor_soc`), lowest SoC first;
   tier 2 *other*: everyone else, lowest SoC first. Ties go by vehicle id, so plans are deterministic.
4. **Fill.** In that order each session gets as much as its cap, the station headroom and its phases'
   headroom allow. The result is work-conserving: afterwards either every session is at its cap or the
   station (or that session's phase) has no headroom left.

All powers are whole watts (grid side), so the totals are exact and OCPP ``limit`` values (multiples of
0.1) are always valid. Phase loads are tracked in sixths of a watt so that two- and three-phase sessions
(power split evenly over their phases) stay exact too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from voltlib.domain.battery import (
    MILD_URBAN,
    Conditions,
    VehicleModel,
    curve_power_w,
    hours_to_soc,
    soc_for_range,
    step_charge,
)
from voltlib.domain.commands import Period, PowerLimit, ProfilePurpose

PHASES: Final = ("L1", "L2", "L3")
Tier = Literal["reserved", "low", "other"]
_SIXTHS: Final = 6


@dataclass(frozen=True, slots=True)
class Station:
    """Grid connection of one station: a total limit and, optionally, a limit per phase (W)."""

    limit_w: float
    phase_limits_w: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        unknown = set(self.phase_limits_w) - set(PHASES)
        if unknown:
            raise ValueError(f"unknown phases {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class ChargingSession:
    """A car plugged into one connector of the station."""

    vehicle_id: str
    model: VehicleModel
    soc: float
    connector_max_w: float
    keep_warm_w: float | None = None
    """Heater power this car needs now; defaults to the model's reference keep-warm."""
    departure: datetime | None = None
    """When the car is reserved / expected to leave."""
    required_soc: float | None = None
    required_range_km: float | None = None
    conditions: Conditions = MILD_URBAN
    """Conditions used to turn ``required_range_km`` into a SoC."""
    phases: tuple[str, ...] = ()
    """Phases the connector draws from (power split evenly); empty = only the station total applies."""
    connector_id: int = 1
    transaction_id: int | None = None

    def __post_init__(self) -> None:
        if len(set(self.phases)) != len(self.phases) or not set(self.phases) <= set(PHASES):
            raise ValueError(f"phases must be distinct values of {PHASES}")

    @property
    def keep_warm_need_w(self) -> float:
        return self.model.keep_warm_w if self.keep_warm_w is None else max(0.0, self.keep_warm_w)

    @property
    def target_soc(self) -> float | None:
        """SoC the car must hold at departure (1.0 when a departure is given without a requirement)."""
        if self.departure is None:
            return None
        needs = [x for x in (self.required_soc,) if x is not None]
        if self.required_range_km is not None:
            needs.append(soc_for_range(self.model, self.required_range_km, self.conditions))
        return min(1.0, max(needs)) if needs else 1.0


@dataclass(frozen=True, slots=True)
class PlannerPolicy:
    floor_soc: float = 0.3
    """Below this SoC an unreserved car is 'low' and charges before the others (assumption: the
    rentable threshold of range-aware assignment)."""


DEFAULT_POLICY: Final = PlannerPolicy()


@dataclass(frozen=True, slots=True)
class SessionAllocation:
    vehicle_id: str
    power_w: int
    """Grid-side power to allow this session (keep-warm included): the OCPP limit."""
    keep_warm_w: int
    """Part of ``power_w`` covering keep-warm."""
    charge_w: int
    """Part of ``power_w`` that charges the battery."""
    max_w: int
    """The session's own maximum now (connector ∩ keep-warm + curve)."""
    keep_warm_need_w: int
    rank: int
    """Position in the priority order (0 = served first)."""
    tier: Tier
    laxity_h: float | None
    """For reserved sessions: slack in hours before the requirement can no longer be met."""


@dataclass(frozen=True, slots=True)
class Allocation:
    at: datetime
    limit_w: int
    total_w: int
    keep_warm_shortfall_w: int
    sessions: tuple[SessionAllocation, ...]
    phase_load_w: Mapping[str, float] = field(default_factory=dict, hash=False)

    @property
    def headroom_w(self) -> int:
        return self.limit_w - self.total_w

    def of(self, vehicle_id: str) -> SessionAllocation:
        for s in self.sessions:
            if s.vehicle_id == vehicle_id:
                return s
        raise KeyError(vehicle_id)


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    start_s: int
    """Seconds from the plan's start."""
    limit_w: int


@dataclass(frozen=True, slots=True)
class Plan:
    """The allocation now plus the predicted schedule over the horizon (re-plan on every event)."""

    at: datetime
    step_s: int
    horizon_s: int
    now: Allocation
    schedules: Mapping[str, tuple[SchedulePeriod, ...]]
    """Per vehicle: periods with merged equal limits, up to its departure or the horizon."""
    durations_s: Mapping[str, int]
    station: tuple[SchedulePeriod, ...]
    """Predicted station total per step (merged)."""
    final_soc: Mapping[str, float]
    """Predicted SoC at the end of each session's schedule."""


# --- one instant --------------------------------------------------------------------------------


def _laxity_h(s: ChargingSession, at: datetime, target: float) -> float:
    assert s.departure is not None
    until = (s.departure - at).total_seconds() / 3600.0
    charge_max = max(0.0, s.connector_max_w - s.keep_warm_need_w)
    return until - hours_to_soc(s.model, s.soc, target, charge_max)


def _priority(s: ChargingSession, at: datetime, policy: PlannerPolicy) -> tuple[Tier, float | None, tuple[Any, ...]]:
    target = s.target_soc
    if target is not None and s.soc < target:
        lax = _laxity_h(s, at, target)
        return "reserved", lax, (0, lax, s.soc, s.vehicle_id)
    if s.soc < policy.floor_soc:
        return "low", None, (1, s.soc, 0.0, s.vehicle_id)
    return "other", None, (2, s.soc, 0.0, s.vehicle_id)


class _Loads:
    """Station and phase loads, exact in integers (phases in sixths of a watt)."""

    def __init__(self, station: Station) -> None:
        self.limit = max(0, math.floor(station.limit_w))
        self.phase_limit6 = {p: max(0, math.floor(v)) * _SIXTHS for p, v in station.phase_limits_w.items()}
        self.total = 0
        self.phase6 = dict.fromkeys(self.phase_limit6, 0)

    def headroom(self, phases: tuple[str, ...]) -> int:
        room = self.limit - self.total
        k = len(phases)
        for p in phases:
            if p in self.phase_limit6:
                room = min(room, (self.phase_limit6[p] - self.phase6[p]) * k // _SIXTHS)
        return max(0, room)

    def add(self, phases: tuple[str, ...], watts: int) -> None:
        self.total += watts
        for p in phases:
            if p in self.phase6:
                self.phase6[p] += watts * _SIXTHS // len(phases)


def allocate(
    station: Station, sessions: Sequence[ChargingSession], at: datetime, policy: PlannerPolicy = DEFAULT_POLICY,
) -> Allocation:
    """Per-session power now (see the module docstring for the rule and its guarantees)."""
    ids = [s.vehicle_id for s in sessions]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate vehicle ids")
    loads = _Loads(station)
    n = len(sessions)
    conn = [max(0, math.floor(s.connector_max_w)) for s in sessions]
    need = [min(conn[i], math.ceil(s.keep_warm_need_w)) for i, s in enumerate(sessions)]
    caps = [min(conn[i], need[i] + math.floor(curve_power_w(s.model, s.soc))) for i, s in enumerate(sessions)]
    prio = [_priority(s, at, policy) for s in sessions]
    order = sorted(range(n), key=lambda i: prio[i][2])

    # Keep-warm: in full if it fits, else proportional shares (exact integer floors) under every constraint.
    kw = [0] * n
    total_need = sum(need)
    phase_need6 = dict.fromkeys(loads.phase_limit6, 0)
    for i, s in enumerate(sessions):
        for p in s.phases:
            if p in phase_need6:
                phase_need6[p] += need[i] * _SIXTHS // len(s.phases)
    for i, s in enumerate(sessions):
        share = need[i]
        if total_need > loads.limit:
            share = min(share, need[i] * loads.limit // total_need)
        for p in s.phases:
            if p in phase_need6 and phase_need6[p] > loads.phase_limit6[p]:
                share = min(share, need[i] * loads.phase_limit6[p] // phase_need6[p])
        kw[i] = share
        loads.add(s.phases, share)
    for i in order:  # integer crumbs of a proportional split, in priority order
        extra = min(need[i] - kw[i], loads.headroom(sessions[i].phases))
        if extra > 0:
            kw[i] += extra
            loads.add(sessions[i].phases, extra)
    shortfall = total_need - sum(kw)

    # Charging: greedy in priority order, up to each cap. A session still short of keep-warm has no
    # headroom left (the top-up above stopped there), so charging others cannot take from it.
    power = list(kw)
    for i in order:
        extra = min(caps[i] - power[i], loads.headroom(sessions[i].phases))
        if extra > 0:
            power[i] += extra
            loads.add(sessions[i].phases, extra)

    rank = {i: r for r, i in enumerate(order)}
    out = tuple(
        SessionAllocation(
            vehicle_id=s.vehicle_id, power_w=power[i], keep_warm_w=kw[i], charge_w=power[i] - kw[i], max_w=caps[i],
            keep_warm_need_w=need[i], rank=rank[i], tier=prio[i][0], laxity_h=prio[i][1],
        )
        for i, s in enumerate(sessions)
    )
    phase_load = {p: v / _SIXTHS for p, v in loads.phase6.items()}
    return Allocation(at, loads.limit, loads.total, shortfall, out, phase_load)


# --- schedule over a horizon --------------------------------------------------------------------


def _advance(s: ChargingSession, a: SessionAllocation, seconds: float) -> float:
    """SoC after ``seconds`` at this allocation: keep-warm first, the rest charges; a keep-warm
    shortfall drains the battery in proportion (like an unplugged car)."""
    need = s.keep_warm_need_w
    if a.keep_warm_w + 1e-9 >= need:
        return step_charge(s.model, s.soc, seconds, float(a.charge_w))[0]
    deficit_share = (need - a.keep_warm_w) / need
    return max(0.0, s.soc - s.model.self_discharge_per_h * deficit_share * seconds / 3600.0)


def _merge(periods: list[SchedulePeriod]) -> tuple[SchedulePeriod, ...]:
    out: list[SchedulePeriod] = []
    for p in periods:
        if not out or out[-1].limit_w != p.limit_w:
            out.append(p)
    return tuple(out)


def plan(
    station: Station,
    sessions: Sequence[ChargingSession],
    at: datetime,
    horizon_h: float = 12.0,
    step_s: int = 900,
    policy: PlannerPolicy = DEFAULT_POLICY,
) -> Plan:
    """Allocate now, then predict the next ``horizon_h`` hours in ``step_s`` steps by applying the same
    rule to the predicted SoCs (cars leave at their departure). Each step obeys every guarantee of
    :func:`allocate`, so each session's schedule is safe to send as an OCPP TxProfile."""
    if step_s <= 0 or horizon_h <= 0:
        raise ValueError("step_s and horizon_h must be positive")
    horizon_s = int(horizon_h * 3600)
    current = list(sessions)
    periods: dict[str, list[SchedulePeriod]] = {s.vehicle_id: [] for s in sessions}
    durations = {s.vehicle_id: horizon_s for s in sessions}
    for s in sessions:
        if s.departure is not None:
            durations[s.vehicle_id] = max(0, min(horizon_s, math.ceil((s.departure - at).total_seconds())))
    station_periods: list[SchedulePeriod] = []
    final = {s.vehicle_id: s.soc for s in sessions}
    first = alloc = allocate(station, current, at, policy)
    t = 0
    while t < horizon_s:
        station_periods.append(SchedulePeriod(t, alloc.total_w))
        step = min(step_s, horizon_s - t)
        nxt = []
        for s, a in zip(current, alloc.sessions, strict=True):
            periods[s.vehicle_id].append(SchedulePeriod(t, a.power_w))
            seconds = min(step, durations[s.vehicle_id] - t)
            soc = _advance(s, a, seconds) if seconds > 0 else s.soc
            final[s.vehicle_id] = soc
            nxt.append(replace(s, soc=soc))
        t += step
        current = [s for s in nxt if t < durations[s.vehicle_id]]
        if t < horizon_s:
            alloc = allocate(station, current, at + timedelta(seconds=t), policy)
    return Plan(
        at=at, step_s=step_s, horizon_s=horizon_s, now=first,
        schedules={k: _merge(v) for k, v in periods.items()}, durations_s=durations,
        station=_merge(station_periods), final_soc=final,
    )




# --- OCPP 1.6 ChargingProfile -------------------------------------------------------------------


def charging_profile(
    periods: Sequence[SchedulePeriod],
    start: datetime,
    profile_id: int,
    purpose: ProfilePurpose = "Tx",
    stack_level: int = 0,
    duration_s: int | None = None,
    transaction_id: int | None = None,
    number_phases: int | None = None,
) -> PowerLimit:
    """A version-neutral charging profile (absolute, in W) from schedule periods; each OCPP version's
    adapter writes it in its own words (``voltlib.ocpp.v16.commands``, ``voltlib.ocpp.v201.commands``)."""
    return PowerLimit(profile_id, purpose, tuple(Period(p.start_s, max(0, int(p.limit_w))) for p in periods), start,
                      stack_level, None if duration_s is None else int(duration_s), transaction_id, number_phases)


def tx_profile(
    p: Plan, vehicle_id: str, profile_id: int, stack_level: int = 0, transaction_id: int | None = None,
    purpose: ProfilePurpose = "Tx",
) -> PowerLimit:
    """The TxProfile (or TxDefaultProfile) for one session of a plan; its transaction id is taken from
    the argument or, failing that, left out."""
    return charging_profile(
        p.schedules[vehicle_id], p.at, profile_id, purpose, stack_level,
        duration_s=p.durations_s[vehicle_id], transaction_id=transaction_id,
    )


def station_max_profile(station: Station, start: datetime, profile_id: int, stack_level: int = 0) -> PowerLimit:
    """The charge point's maximum carrying the station grid limit (send on connector 0), open-ended."""
    return charging_profile([SchedulePeriod(0, max(0, math.floor(station.limit_w)))], start, profile_id,
                            "ChargePointMax", stack_level)
