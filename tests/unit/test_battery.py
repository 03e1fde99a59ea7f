"""Battery model: range, trip energy, LMP keep-warm / self-discharge, charge curve, SoC estimation."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voltlib.domain.battery import (
    BLUECAR,
    Conditions,
    SocEstimate,
    charge_power_w,
    consumption_wh_per_km,
    curve_power_w,
    energy_for_trip_kwh,
    estimate_soc,
    hours_to_soc,
    keep_warm_power_w,
    range_km,
    refit,
    soc_after_idle,
    soc_after_trip,
    start_estimator,
    step_charge,
)

T0 = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
socs = st.floats(0.0, 1.0)

# --- parameters and range -------------------------------------------------------------------------


def test_bluecar_parameters_and_every_figure_has_a_source() -> None:
    assert BLUECAR.capacity_kwh == 30.0
    assert BLUECAR.battery_temp_c == 80.0
    assert BLUECAR.max_ac_charge_w == pytest.approx(3000.0)
    fields = {"capacity_kwh", "usable_fraction", "urban_wh_per_km", "highway_wh_per_km", "comfort_low_c",
              "comfort_high_c", "cold_penalty_per_c", "hot_penalty_per_c", "keep_warm_w", "self_discharge_per_h",
              "battery_temp_c", "reference_ambient_c", "max_ac_charge_w", "knee_soc", "min_taper_w",
              "charging_efficiency"}
    assert fields <= set(BLUECAR.sources)
    assert all(BLUECAR.sources[f].strip() for f in fields)


def test_full_bluecar_range_in_mild_weather_matches_published_cycles() -> None:
    # Published: ~250 km urban, ~150 km highway.
    assert 240.0 <= range_km(BLUECAR, 1.0, Conditions("urban")) <= 260.0
    assert 140.0 <= range_km(BLUECAR, 1.0, Conditions("highway")) <= 160.0


def test_cold_and_heat_shorten_range_and_winter_is_shorter_than_summer() -> None:
    mild = range_km(BLUECAR, 1.0, Conditions("urban", ambient_c=20.0))
    cold = range_km(BLUECAR, 1.0, Conditions("urban", ambient_c=0.0))
    hot = range_km(BLUECAR, 1.0, Conditions("urban", ambient_c=35.0))
    assert cold < hot < mild
    assert 190.0 <= cold <= 230.0  # +18 % consumption at 0 °C
    winter = range_km(BLUECAR, 1.0, Conditions("urban", season="winter"))
    summer = range_km(BLUECAR, 1.0, Conditions("urban", season="summer"))
    assert winter < summer
    # A measured temperature wins over the season.
    assert range_km(BLUECAR, 1.0, Conditions("urban", ambient_c=20.0, season="winter")) == pytest.approx(mild)


@given(socs, st.sampled_from(["urban", "highway"]), st.floats(-20.0, 40.0))
def test_range_is_proportional_to_soc(soc: float, band: str, temp: float) -> None:
    c = Conditions(band, ambient_c=temp)  # type: ignore[arg-type]
    assert range_km(BLUECAR, soc, c) == pytest.approx(soc * range_km(BLUECAR, 1.0, c))


def test_trip_energy_and_soc_after_trip() -> None:
    assert energy_for_trip_kwh(BLUECAR, 10.0) == pytest.approx(1.08)  # 108 Wh/km urban
    assert energy_for_trip_kwh(BLUECAR, 10.0, Conditions("highway")) == pytest.approx(1.8)
    assert soc_after_trip(BLUECAR, 0.5, 25.0) == pytest.approx(0.4)  # 25 km = 10 % of 250 km
    assert soc_after_trip(BLUECAR, 0.05, 100.0) == 0.0
    with pytest.raises(ValueError):
        energy_for_trip_kwh(BLUECAR, -1.0)


@given(socs, st.floats(0.0, 300.0))
def test_driving_the_full_range_empties_the_battery_exactly(soc: float, km: float) -> None:
    r = range_km(BLUECAR, soc)
    after = soc_after_trip(BLUECAR, soc, min(km, r))
    assert after == pytest.approx(soc - min(km, r) / 250.0, abs=1e-9)
    assert soc_after_trip(BLUECAR, soc, r) == pytest.approx(0.0, abs=1e-9)


# --- LMP keep-warm and self-discharge ------------------------------------------------------------


def test_unplugged_full_bluecar_is_empty_after_about_67_hours() -> None:
    assert soc_after_idle(BLUECAR, 1.0, 1.0, plugged=False) == pytest.approx(0.985)
    assert soc_after_idle(BLUECAR, 1.0, 60.0, plugged=False) > 0.05
    assert soc_after_idle(BLUECAR, 1.0, 66.0, plugged=False) > 0.0
    assert soc_after_idle(BLUECAR, 1.0, 68.0, plugged=False) == 0.0
    # Overnight, as a 2013 owner observed: ~20 points in 14 h.
    assert soc_after_idle(BLUECAR, 0.65, 14.0, plugged=False) == pytest.approx(0.44, abs=0.02)


def test_self_discharge_and_keep_warm_are_the_same_heat_loss() -> None:
    # Unplugged the battery pays the heater itself: 1.5 %/h of 27 kWh is the 405 W drawn when plugged.
    assert BLUECAR.self_discharge_per_h * BLUECAR.usable_wh == pytest.approx(BLUECAR.keep_warm_w)


def test_colder_weather_drains_faster_and_needs_more_keep_warm() -> None:
    cold = soc_after_idle(BLUECAR, 1.0, 24.0, plugged=False, ambient_c=0.0)
    ref = soc_after_idle(BLUECAR, 1.0, 24.0, plugged=False, ambient_c=15.0)
    warm = soc_after_idle(BLUECAR, 1.0, 24.0, plugged=False, ambient_c=30.0)
    assert cold < ref < warm
    assert keep_warm_power_w(BLUECAR, 15.0) == pytest.approx(BLUECAR.keep_warm_w)
    assert keep_warm_power_w(BLUECAR, -5.0) > keep_warm_power_w(BLUECAR, 15.0)


@given(socs, st.floats(0.0, 100.0), st.floats(405.0, 10_000.0))
def test_plugged_car_never_loses_charge_when_power_covers_keep_warm(soc: float, hours: float, power: float) -> None:
    assert soc_after_idle(BLUECAR, soc, hours, plugged=True, power_available_w=power) >= soc


def test_plugged_car_with_only_keep_warm_holds_its_charge_and_extra_power_charges() -> None:
    assert soc_after_idle(BLUECAR, 0.5, 10.0, plugged=True, power_available_w=405.0) == pytest.approx(0.5)
    # 1 h with 1405 W: 1000 W charges, 900 Wh stored = 1/30 of 27 kWh.
    assert soc_after_idle(BLUECAR, 0.5, 1.0, plugged=True, power_available_w=1405.0) == pytest.approx(0.5 + 1 / 30)


def test_plugged_car_without_enough_power_drains_in_proportion() -> None:
    unplugged = soc_after_idle(BLUECAR, 1.0, 10.0, plugged=False)
    assert soc_after_idle(BLUECAR, 1.0, 10.0, plugged=True, power_available_w=0.0) == pytest.approx(unplugged)
    half = soc_after_idle(BLUECAR, 1.0, 10.0, plugged=True, power_available_w=BLUECAR.keep_warm_w / 2)
    assert half == pytest.approx(1.0 - 0.015 * 10 / 2)


# --- charge curve -------------------------------------------------------------------------------


def test_charge_curve_is_flat_to_the_knee_then_tapers_to_the_minimum() -> None:
    assert curve_power_w(BLUECAR, 0.0) == 3000.0
    assert curve_power_w(BLUECAR, 0.8) == 3000.0
    assert curve_power_w(BLUECAR, 0.9) == pytest.approx(1800.0)
    assert curve_power_w(BLUECAR, 0.99999) == pytest.approx(600.0, abs=1.0)
    assert curve_power_w(BLUECAR, 1.0) == 0.0
    assert charge_power_w(BLUECAR, 0.5, 2000.0) == 2000.0  # connector / profile limit binds
    assert charge_power_w(BLUECAR, 0.9, 2000.0) == pytest.approx(1800.0)  # curve binds
    assert charge_power_w(BLUECAR, 0.5, -5.0) == 0.0


@given(socs, st.floats(0.0, 48 * 3600.0), st.floats(0.0, 5000.0))
def test_step_charge_conserves_energy_and_respects_the_limit(soc: float, seconds: float, limit: float) -> None:
    new, drawn = step_charge(BLUECAR, soc, seconds, limit)
    assert soc <= new <= 1.0
    assert drawn * BLUECAR.charging_efficiency == pytest.approx((new - soc) * BLUECAR.usable_wh, abs=1e-6)
    assert drawn <= min(limit, BLUECAR.max_ac_charge_w) * seconds / 3600.0 + 1e-6


def _euler(soc: float, seconds: float, limit: float, dt: float = 1.0) -> float:
    t = 0.0
    while t < seconds and soc < 1.0:
        p = charge_power_w(BLUECAR, soc, limit)
        soc = min(1.0, soc + BLUECAR.charging_efficiency * p * dt / 3600.0 / BLUECAR.usable_wh)
        t += dt
    return soc


@pytest.mark.parametrize(("soc", "hours", "limit"), [(0.7, 2.0, 3000.0), (0.75, 3.0, 1500.0), (0.5, 12.0, 3000.0),
                                                     (0.85, 1.0, 500.0), (0.1, 1.0, 2000.0)])
def test_step_charge_matches_fine_numerical_integration_across_the_knee(soc: float, hours: float,
                                                                        limit: float) -> None:
    exact, _ = step_charge(BLUECAR, soc, hours * 3600.0, limit)
    assert exact == pytest.approx(_euler(soc, hours * 3600.0, limit), abs=2e-4)


@given(socs, st.floats(0.0, 20 * 3600.0), st.floats(0.0, 20 * 3600.0), st.floats(100.0, 5000.0))
def test_two_steps_equal_one_step(soc: float, a: float, b: float, limit: float) -> None:
    once, e1 = step_charge(BLUECAR, soc, a + b, limit)
    mid, e2 = step_charge(BLUECAR, soc, a, limit)
    twice, e3 = step_charge(BLUECAR, mid, b, limit)
    assert twice == pytest.approx(once, abs=1e-9)
    assert e2 + e3 == pytest.approx(e1, abs=1e-3)


def test_full_charge_time_and_hours_to_soc_inverts_step_charge() -> None:
    # 0 -> 80 % at 3 kW: 21.6 kWh / 0.9 / 3 kW = 8 h, then the taper.
    assert hours_to_soc(BLUECAR, 0.0, 0.8) == pytest.approx(8.0)
    full = hours_to_soc(BLUECAR, 0.0, 1.0)
    assert 10.0 < full < 14.0
    assert step_charge(BLUECAR, 0.0, full * 3600.0, 3000.0)[0] == pytest.approx(1.0)
    for target in (0.3, 0.85, 0.95):
        h = hours_to_soc(BLUECAR, 0.2, target, 2500.0)
        assert step_charge(BLUECAR, 0.2, h * 3600.0, 2500.0)[0] == pytest.approx(target, abs=1e-9)
    assert hours_to_soc(BLUECAR, 0.5, 0.4) == 0.0
    assert hours_to_soc(BLUECAR, 0.5, 0.9, 0.0) == math.inf


def test_model_without_taper_charges_at_constant_power() -> None:
    flat = replace(BLUECAR, min_taper_w=BLUECAR.max_ac_charge_w)
    new, drawn = step_charge(flat, 0.9, 3600.0, 10_000.0)
    assert new == pytest.approx(1.0)
    assert drawn == pytest.approx(0.1 * flat.usable_wh / 0.9)


# --- state of charge estimation -----------------------------------------------------------------


def test_estimate_from_metered_energy_net_of_keep_warm() -> None:
    est = start_estimator(BLUECAR, SocEstimate(0.4, "measured", T0), register_wh=10_000.0)
    # 2 h: 2 × 405 Wh keep-warm + 6000 Wh charging -> 5400 Wh stored = 20 % of 27 kWh.
    e = estimate_soc(est, 10_000.0 + 810.0 + 6000.0, T0 + timedelta(hours=2))
    assert e.source == "metered"
    assert e.as_of == T0 + timedelta(hours=2)
    assert e.soc == pytest.approx(0.6)
    assert e.age_s(T0 + timedelta(hours=3)) == 3600.0
    # Nothing delivered for 10 h: the battery paid the heater itself.
    assert estimate_soc(est, 10_000.0, T0 + timedelta(hours=10)).soc == pytest.approx(0.4 - 0.15)


def test_estimator_refits_on_a_true_reading() -> None:
    est = start_estimator(BLUECAR, SocEstimate(0.2, "measured", T0), register_wh=0.0)
    t1 = T0 + timedelta(hours=3)
    delivered = 3 * 405.0 + 9000.0
    predicted = estimate_soc(est, delivered, t1).soc  # assumes 90 %: 0.2 + 8100/27000 = 0.5
    assert predicted == pytest.approx(0.5)
    # The car reports 0.47: the real efficiency was 80 % (7200 Wh stored).
    est2 = refit(est, SocEstimate(0.2 + 7200 / 27_000, "telematics", t1), delivered)
    assert est2.anchor.soc == pytest.approx(0.2 + 7200 / 27_000)
    assert est2.anchor.source == "telematics" and est2.refits == 1
    assert est2.efficiency == pytest.approx(0.85)  # halfway from 0.90 toward the observed 0.80
    # The next estimate starts from the reading and uses the re-fitted efficiency.
    e = estimate_soc(est2, delivered + 405.0 + 2000.0, t1 + timedelta(hours=1))
    assert e.soc == pytest.approx(0.2 + 7200 / 27_000 + 2000 * 0.85 / 27_000)
    # Estimates and model values are not true readings: nothing changes.
    assert refit(est2, SocEstimate(0.9, "metered", t1), delivered) is est2
    assert refit(est2, SocEstimate(0.9, "model", t1), delivered) is est2


def test_refit_converges_to_the_true_efficiency_and_stays_bounded() -> None:
    est = start_estimator(BLUECAR, SocEstimate(0.1, "measured", T0), register_wh=0.0)
    register, soc, t = 0.0, 0.1, T0
    for _ in range(8):  # true efficiency 0.82, 2 kWh charged between readings
        t += timedelta(hours=1)
        register += 405.0 + 2000.0
        soc += 2000 * 0.82 / BLUECAR.usable_wh
        est = refit(est, SocEstimate(soc, "measured", t), register)
    assert est.efficiency == pytest.approx(0.82, abs=0.005)
    bogus = refit(est, SocEstimate(0.99, "measured", t + timedelta(hours=1)), register + 405 + 1500)
    assert bogus.efficiency <= 1.0


def test_small_energy_or_full_car_reanchors_without_refitting_efficiency() -> None:
    est = start_estimator(BLUECAR, SocEstimate(0.5, "measured", T0), register_wh=0.0)
    small = refit(est, SocEstimate(0.52, "measured", T0 + timedelta(minutes=30)), 202.5 + 500.0)
    assert small.efficiency == est.efficiency and small.anchor.soc == 0.52
    full = refit(est, SocEstimate(1.0, "measured", T0 + timedelta(hours=10)), 4050.0 + 20_000.0)
    assert full.efficiency == est.efficiency and full.anchor.soc == 1.0


def test_consumption_is_positive_for_every_condition() -> None:
    for band in ("urban", "highway"):
        for t in (-20.0, 0.0, 20.0, 45.0):
            assert consumption_wh_per_km(BLUECAR, Conditions(band, ambient_c=t)) > 0
