"""The lifecycle of one rental, written as a transition table in the style of h11.

``TRANSITIONS`` maps ``(state, event kind)`` to the next state. A pair missing from the table *is*
the protocol error: :func:`apply` raises :class:`RentalTransitionError`, whose ``fault`` names who
broke the protocol: the member, the charge point, an operator, or voltlib itself (a timer fired
early, an event routed to the wrong rental). Events are plain dataclasses carrying their own
timestamp; time is never read from a clock here. :func:`apply` returns the new rental and the
*effects* the caller must carry out (OCPP commands to send, a member to charge, an alert to raise),
all plain data.

Replaying an event (same ``event_id``) is a no-op that yields no effects, so re-delivered OCPP
messages never bill twice. Timers are events too: :func:`due_events` lists the ones a rental has
reached at ``now``, with ids derived from the rental so that firing them twice is harmless.

A car leaving its bay with no authorised rental is not a protocol error but an outcome for the
security detectors: :func:`departure` tells the two apart, and a reserved-but-not-badged car that
leaves ends its reservation with an :class:`UnauthorisedDeparture` effect.

A departure voltlib hears of late (a charge point offline or slow) may belong to a badge whose
rental the release timer has already ended: the charge point's own timestamp decides. A departure
stamped inside the badge window starts that RELEASED rental from its timestamp
(:func:`late_departure_claimant`), and any hold taken on the car (or by the same member) in the
meantime gives way to it (:class:`Preempted`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Final, Literal

from voltlib.domain.pricing import Plan, PriceBreakdown, price_rental

Fault = Literal["member", "charge_point", "operator", "voltlib"]


class State(StrEnum):
    NEW = "new"  # created, nothing happened yet (a reservation or a walk-up badge comes next)
    RESERVED = "reserved"  # car held at its charge point for the member
    BADGED = "badged"  # member authorised at the car's charge point; car not yet unplugged
    STARTED = "started"  # car unplugged and driven away: the rental runs
    OVERDUE = "overdue"  # still running past the policy's overdue time (alert raised)
    RETURNED = "returned"  # car plugged in at a bay (StartTransaction with the car's id token)
    CLOSED = "closed"  # priced, member charged
    CANCELLED = "cancelled"  # reservation cancelled by the member, or the reserved car left unbadged
    EXPIRED = "expired"  # reservation not picked up in time (no-show)
    RELEASED = "released"  # badged but the car was not taken in time (as far as voltlib knew then)
    FORCE_ENDED = "force_ended"  # ended by an operator
    PREEMPTED = "preempted"  # a hold that gave way to a late-reported departure (the car had already left)


# Terminal: the rental holds nothing any more (no car, no member, no bay). RELEASED is terminal yet
# accepts one event, a late-reported ``car_unplugged`` stamped inside its badge window; every other
# terminal state accepts nothing (FINAL).
TERMINAL: Final = frozenset({State.CLOSED, State.CANCELLED, State.EXPIRED, State.RELEASED, State.FORCE_ENDED,
                             State.PREEMPTED})
FINAL: Final = TERMINAL - {State.RELEASED}


class RentalTransitionError(Exception):
    """``event`` is not allowed in ``state``; ``fault`` says who broke the protocol."""

    def __init__(self, rental_id: str, state: State, kind: str, fault: Fault, reason: str | None = None) -> None:
        self.rental_id, self.state, self.kind, self.fault = rental_id, state, kind, fault
        detail = reason or f"{kind!r} is not allowed in state {state.value!r}"
        super().__init__(f"rental {rental_id}: {detail} ({fault.replace('_', ' ')}'s fault)")


# --- policy ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RentalPolicy:
    """Per-city limits. Defaults: Autolib' Paris (car 30 min, bay 90 min); release and overdue
    times are voltlib defaults, not published figures."""

    car_hold: timedelta = timedelta(minutes=30)
    bay_hold: timedelta = timedelta(minutes=90)
    release_after: timedelta = timedelta(minutes=5)  # badge without taking the car
    overdue_after: timedelta = timedelta(hours=24)  # rental not returned: alert

    def __post_init__(self) -> None:
        if min(self.car_hold, self.bay_hold, self.release_after, self.overdue_after) <= timedelta(0):
            raise ValueError("every policy duration must be positive")


# --- the rental ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Dock:
    """One parking bay's connector: where a car is plugged."""

    charge_point_id: str
    connector_id: int


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation sent to a charge point (OCPP ReserveNow) and when it lapses."""

    reservation_id: int
    dock: Dock
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SocSnapshot:
    """The car's stored state-of-charge estimate when an event was processed: the value (percent of
    usable energy), where it came from (``vehicles.soc_source``) and when it held."""

    percent: float
    source: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Rental:
    rental_id: str
    member_id: str
    member_id_tag: str  # the member's badge
    car_id: str
    car_id_tag: str  # the id token the charge point reports when this car is plugged in
    origin: Dock  # where the car is docked when the rental is created
    plan: Plan  # priced with the plan in force at creation
    state: State = State.NEW
    car_hold: Hold | None = None
    bay_hold: Hold | None = None
    reserved_at: datetime | None = None
    badged_at: datetime | None = None
    started_at: datetime | None = None
    returned_at: datetime | None = None
    return_dock: Dock | None = None
    ended_at: datetime | None = None
    charged: PriceBreakdown | None = None
    seen: frozenset[str] = field(default_factory=frozenset)  # ids of the events applied
    departure_soc: SocSnapshot | None = None  # the estimate when the car left (None: there was none)
    return_soc: SocSnapshot | None = None  # the estimate when the return was processed
    return_transaction_id: int | None = None  # the charging session the return started


# --- events ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RentalEvent:
    kind: ClassVar[str]
    source: ClassVar[Fault]  # who sends it: who is at fault when it is not allowed
    event_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ReserveCar(RentalEvent):
    """Member reserves the car where it is docked."""

    kind: ClassVar[str] = "reserve_car"
    source: ClassVar[Fault] = "member"
    reservation_id: int


@dataclass(frozen=True, slots=True)
class ReserveBay(RentalEvent):
    """Member reserves a bay at the destination; a new one replaces the previous."""

    kind: ClassVar[str] = "reserve_bay"
    source: ClassVar[Fault] = "member"
    reservation_id: int
    dock: Dock


@dataclass(frozen=True, slots=True)
class CancelReservation(RentalEvent):
    kind: ClassVar[str] = "cancel"
    source: ClassVar[Fault] = "member"


@dataclass(frozen=True, slots=True)
class Badged(RentalEvent):
    """Authorize accepted at the car's charge point (walk-up or with a reservation)."""

    kind: ClassVar[str] = "badged"
    source: ClassVar[Fault] = "charge_point"


