"""Who may rent and which car may be rented: a member's standing, a car's range and charge as the
rental sees them, a subscription's end (plain functions of stored rows, no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from voltlib.domain import battery
from voltlib.domain import rental as dr
from voltlib.sharing.store import CityRecord

TRIP_MARGIN = 1.25  # range a car needs per km of the member's planned trip (detours, cold, ageing)


def standing(member: dict[str, Any], now: datetime) -> str | None:
    """Why ``member`` may not rent now, or None."""
    if not member["licence_verified"]:
        return "licence_unverified"
    if member["licence_expiry"] <= now:
        return "licence_expired"
    if not member["payment_ok"]:
        return "payment_problem"
    if member["plan_code"] is None or member["subscribed_until"] is None or member["subscribed_until"] <= now:
        return "no_subscription"
    return None


def subscription_until(now: datetime, period_days: int) -> datetime:
    return now + timedelta(days=period_days)


def car_range_km(car: dict[str, Any]) -> float | None:
    soc = car["soc_percent"]
    return None if soc is None else battery.range_km(battery.BLUECAR, soc / 100.0)


def is_rentable(car: dict[str, Any], city: CityRecord, needed_km: float | None = None) -> bool:
    """Docked, with the city's minimum range (or ``needed_km``)."""
    km = car_range_km(car)
    return car["status"] == "docked" and km is not None and km >= (needed_km or city.min_range_km)


def soc_snapshot(car: dict[str, Any]) -> dr.SocSnapshot | None:
    """The car's stored estimate, as it stands now (None when it has none)."""
    if car["soc_percent"] is None or car["soc_at"] is None:
        return None
    return dr.SocSnapshot(float(car["soc_percent"]), car["soc_source"] or "unknown", car["soc_at"])
