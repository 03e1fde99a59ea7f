"""Rentals driven by what charge points report and what members ask for.

Each change is one database operation (run by the store's writer thread, so it is atomic and
serialised with every other write) that loads the rental, applies domain events
(:func:`voltlib.domain.rental.apply`), saves it and stores any invoice; the effects the domain asks for
(ReserveNow, CancelReservation, alerts) are carried out once that is committed. Event ids derive
from the OCPP messages (``tx:<transaction id>``, ``badge:<cp>:<tag>:<time>``), so a replayed message
never applies twice and never bills twice.

The operations run with ``Store.write(concurrent=True)``: on PostgreSQL several writer threads run
them at once, so every rental and vehicle row an operation reads in order to change it is read
``FOR UPDATE`` (``lock=True``), and the UNIQUE live-rental columns refuse a second live rental of a
car, member or bay. The hot statements are few (member and badges in one query, the live rentals
an operation needs in one query) and prebuilt (:mod:`voltlib.sharing.store`). On PostgreSQL some are
merged into one statement (``WITH``); rentals are always read in a later statement than the one
that locks their cars, since a statement that waited for a lock sees only that row as it is now.

Badges (Authorize) are decided here before the id-tag table (``Services.authorizer``); the unplug
(StatusNotification Available where a car was docked) and the return (StartTransaction with a car's
id token) arrive as bus events after the gateway has committed and answered them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from voltlib import events as ev
from voltlib.clock import period
from voltlib.domain import rental as dr
from voltlib.domain.clock_policy import ClockPolicy, judge
from voltlib.domain.idtags import Decision
from voltlib.gateway.gateway import Gateway
from voltlib.gateway.handlers_v16 import policy_of
from voltlib.sharing import contracts, crews, local_lists, recovery, reservation_rows
from voltlib.sharing import store as ss
from voltlib.sharing.displays import Displays
from voltlib.sharing.effects import carry_out
from voltlib.sharing.eligibility import TRIP_MARGIN, car_range_km, is_rentable, soc_snapshot, standing
from voltlib.store import repo, reservations

log = logging.getLogger(__name__)
T = TypeVar("T")
TIMER_MIN_WALL = 0.5  # wall seconds between rental timer ticks at least, however fast the clock runs
LANES = 64  # car-sharing events handled at once (each charge point's in order)


class SharingError(Exception):
    """A refused request: HTTP ``status``, machine-readable ``code``, human ``detail``."""

    def __init__(self, status: int, code: str, detail: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra or {}


@dataclass
class Change:
    """What one operation did: the rental after it, effects to carry out, events to publish."""

    rental: dr.Rental | None = None
    effects: list[dr.Effect] = field(default_factory=list)
    events: list[ev.Event] = field(default_factory=list)
    decision: Decision | None = None


def _city(conn: Connection, code: str) -> ss.CityRecord:
    """A rental's or member's city: its row exists (a foreign key or the seed put it there)."""
    city = ss.get_city(conn, code)
    if city is None:
        raise SharingError(500, "unknown_city", f"city {code!r} is missing; this is our fault")
    return city


def _members_rental(conn: Connection, change: Change, member_id: str, now: datetime, status: int, code: str,
                    detail: str) -> tuple[dr.Rental, ss.CityRecord]:
    """The member's live rental (lapsed holds expired first) and its city, or a refusal."""
    found = _expire_lapsed(conn, change, ss.live_rental_of_member(conn, member_id, lock=True), now)
    if found is None:
        raise SharingError(status, code, detail)
    return found[0], _city(conn, found[1])


def _apply(conn: Connection, change: Change, rental: dr.Rental, event: dr.RentalEvent, policy: dr.RentalPolicy,
           now: datetime, bills: list[ss.Invoice] | None = None) -> dr.Rental:
    """``bills``: invoices are added there, for the caller to store with the rental
    (``ss.save_rental(invoices=...)``), instead of being stored now."""
    updated, effects = dr.apply(rental, event, policy)
    reservation_rows.record(conn, rental, updated, event, effects, now)  # the holds' rows, with the rental
    for effect in effects:
        if isinstance(effect, dr.ChargeMember):
            bill = (effect.member_id, effect.rental_id, effect.breakdown, now)
            if bills is None:
                ss.invoice_rental(conn, *bill)
            else:
                bills.append(bill)
    change.effects.extend(effects)
    if updated.state is not rental.state:
        change.events.append(ev.RentalChanged(charge_point_id=updated.origin.charge_point_id, at=now,
                                              rental_id=updated.rental_id, member_id=updated.member_id,
                                              car_id=updated.car_id, state=updated.state.value))
    change.rental = updated
    return updated