@dataclass(frozen=True, slots=True)
class CarUnplugged(RentalEvent):
    """The car's cable left the origin bay (its charging transaction stopped, connector Available)."""

    kind: ClassVar[str] = "car_unplugged"
    source: ClassVar[Fault] = "charge_point"
    soc: SocSnapshot | None = None  # the car's estimate then, recorded when the rental starts


@dataclass(frozen=True, slots=True)
class CarReturned(RentalEvent):
    """StartTransaction with the car's id token at some bay. ``at`` is the transaction's own
    timestamp, so a return stored offline and reported on reconnection prices correctly (bounded by
    the clock policy, :mod:`voltlib.domain.clock_policy`); one stamped before the departure is
    returned at the departure."""

    kind: ClassVar[str] = "car_returned"
    source: ClassVar[Fault] = "charge_point"
    dock: Dock
    id_tag: str
    transaction_id: int | None = None
    soc: SocSnapshot | None = None  # the car's estimate when the return is processed


@dataclass(frozen=True, slots=True)
class Close(RentalEvent):
    """voltlib prices the returned rental."""

    kind: ClassVar[str] = "close"
    source: ClassVar[Fault] = "voltlib"


@dataclass(frozen=True, slots=True)
class ForceEnd(RentalEvent):
    """An operator ends the rental; if the car was out, it is billed up to ``at`` unless ``bill`` is false."""

    kind: ClassVar[str] = "force_end"
    source: ClassVar[Fault] = "operator"
    operator_id: str
    reason: str
    bill: bool = True


@dataclass(frozen=True, slots=True)
class ReservationExpired(RentalEvent):
    kind: ClassVar[str] = "reservation_expired"
    source: ClassVar[Fault] = "voltlib"


@dataclass(frozen=True, slots=True)
class BadgeTimedOut(RentalEvent):
    kind: ClassVar[str] = "badge_timed_out"
    source: ClassVar[Fault] = "voltlib"


