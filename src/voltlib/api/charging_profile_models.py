"""The typed bodies of the charging-profile endpoints (issue 20 part 3): what an operator sends is
checked here before anything is stored or sent; what the API answers is described to OpenAPI from
the same classes."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec

from voltlib.api import models
from voltlib.ocpp.v16.messages import check_utc_range

MAX_LIMIT_W = 10_000_000.0  # 10 MW: above any charge point; a typo guard (as the grid limit's)
MAX_SECONDS = 7 * 24 * 3600  # a schedule spans at most a week (a Weekly recurrence)
MAX_PERIODS = 48  # a day in half hours; charge points announce far fewer (ChargingScheduleMaxPeriods)
MAX_STACK_LEVEL = 100
RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(days=7)}
Purpose = Literal["ChargePointMax", "TxDefault", "Tx"]
Connector = Annotated[int, msgspec.Meta(ge=0, le=1000)]
StackLevel = Annotated[int, msgspec.Meta(ge=0, le=MAX_STACK_LEVEL)]


class Period(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """From ``start_s`` seconds after the schedule's start, at most ``limit_w`` watts."""

    start_s: Annotated[int, msgspec.Meta(ge=0, le=MAX_SECONDS)]
    limit_w: Annotated[float, msgspec.Meta(ge=0, le=MAX_LIMIT_W)]


class NewChargingProfile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A profile to store; installed later by id. Limits are in W (every voltlib limit is)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\w .:+@/-]+$")]
    purpose: Purpose
    periods: Annotated[list[Period], msgspec.Meta(min_length=1, max_length=MAX_PERIODS)]
    stack_level: StackLevel = 0
    kind: Literal["Absolute", "Recurring", "Relative"] = "Absolute"
    recurrency: Literal["Daily", "Weekly"] | None = None
    start_at: datetime | None = None  # Absolute: None = when it is installed; Recurring: required
    duration_s: Annotated[int, msgspec.Meta(gt=0, le=MAX_SECONDS)] | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    number_phases: Literal[1, 2, 3] | None = None

    def __post_init__(self) -> None:
        for name in ("start_at", "valid_from", "valid_to"):
            value = getattr(self, name)
            if value is not None:
                if value.tzinfo is None:
                    raise ValueError(f"{name} needs its UTC offset")
                check_utc_range(name, value)


def profile_problems(p: NewChargingProfile) -> list[str]:
    """What makes a well-typed profile one no charge point would take (OCPP 1.6 §3.13, 2.0.1 K01)."""
    wrong = []
    starts = [period.start_s for period in p.periods]
    if starts[0] != 0 or any(b <= a for a, b in itertools.pairwise(starts)):
        wrong.append("periods start at 0 and their start_s increase")
    if p.duration_s is not None and starts[-1] >= p.duration_s:
        wrong.append("every period starts before duration_s")
    if (p.kind == "Recurring") != (p.recurrency is not None):
        wrong.append("a Recurring profile, and only it, has a recurrency")
    if p.kind == "Recurring" and p.start_at is None:
        wrong.append("a Recurring profile needs start_at (when its first day or week starts)")
    if p.recurrency is not None and (p.duration_s or 0) > RECURRENCE[p.recurrency].total_seconds():
        wrong.append("a Recurring profile's duration fits in its recurrence")
    if p.kind == "Relative" and p.start_at is not None:
        wrong.append("a Relative profile runs from the transaction's start: no start_at")
    if p.kind == "Relative" and p.purpose == "ChargePointMax":
        wrong.append("a ChargePointMax profile cannot be Relative")
    if p.valid_from is not None and p.valid_to is not None and p.valid_to <= p.valid_from:
        wrong.append("valid_to comes after valid_from")
    return wrong


class Install(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Install stored profile ``profile_id`` on a connector (0: the whole charge point); a Tx profile
    names the open transaction it is for (voltlib's id)."""

    profile_id: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1001)]
    connector_id: Connector = 0
    transaction_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)] | None = None


class Clear(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Clear the profile of ``charging_profile_id``, or every one matching all the criteria given."""

    charging_profile_id: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] | None = None
    connector_id: Connector | None = None
    purpose: Purpose | None = None
    stack_level: StackLevel | None = None


class ProfileRefresh(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Read the composite schedule of these connectors (default: 0 and every known connector) over
    ``duration_s``; a 2.0.1 station is also asked for every profile it holds (GetChargingProfiles)."""

    connector_ids: Annotated[list[Connector], msgspec.Meta(max_length=32)] | None = None
    duration_s: Annotated[int, msgspec.Meta(ge=60, le=MAX_SECONDS)] = 3600


# --- answers ------------------------------------------------------------------------------------


class StoredChargingProfile(msgspec.Struct, kw_only=True):
    id: int
    charging_profile_id: int  # the OCPP chargingProfileId it is installed under (id + 1000)
    name: str
    purpose: str
    stack_level: int
    kind: str
    recurrency: str | None
    start_at: datetime | None
    duration_s: int | None
    valid_from: datetime | None
    valid_to: datetime | None
    periods: list[dict[str, Any]]
    created_by: str
    created_at: datetime
    installed_on: list[str] | None = None  # charge points that hold it (one profile's answer)


class ProfileDeleted(msgspec.Struct, kw_only=True):
    id: int
    deleted: bool


class HeldProfile(msgspec.Struct, kw_only=True):
    """A profile a charge point holds, as voltlib installed it or the station reported it."""

    id: int
    charge_point_id: str
    charging_profile_id: int
    connector_id: int
    purpose: str  # ChargePointMax | TxDefault | Tx | ExternalConstraints
    stack_level: int
    source: str  # operator | smart-charging | station
    stored_profile_id: int | None
    limit_source: str | None
    transaction_id: str | None
    profile: dict[str, Any]  # kind, recurrency, start_at, duration_s, valid_from, valid_to, periods (W)
    request_id: int | None
    updated_at: datetime
    read_only: bool  # smart charging's own: re-planned by it, not an operator's to clear or replace


class Composite(msgspec.Struct, kw_only=True):
    charge_point_id: str
    connector_id: int
    schedule_start: datetime | None
    duration_s: int | None
    periods: list[dict[str, Any]]  # [{start_s, limit_w}]
    read_at: datetime


class ExternalLimit(msgspec.Struct, kw_only=True):
    charge_point_id: str
    evse_id: int
    limit_source: str
    grid_critical: bool | None
    limit_w: float | None
    periods: list[dict[str, Any]] | None
    schedule_start: datetime | None
    received_at: datetime


class ProfileReport(msgspec.Struct, kw_only=True):
    charge_point_id: str
    request_id: int
    full: bool
    status: str  # requested | Accepted | NoProfiles | complete | not-sent | no-answer
    parts: int
    profiles: int
    requested_at: datetime
    updated_at: datetime


class ChargePointProfiles(msgspec.Struct, kw_only=True):
    charge_point_id: str
    profiles: list[HeldProfile]
    composite_schedules: list[Composite]
    external_limits: list[ExternalLimit]


class ProfileCommand(msgspec.Struct, kw_only=True):
    """A profile command's outcome: ``status`` the charge point's answer (None when it gave none)."""

    status: str | None
    command: models.Command  # type: ignore[valid-type]


class Refreshed(msgspec.Struct, kw_only=True):
    composites: list[ProfileCommand]
    report: ProfileReport | None  # 2.0.1: the GetChargingProfiles request; its parts come after
