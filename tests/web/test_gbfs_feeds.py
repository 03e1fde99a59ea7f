"""The pure GBFS builders: every file validates against the official v3.0 schema and says what
the snapshot says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from voltlib.domain.pricing import PARIS_2011
from voltlib.gbfs import feeds
from voltlib.gbfs.model import CitySnapshot, Closure, Station, StationState, System, Vehicle
from voltlib.gbfs.sample import synthetic_city

from .gbfs_schema import errors

NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)
BASE = "http://example.test/gbfs"


@pytest.fixture(scope="module")
def city() -> CitySnapshot:
    return synthetic_city("paris", 60, now=NOW)


@pytest.mark.parametrize("feed", feeds.CITY_FEEDS)
def test_every_city_file_validates(city: CitySnapshot, feed: str) -> None:
    document = feeds.build(feed, city, BASE)
    assert errors(feed, document) == []
    assert document["version"] == "3.0"


def test_manifest_validates_and_points_at_each_city() -> None:
    systems = [System("paris", "Paris"), System("lyon", "Lyon")]
    document = feeds.manifest(systems, BASE, NOW)
    assert errors("manifest", document) == []
    urls = [d["versions"][0]["url"] for d in document["data"]["datasets"]]
    assert urls == [f"{BASE}/paris/gbfs.json", f"{BASE}/lyon/gbfs.json"]


def test_gbfs_lists_every_file_by_absolute_url(city: CitySnapshot) -> None:
    listed = {f["name"]: f["url"] for f in feeds.gbfs(city, BASE)["data"]["feeds"]}
    assert set(listed) == set(feeds.CITY_FEEDS)
    assert listed["station_status"] == f"{BASE}/paris/station_status.json"


def test_a_broken_file_is_caught_by_the_validator(city: CitySnapshot) -> None:
    document = feeds.station_status(city)
    del document["data"]["stations"][0]["is_renting"]
    assert errors("station_status", document)


def _small() -> CitySnapshot:
    earlier, later = NOW - timedelta(minutes=5), NOW - timedelta(minutes=1)
    stations = (Station("a", "A", 48.85, 2.35, 5), Station("b", "B", 48.86, 2.36, 4))
    states = (StationState("a", 2, 0, 3, 0, earlier), StationState("b", 0, 0, 0, 0, later, closed=True))
    vehicles = (Vehicle("car-1", "a", 0.8, 200_000, earlier), Vehicle("car-2", "a", 0.5, 125_000, earlier),
                Vehicle("car-3", "a", 0.9, 225_000, earlier, reserved=True))
    return CitySnapshot(System("paris", "Paris"), stations, states, vehicles, tuple(PARIS_2011.values()),
                        (Closure("b", later, "Works"),), earlier)


def test_status_counts_closures_and_honest_last_updated() -> None:
    snap = _small()
    status = feeds.station_status(snap)
    by_id = {s["station_id"]: s for s in status["data"]["stations"]}
    assert by_id["a"]["num_vehicles_available"] == 2 and by_id["a"]["num_docks_available"] == 3
    assert by_id["a"]["is_renting"] and by_id["a"]["is_returning"]
    assert not by_id["b"]["is_renting"] and not by_id["b"]["is_returning"]
    assert status["last_updated"] == "2026-11-28T19:59:00Z"  # the newest report, not "now"
    assert status["ttl"] == 0


def test_vehicle_status_lists_available_cars_with_charge() -> None:
    vehicles = feeds.vehicle_status(_small())["data"]["vehicles"]
    assert [v["vehicle_id"] for v in vehicles] == ["car-1", "car-2"]  # the reserved car is not offered
    assert vehicles[0]["current_fuel_percent"] == 0.8 and vehicles[0]["current_range_meters"] == 200_000
    assert all(v["station_id"] == "a" and "lat" not in v for v in vehicles)


def test_alerts_publish_closed_stations() -> None:
    alerts = feeds.system_alerts(_small())["data"]["alerts"]
    assert alerts == [{"alert_id": "closure-b", "type": "station_closure", "station_ids": ["b"],
                       "times": [{"start": "2026-11-28T19:59:00Z"}], "summary": [{"text": "Works", "language": "fr"}],
                       "last_updated": "2026-11-28T19:59:00Z"}]


def test_vehicle_type_is_the_bluecar() -> None:
    (bluecar,) = feeds.vehicle_types(_small())["data"]["vehicle_types"]
    assert (bluecar["form_factor"], bluecar["propulsion_type"]) == ("car", "electric")
    assert bluecar["max_range_meters"] == 250_000


def test_pricing_plans_follow_the_plan_rules() -> None:
    plans = {p["plan_id"]: p for p in feeds.system_pricing_plans(_small())["data"]["plans"]}
    assert set(plans) == set(PARIS_2011)
    premium = plans["premium"]
    assert premium["currency"] == "EUR" and premium["price"] == 0
    assert premium["per_min_pricing"] == [{"start": 0, "rate": 5.0, "interval": 30, "end": 30},
                                          {"start": 30, "rate": 4.0, "interval": 30, "end": 60},
                                          {"start": 60, "rate": 6.0, "interval": 30}]
    minute = plans["premium-minute"]
    assert minute["price"] == pytest.approx(3.33)  # the 20 minutes always billed, at 5 EUR / 30 min
    assert minute["per_min_pricing"][0]["start"] == 20 and minute["per_min_pricing"][0]["interval"] == 1
