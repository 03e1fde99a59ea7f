"""Rebalancing (pure): demand rates, the hourly forecast, recommended moves and the field-task lifecycle."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voltlib.domain import demand
from voltlib.domain import rebalancing as rb
from voltlib.domain.demand import Place

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
PARIS = timezone(timedelta(hours=1))


def station(sid: str, lat: float, lon: float, cars: int, free: int, *, bays: int | None = None,
            range_km: float = 100.0) -> rb.StationState:
    fleet = tuple(rb.Car(f"{sid}-car{i}", range_km - i) for i in range(cars))
    return rb.StationState(Place(sid, lat, lon), fleet, free, cars + free if bays is None else bays)


def flat(pickups: float, returns: float, hours: int = 4) -> rb.Rates:
    return rb.Rates((pickups,) * hours, (returns,) * hours)


# --- rates -------------------------------------------------------------------------------------

def test_rates_follow_the_demand_model() -> None:
    places = [Place("centre", 48.860, 2.350), Place("near", 48.865, 2.355), Place("far", 48.960, 2.550)]
    start = datetime(2018, 5, 18, 0, 0, tzinfo=PARIS)
    rates = rb.demand_rates(places, start, 24, per_day=3000)
    # pickups: the day's rentals, more where other stations are close (origins follow reach)
    assert sum(sum(r.pickups) for r in rates.values()) == pytest.approx(3000)
    assert sum(rates["centre"].pickups) > 2 * sum(rates["far"].pickups)
    assert rates["centre"].pickups[18] > rates["centre"].pickups[3]  # evening peak, night trough
    # returns: every departure arrives somewhere (the profiles share one trip out among the stations) ...
    profiles = rb.arrival_profile(tuple(places))
    assert sum(sum(p) for p in profiles.values()) == pytest.approx(1.0)
    # ... and over a whole day each station gets back as many cars as it gives: no structural drain
    for r in rates.values():
        assert sum(r.returns) == pytest.approx(sum(r.pickups))
    assert sum(rates["centre"].returns) > 2 * sum(rates["far"].returns)
    with pytest.raises(ValueError):
        rb.demand_rates(places, start, 0, per_day=3000)


def test_returns_arrive_after_the_trip_time() -> None:
    # two stations ~20 street km apart: trips take ~90 min, so nothing that leaves in the forecast's
    # first hour is back within it; returns in hour 0 are cars already on the road
    places = [Place("a", 48.80, 2.20), Place("b", 48.80 + 0.14, 2.20)]
    minutes = demand.mean_trip_minutes(demand.distance_km(*places))
    assert 60 < minutes < 120
    profile = rb.arrival_profile(tuple(places))["b"]
    assert profile[0] == 0 and profile[1] + profile[2] == pytest.approx(0.5)  # half the city's trips start at a
    rates = rb.demand_rates(places, datetime(2018, 5, 18, 7, 0, tzinfo=PARIS), 3, per_day=1000)
    per_hour = [demand.expected_trips(1000, datetime(2018, 5, 18, h, 0, tzinfo=PARIS),
                                      datetime(2018, 5, 18, h + 1, 0, tzinfo=PARIS)) for h in range(4, 10)]
    # hour 0 (07:00) gets lag-1 arrivals of 06:00 departures and lag-2 of 05:00 ones
    assert rates["b"].returns[0] == pytest.approx(per_hour[2] * profile[1] + per_hour[1] * profile[2])


# --- forecast ----------------------------------------------------------------------------------

def test_no_car_shortage_hour_and_size() -> None:
    [f] = rb.forecast([station("s", 48.86, 2.35, cars=2, free=3)], {"s": flat(1.0, 0.0)})
    assert [h.cars for h in f.hours] == [1, 0, 0, 0]
    assert f.no_car == rb.Shortage(first_hour=2, expected=2.0)
    assert f.no_bay is None


def test_no_bay_shortage() -> None:
    [f] = rb.forecast([station("s", 48.86, 2.35, cars=3, free=1, bays=6)], {"s": flat(0.0, 0.75)})
    assert [h.free_bays for h in f.hours] == [0.25, 0, 0, 0]
    assert f.no_bay is not None and f.no_bay.first_hour == 1 and f.no_bay.expected == pytest.approx(2.0)
    assert f.no_car is None


def test_a_small_expected_miss_is_no_shortage() -> None:
    [f] = rb.forecast([station("s", 48.86, 2.35, cars=1, free=1)], {"s": flat(0.35, 0.0)})
    assert f.hours[-1].missed_pickups > 0 and f.no_car is None  # 0.4 expected over the horizon


def test_station_state_must_fit_its_bays() -> None:
    with pytest.raises(ValueError):
        station("s", 0, 0, cars=3, free=2, bays=4)


# --- moves -------------------------------------------------------------------------------------

def test_car_comes_from_the_nearest_station_that_can_spare_it() -> None:
    stations = [station("short", 48.860, 2.350, cars=0, free=4),
                station("near", 48.865, 2.352, cars=3, free=1),
                station("far", 48.900, 2.400, cars=6, free=0)]
    rates = {"short": flat(1.0, 0.0), "near": flat(0.0, 0.0), "far": flat(0.0, 0.0)}
    moves = rb.plan_moves(stations, rates, min_range_km=20)
    # 4 pickups in 4 hours: 4 cars, the near station's 3 first, then one from further away
    assert [(m.from_station, m.to_station, m.reason, m.hour) for m in moves] == [
        ("near", "short", "no_car", 0)] * 3 + [("far", "short", "no_car", 0)]
    assert [m.car_id for m in moves[:3]] == ["near-car0", "near-car1", "near-car2"]  # the most range first
    after = {s.station_id: s for s in rb.apply_moves(stations, moves)}
    assert rb.forecast([after["short"]], rates)[0].no_car is None


def test_a_donor_keeps_what_it_needs_itself() -> None:
    stations = [station("short", 48.860, 2.350, cars=0, free=4), station("donor", 48.865, 2.352, cars=3, free=1)]
    rates = {"short": flat(1.0, 0.0), "donor": flat(0.5, 0.0)}  # the donor's own 2 pickups over 4 h
    moves = rb.plan_moves(stations, rates, min_range_km=20)
    assert len(moves) == 1


def test_a_donor_does_not_give_against_returns_it_only_expects() -> None:
    # 3 cars, 4 pickups and 4 returns over 4 hours: the netted forecast says it never runs out, but
    # with no car back it would miss one; it gives nothing. With 6 cars it gives 2 (keeps 4).
    rates = {"short": flat(1.0, 0.0), "donor": flat(1.0, 1.0)}
    for cars, gives in ((3, 0), (6, 2)):
        stations = [station("short", 48.860, 2.350, cars=0, free=4),
                    station("donor", 48.865, 2.352, cars=cars, free=1)]
        assert rb.forecast([stations[1]], rates)[0].no_car is None
        assert len(rb.plan_moves(stations, rates, min_range_km=20)) == gives


def test_cars_without_enough_range_stay() -> None:
    stations = [station("short", 48.860, 2.350, cars=0, free=4),
                station("near", 48.865, 2.352, cars=2, free=1, range_km=20.5),  # 0.75 km away
                station("further", 48.880, 2.360, cars=2, free=1)]
    rates = {"short": flat(1.0, 0.0), "near": flat(0.0, 0.0), "further": flat(0.0, 0.0)}
    moves = rb.plan_moves(stations, rates, min_range_km=20)
    assert moves and {m.from_station for m in moves} == {"further"}
    assert all(m.car_range_km >= 20 + m.distance_km for m in moves)


def test_full_station_sends_cars_where_there_is_room() -> None:
    stations = [station("full", 48.860, 2.350, cars=4, free=0), station("roomy", 48.862, 2.351, cars=0, free=5),
                station("other", 48.870, 2.360, cars=0, free=5)]
    rates = {"full": flat(0.0, 0.5), "roomy": flat(0.0, 0.0), "other": flat(0.0, 0.0)}
    moves = rb.plan_moves(stations, rates, min_range_km=20)
    assert [(m.from_station, m.to_station, m.reason) for m in moves] == [("full", "roomy", "no_bay")] * 2
    after = {s.station_id: s for s in rb.apply_moves(stations, moves)}
    assert rb.forecast([after["full"]], rates)[0].no_bay is None


def test_moves_are_bounded_and_short() -> None:
    stations = [station(f"s{i}", 48.86, 2.35 + 0.001 * i, cars=0, free=3) for i in range(5)]
    stations += [station("donor", 48.86, 2.34, cars=20, free=0), station("away", 49.5, 2.35, cars=20, free=0)]
    rates = {s.station_id: flat(1.0, 0.0) for s in stations[:5]} | {"donor": flat(0, 0), "away": flat(0, 0)}
    moves = rb.plan_moves(stations, rates, min_range_km=20, max_moves=7)
    assert len(moves) == 7 and all(m.from_station == "donor" for m in moves)
    assert not rb.plan_moves(stations, rates, min_range_km=20, max_moves=0)


@st.composite
def cities(draw: st.DrawFn) -> tuple[list[rb.StationState], dict[str, rb.Rates], int]:
    hours = draw(st.integers(1, 6))
    stations, rates = [], {}
    for i in range(draw(st.integers(2, 6))):
        bays = draw(st.integers(0, 8))
        cars = draw(st.integers(0, bays))
        free = draw(st.integers(0, bays - cars))
        ranges = draw(st.lists(st.floats(0, 150), min_size=cars, max_size=cars))
        sid = f"s{i}"
        place = Place(sid, 48.85 + draw(st.floats(0, 0.05)), 2.30 + draw(st.floats(0, 0.08)))
        stations.append(rb.StationState(place, tuple(rb.Car(f"{sid}-{j}", r) for j, r in enumerate(ranges)),
                                        free, bays))
        flow = st.lists(st.floats(0, 3), min_size=hours, max_size=hours).map(tuple)
        rates[sid] = rb.Rates(draw(flow), draw(flow))
    return stations, rates, draw(st.integers(0, 12))


@settings(max_examples=300, deadline=None)
@given(cities())
def test_moves_keep_donors_whole_conserve_cars_and_respect_bounds(city: tuple[
        list[rb.StationState], dict[str, rb.Rates], int]) -> None:
    stations, rates, max_moves = city
    moves = rb.plan_moves(stations, rates, min_range_km=20, max_moves=max_moves)
    assert len(moves) <= max_moves
    before = {s.station_id: s for s in stations}
    assert len({m.car_id for m in moves}) == len(moves)  # each car moved once
    for m in moves:
        assert m.car_id in {c.car_id for c in before[m.from_station].cars}
        assert m.from_station != m.to_station and m.distance_km <= rb.MAX_MOVE_KM
        assert m.car_range_km >= 20 + m.distance_km
    donors, receivers = {m.from_station for m in moves}, {m.to_station for m in moves}
    assert not donors & receivers
    after = {s.station_id: s for s in rb.apply_moves(stations, moves)}  # raises if a station overflows
    assert sum(len(s.cars) for s in after.values()) == sum(len(s.cars) for s in stations)
    for sid in donors:
        missed_pickups, _ = rb.missed(len(after[sid].cars), after[sid].capacity, rates[sid])
        assert missed_pickups < rb.SHORTAGE_MIN  # never made short by giving
    for sid in receivers:
        old, new = before[sid], after[sid]
        assert new.capacity == old.capacity and len(new.cars) <= new.bays
        old_pickups, old_returns = rb.missed(len(old.cars), old.capacity, rates[sid])
        new_pickups, new_returns = rb.missed(len(new.cars), new.capacity, rates[sid])
        assert new_pickups <= old_pickups
        assert new_returns < max(rb.SHORTAGE_MIN, old_returns + 1e-6)  # never made (more) full by taking


# --- field tasks -------------------------------------------------------------------------------

def test_task_lifecycle_records_who_and_when() -> None:
    task = rb.propose("car-1", "a", "b", by="op", at=T0)
    task = rb.advance(task, "assign", by="op", at=T0 + timedelta(minutes=1), assignee="agent-7")
    task = rb.advance(task, "start", by="agent-7", at=T0 + timedelta(minutes=20))
    task = rb.advance(task, "complete", by="agent-7", at=T0 + timedelta(minutes=45), note="bay 3")
    assert task.state is rb.TaskState.DONE and task.assignee == "agent-7" and not task.live
    assert [(s.action, s.state.value, s.by) for s in task.history] == [
        ("propose", "proposed", "op"), ("assign", "assigned", "op"), ("start", "in_progress", "agent-7"),
        ("complete", "done", "agent-7")]
    assert task.history[-1].note == "bay 3" and task.history[1].assignee == "agent-7"


def test_every_pair_outside_the_table_is_refused() -> None:
    for state, action in itertools.product(rb.TaskState, (*rb.TASK_ACTIONS, "reopen")):
        task = rb.FieldTask("car-1", "a", "b", state, "agent" if state is not rb.TaskState.PROPOSED else None, ())
        if (state, action) in rb.TASK_TRANSITIONS:
            assert rb.advance(task, action, by="op", at=T0, assignee="agent").state is rb.TASK_TRANSITIONS[
                (state, action)]
        else:
            with pytest.raises(rb.TaskTransitionError):
                rb.advance(task, action, by="op", at=T0, assignee="agent")
    for terminal in (rb.TaskState.DONE, rb.TaskState.CANCELLED):
        assert not any(s is terminal for s, _ in rb.TASK_TRANSITIONS)


def test_task_input_is_checked() -> None:
    with pytest.raises(rb.InvalidTask):
        rb.propose("car-1", "a", "a", by="op", at=T0)
    task = rb.propose("car-1", "a", "b", by="op", at=T0)
    with pytest.raises(rb.InvalidTask):
        rb.advance(task, "assign", by="op", at=T0)  # nobody to assign
    with pytest.raises(rb.InvalidTask):
        rb.advance(task, "cancel", by="op", at=T0 - timedelta(seconds=1))


def test_a_crew_badge_takes_only_its_tasks_car_and_its_badge_authorises_the_departure() -> None:
    task = rb.propose("car-1", "a", "b", by="op", at=T0)
    assert rb.crew_badge_decision(task, "CREW1", "a") == "not_assigned_to_badge"
    assert rb.crew_badge_decision(None, "CREW1", "a") == "no_task"
    with pytest.raises(rb.InvalidTask):
        rb.advance(task, "cancel", by="op", at=T0, badge="CREW1")  # a badge goes with assign only
    task = rb.advance(task, "assign", by="crew-1", at=T0, assignee="crew-1", badge="CREW1")
    assert task.crew_badge == "CREW1"
    assert rb.crew_badge_decision(task, "CREW2", "a") == "not_assigned_to_badge"
    assert rb.crew_badge_decision(task, "CREW1", "b") == "not_the_task_station"
    assert rb.crew_badge_decision(task, "CREW1", "a") is None
    assert not rb.crew_departure(task, "a-1", T0)  # nobody badged yet
    badged = rb.badged(task, "CREW1", "a-1", T0 + timedelta(minutes=5))
    assert badged.state is rb.TaskState.ASSIGNED and badged.history[-1].action == "badge"
    assert rb.crew_departure(badged, "a-1", T0 + timedelta(minutes=6))
    assert not rb.crew_departure(badged, "a-2", T0 + timedelta(minutes=6))  # another bay's car
    assert not rb.crew_departure(badged, "a-1", T0 + rb.CREW_BADGE_WINDOW + timedelta(minutes=6))  # too late
    started = rb.advance(badged, "start", by="crew-1", at=T0 + timedelta(minutes=6))
    assert rb.crew_departure(started, "a-1", T0 + timedelta(minutes=7))
    done = rb.advance(started, "complete", by="crew-1", at=T0 + timedelta(minutes=30))
    assert rb.crew_departure(done, "a-1", T0 + timedelta(minutes=7))  # heard of after the crew completed
    assert rb.arrived(done, "b-1", T0 + timedelta(minutes=31)).history[-1].action == "arrival"
    cancelled = rb.advance(started, "cancel", by="op", at=T0 + timedelta(minutes=8))
    assert not rb.crew_departure(cancelled, "a-1", T0 + timedelta(minutes=8))
    assert rb.crew_badge_decision(cancelled, "CREW1", "a") == "no_task"
    reassigned = rb.advance(rb.advance(rb.propose("car-1", "a", "b", by="op", at=T0), "assign", by="op", at=T0,
                                       assignee="crew-1", badge="CREW1"), "cancel", by="op", at=T0)
    assert not reassigned.live


@given(st.lists(st.sampled_from(rb.TASK_ACTIONS), max_size=8))
def test_any_sequence_follows_the_table(actions: list[str]) -> None:
    task, applied = rb.propose("car-1", "a", "b", by="op", at=T0), 0
    for i, action in enumerate(actions):
        expected = rb.TASK_TRANSITIONS.get((task.state, action))
        try:
            task = rb.advance(task, action, by="op", at=T0 + timedelta(minutes=i), assignee="agent")
        except rb.TaskTransitionError:
            assert expected is None
        else:
            assert task.state is expected
            applied += 1
    assert len(task.history) == 1 + applied and task.history[-1].state is task.state


def test_the_docs_carry_the_task_table() -> None:
    doc = Path(__file__).parents[2] / "docs" / "car-sharing.md"
    assert rb.task_transitions_markdown() in doc.read_text(encoding="utf-8")


def test_hours_are_elapsed_hours_across_a_clock_change() -> None:
    from zoneinfo import ZoneInfo

    start = datetime(2026, 3, 29, 1, 0, tzinfo=ZoneInfo("Europe/Paris"))  # clocks go 02:00 → 03:00
    assert rb.hour_start(start, 1).isoformat() == "2026-03-29T03:00:00+02:00"
    assert rb.demand_rates([Place("only", 48.86, 2.35)], start, 2, per_day=1000)["only"].pickups == (0.0, 0.0)
