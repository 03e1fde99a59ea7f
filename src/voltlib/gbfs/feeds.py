"""GBFS 3.0 files as plain dicts, built from a :class:`~voltlib.gbfs.model.CitySnapshot`.

Pure functions, no I/O: the HTTP layer decides ``now``, ``ttl`` and the base URL. ``last_updated``
is honest: the time the newest fact in the file changed, never simply "now".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from voltlib.domain.pricing import Billing, Plan
from voltlib.gbfs.model import BLUECAR_RANGE_M, BLUECAR_TYPE_ID, CitySnapshot, System

VERSION: Final = "3.0"
# Every file of a city, in the order gbfs.json lists them.
CITY_FEEDS: Final = ("gbfs", "gbfs_versions", "system_information", "vehicle_types", "station_information",
                     "station_status", "vehicle_status", "system_pricing_plans", "system_alerts")
# Files that hold absolute URLs (built per base URL by the HTTP layer).
LINKED: Final = frozenset({"gbfs", "gbfs_versions", "system_information"})
# How long each file may be cached, in seconds (also its HTTP max-age). 0 = changes at any moment.
TTL: Final[dict[str, int]] = {"manifest": 300, "gbfs": 300, "gbfs_versions": 300, "system_information": 3600,
                              "vehicle_types": 3600, "station_information": 300, "station_status": 0,
                              "vehicle_status": 0, "system_pricing_plans": 3600, "system_alerts": 60}
EPOCH: Final = datetime(2011, 12, 5, tzinfo=UTC)  # Autolib' opening day: the floor for static files


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def text(value: str, language: str) -> list[dict[str, str]]:
    return [{"text": value, "language": language}]


def envelope(feed: str, data: dict[str, Any], last_updated: datetime) -> dict[str, Any]:
    return {"last_updated": rfc3339(last_updated), "ttl": TTL[feed], "version": VERSION, "data": data}


def _latest(moments: Iterable[datetime | None], default: datetime) -> datetime:
    known = [m for m in moments if m is not None]
    return max(known) if known else default


def _updated(snap: CitySnapshot) -> datetime:
    return snap.updated_at or EPOCH


def manifest(systems: list[System], base_url: str, last_updated: datetime) -> dict[str, Any]:
    datasets = [{"system_id": s.system_id,
                 "versions": [{"version": VERSION, "url": f"{base_url}/{s.system_id}/gbfs.json"}]}
                for s in systems]
    return envelope("manifest", {"datasets": datasets}, last_updated)


def gbfs(snap: CitySnapshot, base_url: str) -> dict[str, Any]:
    city = f"{base_url}/{snap.system.system_id}"
    feeds = [{"name": name, "url": f"{city}/{name}.json"} for name in CITY_FEEDS]
    return envelope("gbfs", {"feeds": feeds}, EPOCH)


def gbfs_versions(snap: CitySnapshot, base_url: str) -> dict[str, Any]:
    url = f"{base_url}/{snap.system.system_id}/gbfs.json"
    return envelope("gbfs_versions", {"versions": [{"version": VERSION, "url": url}]}, EPOCH)


def system_information(snap: CitySnapshot, base_url: str) -> dict[str, Any]:
    s = snap.system
    data: dict[str, Any] = {
        "system_id": s.system_id, "languages": [s.language], "name": text(s.name, s.language),
        "operator": text(s.operator, s.language), "opening_hours": s.opening_hours,
        "feed_contact_email": s.feed_contact_email, "timezone": s.timezone,
        "manifest_url": f"{base_url}/manifest.json"}
    if s.license_url:
        data["license_url"] = s.license_url
    return envelope("system_information", data, EPOCH)


def vehicle_types(snap: CitySnapshot) -> dict[str, Any]:
    lang = snap.system.language
    bluecar = {"vehicle_type_id": BLUECAR_TYPE_ID, "form_factor": "car", "propulsion_type": "electric",
               "max_range_meters": BLUECAR_RANGE_M, "rider_capacity": 4, "name": text("Bluecar", lang),
               "make": text("Bolloré", lang), "model": text("Bluecar", lang), "wheel_count": 4,
               "return_constraint": "any_station", "default_reserve_time": 30,
               "pricing_plan_ids": [p.code for p in snap.plans]}
    if snap.plans:
        bluecar["default_pricing_plan_id"] = snap.plans[0].code
    return envelope("vehicle_types", {"vehicle_types": [bluecar]}, EPOCH)


def station_information(snap: CitySnapshot) -> dict[str, Any]:
    lang = snap.system.language
    stations = []
    for st in snap.stations:
        item: dict[str, Any] = {
            "station_id": st.station_id, "name": text(st.name, lang), "lat": st.lat, "lon": st.lon,
            "capacity": st.capacity, "is_charging_station": True,
            "parking_type": "underground_parking" if st.underground else "street_parking",
            "vehicle_types_capacity": [{"vehicle_type_ids": [BLUECAR_TYPE_ID], "count": st.capacity}],
            "vehicle_docks_capacity": [{"vehicle_type_ids": [BLUECAR_TYPE_ID], "count": st.capacity}]}
        if st.address:
            item["address"] = st.address
        if st.post_code:
            item["post_code"] = st.post_code
        stations.append(item)
    return envelope("station_information", {"stations": stations}, _updated(snap))


def station_status(snap: CitySnapshot) -> dict[str, Any]:
    stations = []
    for s in snap.states:
        open_ = not s.closed
        stations.append({
            "station_id": s.station_id, "num_vehicles_available": s.cars_available,
            "vehicle_types_available": [{"vehicle_type_id": BLUECAR_TYPE_ID, "count": s.cars_available}],
            "num_vehicles_disabled": s.cars_disabled, "num_docks_available": s.bays_free,
            "vehicle_docks_available": [{"vehicle_type_ids": [BLUECAR_TYPE_ID], "count": s.bays_free}],
            "num_docks_disabled": s.bays_disabled, "is_installed": True, "is_renting": open_,
            "is_returning": open_, "last_reported": rfc3339(s.last_reported)})
    last = _latest((s.last_reported for s in snap.states), _updated(snap))
    return envelope("station_status", {"stations": stations}, last)


def vehicle_status(snap: CitySnapshot) -> dict[str, Any]:
    """Available cars only (docked, not reserved, not disabled), as the issue asks."""
    vehicles = [{"vehicle_id": v.vehicle_id, "station_id": v.station_id, "vehicle_type_id": BLUECAR_TYPE_ID,
                 "is_reserved": False, "is_disabled": False, "last_reported": rfc3339(v.last_reported),
                 "current_range_meters": max(0, v.range_m),
                 "current_fuel_percent": round(min(1.0, max(0.0, v.state_of_charge)), 3)}
                for v in snap.vehicles if not v.reserved and not v.disabled]
    last = _latest((v.last_reported for v in snap.vehicles), _updated(snap))
    return envelope("vehicle_status", {"vehicles": vehicles}, last)


def pricing_plan(plan: Plan, language: str) -> dict[str, Any]:
    """A voltlib plan as a GBFS plan. The subscription fee is not a per-rental price, so ``price``
    is what every rental costs at least; the rule's bands become ``per_min_pricing`` segments."""
    rule = plan.rule
    segments: list[dict[str, Any]] = []
    price = 0.0
    start = 0
    for band in rule.bands:
        amount = float(band.price.amount())
        if rule.billing is Billing.PERIOD:
            seg: dict[str, Any] = {"start": start, "rate": amount, "interval": rule.period_minutes}
        else:
            seg = {"start": start, "rate": round(amount / rule.period_minutes, 4), "interval": 1}
        if band.periods is not None:
            seg["end"] = start + band.periods * rule.period_minutes
            start = seg["end"]
        segments.append(seg)
    if rule.billing is Billing.MINUTE and rule.minimum_minutes:
        # the minimum is billed up front at the first band's per-minute rate, then per minute after it
        first = float(rule.bands[0].price.amount()) / rule.period_minutes
        price = round(first * rule.minimum_minutes, 2)
        segments[0]["start"] = rule.minimum_minutes
    fee = f"{plan.fee.amount()} {plan.currency}"
    description = f"Subscription {fee} for {plan.period_days} days, then per rental: " + ", ".join(
        f"{b.price.amount()} {plan.currency} ({rule.band_label(i)})" for i, b in enumerate(rule.bands))
    return {"plan_id": plan.code, "name": text(plan.name, language), "currency": plan.currency, "price": price,
            "is_taxable": False, "description": text(description, language), "per_min_pricing": segments}


