"""The planner comparison (issue 17): `voltlib simulate --compare-planner` plays the `small` city
twice on one seed against a real voltlib process (real WebSockets, SQLite, simulated time), every post
on OCPP 2.0.1 and every car speaking ISO 15118: first with voltlib told to plan without the cars'
reports (today's planner), then with them. Both days hear the cars (their reports answered, a
TxProfile after each, the cars' chosen schedules accepted); the report sets the two side by side."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from voltlib.cli.main import app


def test_compare_planner_plays_the_day_with_and_without_the_cars_needs_and_compares(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--scenario", "small", "--hours", "0.5", "--speed", "120",
                                      "--ocpp201-share", "1", "--iso15118-share", "1", "--compare-planner",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "today's planner:" in result.output and "with the cars' needs:" in result.output
    todays = json.loads((tmp_path / "todays-planner" / "report.json").read_text())
    with_needs = json.loads((tmp_path / "report.json").read_text())
    assert todays["demand"] == with_needs["demand"]  # one seed, the same trips
    assert (todays["car_needs"]["planning"], with_needs["car_needs"]["planning"]) == (False, True)
    for report in (todays, with_needs):
        answers = report["car_needs"]["answers"]
        assert answers.get("NotifyEVChargingNeeds:Accepted", 0) + answers.get("NotifyEVChargingNeeds:Processing", 0) \
            >= report["bays"] // 2  # every car at a bay reported when its session started
        assert "NotifyEVChargingNeeds:Rejected" not in answers
        assert answers.get("NotifyEVChargingSchedule:Accepted", 0) >= 1  # a TxProfile came, the car chose in it
        assert report["protocol_errors"] == 0 and report["seconds_over_limit"] == 0
        assert 0 <= report["pickups_with_range"] <= report["pickups"] and report["pickups"] >= 1
    compared = json.loads((tmp_path / "comparison.json").read_text())
    assert compared["todays_planner"]["energy_delivered_kwh"] == todays["energy_delivered_kwh"]
    assert compared["with_car_needs"]["pickups_with_range"] == with_needs["pickups_with_range"]
    assert compared["energy_ratio"] == round(with_needs["energy_delivered_kwh"] / todays["energy_delivered_kwh"], 4)


def test_compare_planner_needs_cars_that_report() -> None:
    result = CliRunner().invoke(app, ["simulate", "--scenario", "small", "--compare-planner"])
    assert result.exit_code != 0 and "iso15118_share" in result.output


def test_the_cars_know_their_stations_next_trip_and_the_share_of_iso15118_cars_is_exact() -> None:
    from datetime import UTC, datetime, timedelta

    import pytest

    from voltlib.domain import demand
    from voltlib.sim import scenario
    from voltlib.sim.hardware import Car
    from voltlib.sim.needs import TripBoard, iso15118_cars

    t0 = datetime(2018, 5, 18, 8, tzinfo=UTC)
    trips = [demand.Trip(t0 + timedelta(minutes=m), "a", "b", km, timedelta(minutes=20), False)
             for m, km in ((30, 10.0), (10, 80.0))]
    board = TripBoard(trips, timedelta(hours=1))  # the play started an hour after the scenario's time
    car = Car(battery_wh=27_000.0, soc=20.0, iso15118=True)
    board.tell(car, "a", t0 + timedelta(minutes=55))  # trips at 09:10 (80 km) and 09:30 (10 km)
    assert car.departure == t0 + timedelta(hours=1, minutes=10) and car.target_soc is not None
    assert car.target_soc == pytest.approx(100 * 1.25 * 80 * 108 / 27_000)  # 1.25 x 80 km at 108 Wh/km: 40 %
    board.tell(car, "a", t0 + timedelta(hours=1))  # 09:10 is only 10 minutes away: too soon, the next one
    assert car.departure == t0 + timedelta(hours=1, minutes=30) and car.target_soc == 30.0  # 10 km: the floor
    board.tell(car, "a", t0 + timedelta(hours=1, minutes=25))  # no trip left far enough: full, no departure
    assert (car.departure, car.target_soc, car.energy_needed_wh()) == (None, None, 21_600)
    silent = Car(iso15118=False)
    board.tell(silent, "a", t0)
    assert silent.departure is None

    cars = [f"car-{n}" for n in range(40)]
    assert len(iso15118_cars(1, cars, 0.25)) == 10 and iso15118_cars(1, cars, 0.25) == iso15118_cars(1, cars, 0.25)
    base = scenario.load("small")
    with pytest.raises(scenario.ScenarioError):
        scenario.parse({**_toml(base), "iso15118_share": 1.5})
    with pytest.raises(scenario.ScenarioError):
        scenario.parse({**_toml(base), "car_needs_planning": "no"})
    assert scenario.parse({**_toml(base), "iso15118_share": 0.5, "car_needs_planning": False}).iso15118_share == 0.5


def _toml(s: object) -> dict[str, object]:
    from voltlib.sim.scenario import Scenario

    assert isinstance(s, Scenario)
    return {"name": s.name, "city": s.city, "members": s.members, "rentals_per_day": s.rentals_per_day,
            "start": s.start.isoformat(), "hours": s.hours, "stations": s.stations}


def test_a_post_relays_a_cars_needs_and_never_a_departure_already_past() -> None:
    from datetime import UTC, datetime, timedelta

    from voltlib.sim.chargepoint import SimulatedChargePoint
    from voltlib.sim.dialect_v201 import DialectV201
    from voltlib.sim.hardware import Car

    cp = SimulatedChargePoint("sim-k", "ws://127.0.0.1:9/ocpp", ocpp_version="2.0.1")
    car = Car(battery_wh=27_000.0, soc=50.0, max_power_w=3_000.0, iso15118=True, target_soc=80.0,
              departure=datetime.now(UTC) + timedelta(hours=2))
    cp.plug_in(1, car)
    assert isinstance(cp.dialect, DialectV201)
    needs = cp.dialect.charging_needs(cp.connector(1))
    assert needs["evseId"] == 1 and needs["chargingNeeds"]["acChargingParameters"] == {
        "energyAmount": 8_100, "evMinCurrent": 6, "evMaxCurrent": 14, "evMaxVoltage": 230}
    assert "departureTime" in needs["chargingNeeds"]
    car.departure = datetime.now(UTC) - timedelta(minutes=1)  # the member did not come
    assert "departureTime" not in cp.dialect.charging_needs(cp.connector(1))["chargingNeeds"]
