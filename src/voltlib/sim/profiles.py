"""Smart charging for the simulated charge point: stored charging profiles (OCPP 1.6 §3.13),
the power limit in force at a given time, and composite schedules.

Pure functions and one small store, no I/O: the charge point passes the time in. Limits are
handled in watts internally; amperes are converted at 230 V per phase (3 phases unless the
schedule period says otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

VOLTAGE = 230.0
DEFAULT_PHASES = 3
_RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(days=7)}
EXTERNAL = "ChargingStationExternalConstraints"  # 2.0.1: a limit set outside the central system


def parse_time(text: str) -> datetime:
    """An OCPP date-time (RFC 3339) as an aware datetime; a time without zone is taken as UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """``2026-01-01T08:00:00.000Z``: UTC, millisecond precision, as OCPP charge points send it."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_watts(limit: float, unit: str, phases: int | None) -> float:
    return float(limit) if unit == "W" else float(limit) * VOLTAGE * (phases or DEFAULT_PHASES)


def from_watts(watts: float, unit: str) -> float:
    value = watts if unit == "W" else watts / (VOLTAGE * DEFAULT_PHASES)
    return round(value) if unit == "W" else round(value, 1)


@dataclass(frozen=True, slots=True)
class StoredProfile:
    """A csChargingProfiles object as received, with the connector it was installed on."""

    connector_id: int
    body: dict[str, Any]

    @property
    def id(self) -> int:
        return int(self.body["chargingProfileId"])

    @property
    def purpose(self) -> str:
        return str(self.body["chargingProfilePurpose"])

    @property
    def stack_level(self) -> int:
        return int(self.body["stackLevel"])

    @property
    def transaction_id(self) -> int | None:
        value = self.body.get("transactionId")
        return None if value is None else int(value)

    @property
    def schedule(self) -> dict[str, Any]:
        schedule: dict[str, Any] = self.body["chargingSchedule"]
        return schedule

    def valid_at(self, t: datetime) -> bool:
        valid_from, valid_to = self.body.get("validFrom"), self.body.get("validTo")
        if valid_from is not None and t < parse_time(valid_from):
            return False
        return not (valid_to is not None and t >= parse_time(valid_to))

    def start_at(self, t: datetime, tx_start: datetime | None) -> datetime:
        """When the schedule that applies at ``t`` started."""
        kind = self.body["chargingProfileKind"]
        if kind == "Relative":
            return tx_start or t
        start_text = self.schedule.get("startSchedule") or self.body.get("validFrom")
        start = parse_time(start_text) if start_text else (tx_start or t)
        period = _RECURRENCE.get(self.body.get("recurrencyKind", "Daily"), _RECURRENCE["Daily"])
        if kind == "Recurring" and t >= start:
            start += period * ((t - start) // period)
        return start

    def limit_at(self, t: datetime, tx_start: datetime | None) -> float | None:
        """The limit in watts at ``t``, or None if this profile says nothing then."""
        if not self.valid_at(t):
            return None
        schedule = self.schedule
        elapsed = (t - self.start_at(t, tx_start)).total_seconds()
        duration = schedule.get("duration")
        if elapsed < 0 or (duration is not None and elapsed >= duration):
            return None
        current: dict[str, Any] | None = None
        for period in sorted(schedule["chargingSchedulePeriod"], key=lambda p: int(p["startPeriod"])):
            if period["startPeriod"] <= elapsed:
                current = period
        if current is None:
            return None
        return to_watts(current["limit"], schedule["chargingRateUnit"], current.get("numberPhases"))

    def boundaries(self, begin: datetime, end: datetime, tx_start: datetime | None) -> set[datetime]:
        """Times in [begin, end) at which this profile's limit may change."""
        points: set[datetime] = set()
        for key in ("validFrom", "validTo"):
            if self.body.get(key):
                points.add(parse_time(self.body[key]))
        starts = [self.start_at(begin, tx_start)]
        if self.body["chargingProfileKind"] == "Recurring":
            period = _RECURRENCE.get(self.body.get("recurrencyKind", "Daily"), _RECURRENCE["Daily"])
            while starts[-1] + period < end:
                starts.append(starts[-1] + period)
        for start in starts:
            points.add(start)
            for p in self.schedule["chargingSchedulePeriod"]:
                points.add(start + timedelta(seconds=int(p["startPeriod"])))
            if self.schedule.get("duration") is not None:
                points.add(start + timedelta(seconds=int(self.schedule["duration"])))
        return {p for p in points if begin <= p < end}


def _lowest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