def _expire_lapsed(conn: Connection, change: Change, found: tuple[dr.Rental, str] | None,
                   now: datetime) -> tuple[dr.Rental, str] | None:
    """Fire the due timers of a live rental first, so a lapsed hold never blocks anyone."""
    if found is None:
        return None
    rental, city_code = found
    city = _city(conn, city_code)
    due = dr.due_events(rental, now, city.policy)
    for event in due:
        rental = _apply(conn, change, rental, event, city.policy, now)
    if due:
        ss.save_rental(conn, rental, now)
    return None if rental.state in dr.TERMINAL else (rental, city_code)


def _new_rental(member: dict[str, Any], badge: str, car: dict[str, Any], city: ss.CityRecord) -> dr.Rental:
    plan = city.plans.get(member["plan_code"])
    if plan is None:
        raise SharingError(409, "unknown_plan", f"plan {member['plan_code']!r} is not offered in {city.code}")
    return dr.Rental(rental_id=f"r-{secrets.token_hex(8)}", member_id=member["id"], member_id_tag=badge,
                     car_id=car["id"], car_id_tag=car["id_tag"],
                     origin=dr.Dock(car["charge_point_id"], car["connector_id"]), plan=plan)


def _first_badge(member: dict[str, Any]) -> str:
    accepted = [b["id_tag"] for b in member["badges"] if b["status"] == "Accepted"]
    if not accepted:
        raise SharingError(409, "no_badge", "the member has no usable badge")
    return str(accepted[0])


# --- operations (run in the store's writer thread) --------------------------------------------

def badge_op(conn: Connection, cp_id: str, id_tag: str, now: datetime, proven: bool = False) -> Change:
    """A badge (or a member's Plug & Charge contract) at a charge point. ``proven``: the token came
    with a contract certificate voltlib checked (2.0.1 Authorize, C07); a contract opens a car only so."""
    change = Change()
    found, cars, mine, by_car = ss.badge_lookup(conn, id_tag, cp_id, lock=True)
    if found is None:  # a crew's badge opens its task's car; any other: the id-tag table decides
        change.decision = crews.crew_badge(conn, cp_id, id_tag, now)
        return change
    member, badge_status = found
    contract = member.pop("badge_kind", ss.BADGE) == ss.CONTRACT

    def refuse(status: str, reason: str, car_id: str | None = None) -> Change:
        change.decision = Decision(status)
        change.events.append(ev.BadgeDecided(charge_point_id=cp_id, at=now, id_tag=id_tag, member_id=member["id"],
                                             car_id=car_id, status=status, reason=reason))
        if contract:
            contracts.audit_decision(conn, member["id"], cp_id, id_tag, now, refused=reason, car_id=car_id)
        return change

    if contract and not proven:  # an eMAID typed on a card, or sent without its certificate
        return refuse("Invalid", "contract_not_proven")
    if badge_status != "Accepted":
        return refuse(badge_status, f"badge_{badge_status.lower()}")
    reason = standing(member, now)
    if reason is not None:
        return refuse("Blocked", reason)
    city = _city(conn, member["city"])
    live = _expire_lapsed(conn, change, mine, now)
    badged = dr.Badged(f"badge:{cp_id}:{id_tag}:{now.isoformat()}", now)
    if live is not None:
        rental = live[0]
        if rental.state not in (dr.State.RESERVED, dr.State.BADGED) or rental.origin.charge_point_id != cp_id:
            return refuse("ConcurrentTx", "member_has_active_rental", rental.car_id)
        rental = _apply(conn, change, rental, badged, city.policy, now)
        ss.save_rental(conn, rental, now)
    else:
        if not cars:
            return refuse("Invalid", "no_car_here")
        free = [c for c in cars if _expire_lapsed(conn, change, _other(by_car.get(c["id"]), mine), now) is None]
        if not free:
            return refuse("Invalid", "car_reserved", cars[0]["id"])
        rentable = [c for c in free if is_rentable(c, city)]
        if not rentable:
            return refuse("Invalid", "low_range", free[0]["id"])
        rental = _apply(conn, change, _new_rental(member, id_tag, rentable[0], city), badged, city.policy, now)
        ss.insert_rental(conn, rental, member["city"], now)  # IntegrityError: someone else won the car
    if contract:
        contracts.audit_decision(conn, member["id"], cp_id, id_tag, now, rental_id=rental.rental_id,
                                 car_id=rental.car_id)
    change.decision = Decision("Accepted")
    change.events.append(ev.BadgeDecided(charge_point_id=cp_id, at=now, id_tag=id_tag, member_id=member["id"],
                                         car_id=rental.car_id, status="Accepted", reason=None))
    return change


