"""The city simulator: scenarios, the demand model (pure, seeded) and a short run of the `small`
scenario against an in-process voltlib (real WebSockets, SQLite, simulated time)."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voltlib.cli.main import app
from voltlib.domain import demand
from voltlib.sim import scenario

PLACES = [demand.Place(f"s{i}", 48.85 + (i % 5) * 0.01, 2.30 + (i // 5) * 0.015) for i in range(25)]
T0 = datetime(2018, 5, 18, 6, 0, tzinfo=UTC)


def test_the_same_seed_gives_the_same_trips_and_another_seed_others() -> None:
    a = demand.trips(PLACES, T0, 4, 16_000, seed=3)
    assert a == demand.trips(PLACES, T0, 4, 16_000, seed=3)
    assert a != demand.trips(PLACES, T0, 4, 16_000, seed=4)
    assert all(x.at <= y.at for x, y in itertools.pairwise(a))
    assert all(t.origin != t.destination and t.distance_km > 0 for t in a)


def test_demand_follows_the_day_and_the_autolib_scale() -> None:
    day = demand.trips(PLACES, T0.replace(hour=0), 24, 16_000, seed=1)
    assert 15_000 < len(day) < 17_000
    by_hour = [sum(1 for t in day if t.at.hour == h) for h in range(24)]
    assert by_hour[18] > 5 * by_hour[3]  # evening peak against the night
    minutes = sum(t.duration.total_seconds() for t in day) / len(day) / 60
    assert 10 < minutes < 60
    assert abs(sum(demand.HOURLY) - 1.0) < 1e-9


def test_origins_follow_reach_so_every_station_gets_back_what_it_gives() -> None:
    # 24 stations in a dense quarter and one alone, 15 km north
    places = [*PLACES[:24], demand.Place("alone", 48.85 + 15 / 111.2, 2.30)]
    day = demand.trips(places, T0.replace(hour=0), 24, 16_000, seed=1)
    out, into = Counter(t.origin for t in day), Counter(t.destination for t in day)
    assert out["alone"] < 0.1 * out["s12"]  # few people there, few trips
    for p in places:  # uniform origins would drain "alone" of a 25th of the day's trips
        assert abs(out[p.station_id] - into[p.station_id]) <= 4 * math.sqrt(out[p.station_id]) + 5, p


def test_built_in_scenarios_load_and_bad_ones_say_why(tmp_path: Path) -> None:
    sizes = {name: scenario.load(name).snapshot() for name in scenario.BUILT_IN}
    assert len(sizes["paris"].stations) == 1119 and len(sizes["small"].stations) == 6
    assert (len(sizes["lyon"].stations), len(sizes["lyon"].cars)) == (51, 250)
    assert (len(sizes["bordeaux"].stations), len(sizes["bordeaux"].cars)) == (80, 200)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ncity = "paris"\nmembers = 1\nrentals_per_day = 10\nstart = "2018-05-18T08:00:00"\n'
                   'hours = 1\n')
    with pytest.raises(scenario.ScenarioError, match="UTC offset"):
        scenario.load(str(bad))
    with pytest.raises(scenario.ScenarioError, match="speed"):
        scenario.parse({**_minimal(), "speed": 500})
    with pytest.raises(scenario.ScenarioError, match="missing field 'members'"):
        scenario.parse({k: v for k, v in _minimal().items() if k != "members"})
    with pytest.raises(scenario.ScenarioError, match="no scenario"):
        scenario.load("atlantis")


def test_the_share_of_2_0_1_posts_is_exact_and_drawn_from_the_seed() -> None:
    posts = [f"ST-{n:03d}-1" for n in range(40)]
    assert scenario.parse(_minimal()).ocpp201_share == 0
    assert set(scenario.ocpp_versions(scenario.parse(_minimal()), posts).values()) == {"1.6"}
    mixed = scenario.parse({**_minimal(), "ocpp201_share": 0.3, "seed": 7})
    versions = scenario.ocpp_versions(mixed, posts)
    assert sorted(versions) == posts and sum(v == "2.0.1" for v in versions.values()) == 12
    assert versions == scenario.ocpp_versions(mixed, list(reversed(posts)))  # the seed decides, not the order
    other = scenario.ocpp_versions(scenario.parse({**_minimal(), "ocpp201_share": 0.3, "seed": 8}), posts)
    assert other != versions
    assert set(scenario.ocpp_versions(scenario.parse({**_minimal(), "ocpp201_share": 1}), posts).values()) == {
        "2.0.1"}
    with pytest.raises(scenario.ScenarioError, match="ocpp201_share"):
        scenario.parse({**_minimal(), "ocpp201_share": 1.5})


def _minimal() -> dict[str, object]:
    return {"name": "x", "city": "paris", "members": 1, "rentals_per_day": 10,
            "start": "2018-05-18T08:00:00+02:00", "hours": 1}


def test_a_short_small_city_run_serves_rentals_with_no_protocol_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--scenario", "small", "--hours", "0.6", "--speed", "120",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["protocol_errors"] == 0
    assert report["rentals_served"] >= 1
    assert report["demand"] == report["rentals_served"] + sum(report["lost"].values()) + report["in_progress"]
    assert report["alerts"] >= 1  # the scenario's intrusion at 20 minutes was seen
    assert report["docks"]["plugged_in"] >= 1  # every car plugged in is docked there, none still rented
    assert report["docks"]["not_docked_there"] == report["docks"]["on_open_rental"] == 0
    assert report["peak_station_ratio"] <= 1.0 and report["seconds_over_limit"] == 0
    assert report["energy_delivered_kwh"] > 0 and report["soc_samples"]
    assert set(report["setup_phases"]) == {"seed", "server", "connect", "profiles", "sessions"}
    assert report["ocpp_versions"] == {"1.6": report["bays"]}
    assert report["rentals_by_ocpp_version"]["1.6"]["returned"] == report["rentals_served"]
    for name in ("report.html", "fleet-soc.png", "power.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_a_member_with_no_car_at_the_origin_walks_to_the_nearest_station_with_one() -> None:
    from voltlib.sim.city import WALK_KM, CitySimulation

    sim = CitySimulation(scenario.load("small"), port=1)
    # three stations on a line: A, then B 0.5 km away, then C 1.5 km away
    for name, km in (("A", 0.0), ("B", 0.5), ("C", 1.5)):
        sim.places[name] = demand.Place(name, 48.85 + km / 111.2, 2.30)
        sim.station_bays[name] = [f"{name}-1", f"{name}-2"]
    assert WALK_KM < 1.5
    sim.fleet.at["C-1"] = "car-c"
    assert sim._pickup_station("A") is None  # the only car is beyond walking distance
    sim.fleet.at["B-2"] = "car-b"
    assert sim._pickup_station("A") == "B"
    sim.reserved.add("car-b")  # held for another member: not for this one
    assert sim._pickup_station("A") is None
    sim.fleet.at["A-1"] = "car-a"
    assert sim._pickup_station("A") == "A"