@dataclass(frozen=True, slots=True)
class OverdueReached(RentalEvent):
    kind: ClassVar[str] = "overdue"
    source: ClassVar[Fault] = "voltlib"


@dataclass(frozen=True, slots=True)
class BayHoldExpired(RentalEvent):
    kind: ClassVar[str] = "bay_hold_expired"
    source: ClassVar[Fault] = "voltlib"
    reservation_id: int


@dataclass(frozen=True, slots=True)
class BayHoldLost(RentalEvent):
    """Another member's car was plugged into the held bay and no other bay of the station is free:
    the hold ends early (the car is physically there; voltlib cannot hold the bay any more)."""

    kind: ClassVar[str] = "bay_hold_lost"
    source: ClassVar[Fault] = "voltlib"
    reservation_id: int


@dataclass(frozen=True, slots=True)
class Preempted(RentalEvent):
    """A late-reported departure, stamped at ``departed_at``, belongs to rental ``by_rental_id``
    (released by its timer before voltlib heard of it): the car had left with that member before this
    hold was taken. The physical event wins: this hold (on that car, or that member's hold on another
    car: a member holds one car at a time) ends. ``at`` is when voltlib learned of it."""

    kind: ClassVar[str] = "preempted"
    source: ClassVar[Fault] = "voltlib"
    by_rental_id: str
    departed_at: datetime


EVENT_TYPES: Final[tuple[type[RentalEvent], ...]] = (
    ReserveCar, ReserveBay, CancelReservation, Badged, CarUnplugged, CarReturned, Close, ForceEnd,
    ReservationExpired, BadgeTimedOut, OverdueReached, BayHoldExpired, BayHoldLost, Preempted,
)


# --- effects ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SendReserveNow:
    dock: Dock
    reservation_id: int
    id_tag: str
    expiry_date: datetime


@dataclass(frozen=True, slots=True)
class SendCancelReservation:
    charge_point_id: str
    reservation_id: int


@dataclass(frozen=True, slots=True)
class ChargeMember:
    member_id: str
    rental_id: str
    breakdown: PriceBreakdown


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    kind: str  # rental_overdue | unauthorised_departure | rental_force_ended
    rental_id: str
    at: datetime
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RecordNoShow:
    member_id: str
    rental_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class UnauthorisedDeparture:
    """A car left its bay with no authorised rental: for the security detectors."""

    car_id: str
    dock: Dock
    at: datetime
    rental_id: str | None  # the reservation it broke, if any


Effect = SendReserveNow | SendCancelReservation | ChargeMember | RaiseAlert | RecordNoShow | UnauthorisedDeparture


# --- the table -------------------------------------------------------------------------------

S = State
TRANSITIONS: Final[dict[tuple[State, str], State]] = {
    (S.NEW, "reserve_car"): S.RESERVED,
    (S.NEW, "badged"): S.BADGED,  # walk-up: a free car, no reservation
    (S.RESERVED, "reserve_bay"): S.RESERVED,
    (S.RESERVED, "bay_hold_expired"): S.RESERVED,
    (S.RESERVED, "bay_hold_lost"): S.RESERVED,
    (S.RESERVED, "badged"): S.BADGED,
    (S.RESERVED, "cancel"): S.CANCELLED,
    (S.RESERVED, "reservation_expired"): S.EXPIRED,
    (S.RESERVED, "car_unplugged"): S.CANCELLED,  # taken without a badge: unauthorised departure
    (S.RESERVED, "force_end"): S.FORCE_ENDED,
    (S.RESERVED, "preempted"): S.PREEMPTED,  # the car had left with an earlier badge, reported late
    (S.BADGED, "badged"): S.BADGED,  # badging again changes nothing (the release timer keeps running)
    (S.BADGED, "reserve_bay"): S.BADGED,
    (S.BADGED, "bay_hold_expired"): S.BADGED,
    (S.BADGED, "bay_hold_lost"): S.BADGED,
    (S.BADGED, "car_unplugged"): S.STARTED,
    (S.BADGED, "badge_timed_out"): S.RELEASED,
    (S.BADGED, "force_end"): S.FORCE_ENDED,
    (S.BADGED, "preempted"): S.PREEMPTED,  # only if badged after the car left (guard)
    (S.STARTED, "reserve_bay"): S.STARTED,
    (S.STARTED, "bay_hold_expired"): S.STARTED,
    (S.STARTED, "bay_hold_lost"): S.STARTED,
    (S.STARTED, "car_returned"): S.RETURNED,
    (S.STARTED, "overdue"): S.OVERDUE,
    (S.STARTED, "force_end"): S.FORCE_ENDED,
    (S.OVERDUE, "reserve_bay"): S.OVERDUE,
    (S.OVERDUE, "bay_hold_expired"): S.OVERDUE,
    (S.OVERDUE, "bay_hold_lost"): S.OVERDUE,
    (S.OVERDUE, "car_returned"): S.RETURNED,
    (S.OVERDUE, "force_end"): S.FORCE_ENDED,
    (S.RETURNED, "close"): S.CLOSED,
    (S.RETURNED, "force_end"): S.FORCE_ENDED,
    (S.RELEASED, "car_unplugged"): S.STARTED,  # a late report of a departure inside the badge window (guard)
}
del S