def _other(found: tuple[dr.Rental, str] | None,
           mine: tuple[dr.Rental, str] | None) -> tuple[dr.Rental, str] | None:
    """``found``, unless it is the member's own rental, already handled (its timers fired) as ``mine``."""
    if found is not None and mine is not None and found[0].rental_id == mine[0].rental_id:
        return None
    return found


def unplug_op(conn: Connection, cp_id: str, connector_id: int, at: datetime, now: datetime) -> Change:
    """The connector of a bay became Available at ``at`` (the charge point's own time): any car docked
    there has left it. A departure reported after its badge's release timer fired, but stamped inside
    the badge window, still starts that rental (:func:`_late_departure`)."""
    change = Change()
    cars, by_car = ss.cars_at_with_rentals(conn, cp_id, connector_id, lock=True)
    for car in cars:
        live = by_car.get(car["id"])
        dock = dr.Dock(cp_id, connector_id)
        if _late_departure(conn, change, car, dock, at, live, now):
            authorised = True
        elif live is not None and live[0].state in (dr.State.BADGED, dr.State.RESERVED):
            rental, city_code = live
            city = _city(conn, city_code)
            unplugged = dr.CarUnplugged(f"unplug:{cp_id}:{connector_id}:{at.isoformat()}", at, soc_snapshot(car))
            rental = _apply(conn, change, rental, unplugged, city.policy, now)
            left = "rented" if rental.state is dr.State.STARTED else "missing"
            ss.save_rental(conn, rental, now, move=(car["id"], left, None))  # one statement on PostgreSQL
            continue
        else:
            outcome = dr.departure(car["id"], dock, at, live[0] if live else None)
            if outcome is not None and live is None and crews.crew_departure(conn, car["id"], cp_id, at, now):
                ss.move_vehicle(conn, car["id"], status=crews.RELOCATING, dock=None)  # a crew's work, no alert
                continue
            if outcome is not None:
                change.effects.append(outcome)
            authorised = outcome is None
        ss.move_vehicle(conn, car["id"], status="rented" if authorised else "missing", dock=None)
    return change


def _late_departure(conn: Connection, change: Change, car: dict[str, Any], dock: dr.Dock, at: datetime,
                    live: tuple[dr.Rental, str] | None, now: datetime) -> bool:
    """Start the car's RELEASED rental whose badge window holds ``at``, if there is one and nothing
    contradicts it; holds taken since on the car, or by that member, are preempted first (their
    charge points get CancelReservation). False: the departure is handled as an on-time one."""
    if live is not None and live[0].state is dr.State.BADGED and not dr.yields_to_departure(live[0], at):
        return False  # the car's current badge came before the departure: it is that rental's
    city = _city(conn, car["city"])
    claimant = dr.late_departure_claimant(dock, at, ss.ended_rentals_of_car(conn, car["id"]), city.policy)
    if claimant is None:
        return False
    in_the_way = {r.rental_id: r for r, _ in filter(None, [live, ss.live_rental_of_member(conn, claimant.member_id)])}
    if not all(dr.yields_to_departure(r, at) for r in in_the_way.values()):
        return False  # e.g. the member is out with another car: a contradiction, left to the alert
    for hold in in_the_way.values():  # saved first: they free the car and the member for the claimant
        event = dr.Preempted(f"preempted:{hold.rental_id}:{claimant.rental_id}", now, claimant.rental_id, at)
        ss.save_rental(conn, _apply(conn, change, hold, event, city.policy, now), now)
    started = _apply(conn, change, claimant, dr.CarUnplugged(f"unplug:{dock.charge_point_id}:{dock.connector_id}:"
                                                              f"{at.isoformat()}", at), city.policy, now)
    ss.save_rental(conn, started, now)
    log.info("late departure of car %s at %s starts released rental %s", car["id"], at, started.rental_id,
             extra={"rental_id": started.rental_id})
    return True