def system_pricing_plans(snap: CitySnapshot) -> dict[str, Any]:
    plans = [pricing_plan(p, snap.system.language) for p in snap.plans]
    return envelope("system_pricing_plans", {"plans": plans}, EPOCH)


def system_alerts(snap: CitySnapshot) -> dict[str, Any]:
    lang = snap.system.language
    alerts = [{"alert_id": f"closure-{c.station_id}", "type": "station_closure", "station_ids": [c.station_id],
               "times": [{"start": rfc3339(c.since)}], "summary": text(c.reason, lang),
               "last_updated": rfc3339(c.since)} for c in snap.closures]
    last = _latest((c.since for c in snap.closures), _updated(snap))
    return envelope("system_alerts", {"alerts": alerts}, last)


def build(feed: str, snap: CitySnapshot, base_url: str) -> dict[str, Any]:
    """One file of a city by its GBFS name (KeyError for an unknown name)."""
    if feed == "gbfs":
        return gbfs(snap, base_url)
    if feed == "gbfs_versions":
        return gbfs_versions(snap, base_url)
    if feed == "system_information":
        return system_information(snap, base_url)
    builders = {"vehicle_types": vehicle_types, "station_information": station_information,
                "station_status": station_status, "vehicle_status": vehicle_status,
                "system_pricing_plans": system_pricing_plans, "system_alerts": system_alerts}
    return builders[feed](snap)
