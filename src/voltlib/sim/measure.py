"""Measuring the service (issue 19): what share of the wanted trips was served, and when and why the
others were lost, hour by hour, so that two runs of one seed (without and with crews) compare; and
the energy side of two runs of one seed planned without and with the cars' needs (issue 17)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

HOURLY = ("lost:", "rentals_served")  # the counts also kept per simulated hour


class HourlyCounts(Counter[str]):
    """A Counter that also keeps, for the lost trips (by reason) and the rentals served, how many
    were counted in each simulated hour (``hour()``: hours since the play started)."""

    def __init__(self, hour: Callable[[], float]) -> None:
        super().__init__()
        self.hour = hour
        self.by_hour: dict[str, Counter[int]] = {}

    def __setitem__(self, key: str, value: int) -> None:
        before = self.get(key, 0)
        super().__setitem__(key, value)
        if value > before and key.startswith(HOURLY):
            self.by_hour.setdefault(key, Counter())[max(0, int(self.hour()))] += value - before

    def per_hour(self, key: str, hours: int) -> list[int]:
        """Hour by hour for ``hours`` hours; what was counted after the last (a return while the
        simulation settles) goes in the last."""
        found = self.by_hour.get(key, Counter())
        out = [found[h] for h in range(hours)]
        out[-1] += sum(n for h, n in found.items() if h >= hours)
        return out


def served_share(demand: int, served: int) -> float:
    """Rentals served ÷ trips wanted (the trips still on the road at the end count as not served)."""
    return round(served / demand, 4) if demand else 0.0


def comparison(without: dict[str, Any], with_crews: dict[str, Any]) -> dict[str, Any]:
    """Two reports of one scenario and seed side by side: the service without and with crews."""
    def side(r: dict[str, Any]) -> dict[str, Any]:
        return {"demand": r["demand"], "rentals_served": r["rentals_served"], "served_share": r["served_share"],
                "lost": r["lost"], "lost_by_hour": r["lost_by_hour"], "speed_reached": r["speed_reached"],
                "alerts": r["alerts"], "crews": r.get("crews")}
    return {"scenario": with_crews["scenario"], "seed": with_crews["seed"], "without_crews": side(without),
            "with_crews": side(with_crews),
            "served_share_gain": round(with_crews["served_share"] - without["served_share"], 4)}


def planner_comparison(todays: dict[str, Any], with_needs: dict[str, Any]) -> dict[str, Any]:
    """Two reports of one scenario and seed side by side: today's planner, then the one that uses the
    cars' reports (energy delivered, cars picked up with the range their trip needs)."""
    def side(r: dict[str, Any]) -> dict[str, Any]:
        pickups = r.get("pickups", 0)
        return {"energy_delivered_kwh": r["energy_delivered_kwh"], "pickups": pickups,
                "pickups_with_range": r.get("pickups_with_range", 0),
                "share_with_range": round(r.get("pickups_with_range", 0) / pickups, 4) if pickups else 0.0,
                "reserved_pickups": r["reserved_pickups"], "reserved_with_range": r["reserved_with_range"],
                "rentals_served": r["rentals_served"], "demand": r["demand"], "lost": r["lost"],
                "seconds_over_limit": r["seconds_over_limit"], "peak_station_ratio": r["peak_station_ratio"],
                "speed_reached": r["speed_reached"], "car_needs": r.get("car_needs")}
    a, b = side(todays), side(with_needs)
    return {"scenario": with_needs["scenario"], "seed": with_needs["seed"], "todays_planner": a, "with_car_needs": b,
            "energy_ratio": round(b["energy_delivered_kwh"] / a["energy_delivered_kwh"], 4)
            if a["energy_delivered_kwh"] else None,
            "share_with_range_gain": round(b["share_with_range"] - a["share_with_range"], 4)}