class ProfileStore:
    """The charging profiles installed on one charge point."""

    def __init__(self, connectors: int) -> None:
        self.connectors = connectors
        self.profiles: list[StoredProfile] = []

    def install(self, connector_id: int, body: dict[str, Any], active_transaction: int | None) -> str:
        """SetChargingProfile: the status to answer (Accepted or Rejected)."""
        new = StoredProfile(connector_id, body)
        if not 0 <= connector_id <= self.connectors:
            return "Rejected"
        if new.purpose == "ChargePointMaxProfile" and connector_id != 0:
            return "Rejected"
        if new.purpose == "TxProfile":
            if connector_id == 0 or active_transaction is None:
                return "Rejected"
            if new.transaction_id is not None and new.transaction_id != active_transaction:
                return "Rejected"
        self.profiles = [p for p in self.profiles if p.id != new.id and not (
            p.connector_id == connector_id and p.purpose == new.purpose and p.stack_level == new.stack_level)]
        self.profiles.append(new)
        return "Accepted"

    def put_external(self, connector_id: int, body: dict[str, Any] | None, profile_id: int) -> None:
        """The station's own external constraint on a connector (0: all of it): set, or lifted (None)."""
        self.profiles = [p for p in self.profiles if p.id != profile_id]
        if body is not None:
            self.profiles.append(StoredProfile(connector_id, body))

    def _external(self, connector_id: int, t: datetime) -> float | None:
        limits = [limit for p in self.profiles if p.purpose == EXTERNAL and p.connector_id == connector_id
                  and (limit := p.limit_at(t, None)) is not None]
        return min(limits) if limits else None

    def clear(self, profile_id: int | None, connector_id: int | None, purpose: str | None,
              stack_level: int | None) -> bool:
        """ClearChargingProfile: remove what matches every given criterion; True if any was removed.
        External constraints are not the central system's to clear."""
        def matches(p: StoredProfile) -> bool:
            if p.purpose == EXTERNAL:
                return False
            if profile_id is not None:
                return p.id == profile_id
            return ((connector_id is None or p.connector_id == connector_id)
                    and (purpose is None or p.purpose == purpose)
                    and (stack_level is None or p.stack_level == stack_level))

        kept = [p for p in self.profiles if not matches(p)]
        removed = len(kept) != len(self.profiles)
        self.profiles = kept
        return removed

    def end_transaction(self, connector_id: int) -> None:
        """TxProfiles end with their transaction."""
        self.profiles = [p for p in self.profiles if not (p.purpose == "TxProfile" and p.connector_id == connector_id)]

    def _stacked(self, candidates: list[StoredProfile], t: datetime, tx_start: datetime | None) -> float | None:
        for profile in sorted(candidates, key=lambda p: -p.stack_level):
            limit = profile.limit_at(t, tx_start)
            if limit is not None:
                return limit
        return None

    def connector_limit(self, connector_id: int, t: datetime, transaction_id: int | None,
                        tx_start: datetime | None) -> float | None:
        """The TxProfile or TxDefaultProfile limit (watts) for one connector at ``t``."""
        if transaction_id is not None or tx_start is not None:
            tx_profiles = [p for p in self.profiles if p.purpose == "TxProfile" and p.connector_id == connector_id
                           and (p.transaction_id is None or p.transaction_id == transaction_id)]
            limit = self._stacked(tx_profiles, t, tx_start)
            if limit is not None:
                return _lowest(limit, self._external(connector_id, t))
        defaults = [p for p in self.profiles if p.purpose == "TxDefaultProfile" and p.connector_id == connector_id]
        limit = self._stacked(defaults, t, tx_start)
        if limit is None:
            defaults = [p for p in self.profiles if p.purpose == "TxDefaultProfile" and p.connector_id == 0]
            limit = self._stacked(defaults, t, tx_start)
        return _lowest(limit, self._external(connector_id, t))

    def charge_point_limit(self, t: datetime) -> float | None:
        """The ChargePointMaxProfile limit (watts) for the whole charge point at ``t``."""
        cap = self._stacked([p for p in self.profiles if p.purpose == "ChargePointMaxProfile"], t, None)
        return _lowest(cap, self._external(0, t))

    def composite(self, connector_id: int, begin: datetime, duration: int, unit: str, hardware_w: float,
                  transaction_id: int | None, tx_start: datetime | None) -> dict[str, Any]:
        """The chargingSchedule of GetCompositeSchedule: the limits in force from ``begin`` for ``duration`` s."""
        end = begin + timedelta(seconds=max(duration, 0))
        points = {begin}
        for profile in self.profiles:
            points |= profile.boundaries(begin, end, tx_start)
        periods: list[dict[str, Any]] = []
        for t in sorted(points):
            limit = hardware_w
            if connector_id != 0:
                connector = self.connector_limit(connector_id, t, transaction_id, tx_start)
                if connector is not None:
                    limit = min(limit, connector)
            cp_max = self.charge_point_limit(t)
            if cp_max is not None:
                limit = min(limit, cp_max)
            value = from_watts(max(limit, 0.0), unit)
            if not periods or periods[-1]["limit"] != value:
                periods.append({"startPeriod": int((t - begin).total_seconds()), "limit": value})
        return {"duration": max(duration, 0), "startSchedule": format_time(begin), "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods}
