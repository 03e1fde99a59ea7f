"""What a plugged-in car says it needs, and how the planner weighs it against what voltlib knows.

Pure and typed: no I/O, no protocol payloads. An ISO 15118 car tells its OCPP 2.0.1 station how much
energy it wants, when it leaves and how much power it takes; the gateway turns that into a
:class:`CarNeeds` (:mod:`voltlib.gateway.ev_needs_v201`). A 1.6 post never has one.

Precedence, field by field (docs/energy.md, "Smart charging with the car's needs"): **the car's
report**, then **the car's next reservation** (its hold's expiry and the range a reserved car must
hold), then **today's estimate** (no departure: the state-of-charge floor decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from voltlib.domain.battery import VehicleModel

VOLTS_PER_PHASE: Final = 230.0  # the nominal line-to-neutral voltage an AC current limit is converted at
Source = Literal["car", "reservation", "estimate"]


@dataclass(frozen=True, slots=True)
class CarNeeds:
    """A car's charging needs as voltlib keeps them (one report; the latest of a session wins)."""

    received_at: datetime
    dc: bool
    phases: int  # AC: 1 to 3; DC: 0
    energy_wh: float | None  # what the car asks for (at its inlet), None when it did not say
    departure: datetime | None  # after the clock policy (None: not said, or not believed)
    max_power_w: float | None  # what the car (and its cable) can take
    soc_at_receipt: float | None  # 0..1: what ``energy_wh`` is counted from (the car's own, else voltlib's)


@dataclass(frozen=True, slots=True)
class Targets:
    """What one session is planned for: the inputs of :class:`voltlib.domain.charging.ChargingSession`."""

    departure: datetime | None
    required_soc: float | None
    required_range_km: float | None
    max_w: float | None  # the car's own cap, None: only the connector's
    source: Source  # where the departure and requirement come from


def ac_power_w(current_a: float, phases: int) -> float:
    """An AC current limit per phase as power, at the nominal voltage."""
    return max(0.0, current_a) * VOLTS_PER_PHASE * max(1, phases)


def target_soc(needs: CarNeeds, model: VehicleModel) -> float | None:
    """The state of charge the car's energy request amounts to. The request is energy at the inlet and
    is counted in full: the battery gets a little less (its efficiency), so the plan errs towards
    more. None when the car named no energy, or nothing says where it started from."""
    if needs.energy_wh is None or needs.soc_at_receipt is None:
        return None
    return min(1.0, max(0.0, needs.soc_at_receipt + needs.energy_wh / model.usable_wh))


def targets(needs: CarNeeds | None, reserved_until: datetime | None, reserved_range_km: float | None,
            model: VehicleModel) -> Targets:
    """The car's report where it says something, the reservation for what it does not, else nothing."""
    if needs is None:
        if reserved_until is None:
            return Targets(None, None, None, None, "estimate")
        return Targets(reserved_until, None, reserved_range_km, None, "reservation")
    departure = needs.departure or reserved_until
    wanted = target_soc(needs, model)
    required_range = reserved_range_km if wanted is None and reserved_until is not None else None
    if departure is None or (needs.departure is None and wanted is None):
        source: Source = "reservation" if departure is not None else "estimate"
    else:
        source = "car"
    return Targets(departure, wanted, required_range, needs.max_power_w, source)


def answer_needs(problem: str | None, has_transaction: bool, token_known: bool, planned: bool
                 ) -> tuple[str, str | None]:
    """NotifyEVChargingNeeds' status and reasonCode (K15.FR.03-05, K17.FR.03-05). Accepted: a
    schedule follows at once (a TxProfile through the command port, K15.FR.07). Processing: it follows
    too, but the session's token is not known yet, so the plan cannot weigh the car's reservation
    until it is. Rejected: no schedule will come: the report is unusable (``problem``), no session is
    open on that EVSE, or voltlib does not plan that charge point (smart charging off, not a bay)."""
    if problem is not None:
        return "Rejected", problem
    if not has_transaction:
        return "Rejected", "TxNotFound"
    if not planned:
        return "Rejected", "NotEnabled"
    return ("Accepted", None) if token_known else ("Processing", None)


Periods = list[tuple[float, float]]  # (seconds from the schedule's start, limit in W), in order


def limit_at(periods: Periods, start: datetime, at: datetime) -> float | None:
    """The limit of a schedule starting at ``start`` in force at ``at`` (None: not started yet)."""
    elapsed = (at - start).total_seconds()
    found = None
    for offset, watts in periods:
        if offset <= elapsed:
            found = watts
    return found


def within(car: Periods, car_start: datetime, ours: Periods, our_start: datetime) -> bool:
    """Whether every period of the car's schedule stays within the limit voltlib set for it at that
    time (K15.FR.11/12), to half a watt. Periods before voltlib's schedule starts are not judged."""
    for offset, watts in car:
        mine = limit_at(ours, our_start, car_start + _seconds(offset))
        if mine is not None and watts > mine + 0.5:
            return False
    return True


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