def next_state(state: State, kind: str) -> State | None:
    """The state ``kind`` leads to from ``state``, or None when the table forbids it."""
    return TRANSITIONS.get((state, kind))


# --- apply -----------------------------------------------------------------------------------

Step = tuple[Rental, list[Effect]]


def _cancel(hold: Hold | None) -> list[Effect]:
    return [] if hold is None else [SendCancelReservation(hold.dock.charge_point_id, hold.reservation_id)]


def _charge(r: Rental, until: datetime) -> tuple[PriceBreakdown, list[Effect]]:
    assert r.started_at is not None
    breakdown = price_rental(r.plan, r.started_at, until)
    return breakdown, [ChargeMember(r.member_id, r.rental_id, breakdown)]


def _deadline_check(r: Rental, e: RentalEvent, due: datetime | None) -> None:
    if due is None or e.at < due:
        raise RentalTransitionError(r.rental_id, r.state, e.kind, "voltlib", f"{e.kind!r} fired before it was due")


def _on_reserve_car(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    assert isinstance(e, ReserveCar)
    hold = Hold(e.reservation_id, r.origin, e.at + p.car_hold)
    return (replace(r, car_hold=hold, reserved_at=e.at),
            [SendReserveNow(r.origin, e.reservation_id, r.member_id_tag, hold.expires_at)])


def _on_reserve_bay(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    assert isinstance(e, ReserveBay)
    hold = Hold(e.reservation_id, e.dock, e.at + p.bay_hold)
    # The bay is reserved for the car's token: that is what its StartTransaction will carry.
    return (replace(r, bay_hold=hold),
            [*_cancel(r.bay_hold), SendReserveNow(e.dock, e.reservation_id, r.car_id_tag, hold.expires_at)])


def _on_bay_hold_expired(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    assert isinstance(e, BayHoldExpired)
    if r.bay_hold is None or r.bay_hold.reservation_id != e.reservation_id:
        raise RentalTransitionError(r.rental_id, r.state, e.kind, "voltlib", "no such bay hold")
    _deadline_check(r, e, r.bay_hold.expires_at)
    return replace(r, bay_hold=None), []  # the charge point lets the reservation lapse by itself


def _on_bay_hold_lost(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    assert isinstance(e, BayHoldLost)
    if r.bay_hold is None or r.bay_hold.reservation_id != e.reservation_id:
        raise RentalTransitionError(r.rental_id, r.state, e.kind, "voltlib", "no such bay hold")
    return replace(r, bay_hold=None), _cancel(r.bay_hold)


def _on_badged(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    return replace(r, badged_at=r.badged_at or e.at), []


def _on_cancel(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    return (replace(r, car_hold=None, bay_hold=None, ended_at=e.at),
            [*_cancel(r.car_hold), *_cancel(r.bay_hold)])


def in_badge_window(r: Rental, at: datetime, p: RentalPolicy) -> bool:
    """Whether ``at`` falls inside ``r``'s badge window: ``badged_at <= at <= badged_at + release_after``.
    A departure stamped before the badge is outside it (see docs/car-sharing.md, late departures)."""
    return r.badged_at is not None and r.badged_at <= at <= r.badged_at + p.release_after


def _on_unplugged(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    if r.state is State.RELEASED:  # the departure was reported after the release timer fired
        if not in_badge_window(r, e.at, p):
            raise RentalTransitionError(r.rental_id, r.state, e.kind, "voltlib",
                                        "departure outside the badge window routed to a released rental")
        # Its holds were cancelled at the release; the rental runs from the charge point's own time.
        return replace(r, car_hold=None, bay_hold=None, started_at=e.at, ended_at=None), []
    effects = [*_cancel(r.car_hold)]
    if r.state is State.RESERVED:  # the held car left without its member's badge
        effects += [*_cancel(r.bay_hold), UnauthorisedDeparture(r.car_id, r.origin, e.at, r.rental_id),
                    RaiseAlert("unauthorised_departure", r.rental_id, e.at, f"car {r.car_id} left while reserved")]
        return replace(r, car_hold=None, bay_hold=None, ended_at=e.at), effects
    assert isinstance(e, CarUnplugged)
    return replace(r, car_hold=None, started_at=e.at, departure_soc=e.soc), effects


def _on_returned(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    assert isinstance(e, CarReturned)
    if e.id_tag != r.car_id_tag:
        raise RentalTransitionError(r.rental_id, r.state, e.kind, "voltlib",
                                    f"id token {e.id_tag!r} is not this rental's car")
    assert r.started_at is not None
    # A return stamped before the departure (the two bays' clocks disagree) still ends the rental: the
    # car is plugged in. It is returned when it left, never before (docs/car-sharing.md, Clock policy).
    returned_at = max(e.at, r.started_at)
    # A return at the reserved bay consumes that reservation; elsewhere it is no longer needed.
    used = r.bay_hold is not None and r.bay_hold.dock == e.dock
    return (replace(r, returned_at=returned_at, return_dock=e.dock, bay_hold=None, return_soc=e.soc,
                    return_transaction_id=e.transaction_id),
            [] if used else _cancel(r.bay_hold))


def _on_close(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    assert r.returned_at is not None
    breakdown, effects = _charge(r, r.returned_at)
    return replace(r, charged=breakdown, ended_at=max(e.at, r.returned_at)), effects


def _on_force_end(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    assert isinstance(e, ForceEnd)
    effects: list[Effect] = [*_cancel(r.car_hold), *_cancel(r.bay_hold)]
    charged = None
    if e.bill and r.started_at is not None:
        until = r.returned_at or max(e.at, r.started_at)
        charged, billing = _charge(r, until)
        effects += billing
    effects.append(RaiseAlert("rental_force_ended", r.rental_id, e.at, f"by {e.operator_id}: {e.reason}"))
    return replace(r, car_hold=None, bay_hold=None, charged=charged, ended_at=e.at), effects


def _on_expired(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    _deadline_check(r, e, r.car_hold.expires_at if r.car_hold else None)
    # The charge point expires its own reservation; only the bay is ours to give back.
    return (replace(r, car_hold=None, bay_hold=None, ended_at=e.at),
            [*_cancel(r.bay_hold), RecordNoShow(r.member_id, r.rental_id, e.at)])


def _on_badge_timeout(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    _deadline_check(r, e, r.badged_at + p.release_after if r.badged_at else None)
    return (replace(r, car_hold=None, bay_hold=None, ended_at=e.at), [*_cancel(r.car_hold), *_cancel(r.bay_hold)])


def _on_preempted(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    assert isinstance(e, Preempted)
    if r.state is State.BADGED and r.badged_at is not None and r.badged_at <= e.departed_at:
        # badged before the car left: the departure is this rental's (it starts), not the other's
        raise RentalTransitionError(r.rental_id, r.state, e.kind, "voltlib",
                                    "badged before the departure: it cannot be preempted by it")
    # The charge points still hold the car (and the bay) for this member: tell them to let go.
    return (replace(r, car_hold=None, bay_hold=None, ended_at=e.at), [*_cancel(r.car_hold), *_cancel(r.bay_hold)])


def _on_overdue(r: Rental, e: RentalEvent, p: RentalPolicy) -> Step:
    _deadline_check(r, e, r.started_at + p.overdue_after if r.started_at else None)
    return r, [RaiseAlert("rental_overdue", r.rental_id, e.at, f"car {r.car_id} out since {r.started_at}")]


_HANDLERS: Final[dict[str, Callable[[Rental, RentalEvent, RentalPolicy], Step]]] = {
    "reserve_car": _on_reserve_car,
    "reserve_bay": _on_reserve_bay,
    "bay_hold_expired": _on_bay_hold_expired,
    "bay_hold_lost": _on_bay_hold_lost,
    "badged": _on_badged,
    "cancel": _on_cancel,
    "car_unplugged": _on_unplugged,
    "car_returned": _on_returned,
    "close": _on_close,
    "force_end": _on_force_end,
    "reservation_expired": _on_expired,
    "badge_timed_out": _on_badge_timeout,
    "overdue": _on_overdue,
    "preempted": _on_preempted,
}


def apply(rental: Rental, event: RentalEvent, policy: RentalPolicy) -> Step:
    """``rental`` after ``event``, and the effects to carry out. Raises :class:`RentalTransitionError`
    when the table (or a guard: wrong car token, early timer) forbids it; the rental is unchanged then.
    An event whose ``event_id`` was already applied changes nothing and yields no effects."""
    if event.event_id in rental.seen:
        return rental, []
    target = TRANSITIONS.get((rental.state, event.kind))
    if target is None:
        raise RentalTransitionError(rental.rental_id, rental.state, event.kind, event.source)
    updated, effects = _HANDLERS[event.kind](rental, event, policy)
    return replace(updated, state=target, seen=rental.seen | {event.event_id}), effects


# --- timers ----------------------------------------------------------------------------------

def due_events(rental: Rental, now: datetime, policy: RentalPolicy) -> list[RentalEvent]:
    """The timer events ``rental`` has reached at ``now``, each stamped with its deadline and with an
    id derived from the rental, so that applying them twice (two schedulers, a retry) is harmless."""
    rid, r = rental.rental_id, rental
    out: list[RentalEvent] = []
    if r.bay_hold is not None and r.state not in TERMINAL and now >= r.bay_hold.expires_at:
        out.append(BayHoldExpired(f"{rid}/bay-expired/{r.bay_hold.reservation_id}", r.bay_hold.expires_at,
                                  r.bay_hold.reservation_id))
    if r.state is State.RESERVED and r.car_hold is not None and now >= r.car_hold.expires_at:
        out.append(ReservationExpired(f"{rid}/reservation-expired", r.car_hold.expires_at))
    elif r.state is State.BADGED and r.badged_at is not None and now >= r.badged_at + policy.release_after:
        out.append(BadgeTimedOut(f"{rid}/badge-timed-out", r.badged_at + policy.release_after))
    elif r.state is State.STARTED and r.started_at is not None and now >= r.started_at + policy.overdue_after:
        out.append(OverdueReached(f"{rid}/overdue", r.started_at + policy.overdue_after))
    return out


# --- reservation rules -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # machine-readable: member_has_active_reservation | car_already_held | bay_already_held
    detail: str


def holds_car(rental: Rental, now: datetime, policy: RentalPolicy) -> bool:
    """Whether ``rental`` still holds its car at ``now`` (reserved and not lapsed, or badged and not released)."""
    if rental.state is State.RESERVED:
        return rental.car_hold is not None and now < rental.car_hold.expires_at
    if rental.state is State.BADGED:
        return rental.badged_at is not None and now < rental.badged_at + policy.release_after
    return False


def check_car_reservation(member_id: str, car_id: str, active: Iterable[Rental], now: datetime,
                          policy: RentalPolicy) -> Refusal | None:
    """May ``member_id`` reserve ``car_id`` now? At most one active car reservation per member, and
    never two on one car. ``active`` is whatever the store found; lapsed holds are ignored here."""
    for r in active:
        if not holds_car(r, now, policy):
            continue
        if r.member_id == member_id:
            return Refusal("member_has_active_reservation", f"member {member_id} already holds car {r.car_id}")
        if r.car_id == car_id:
            return Refusal("car_already_held", f"car {car_id} is held by another member")
    return None


def check_bay_reservation(dock: Dock, active: Iterable[Rental], now: datetime) -> Refusal | None:
    """Never two live reservations on one bay."""
    for r in active:
        if r.state not in TERMINAL and r.bay_hold is not None and r.bay_hold.dock == dock \
                and now < r.bay_hold.expires_at:
            return Refusal("bay_already_held", f"bay {dock.charge_point_id}/{dock.connector_id} is reserved")
    return None


# --- departures ------------------------------------------------------------------------------

def departure(car_id: str, dock: Dock, at: datetime, rental: Rental | None) -> UnauthorisedDeparture | None:
    """A car left ``dock``: None when ``rental`` (the car's current one, if any) authorised it, else the
    unauthorised-departure outcome. A RESERVED rental gets the same outcome from :func:`apply`. Ask
    :func:`late_departure_claimant` first: a released rental may claim a departure reported late."""
    if rental is not None and rental.car_id == car_id and rental.state is State.BADGED:
        return None
    return UnauthorisedDeparture(car_id, dock, at, rental.rental_id if rental is not None else None)


# --- energy driven ---------------------------------------------------------------------------

#: How far apart the clocks of cars (telematics), charge points and voltlib may be: a reading this
#: much after the return still counts as taken at the return.
CLOCK_SLACK: Final = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Driven:
    """Energy a rental's car used on the road, or None and why it cannot be told."""

    kwh: float | None
    reason: str | None = None


def driven_energy(r: Rental, usable_wh: float | None) -> Driven:
    """``(SoC at departure − SoC at return) × usable energy`` of the car's model (``usable_wh``, None
    when the model is unknown). Only a return estimate taken after the car left and before it had
    charged at the return bay (give or take :data:`CLOCK_SLACK`) says anything about the trip; the
    departure estimate must predate the trip likewise. Never guesses: a missing or unusable
    estimate gives None with the reason."""
    out, back = r.departure_soc, r.return_soc
    if r.started_at is None:
        return Driven(None, "the car never left")
    if r.returned_at is None:
        return Driven(None, "the car has not been returned")
    if out is None:
        return Driven(None, "no state-of-charge estimate when the car left")
    if out.at > r.started_at + CLOCK_SLACK:
        return Driven(None, "the estimate at departure was taken during the trip")
    if back is None:
        return Driven(None, "no state-of-charge estimate when the car was returned")
    if back.at <= r.started_at:
        return Driven(None, "no state-of-charge reading since the car left")
    if back.at > r.returned_at + CLOCK_SLACK:
        return Driven(None, "the estimate at return was taken after the car had started charging")
    if usable_wh is None:
        return Driven(None, "unknown vehicle model")
    used = out.percent - back.percent
    if used < 0:
        return Driven(None, f"state of charge rose during the trip ({out.percent:g} % -> {back.percent:g} %)")
    return Driven(round(used / 100.0 * usable_wh / 1000.0, 3))


def needs_return_reading(r: Rental) -> bool:
    """Returned into a charging session with no usable estimate of the car as it came back: the
    session's first state-of-charge reading may stand in for one (energy accounting)."""
    if r.started_at is None or r.returned_at is None or r.return_transaction_id is None or r.return_dock is None:
        return False
    return r.return_soc is None or r.return_soc.at <= r.started_at


def late_departure_claimant(dock: Dock, at: datetime, ended: Iterable[Rental],
                            policy: RentalPolicy) -> Rental | None:
    """The RELEASED rental a departure from ``dock`` stamped ``at`` belongs to, if any.

    ``ended`` is the car's rentals that hold nothing any more, newest first. The first RELEASED one
    that started from ``dock`` and whose badge window contains ``at`` claims the departure. Rentals
    that never moved the car (cancelled, expired, preempted, released outside the window) are skipped;
    a rental that started contradicts any older claim (the car has left and come back since), so the
    scan stops there and the departure stays unauthorised."""
    for r in ended:
        if r.started_at is not None:
            return None
        if r.state is State.RELEASED and r.origin == dock and in_badge_window(r, at, policy):
            return r
    return None


def yields_to_departure(hold: Rental, departed_at: datetime) -> bool:
    """Whether a live rental standing in a late departure's way (a hold on the car taken since, or
    the claiming member's hold on another car) gives way to it (:class:`Preempted`). A reservation
    does; a badge does if it came after the departure. A badge at or before it, or a running rental,
    contradicts the claim: the departure is then handled as if it were on time."""
    if hold.state is State.RESERVED:
        return True
    return hold.state is State.BADGED and hold.badged_at is not None and hold.badged_at > departed_at


# --- documentation ---------------------------------------------------------------------------

def transitions_markdown() -> str:
    """``TRANSITIONS`` as a Markdown table: one row per state, one column per event kind."""
    kinds = [t.kind for t in EVENT_TYPES]
    rows = ["| state | " + " | ".join(f"`{k}`" for k in kinds) + " |",
            "|---|" + "---|" * len(kinds)]
    for state in State:
        cells = [target.value if (target := TRANSITIONS.get((state, k))) else "—" for k in kinds]
        rows.append(f"| **{state.value}** | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
