"""Cities as data: timezone, currency, plans and rental policy, from ``data/cities.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from typing import Any

from voltlib.domain.pricing import Plan, load_plans
from voltlib.domain.rental import RentalPolicy


@dataclass(frozen=True)
class City:
    code: str
    name: str
    timezone: str
    currency: str
    plans: dict[str, Plan]
    policy: RentalPolicy
    min_range_km: int

    def policy_json(self) -> dict[str, int]:
        p = self.policy
        return {"car_hold_s": int(p.car_hold.total_seconds()), "bay_hold_s": int(p.bay_hold.total_seconds()),
                "release_after_s": int(p.release_after.total_seconds()),
                "overdue_after_s": int(p.overdue_after.total_seconds())}


def policy_from_json(data: dict[str, Any]) -> RentalPolicy:
    return RentalPolicy(car_hold=timedelta(seconds=data["car_hold_s"]), bay_hold=timedelta(seconds=data["bay_hold_s"]),
                        release_after=timedelta(seconds=data["release_after_s"]),
                        overdue_after=timedelta(seconds=data["overdue_after_s"]))


def _data(name: str) -> str:
    return resources.files("voltlib.sharing.data").joinpath(name).read_text(encoding="utf-8")


def builtin_cities() -> dict[str, City]:
    doc = tomllib.loads(_data("cities.toml"))
    cities = {}
    for entry in doc["city"]:
        policy = entry["policy"]
        plans = load_plans(_data(entry["plans"]))
        if any(plan.currency != entry["currency"] for plan in plans.values()):
            raise ValueError(f"city {entry['code']}: a plan is not in {entry['currency']}")
        cities[entry["code"]] = City(
            code=entry["code"], name=entry["name"], timezone=entry["timezone"], currency=entry["currency"],
            plans=plans, min_range_km=int(entry["min_range_km"]),
            policy=RentalPolicy(car_hold=timedelta(minutes=policy["car_hold_minutes"]),
                                bay_hold=timedelta(minutes=policy["bay_hold_minutes"]),
                                release_after=timedelta(minutes=policy["release_after_minutes"]),
                                overdue_after=timedelta(hours=policy["overdue_after_hours"])))
    return cities


def paris_snapshot() -> str:
    """The packaged Autolib' station snapshot (Ville de Paris open data, ODbL)."""
    return _data("paris-stations-2018-05-18.csv")