def return_op(conn: Connection, cp_id: str, connector_id: int, id_tag: str, transaction_id: int,
              started_at: datetime, now: datetime, clock: ClockPolicy | None = None) -> Change:
    """StartTransaction with a car's id token: the car is docked there; a running rental ends and is billed.
    ``clock``: how the gateway judges stamps, for a departure applied first (:func:`_departure_first`)."""
    change = Change()
    _departure_first(conn, change, id_tag, cp_id, connector_id, now, clock or ClockPolicy())
    car, live, held = ss.dock_returned_car(conn, id_tag, cp_id, connector_id, lock=True)
    if car is None:
        return change
    car_id = str(car["id"])
    if live is not None and live[0].state in (dr.State.STARTED, dr.State.OVERDUE):
        rental, city_code = live
        city = _city(conn, city_code)
        returned = dr.CarReturned(f"tx:{transaction_id}", started_at, dr.Dock(cp_id, connector_id), id_tag,
                                  transaction_id, soc_snapshot(car))
        bills: list[ss.Invoice] = []
        rental = _apply(conn, change, rental, returned, city.policy, now, bills)
        rental = _apply(conn, change, rental, dr.Close(f"close:{rental.rental_id}", now), city.policy, now, bills)
        ss.save_rental(conn, rental, now, invoices=bills)  # the invoice and the rental: one statement on PostgreSQL
    elif live is None:
        crews.crew_arrival(conn, car, cp_id, connector_id, now)  # a crew's move: audited, not billed
    _displace_bay_hold(conn, change, dr.Dock(cp_id, connector_id), car_id, now, held)
    return change


def _departure_first(conn: Connection, change: Change, id_tag: str, cp_id: str, connector_id: int, now: datetime,
                     clock: ClockPolicy) -> None:
    """A car plugged in here while car sharing still has it docked at another bay left that bay first
    (:func:`recovery.left_dock`: its node died between answering the departure and applying it, and the
    charge point's own node applies this return). Applied now, as the start-up reconciliation would have:
    at the stamp that bay reported; with nothing stored there (lost with its node before the commit; the
    status the bay reports again on reconnecting comes after this return), a rental badged there starts
    at its badge, the earliest the car can have left."""
    left = recovery.left_dock(conn, id_tag, cp_id, connector_id, now - recovery.RECONCILE_WINDOW)
    if left is None:
        return
    if left.departure is not None:
        at = judge(left.departure.stamp, left.departure.received_at, clock).at
    else:
        cars, by_car = ss.cars_at_with_rentals(conn, left.charge_point_id, left.connector_id, lock=True)
        live = next((by_car.get(c["id"]) for c in cars if c["id_tag"] == id_tag), None)
        if live is None or live[0].state is not dr.State.BADGED or live[0].badged_at is None:
            return
        at = live[0].badged_at
    found = unplug_op(conn, left.charge_point_id, left.connector_id, at, now)
    change.effects.extend(found.effects)
    change.events.extend(found.events)
    log.warning("car %s returned at %s/%s left %s/%s unapplied: departure applied first at %s", id_tag, cp_id,
                connector_id, left.charge_point_id, left.connector_id, at.isoformat())


