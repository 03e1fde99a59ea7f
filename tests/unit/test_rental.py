"""The rental lifecycle: every cell of the transition table, timers, idempotent replay, the happy path."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voltlib.domain.money import Money
from voltlib.domain.pricing import PARIS_2011
from voltlib.domain.rental import (
    EVENT_TYPES,
    FINAL,
    TERMINAL,
    TRANSITIONS,
    Badged,
    BadgeTimedOut,
    BayHoldExpired,
    BayHoldLost,
    CancelReservation,
    CarReturned,
    CarUnplugged,
    ChargeMember,
    Close,
    Dock,
    Effect,
    ForceEnd,
    OverdueReached,
    Preempted,
    RaiseAlert,
    RecordNoShow,
    Rental,
    RentalEvent,
    RentalPolicy,
    RentalTransitionError,
    ReservationExpired,
    ReserveBay,
    ReserveCar,
    SendCancelReservation,
    SendReserveNow,
    State,
    UnauthorisedDeparture,
    apply,
    check_bay_reservation,
    check_car_reservation,
    departure,
    due_events,
    holds_car,
    in_badge_window,
    late_departure_claimant,
    next_state,
    transitions_markdown,
    yields_to_departure,
)

T0 = datetime(2011, 12, 5, 9, 0, tzinfo=UTC)
POLICY = RentalPolicy()
ORIGIN = Dock("cp-paris-clichy-2", 1)
BAY = Dock("cp-paris-bastille-4", 3)
ELSEWHERE = Dock("cp-paris-nation-1", 2)
CAR_TAG = "CAR-0042"


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def new_rental(rental_id: str = "r1", member_id: str = "m1", car_id: str = "car-42") -> Rental:
    return Rental(rental_id, member_id, f"BADGE-{member_id}", car_id, CAR_TAG, ORIGIN, PARIS_2011["premium"])


def run(rental: Rental, *events: RentalEvent, policy: RentalPolicy = POLICY) -> tuple[Rental, list[Effect]]:
    effects: list[Effect] = []
    for e in events:
        rental, new = apply(rental, e, policy)
        effects += new
    return rental, effects


# The happy path's events: reserve at 0, bay at 1, badge at 10, unplug at 12, return at 57 (45 min).
RESERVE = ReserveCar("e-reserve", minutes(0), reservation_id=7)
RESERVE_BAY = ReserveBay("e-bay", minutes(1), reservation_id=8, dock=BAY)
BADGE = Badged("e-badge", minutes(10))
UNPLUG = CarUnplugged("e-unplug", minutes(12))
RETURN = CarReturned("e-return", minutes(57), dock=BAY, id_tag=CAR_TAG, transaction_id=99)
CLOSE = Close("e-close", minutes(57.1))

PATHS: dict[State, tuple[RentalEvent, ...]] = {
    State.NEW: (),
    State.RESERVED: (RESERVE, RESERVE_BAY),
    State.BADGED: (RESERVE, RESERVE_BAY, BADGE),
    State.STARTED: (RESERVE, RESERVE_BAY, BADGE, UNPLUG),
    State.OVERDUE: (RESERVE, RESERVE_BAY, BADGE, UNPLUG, OverdueReached("e-overdue", minutes(12 + 24 * 60))),
    State.RETURNED: (RESERVE, RESERVE_BAY, BADGE, UNPLUG, RETURN),
    State.CLOSED: (RESERVE, RESERVE_BAY, BADGE, UNPLUG, RETURN, CLOSE),
    State.CANCELLED: (RESERVE, RESERVE_BAY, CancelReservation("e-cancel", minutes(5))),
    State.EXPIRED: (RESERVE, RESERVE_BAY, ReservationExpired("e-expired", minutes(30))),
    State.RELEASED: (RESERVE, RESERVE_BAY, BADGE, BadgeTimedOut("e-released", minutes(15))),
    State.FORCE_ENDED: (RESERVE, RESERVE_BAY, ForceEnd("e-force", minutes(3), operator_id="op", reason="test")),
    State.PREEMPTED: (RESERVE, RESERVE_BAY, Preempted("e-preempted", minutes(4), by_rental_id="r0",
                                                      departed_at=minutes(-2))),
}


def in_state(state: State) -> Rental:
    rental, _ = run(new_rental(), *PATHS[state])
    assert rental.state is state
    return rental


LATE = T0 + timedelta(days=3)  # past every deadline of the paths above


def probe(kind: str) -> RentalEvent:
    """One event of ``kind`` that passes every guard (time, bay hold, car token) of the paths above."""
    return {
        "reserve_car": ReserveCar("p", LATE, reservation_id=70),
        "reserve_bay": ReserveBay("p", LATE, reservation_id=80, dock=ELSEWHERE),
        "cancel": CancelReservation("p", LATE),
        "badged": Badged("p", LATE),
        "car_unplugged": CarUnplugged("p", minutes(13)),  # inside the badge window (10 to 15)
        "car_returned": CarReturned("p", LATE, dock=ELSEWHERE, id_tag=CAR_TAG),
        "close": Close("p", LATE),
        "force_end": ForceEnd("p", LATE, operator_id="op", reason="probe"),
        "reservation_expired": ReservationExpired("p", LATE),
        "badge_timed_out": BadgeTimedOut("p", LATE),
        "overdue": OverdueReached("p", LATE),
        "bay_hold_expired": BayHoldExpired("p", LATE, reservation_id=8),
        "bay_hold_lost": BayHoldLost("p", LATE, reservation_id=8),
        "preempted": Preempted("p", LATE, by_rental_id="r0", departed_at=minutes(5)),  # before the badge at 10
    }[kind]


ALL_PAIRS = [(s, t.kind) for s in State for t in EVENT_TYPES]


# --- the table, cell by cell --------------------------------------------------------------------

def test_every_event_kind_is_distinct_and_every_state_reachable() -> None:
    assert len({t.kind for t in EVENT_TYPES}) == len(EVENT_TYPES)
    assert set(PATHS) == set(State)
    assert {s for s, _ in TRANSITIONS} == set(State) - FINAL


@pytest.mark.parametrize(("state", "kind"), [p for p in ALL_PAIRS if p in TRANSITIONS])
def test_every_allowed_transition(state: State, kind: str) -> None:
    rental = in_state(state)
    after, _ = apply(rental, probe(kind), POLICY)
    assert after.state is TRANSITIONS[state, kind] is next_state(state, kind)
    assert "p" in after.seen


@pytest.mark.parametrize(("state", "kind"), [p for p in ALL_PAIRS if p not in TRANSITIONS])
def test_every_forbidden_transition_raises_and_blames_the_sender(state: State, kind: str) -> None:
    rental = in_state(state)
    event = probe(kind)
    with pytest.raises(RentalTransitionError) as info:
        apply(rental, event, POLICY)
    assert (info.value.state, info.value.kind, info.value.fault) == (state, kind, type(event).source)
    assert info.value.rental_id == "r1"
    assert next_state(state, kind) is None


def test_error_messages_say_whose_fault() -> None:
    with pytest.raises(RentalTransitionError, match=r"'car_returned' is not allowed in state 'reserved' "
                                                    r"\(charge point's fault\)"):
        apply(in_state(State.RESERVED), probe("car_returned"), POLICY)
    with pytest.raises(RentalTransitionError, match=r"member's fault"):
        apply(in_state(State.STARTED), probe("cancel"), POLICY)
    with pytest.raises(RentalTransitionError, match=r"operator's fault"):
        apply(in_state(State.CLOSED), probe("force_end"), POLICY)


def test_terminal_states_accept_nothing_new_but_a_late_departure() -> None:
    for state in FINAL:
        assert not any(next_state(state, t.kind) for t in EVENT_TYPES)
    assert State.RELEASED in TERMINAL and set(TERMINAL - FINAL) == {State.RELEASED}
    assert [t.kind for t in EVENT_TYPES if next_state(State.RELEASED, t.kind)] == ["car_unplugged"]


# --- the happy path -----------------------------------------------------------------------------

def test_happy_path_from_reservation_to_invoice_line() -> None:
    r = new_rental()
    r, fx = apply(r, RESERVE, POLICY)
    assert r.state is State.RESERVED
    assert fx == [SendReserveNow(ORIGIN, 7, "BADGE-m1", minutes(30))]

    r, fx = apply(r, RESERVE_BAY, POLICY)
    assert fx == [SendReserveNow(BAY, 8, CAR_TAG, minutes(91))]  # the bay waits for the car's token

    r, fx = apply(r, BADGE, POLICY)
    assert (r.state, r.badged_at, fx) == (State.BADGED, minutes(10), [])

    r, fx = apply(r, UNPLUG, POLICY)
    assert (r.state, r.started_at) == (State.STARTED, minutes(12))
    assert fx == [SendCancelReservation(ORIGIN.charge_point_id, 7)]  # the car's hold is used up

    r, fx = apply(r, RETURN, POLICY)
    assert (r.state, r.returned_at, r.return_dock, r.bay_hold) == (State.RETURNED, minutes(57), BAY, None)
    assert fx == []  # the charge point consumed the bay reservation itself

    r, fx = apply(r, CLOSE, POLICY)
    assert r.state is State.CLOSED
    [charge] = fx
    assert isinstance(charge, ChargeMember)
    assert (charge.member_id, charge.rental_id) == ("m1", "r1")
    assert charge.breakdown.total == Money(900, "EUR")  # 45 minutes: 5 + 4 EUR
    assert [(line.label, line.amount.minor) for line in charge.breakdown.lines] == [
        ("1st half hour", 500), ("2nd half hour", 400)]
    assert r.charged == charge.breakdown and r.ended_at == minutes(57.1)


def test_walk_up_rental_without_reservation() -> None:
    _, fx = run(new_rental(), Badged("b", minutes(0)), CarUnplugged("u", minutes(1)),
                CarReturned("r", minutes(76), dock=ELSEWHERE, id_tag=CAR_TAG), Close("c", minutes(76)))
    charges = [f for f in fx if isinstance(f, ChargeMember)]
    assert [c.breakdown.total for c in charges] == [Money(1500, "EUR")]  # 75 minutes
    assert not any(isinstance(f, SendCancelReservation) for f in fx)


def test_badging_twice_keeps_the_first_badge_time() -> None:
    r, fx = run(new_rental(), Badged("b1", minutes(0)), Badged("b2", minutes(3)))
    assert (r.state, r.badged_at, fx) == (State.BADGED, minutes(0), [])


def test_return_elsewhere_gives_the_reserved_bay_back() -> None:
    r = in_state(State.STARTED)
    r, fx = apply(r, CarReturned("ret", minutes(40), dock=ELSEWHERE, id_tag=CAR_TAG), POLICY)
    assert fx == [SendCancelReservation(BAY.charge_point_id, 8)]
    assert r.bay_hold is None


def test_a_new_bay_reservation_replaces_the_previous_one() -> None:
    r = in_state(State.STARTED)
    r, fx = apply(r, ReserveBay("bay2", minutes(20), reservation_id=9, dock=ELSEWHERE), POLICY)
    assert fx == [SendCancelReservation(BAY.charge_point_id, 8), SendReserveNow(ELSEWHERE, 9, CAR_TAG, minutes(110))]


def test_offline_return_is_priced_from_the_transaction_time() -> None:
    # The bay's charge point was offline: its StartTransaction (at 42 min) arrives hours later.
    r = in_state(State.STARTED)
    r, _ = apply(r, CarReturned("late", minutes(42), dock=BAY, id_tag=CAR_TAG), POLICY)
    _, fx = apply(r, Close("close", minutes(400)), POLICY)
    [charge] = fx
    assert isinstance(charge, ChargeMember)
    assert charge.breakdown.total == Money(500, "EUR")  # 30 minutes: 12 -> 42


def test_return_with_another_token_is_voltlibs_routing_fault() -> None:
    r = in_state(State.STARTED)
    with pytest.raises(RentalTransitionError) as info:
        apply(r, CarReturned("x", minutes(40), dock=BAY, id_tag="CAR-9999"), POLICY)
    assert info.value.fault == "voltlib"


def test_a_return_stamped_before_the_start_still_ends_the_rental_at_the_start() -> None:
    """Issue 22, defect 3: the return bay's clock runs behind the departure bay's. The car is plugged
    in: the rental is returned (never before it started) and closes, billed the minimum."""
    started = in_state(State.STARTED)  # left at 12
    r, _ = apply(started, CarReturned("x", minutes(10), dock=BAY, id_tag=CAR_TAG), POLICY)
    assert r.state is State.RETURNED and r.returned_at == started.started_at == minutes(12)
    assert r.return_dock == BAY
    r, effects = apply(r, Close("c", minutes(10.5)), POLICY)
    assert r.state is State.CLOSED and r.ended_at == minutes(12)  # never ended before it was returned
    [charge] = [e for e in effects if isinstance(e, ChargeMember)]
    assert charge.breakdown.billed_minutes == 1 and charge.breakdown.total == Money(500, "EUR")


@given(st.integers(min_value=-10**6, max_value=10**6), st.integers(min_value=-10**6, max_value=10**6))
def test_a_return_and_a_close_at_any_times_end_with_a_sane_duration(back: int, close: int) -> None:
    r, _ = run(in_state(State.STARTED), CarReturned("x", minutes(12 + back / 60), dock=BAY, id_tag=CAR_TAG),
               Close("c", minutes(12 + close / 60)))
    assert r.state is State.CLOSED and r.started_at is not None and r.returned_at is not None
    assert r.ended_at is not None and r.started_at <= r.returned_at <= r.ended_at
    assert r.charged is not None and r.charged.billed_minutes >= 1


# --- idempotency --------------------------------------------------------------------------------

@pytest.mark.parametrize("state", list(State))
def test_replaying_every_event_changes_nothing(state: State) -> None:
    r = in_state(state)
    for e in PATHS[state]:
        again, fx = apply(r, e, POLICY)
        assert (again, fx) == (r, [])


def test_replay_is_by_event_id_even_if_the_payload_differs() -> None:
    r = in_state(State.RETURNED)
    r, fx = apply(r, CLOSE, POLICY)
    assert len(fx) == 1
    assert apply(r, replace(CLOSE, at=minutes(999)), POLICY) == (r, [])


def test_a_refused_event_leaves_the_rental_unchanged_and_unseen() -> None:
    r = in_state(State.RESERVED)
    with pytest.raises(RentalTransitionError):
        apply(r, CLOSE, POLICY)
    assert "e-close" not in r.seen


# --- timers -------------------------------------------------------------------------------------

def test_reservation_expires_after_the_car_hold() -> None:
    r = in_state(State.RESERVED)
    assert due_events(r, minutes(29.9), POLICY) == []
    [expiry] = due_events(r, minutes(45), POLICY)
    assert expiry == ReservationExpired("r1/reservation-expired", minutes(30))  # stamped with its deadline
    r, fx = apply(r, expiry, POLICY)
    assert r.state is State.EXPIRED
    assert fx == [SendCancelReservation(BAY.charge_point_id, 8), RecordNoShow("m1", "r1", minutes(30))]
    assert apply(r, expiry, POLICY) == (r, [])  # two schedulers firing it: harmless
    assert due_events(r, minutes(500), POLICY) == []


def test_timers_fired_early_are_voltlibs_fault() -> None:
    early = [
        (State.RESERVED, ReservationExpired("x", minutes(29))),
        (State.BADGED, BadgeTimedOut("x", minutes(14))),
        (State.STARTED, OverdueReached("x", minutes(60))),
        (State.STARTED, BayHoldExpired("x", minutes(60), reservation_id=8)),
        (State.STARTED, BayHoldExpired("x", minutes(200), reservation_id=12345)),
    ]
    for state, event in early:
        with pytest.raises(RentalTransitionError) as info:
            apply(in_state(state), event, POLICY)
        assert info.value.fault == "voltlib"


def test_city_policy_sets_the_holds() -> None:
    lyon = RentalPolicy(car_hold=timedelta(minutes=15), bay_hold=timedelta(minutes=45))
    r, fx = run(new_rental(), RESERVE, RESERVE_BAY, policy=lyon)
    assert [f.expiry_date for f in fx if isinstance(f, SendReserveNow)] == [minutes(15), minutes(46)]
    assert [type(e) for e in due_events(r, minutes(15), lyon)] == [ReservationExpired]
    with pytest.raises(ValueError):
        RentalPolicy(car_hold=timedelta(0))


def test_badge_without_taking_the_car_releases_it() -> None:
    r = in_state(State.BADGED)
    assert due_events(r, minutes(14.9), POLICY) == []
    [timeout] = due_events(r, minutes(15), POLICY)
    r, fx = apply(r, timeout, POLICY)
    assert r.state is State.RELEASED
    assert fx == [SendCancelReservation(ORIGIN.charge_point_id, 7), SendCancelReservation(BAY.charge_point_id, 8)]


def test_overdue_raises_an_alert_and_the_car_can_still_come_back() -> None:
    r = in_state(State.STARTED)
    policy = RentalPolicy(overdue_after=timedelta(hours=2))
    due = [e for e in due_events(r, minutes(12 + 120), policy) if isinstance(e, OverdueReached)]
    assert due == [OverdueReached("r1/overdue", minutes(132))]
    r, fx = apply(r, due[0], policy)
    assert r.state is State.OVERDUE
    assert [(type(f), getattr(f, "kind", None)) for f in fx] == [(RaiseAlert, "rental_overdue")]
    assert due_events(r, minutes(1000), policy) == [BayHoldExpired("r1/bay-expired/8", minutes(91), 8)]
    r, _ = apply(r, CarReturned("ret", minutes(162), dock=ELSEWHERE, id_tag=CAR_TAG), policy)
    r, fx = apply(r, Close("c", minutes(163)), policy)
    [charge] = fx
    assert isinstance(charge, ChargeMember)
    assert charge.breakdown.total == Money(5 * 100 + 4 * 100 + 3 * 600, "EUR")  # 150 minutes


def test_bay_hold_lapses_without_ending_the_rental() -> None:
    r = in_state(State.STARTED)
    [lapse] = due_events(r, minutes(91), POLICY)
    r, fx = apply(r, lapse, POLICY)
    assert (r.state, r.bay_hold, fx) == (State.STARTED, None, [])


# --- operator, departures -----------------------------------------------------------------------

def test_force_end_of_a_running_rental_bills_up_to_now() -> None:
    r, fx = apply(in_state(State.STARTED), ForceEnd("f", minutes(50), operator_id="op7", reason="stolen"), POLICY)
    assert r.state is State.FORCE_ENDED
    charges = [f for f in fx if isinstance(f, ChargeMember)]
    assert [c.breakdown.total for c in charges] == [Money(900, "EUR")]  # 38 minutes
    assert SendCancelReservation(BAY.charge_point_id, 8) in fx
    assert any(isinstance(f, RaiseAlert) and f.kind == "rental_force_ended" and "op7" in f.detail for f in fx)


def test_force_end_without_billing_or_before_the_start() -> None:
    _, fx = apply(in_state(State.STARTED), ForceEnd("f", minutes(50), "op", "goodwill", bill=False), POLICY)
    assert not any(isinstance(f, ChargeMember) for f in fx)
    _, fx = apply(in_state(State.RESERVED), ForceEnd("f", minutes(5), "op", "car faulty"), POLICY)
    assert not any(isinstance(f, ChargeMember) for f in fx)
    assert fx[:2] == [SendCancelReservation(ORIGIN.charge_point_id, 7), SendCancelReservation(BAY.charge_point_id, 8)]


def test_force_end_of_a_returned_rental_bills_up_to_the_return() -> None:
    _, fx = apply(in_state(State.RETURNED), ForceEnd("f", minutes(600), "op", "stuck"), POLICY)
    charges = [f for f in fx if isinstance(f, ChargeMember)]
    assert [c.breakdown.total for c in charges] == [Money(900, "EUR")]


def test_cancelling_a_reservation_frees_car_and_bay() -> None:
    r = in_state(State.RESERVED)
    r, fx = apply(r, CancelReservation("c", minutes(5)), POLICY)
    assert r.state is State.CANCELLED
    assert fx == [SendCancelReservation(ORIGIN.charge_point_id, 7), SendCancelReservation(BAY.charge_point_id, 8)]


def test_reserved_car_leaving_unbadged_is_an_unauthorised_departure() -> None:
    r, fx = apply(in_state(State.RESERVED), CarUnplugged("u", minutes(4)), POLICY)
    assert r.state is State.CANCELLED
    assert UnauthorisedDeparture("car-42", ORIGIN, minutes(4), "r1") in fx
    assert any(isinstance(f, RaiseAlert) and f.kind == "unauthorised_departure" for f in fx)
    assert not any(isinstance(f, ChargeMember) for f in fx)


def test_departure_outcome() -> None:
    assert departure("car-42", ORIGIN, minutes(1), in_state(State.BADGED)) is None
    assert departure("car-42", ORIGIN, minutes(1), None) == UnauthorisedDeparture("car-42", ORIGIN, minutes(1), None)
    assert departure("car-42", ORIGIN, minutes(1), in_state(State.RESERVED)) is not None
    assert departure("car-7", ORIGIN, minutes(1), in_state(State.BADGED)) is not None  # someone else's car


# --- reservation rules --------------------------------------------------------------------------

def test_one_active_car_reservation_per_member_and_one_per_car() -> None:
    mine = in_state(State.RESERVED)
    assert check_car_reservation("m1", "car-99", [], minutes(1), POLICY) is None
    refusal = check_car_reservation("m1", "car-99", [mine], minutes(1), POLICY)
    assert refusal is not None and refusal.code == "member_has_active_reservation"
    refusal = check_car_reservation("m2", "car-42", [mine], minutes(1), POLICY)
    assert refusal is not None and refusal.code == "car_already_held"
    assert check_car_reservation("m2", "car-99", [mine], minutes(1), POLICY) is None
    # lapsed or finished holds do not count
    assert check_car_reservation("m1", "car-42", [mine], minutes(30), POLICY) is None
    for state in (State.STARTED, State.CANCELLED, State.CLOSED):
        assert check_car_reservation("m1", "car-42", [in_state(state)], minutes(1), POLICY) is None
    badged = in_state(State.BADGED)
    assert holds_car(badged, minutes(14), POLICY) and not holds_car(badged, minutes(15), POLICY)


def test_never_two_reservations_on_one_bay() -> None:
    mine = in_state(State.STARTED)
    refusal = check_bay_reservation(BAY, [mine], minutes(20))
    assert refusal is not None and refusal.code == "bay_already_held"
    assert check_bay_reservation(ELSEWHERE, [mine], minutes(20)) is None
    assert check_bay_reservation(BAY, [mine], minutes(91)) is None
    assert check_bay_reservation(BAY, [in_state(State.CLOSED)], minutes(20)) is None


# --- documentation ------------------------------------------------------------------------------

def test_docs_show_the_current_table() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "car-sharing.md"
    assert transitions_markdown() in doc.read_text(encoding="utf-8")


# --- random event sequences ---------------------------------------------------------------------

KINDS = {t.kind: t for t in EVENT_TYPES}


def _random_event(data: st.DataObject, rental: Rental, at: datetime) -> RentalEvent:
    """Mostly an event the table allows now (so sequences get far), sometimes any event at all."""
    allowed = [k for (s, k) in TRANSITIONS if s is rental.state]
    kind: type[RentalEvent] = data.draw(st.sampled_from(EVENT_TYPES))
    if allowed and data.draw(st.integers(0, 3)) > 0:
        kind = KINDS[data.draw(st.sampled_from(allowed))]
    event_id = f"e{data.draw(st.integers(0, 40))}"  # a small pool: some ids come back with new payloads
    dock = data.draw(st.sampled_from([ORIGIN, BAY, ELSEWHERE]))
    if kind is ReserveCar:
        return ReserveCar(event_id, at, reservation_id=data.draw(st.integers(1, 3)))
    if kind is ReserveBay:
        return ReserveBay(event_id, at, reservation_id=data.draw(st.integers(1, 3)), dock=dock)
    if kind is CarReturned:
        return CarReturned(event_id, at, dock=dock, id_tag=data.draw(st.sampled_from([CAR_TAG, CAR_TAG, "CAR-X"])))
    if kind is ForceEnd:
        return ForceEnd(event_id, at, operator_id="op", reason="random", bill=data.draw(st.booleans()))
    if kind is Preempted:
        departed = at - timedelta(minutes=data.draw(st.sampled_from([-5, 0, 3, 20])))
        return Preempted(event_id, at, by_rental_id="r0", departed_at=departed)
    if kind in (BayHoldExpired, BayHoldLost):
        held = rental.bay_hold.reservation_id if rental.bay_hold else 1
        return kind(event_id, at, reservation_id=data.draw(st.sampled_from([held, 2])))  # type: ignore[call-arg]
    return kind(event_id, at)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_random_sequences_never_bill_twice_or_negatively(data: st.DataObject) -> None:
    r, at = new_rental(), T0
    applied, effects = list[RentalEvent](), list[Effect]()
    for _ in range(data.draw(st.integers(0, 30), label="steps")):
        at += timedelta(minutes=data.draw(st.sampled_from([0, 1, 2, 3, 4, 10, 35, 100, 1500])))
        choice = data.draw(st.integers(0, 9))
        if choice == 0:  # a timer check: apply whatever is due
            batch = due_events(r, at, POLICY)
        elif choice == 1 and applied:  # a replay of something already applied
            batch = [data.draw(st.sampled_from(applied))]
        else:
            batch = [_random_event(data, r, at)]
        for event in batch:
            try:
                r, fx = apply(r, event, POLICY)
            except RentalTransitionError:
                continue
            applied.append(event)
            effects += fx
    charges = [f for f in effects if isinstance(f, ChargeMember)]
    assert len(charges) <= 1
    for c in charges:
        assert c.breakdown.total.minor > 0 and c.breakdown.currency == "EUR"
        assert r.charged == c.breakdown and r.state in TERMINAL
    # Replaying everything that was applied, in order, is silent.
    for event in applied:
        again, fx = apply(r, event, POLICY)
        assert (again, fx) == (r, [])


def test_a_bay_hold_lost_to_another_car_is_cancelled_at_the_charge_point_and_early() -> None:
    rental, _ = run(new_rental(), ReserveCar("r", T0, reservation_id=7), Badged("b", T0),
                    CarUnplugged("u", T0 + timedelta(minutes=1)),
                    ReserveBay("bay", T0 + timedelta(minutes=2), reservation_id=9, dock=BAY))
    assert rental.bay_hold is not None
    lost, fx = apply(rental, BayHoldLost("lost", T0 + timedelta(minutes=3), reservation_id=9), POLICY)
    assert lost.bay_hold is None and lost.state is State.STARTED  # long before the hold would have lapsed
    assert fx == [SendCancelReservation(BAY.charge_point_id, 9)]
    with pytest.raises(RentalTransitionError, match="no such bay hold"):
        apply(lost, BayHoldLost("again", T0 + timedelta(minutes=4), reservation_id=9), POLICY)


# --- late departures ----------------------------------------------------------------------------
# Badged at 10 (PATHS), released by its timer at 15; the charge point's report of the departure
# arrives after that, carrying its own timestamp.

def released() -> Rental:
    return in_state(State.RELEASED)


@pytest.mark.parametrize("left", [10, 12, 15])  # the window's both ends are in it
def test_a_departure_stamped_inside_the_badge_window_starts_the_released_rental_then(left: float) -> None:
    r, fx = apply(released(), CarUnplugged("late", minutes(left)), POLICY)
    assert (r.state, r.started_at, r.ended_at, r.car_hold, r.bay_hold) == (State.STARTED, minutes(left), None,
                                                                            None, None)
    assert fx == []  # its holds were cancelled at the release; no alert
    r, fx = run(r, CarReturned("ret", minutes(left + 45), dock=BAY, id_tag=CAR_TAG), Close("c", minutes(200)))
    [charge] = [f for f in fx if isinstance(f, ChargeMember)]
    assert charge.breakdown.started_at == minutes(left)  # priced from the charge point's departure time
    assert charge.breakdown.total == Money(900, "EUR")  # 45 minutes


@pytest.mark.parametrize("left", [9.9, 15.1, 60])  # before the badge (clock skew), after the window
def test_a_departure_outside_the_badge_window_is_not_the_released_rentals(left: float) -> None:
    r = released()
    assert not in_badge_window(r, minutes(left), POLICY)
    with pytest.raises(RentalTransitionError, match="outside the badge window") as info:
        apply(r, CarUnplugged("late", minutes(left)), POLICY)
    assert info.value.fault == "voltlib"  # routing it there was voltlib's mistake
    assert late_departure_claimant(ORIGIN, minutes(left), [r], POLICY) is None
    assert departure("car-42", ORIGIN, minutes(left), None) == \
        UnauthorisedDeparture("car-42", ORIGIN, minutes(left), None)  # the caller's outcome: as before


def test_the_window_follows_the_city_policy() -> None:
    lyon = RentalPolicy(release_after=timedelta(minutes=2))
    r, _ = run(new_rental(), Badged("b", minutes(10)), BadgeTimedOut("t", minutes(12)), policy=lyon)
    assert late_departure_claimant(ORIGIN, minutes(12), [r], lyon) == r
    assert late_departure_claimant(ORIGIN, minutes(13), [r], lyon) is None


def test_a_late_departure_replayed_changes_nothing() -> None:
    late = CarUnplugged("unplug:cp:1:t", minutes(12))
    r, _ = apply(released(), late, POLICY)
    assert apply(r, late, POLICY) == (r, [])
    assert apply(r, PATHS[State.RELEASED][-1], POLICY) == (r, [])  # the release timer, fired again
    assert due_events(r, minutes(20), POLICY) == []  # no release any more; the overdue timer runs from 12
    assert due_events(r, minutes(12 + 24 * 60), POLICY)[-1] == OverdueReached("r1/overdue", minutes(12 + 24 * 60))


def test_the_claimant_is_the_newest_released_rental_from_that_bay_with_nothing_started_since() -> None:
    mine = released()
    other_release, _ = run(new_rental("r2", "m2"), Badged("b2", minutes(16)), BadgeTimedOut("t2", minutes(21)))
    cancelled, _ = run(new_rental("r3", "m3"), ReserveCar("c3", minutes(22), reservation_id=5),
                       CancelReservation("x3", minutes(23)))
    assert late_departure_claimant(ORIGIN, minutes(12), [cancelled, other_release, mine], POLICY) == mine
    assert late_departure_claimant(ORIGIN, minutes(18), [cancelled, other_release, mine], POLICY) == other_release
    assert late_departure_claimant(ELSEWHERE, minutes(12), [mine], POLICY) is None  # not the bay it left from
    # a rental started since: the car left and came back, so the old badge cannot claim this departure
    trip, _ = run(new_rental("r4", "m4"), Badged("b4", minutes(30)), CarUnplugged("u4", minutes(31)),
                  CarReturned("ret4", minutes(50), dock=ORIGIN, id_tag=CAR_TAG), Close("c4", minutes(50)))
    assert late_departure_claimant(ORIGIN, minutes(12), [trip, mine], POLICY) is None
    assert late_departure_claimant(ORIGIN, minutes(12), [], POLICY) is None


def test_another_members_reservation_gives_way_to_the_late_departure() -> None:
    theirs, _ = run(new_rental("r2", "m2"), ReserveCar("res2", minutes(16), reservation_id=21),
                    ReserveBay("bay2", minutes(17), reservation_id=22, dock=BAY))
    assert yields_to_departure(theirs, minutes(12))
    ended, fx = apply(theirs, Preempted("pre", minutes(20), by_rental_id="r1", departed_at=minutes(12)), POLICY)
    assert (ended.state, ended.ended_at, ended.car_hold, ended.bay_hold) == (State.PREEMPTED, minutes(20), None, None)
    assert fx == [SendCancelReservation(ORIGIN.charge_point_id, 21), SendCancelReservation(BAY.charge_point_id, 22)]
    assert not any(isinstance(f, (RecordNoShow, RaiseAlert, UnauthorisedDeparture)) for f in fx)  # not their fault
    assert apply(ended, Preempted("pre", minutes(20), by_rental_id="r1", departed_at=minutes(12)), POLICY) == \
        (ended, [])


def test_a_badge_after_the_departure_gives_way_but_not_one_before() -> None:
    after, _ = run(new_rental("r2", "m2"), Badged("b2", minutes(16)))
    assert yields_to_departure(after, minutes(12))
    ended, fx = apply(after, Preempted("pre", minutes(20), by_rental_id="r1", departed_at=minutes(12)), POLICY)
    assert (ended.state, fx) == (State.PREEMPTED, [])  # walk-up: no reservation to cancel
    assert not yields_to_departure(after, minutes(16)) and not yields_to_departure(after, minutes(17))
    with pytest.raises(RentalTransitionError, match="badged before the departure") as info:
        apply(after, Preempted("pre", minutes(20), by_rental_id="r1", departed_at=minutes(16)), POLICY)
    assert info.value.fault == "voltlib"
    assert not yields_to_departure(in_state(State.STARTED), minutes(12))  # out with a car: a contradiction
