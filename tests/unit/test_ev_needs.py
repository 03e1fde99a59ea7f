"""The car's needs in the planner (issue 17): the departure's bounds, the precedence of the car's
report over the reservation over the estimate, the answers, and a station planned with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from voltlib.domain import battery, charging
from voltlib.domain.clock_policy import ClockPolicy, judge_departure
from voltlib.domain.ev_needs import CarNeeds, ac_power_w, answer_needs, target_soc, targets, within
from voltlib.energy.smart_charging import DockState, StationState, plan_station, session_of

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
POLICY = ClockPolicy()
MODEL = battery.BLUECAR


def needs(**kw: object) -> CarNeeds:
    base: dict[str, object] = {"received_at": NOW, "dc": False, "phases": 1, "energy_wh": 5_400.0,
                               "departure": NOW + timedelta(hours=1), "max_power_w": 2_300.0, "soc_at_receipt": 0.5}
    base.update(kw)
    return CarNeeds(**base)  # type: ignore[arg-type]


def test_a_departure_is_believed_in_the_future_up_to_a_week_and_means_now_just_before_the_receipt() -> None:
    assert judge_departure(NOW + timedelta(hours=3), NOW, POLICY).at == NOW + timedelta(hours=3)
    assert judge_departure(NOW + timedelta(days=7), NOW, POLICY).skew is None
    assert judge_departure(NOW - timedelta(seconds=90), NOW, POLICY).at == NOW  # clocks 90 s apart: leaving now
    for wrong in (NOW - timedelta(minutes=10), NOW + timedelta(days=8)):
        judged = judge_departure(wrong, NOW, POLICY)
        assert judged.at is None and judged.skew == wrong - NOW


def test_the_cars_report_comes_before_the_reservation_which_comes_before_the_estimate() -> None:
    held = NOW + timedelta(minutes=20)
    assert targets(None, None, None, MODEL).source == "estimate"
    assert targets(None, held, 100.0, MODEL) == targets(None, held, 100.0, MODEL)
    reserved = targets(None, held, 100.0, MODEL)
    assert (reserved.source, reserved.departure, reserved.required_range_km) == ("reservation", held, 100.0)
    car = targets(needs(), held, 100.0, MODEL)
    assert (car.source, car.departure, car.required_range_km, car.max_w) == ("car", NOW + timedelta(hours=1), None,
                                                                              2_300.0)
    assert car.required_soc == 0.5 + 5_400.0 / MODEL.usable_wh
    no_departure = targets(needs(departure=None), held, 100.0, MODEL)  # the reservation says when
    assert (no_departure.departure, no_departure.source) == (held, "car")
    no_energy = targets(needs(energy_wh=None), held, 100.0, MODEL)  # ... and the reservation how much
    assert (no_energy.required_soc, no_energy.required_range_km) == (None, 100.0)
    assert target_soc(needs(soc_at_receipt=None), MODEL) is None  # energy counted from nothing: unused
    assert target_soc(needs(energy_wh=1e9), MODEL) == 1.0


def test_the_answer_to_a_report() -> None:
    assert answer_needs(None, True, True, True) == ("Accepted", None)
    assert answer_needs(None, True, False, True) == ("Processing", None)
    assert answer_needs("MissingParam", True, True, True) == ("Rejected", "MissingParam")
    assert answer_needs(None, False, True, True) == ("Rejected", "TxNotFound")
    assert answer_needs(None, True, True, False) == ("Rejected", "NotEnabled")


def test_a_cars_schedule_is_within_voltlibs_when_no_period_exceeds_the_limit_then_in_force() -> None:
    ours = [(0.0, 3_000.0), (3_600.0, 1_000.0)]
    assert within([(0.0, 3_000.0), (3_600.0, 1_000.0)], NOW, ours, NOW)
    assert not within([(0.0, 3_000.0), (3_600.0, 1_500.0)], NOW, ours, NOW)
    assert within([(0.0, 2_000.0)], NOW - timedelta(hours=1), ours, NOW)  # before ours started: not judged
    assert ac_power_w(16, 3) == 16 * 230 * 3 and ac_power_w(-1, 1) == 0


def test_a_station_plans_the_car_that_leaves_first_before_the_low_one_and_caps_it_at_what_it_takes() -> None:
    low = DockState("cp-1", 1, 3_000.0, 11, "car-1", 0.2, None, None)
    leaving = DockState("cp-2", 1, 3_000.0, 12, "car-2", 0.6, None, None,
                        needs(soc_at_receipt=0.6, energy_wh=0.35 * MODEL.usable_wh, max_power_w=2_800.0,
                              departure=NOW + timedelta(minutes=50)))
    state = StationState("st", 4_000.0, None, (low, leaving))
    plan = plan_station(state, NOW)
    assert plan[("cp-2", 1)] == 2_800 and plan[("cp-1", 1)] == 4_000 - 2_800
    assert session_of(leaving).connector_max_w == 2_800.0
    without = StationState("st", 4_000.0, None, (low, DockState(*[getattr(leaving, f) for f in (
        "cp_id", "connector_id", "rated_w", "transaction_id", "car_id", "soc", "departure", "required_range_km")])))
    assert plan_station(without, NOW)[("cp-1", 1)] == 3_000  # a 1.6 post's session: today's estimate
    assert isinstance(session_of(low), charging.ChargingSession) and session_of(low).departure is None
