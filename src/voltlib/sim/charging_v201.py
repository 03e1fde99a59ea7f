"""What the simulated 2.0.1 station does of K beyond set/clear/composite (issue 17): it reports the
profiles it holds (GetChargingProfiles -> ReportChargingProfiles, one part per EVSE and limit
source, ``tbc`` on all but the last), and an external limit (an EMS, the grid operator) can be put
on it or lifted: installed as a ChargingStationExternalConstraints profile, which caps its power
like any profile, and notified (NotifyChargingLimit / ClearedChargingLimit)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from voltlib.sim.profiles import ProfileStore, StoredProfile, format_time

Payload = dict[str, Any]
EXTERNAL = "ChargingStationExternalConstraints"
WIRE_PURPOSE = {"ChargePointMaxProfile": "ChargingStationMaxProfile"}  # the store's (1.6) name -> 2.0.1
EXTERNAL_ID_BASE = 900_000  # ids of the external constraints the station makes itself, by EVSE


def _wire(p: StoredProfile) -> Payload:
    """A stored profile as a 2.0.1 chargingProfile (one schedule, the profile's id)."""
    body = p.body
    profile: Payload = {"id": p.id, "stackLevel": p.stack_level,
                        "chargingProfilePurpose": WIRE_PURPOSE.get(p.purpose, p.purpose),
                        "chargingProfileKind": body["chargingProfileKind"],
                        "chargingSchedule": [{"id": p.id, **p.schedule}]}
    for key in ("recurrencyKind", "validFrom", "validTo"):
        if body.get(key) is not None:
            profile[key] = body[key]
    return profile


def matching(store: ProfileStore, request: Payload) -> list[StoredProfile]:
    """K09: the profiles that meet every criterion of a GetChargingProfiles request."""
    criteria = request.get("chargingProfile") or {}
    evse, purpose, level = request.get("evseId"), criteria.get("chargingProfilePurpose"), criteria.get("stackLevel")
    ids, sources = criteria.get("chargingProfileId"), criteria.get("chargingLimitSource")
    return [p for p in store.profiles
            if (evse is None or p.connector_id == evse)
            and (purpose is None or WIRE_PURPOSE.get(p.purpose, p.purpose) == purpose)
            and (level is None or p.stack_level == level) and (ids is None or p.id in ids)
            and (sources is None or p.body.get("limitSource", "CSO") in sources)]


def report_parts(request_id: int, found: list[StoredProfile]) -> list[Payload]:
    """ReportChargingProfiles payloads: one per (EVSE, limit source), ``tbc`` on all but the last."""
    groups: dict[tuple[int, str], list[StoredProfile]] = {}
    for p in found:
        groups.setdefault((p.connector_id, str(p.body.get("limitSource", "CSO"))), []).append(p)
    parts = [{"requestId": request_id, "evseId": evse, "chargingLimitSource": source,
              "chargingProfile": [_wire(p) for p in profiles], "tbc": True}
             for (evse, source), profiles in sorted(groups.items())]
    if parts:
        parts[-1]["tbc"] = False
    return parts


def external_profile(evse_id: int, limit_w: float, source: str, now: datetime) -> Payload:
    """The station's own ChargingStationExternalConstraints profile (the store's 1.6-shaped body)."""
    return {"chargingProfileId": EXTERNAL_ID_BASE + evse_id, "stackLevel": 0, "chargingProfilePurpose": EXTERNAL,
            "chargingProfileKind": "Absolute", "limitSource": source,
            "chargingSchedule": {"startSchedule": format_time(now), "chargingRateUnit": "W",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": float(limit_w)}]}}


def limit_notice(evse_id: int, limit_w: float, source: str, now: datetime, grid_critical: bool) -> Payload:
    notice: Payload = {"chargingLimit": {"chargingLimitSource": source, "isGridCritical": grid_critical},
                       "chargingSchedule": [{"id": EXTERNAL_ID_BASE + evse_id, "startSchedule": format_time(now),
                                             "chargingRateUnit": "W",
                                             "chargingSchedulePeriod": [{"startPeriod": 0, "limit": float(limit_w)}]}]}
    if evse_id > 0:
        notice["evseId"] = evse_id
    return notice


async def send_parts(call: Callable[[str, Payload], Awaitable[Payload]], parts: list[Payload]) -> None:
    for part in parts:
        await call("ReportChargingProfiles", part)