def _displace_bay_hold(conn: Connection, change: Change, dock: dr.Dock, car_id: str, now: datetime,
                       held: tuple[dr.Rental, str] | None) -> None:
    """A car was plugged into a bay another member holds: the car stays (it is physically there);
    the other member's hold moves to a free bay of the same station, or, if there is none, ends
    early (BayHoldLost) — their rental then shows no bay, and the station list shows where there is
    space. Either way they get a RentalChanged event. ``held``: the live rental that held the bay
    when the car came back (read with the car's own rental, which is skipped here)."""
    if held is None:
        return
    other, city_code = held
    hold = other.bay_hold
    if other.car_id == car_id or hold is None:
        return
    city = _city(conn, city_code)
    keep = change.rental
    station_id = ss.station_of_dock(conn, dock.charge_point_id, dock.connector_id)
    free = [b for b in ss.station_bays(conn, station_id or "") if b["car_id"] is None
            and (b["charge_point_id"], b["connector_id"]) != (dock.charge_point_id, dock.connector_id)
            and not ss.bay_is_held(conn, b["charge_point_id"], b["connector_id"], now)]
    event: dr.RentalEvent
    if free:
        event = dr.ReserveBay(f"bay-moved:{other.rental_id}:{now.isoformat()}", now,
                              reservations.new_id(conn),
                              dr.Dock(free[0]["charge_point_id"], free[0]["connector_id"]))
    else:
        event = dr.BayHoldLost(f"bay-lost:{other.rental_id}:{now.isoformat()}", now, hold.reservation_id)
    moved = _apply(conn, change, other, event, city.policy, now)
    ss.save_rental(conn, moved, now)
    change.events.append(ev.RentalChanged(charge_point_id=dock.charge_point_id, at=now, rental_id=moved.rental_id,
                                          member_id=moved.member_id, car_id=moved.car_id, state=moved.state.value))
    change.rental = keep


def reserve_car_op(conn: Connection, member_id: str, car_id: str | None, station_id: str | None,
                   now: datetime, trip_km: float | None = None) -> Change:
    """``trip_km``: the member's planned trip; the car must have ``TRIP_MARGIN`` × that range (and
    at least the city's minimum). Of the cars that can, the one with the least range is taken, so
    the fullest stay for the longest trips."""
    change = Change()
    if car_id:
        found, car, mine, by_car = ss.reservation_lookup(conn, member_id, car_id, lock=True)
        member = _in_standing(found, member_id, now)
        candidates = [car]
    else:
        member = _member_in_standing(conn, member_id, now)
        candidates = list(ss.vehicles_at_station(conn, station_id or "", lock=True))
    city = _city(conn, member["city"])
    usable = [c for c in candidates if c is not None and c["city"] == member["city"]]
    if not car_id:
        mine, by_car = ss.live_rentals_of(conn, member_id, [c["id"] for c in usable], lock=True)
    if _expire_lapsed(conn, change, mine, now) is not None:
        raise SharingError(409, "member_has_active_reservation", "a member holds one car at a time")
    if not usable:
        raise SharingError(404, "no_car", "no such car" if car_id else "no car docked at this station")
    free = [c for c in usable if _expire_lapsed(conn, change, _other(by_car.get(c["id"]), mine), now) is None]
    if not free:
        raise SharingError(409, "car_already_held", "the car is reserved or rented by someone else")
    needed_km = max(float(city.min_range_km), (trip_km or 0.0) * TRIP_MARGIN)
    rentable = sorted((c for c in free if is_rentable(c, city, needed_km)), key=lambda c: car_range_km(c) or 0.0)
    if not rentable:
        best = max((car_range_km(c) or 0.0 for c in free), default=0.0)
        raise SharingError(409, "low_range", "not enough range for this trip" if trip_km else
                           "not enough range: the car is flagged for charging",
                           {"range_km": round(best, 1), "min_range_km": city.min_range_km,
                            "needed_km": round(needed_km, 1)})
    rental = _new_rental(member, _first_badge(member), rentable[0], city)
    event = dr.ReserveCar(f"reserve:{rental.rental_id}", now, reservations.new_id(conn))
    rental = _apply(conn, change, rental, event, city.policy, now)
    ss.insert_rental(conn, rental, member["city"], now)  # IntegrityError: someone else won the car
    return change


def reserve_bay_op(conn: Connection, member_id: str, station_id: str, now: datetime) -> Change:
    change = Change()
    rental, city = _members_rental(conn, change, member_id, now, 409, "no_active_rental",
                                   "reserve a car (or start a rental) before a parking bay")
    free = [b for b in ss.station_bays(conn, station_id)
            if b["car_id"] is None and not ss.bay_is_held(conn, b["charge_point_id"], b["connector_id"], now)]
    if not free:
        raise SharingError(409, "station_full", f"no free bay at {station_id}",
                           {"suggestion": nearest_with_space(conn, station_id)})
    dock = dr.Dock(free[0]["charge_point_id"], free[0]["connector_id"])
    event = dr.ReserveBay(f"bay:{rental.rental_id}:{now.isoformat()}", now,
                          reservations.new_id(conn), dock)
    rental = _apply(conn, change, rental, event, city.policy, now)
    ss.save_rental(conn, rental, now)  # IntegrityError: someone else won the bay
    return change


