"""Smart charging's station plan and the order profiles are sent in (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from voltlib.energy.smart_charging import DockState, StationState, ordered_changes, plan_station, safe_start_w

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def dock(n: int, soc: float | None, *, charging: bool = True, departure: datetime | None = None,
         rated_w: float = 3_000.0) -> DockState:
    return DockState(f"st-{n}", 1, rated_w, 1000 + n if charging else None, f"car-{n}", soc, departure,
                     100.0 if departure else None)


def test_lowest_charge_first_and_keep_warm_for_all_under_the_limit() -> None:
    state = StationState("st", 6_000.0, None, (dock(1, 0.9), dock(2, 0.1), dock(3, 0.5), dock(4, 0.25)))
    plan = plan_station(state, NOW)
    assert sum(plan.values()) <= 6_000
    by_power = sorted(plan, key=lambda d: -plan[d])
    assert [d[0] for d in by_power[:2]] == ["st-2", "st-4"]  # 10 %, then 25 %
    assert min(plan.values()) >= safe_start_w(state)  # every car keeps warm


def test_a_car_reserved_soon_charges_before_a_lower_one() -> None:
    reserved = dock(1, 0.3, departure=NOW + timedelta(minutes=30))
    state = StationState("st", 3_500.0, None, (reserved, dock(2, 0.2)))
    plan = plan_station(state, NOW)
    assert plan[("st-1", 1)] > plan[("st-2", 1)]


def test_idle_bays_keep_room_for_a_car_plugged_in_before_the_next_plan() -> None:
    state = StationState("st", 4_000.0, None, (dock(1, 0.1), dock(2, 0.1, charging=False), dock(3, None,
                                                                                                 charging=False)))
    plan = plan_station(state, NOW)
    assert set(plan) == {("st-1", 1)}
    assert plan[("st-1", 1)] + 2 * safe_start_w(state) <= 4_000


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0.0, 1.0), st.booleans()), min_size=1, max_size=20),
       st.floats(0.0, 60_000.0))
def test_the_station_total_never_exceeds_the_limit_even_if_every_idle_bay_starts(
        bays: list[tuple[bool, float, bool]], limit: float) -> None:
    docks = tuple(dock(i, soc, charging=charging, departure=NOW + timedelta(minutes=20) if reserved else None)
                  for i, (charging, soc, reserved) in enumerate(bays))
    state = StationState("st", limit, None, docks)
    plan = plan_station(state, NOW)
    idle = sum(1 for d in docks if d.transaction_id is None)
    assert sum(plan.values()) + idle * safe_start_w(state) <= limit


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3_000), st.integers(0, 3_000)), min_size=1, max_size=12))
def test_decreases_go_first_so_no_intermediate_total_exceeds_both_ends(pairs: list[tuple[int, int]]) -> None:
    previous = {(f"cp{i}", 1): a for i, (a, _) in enumerate(pairs)}
    wanted = {(f"cp{i}", 1): b for i, (_, b) in enumerate(pairs)}
    current = dict(previous)
    ceiling = max(sum(previous.values()), sum(wanted.values()))
    for d, watts in ordered_changes(previous, wanted):
        current[d] = watts
        assert sum(current.values()) <= ceiling
    assert current == wanted


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3_000), st.integers(0, 3_000), st.booleans()), min_size=1, max_size=12))
def test_a_tx_profile_owed_to_a_car_that_reported_its_needs_is_sent_in_its_place_among_the_changes(
        triples: list[tuple[int, int, bool]]) -> None:
    previous = {(f"cp{i}", 1): a for i, (a, _, _) in enumerate(triples)}
    wanted = {(f"cp{i}", 1): b for i, (_, b, _) in enumerate(triples)}
    forced = {(f"cp{i}", 1) for i, (_, _, f) in enumerate(triples) if f}
    current = dict(previous)
    ceiling = max(sum(previous.values()), sum(wanted.values()))
    sent = ordered_changes(previous, wanted, forced)
    for d, watts in sent:
        current[d] = watts
        assert sum(current.values()) <= ceiling  # an owed increase does not jump the decreases
    assert current == wanted and forced <= {d for d, _ in sent}