def nearest_with_space(conn: Connection, station_id: str) -> dict[str, Any] | None:
    everything = ss.station_availability(conn)
    origin = next((s for s in everything if s["id"] == station_id), None)
    if origin is None:
        return None
    others = [s for s in everything if s["id"] != station_id and s["free_bays"] > 0 and s["status"] == "operational"
              and s["city"] == origin["city"]]
    if not others:
        return None
    best = min(others, key=lambda s: ss.distance_m(origin["latitude"], origin["longitude"],
                                                    s["latitude"], s["longitude"]))
    return {"station_id": best["id"], "name": best["name"], "free_bays": best["free_bays"],
            "distance_m": round(ss.distance_m(origin["latitude"], origin["longitude"],
                                              best["latitude"], best["longitude"]))}


def cancel_op(conn: Connection, member_id: str, now: datetime) -> Change:
    change = Change()
    rental, city = _members_rental(conn, change, member_id, now, 404, "no_reservation", "nothing to cancel")
    rental = _event(conn, change, rental, dr.CancelReservation(f"cancel:{rental.rental_id}", now), city, now)
    ss.save_rental(conn, rental, now)
    return change


def force_end_op(conn: Connection, rental_id: str, operator: str, reason: str, bill: bool, now: datetime) -> Change:
    change = Change()
    found = ss.load_rental(conn, rental_id, lock=True)
    if found is None:
        raise SharingError(404, "unknown_rental", f"no rental {rental_id}")
    rental, city_code = found
    city = _city(conn, city_code)
    event = dr.ForceEnd(f"force-end:{rental_id}", now, operator, reason, bill)
    rental = _event(conn, change, rental, event, city, now)
    ss.save_rental(conn, rental, now)
    return change


def timers_op(conn: Connection, now: datetime) -> Change:
    change = Change()
    for rental, city_code in ss.live_rentals(conn, lock=True):
        _expire_lapsed(conn, change, (rental, city_code), now)
    return change


def reconcile_op(conn: Connection, now: datetime, clock: ClockPolicy | None = None) -> Change:
    """Apply the departures (:mod:`voltlib.sharing.recovery`, through ``unplug_op``), then the returns,
    the bus never delivered: committed and answered, but voltlib stopped before car sharing applied
    them. Run at start-up. Stamps are judged against their receipt time as the gateway did (``clock``)."""
    change = Change()
    clock = clock or ClockPolicy()
    for left in recovery.unapplied_departures(conn, now - recovery.RECONCILE_WINDOW):
        found = unplug_op(conn, left.charge_point_id, left.connector_id,
                          judge(left.stamp, left.received_at, clock).at, now)
        change.effects.extend(found.effects)
        change.events.extend(found.events)
    for rental, _ in ss.live_rentals(conn, lock=True):
        if rental.state not in (dr.State.STARTED, dr.State.OVERDUE) or rental.started_at is None:
            continue
        tx = contracts.first_return_since(conn, rental.car_id_tag, rental.member_id, rental.started_at)
        if tx is not None:
            returned = judge(tx["started_at"], tx["received_at"], clock).at
            found = return_op(conn, tx["charge_point_id"], tx["connector_id"], rental.car_id_tag, tx["id"],
                              returned, now, clock)
            change.effects.extend(found.effects)
            change.events.extend(found.events)
    return change


def _event(conn: Connection, change: Change, rental: dr.Rental, event: dr.RentalEvent, city: ss.CityRecord,
           now: datetime) -> dr.Rental:
    try:
        return _apply(conn, change, rental, event, city.policy, now)
    except dr.RentalTransitionError as exc:
        raise SharingError(409, "not_allowed_now", str(exc), {"state": rental.state.value}) from None


def _member_in_standing(conn: Connection, member_id: str, now: datetime) -> dict[str, Any]:
    return _in_standing(ss.get_member(conn, member_id), member_id, now)


def _in_standing(member: dict[str, Any] | None, member_id: str, now: datetime) -> dict[str, Any]:
    if member is None:
        raise SharingError(404, "unknown_member", f"no member {member_id}")
    reason = standing(member, now)
    if reason is not None:
        raise SharingError(403, reason, f"the member may not rent: {reason.replace('_', ' ')}")
    return member


# --- the service -----------------------------------------------------------------------------

class SharingService:
    def __init__(self, gateway: Gateway, *, timer_interval: float = 5.0) -> None:
        """``timer_interval``: simulated seconds between two passes over the rentals' timers."""
        self.gateway = gateway
        self.services = gateway.services
        self.timer_interval = timer_interval
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lanes: dict[str, asyncio.Task[None]] = {}  # per charge point: the last event in flight
        self._in_flight = asyncio.Semaphore(LANES)
        self.local_lists = local_lists.LocalLists(gateway)
        self.displays = Displays(gateway)  # a 2.0.1 station's screen (sharing/displays.py)

    def install(self) -> None:
        self.services.authorizer = self
        self.local_lists.install()
        self.displays.install()
        # node scope: a badge, an unplug or a return is handled by the node holding that charge point,
        # from its event and the database alone (a rental's other end may be on another node)
        self.services.bus.subscribe(self._dispatch, ev.ConnectorStatusChanged, ev.TransactionStarted, name="sharing",
                                    scope="node")

    async def _dispatch(self, event: ev.Event) -> None:
        """Each charge point's events are handled in order, different charge points' side by side (up
        to ``LANES`` at once): their writes then share group commits instead of each waiting for the
        previous one's, which at Paris peaks left thousands of events queued for a minute."""
        if isinstance(event, ev.ConnectorStatusChanged) and not _bay_freed(event):
            return  # nothing to do for car sharing: no need to wait for a lane
        await self._in_flight.acquire()  # back-pressure on the bus queue when LANES are busy
        cp_id = event.charge_point_id
        task = asyncio.get_running_loop().create_task(self._in_lane(self._lanes.get(cp_id), event))
        self._lanes[cp_id] = task
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._in_flight.release()
            if self._lanes.get(cp_id) is finished:
                del self._lanes[cp_id]

        task.add_done_callback(done)

    async def _in_lane(self, previous: asyncio.Task[None] | None, event: ev.Event) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        try:
            await self.on_event(event)
        except Exception:  # one event's failure must not stop its charge point's lane
            log.exception("car sharing could not handle %s from %s", type(event).__name__, event.charge_point_id)

    async def _run(self, op: Callable[[Connection], Change]) -> Change:
        try:
            change = await self.services.store.write(op, concurrent=True)
        except IntegrityError:
            raise SharingError(409, "already_taken", "another request took this car or bay first") from None
        for event in change.events:
            if isinstance(event, ev.RentalChanged):  # the operator's trail of a rental, by its id
                log.info("rental %s of car %s is %s", event.rental_id, event.car_id, event.state,
                         extra={"rental_id": event.rental_id, "charge_point_id": event.charge_point_id})
            await self.services.bus.publish(event)
        for effect in change.effects:
            self._spawn(carry_out(self, effect))
        return change

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for every event and effect in flight (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """At shutdown, before the store closes: effects still on their way are dropped (the database
        holds the truth; a reservation a charge point missed expires there on time anyway)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- from charge points --

    async def authorize(self, cp_id: str, id_tag: str, now: datetime, *, proven: bool = False) -> Decision | None:
        try:
            change = await self._run(partial(badge_op, cp_id=cp_id, id_tag=id_tag, now=now, proven=proven))
        except SharingError as exc:  # lost a race for the car
            log.info("badge %s at %s refused: %s", id_tag, cp_id, exc.code)
            return Decision("Invalid")
        return change.decision

    async def on_event(self, event: ev.Event) -> None:
        """Only messages about a car reach the single writer thread: a read (on the reader pool)
        first tells whether a car is docked there, or whether the id tag is a car's."""
        now = self.services.clock.now()
        store = self.services.store
        if isinstance(event, ev.ConnectorStatusChanged) and _bay_freed(event):
            if await store.read(partial(ss.vehicles_at, cp_id=event.charge_point_id,
                                        connector_id=event.connector_id)):
                await self._run(partial(unplug_op, cp_id=event.charge_point_id, connector_id=event.connector_id,
                                        at=event.at, now=now))
        elif isinstance(event, ev.TransactionStarted) and event.id_tag:
            car_tag = await store.read(partial(contracts.car_of_token, id_tag=event.id_tag))
            if car_tag is not None:
                await self._run(partial(return_op, cp_id=event.charge_point_id, connector_id=event.connector_id,
                                        id_tag=car_tag, transaction_id=event.transaction_id,
                                        started_at=event.started_at, now=now,
                                        clock=policy_of(self.services.settings)))

    # -- from members and operators --

    async def reserve_car(self, member_id: str, *, car_id: str | None = None,
                          station_id: str | None = None, trip_km: float | None = None) -> dr.Rental:
        change = await self._run(partial(reserve_car_op, member_id=member_id, car_id=car_id, station_id=station_id,
                                         now=self.services.clock.now(), trip_km=trip_km))
        assert change.rental is not None
        return change.rental

    async def reserve_bay(self, member_id: str, station_id: str) -> dr.Rental:
        change = await self._run(partial(reserve_bay_op, member_id=member_id, station_id=station_id,
                                         now=self.services.clock.now()))
        assert change.rental is not None
        return change.rental

    async def cancel(self, member_id: str) -> dr.Rental:
        change = await self._run(partial(cancel_op, member_id=member_id, now=self.services.clock.now()))
        assert change.rental is not None
        return change.rental

    async def force_end(self, rental_id: str, operator: str, reason: str, bill: bool) -> dr.Rental:
        change = await self._run(partial(force_end_op, rental_id=rental_id, operator=operator, reason=reason,
                                         bill=bill, now=self.services.clock.now()))
        assert change.rental is not None
        return change.rental

    async def tick(self) -> int:
        change = await self._run(partial(timers_op, now=self.services.clock.now()))
        return len(change.events)

    async def run_timers(self) -> None:
        try:
            change = await self._run(partial(reconcile_op, now=self.services.clock.now(),
                                             clock=policy_of(self.services.settings)))
            if change.events or change.effects:
                log.warning("reconciled %d rental changes (%d effects) from committed messages", len(change.events),
                            len(change.effects))
        except Exception:
            log.exception("rental reconciliation failed")
        clock = self.services.clock
        while True:  # simulated seconds: a 30-minute hold lapses after 30 minutes of voltlib's clock
            await clock.sleep(period(clock, self.timer_interval, TIMER_MIN_WALL))
            try:
                await self.tick()
            except Exception:  # a bad rental must not stop the timers of the others
                log.exception("rental timers failed")

    async def block_badge(self, id_tag: str, reason: str, by: str) -> dict[str, Any] | None:
        """A lost or stolen badge: Blocked in the id-tag table (so every online Authorize refuses it)
        and pushed to the local authorisation list of every connected charge point (so offline
        authorisation refuses it too). Charge points offline now get it when they are back
        (:mod:`voltlib.sharing.local_lists`)."""
        s = self.services
        now = s.clock.now()

        def op(conn: Connection) -> int | None:
            if ss.member_by_badge(conn, id_tag) is None:
                return None
            repo.upsert_id_tag(conn, id_tag, status="Blocked", expiry_date=None, parent_id_tag=None, now=now)
            version = local_lists.next_version(conn, now)
            local_lists.mark_pushed(conn, id_tag, version)
            repo.record_security_event(conn, kind="badge_blocked", severity="info", charge_point_id=None,
                                       source=by, detail={"id_tag": id_tag, "reason": reason}, now=now)
            return version

        version = await s.store.write(op)
        if version is None:
            return None
        pushed, connected = await self.local_lists.blocked(id_tag, version, by)
        return {"id_tag": id_tag, "status": "Blocked", "pushed_to": pushed, "connected": connected,
                "list_version": version}


def _bay_freed(event: ev.ConnectorStatusChanged) -> bool:
    """A connector (not the whole charge point) became Available: a car docked there may have left."""
    return event.status == "Available" and event.connector_id > 0
