"""The cars' charging needs and chosen schedules (2.0.1 NotifyEVChargingNeeds and
NotifyEVChargingSchedule; tables ``ev_charging_needs``, ``ev_charging_schedules``), and what the
planner reads of them. Writer-thread operations take a Connection, as :mod:`voltlib.store.repo`'s."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, desc, func, insert, select

from voltlib.domain.ev_needs import CarNeeds
from voltlib.store.tables import commands, ev_charging_needs, ev_charging_schedules, transactions, vehicles


@dataclass(frozen=True, slots=True)
class OpenSession:
    """The session open on an EVSE as voltlib knows it when a car's report arrives."""

    transaction_id: int
    station_tx_id: str | None
    token_known: bool
    soc_percent: float | None  # the car's stored estimate (the car whose token started it, else the docked one)


def open_session(conn: Connection, cp_id: str, evse_id: int) -> OpenSession | None:
    row = conn.execute(select(transactions.c.id, transactions.c.station_tx_id, transactions.c.id_tag)
                       .where(and_(transactions.c.charge_point_id == cp_id, transactions.c.connector_id == evse_id,
                                   transactions.c.stopped_at.is_(None)))
                       .order_by(desc(transactions.c.started_at)).limit(1)).first()
    if row is None:
        return None
    soc = None
    if row.id_tag:
        soc = conn.execute(select(vehicles.c.soc_percent).where(vehicles.c.id_tag == row.id_tag)).scalar()
    if soc is None:
        soc = conn.execute(select(vehicles.c.soc_percent).where(and_(
            vehicles.c.charge_point_id == cp_id, vehicles.c.connector_id == evse_id,
            vehicles.c.status == "docked"))).scalar()
    return OpenSession(int(row.id), row.station_tx_id, bool(row.id_tag), None if soc is None else float(soc))


Decide = Callable[[OpenSession | None], tuple[str, str | None, float | None]]


def record_needs(conn: Connection, *, cp_id: str, evse_id: int, row: dict[str, Any], decide: Decide,
                 now: datetime) -> tuple[str, str | None, OpenSession | None]:
    """Store a car's report with the answer ``decide`` gives for the session open on its EVSE (status,
    reasonCode, the SoC its energy counts from), in one transaction: committed before it is answered."""
    session = open_session(conn, cp_id, evse_id)
    status, reason, soc_at_receipt = decide(session)
    conn.execute(insert(ev_charging_needs).values(
        charge_point_id=cp_id, evse_id=evse_id, transaction_id=None if session is None else session.transaction_id,
        status=status, reason=reason, soc_at_receipt=soc_at_receipt, received_at=now, **row))
    return status, reason, session


def record_schedule(conn: Connection, *, cp_id: str, evse_id: int, time_base: datetime, schedule: dict[str, Any],
                    max_w: float, decide: Callable[[OpenSession | None, Any], tuple[str, str | None, float | None]],
                    now: datetime) -> tuple[str, str | None, OpenSession | None]:
    """Store the schedule a car chose with the answer ``decide`` gives from the session and voltlib's
    last accepted TxProfile for it."""
    session = open_session(conn, cp_id, evse_id)
    profile = None if session is None else last_tx_profile(conn, cp_id, evse_id, session.station_tx_id)
    status, reason, limit_w = decide(session, profile)
    conn.execute(insert(ev_charging_schedules).values(
        charge_point_id=cp_id, evse_id=evse_id, transaction_id=None if session is None else session.transaction_id,
        time_base=time_base, schedule=schedule, max_w=max_w, limit_w=limit_w, status=status, reason=reason,
        received_at=now))
    return status, reason, session


PROFILES_LOOKED_AT = 20  # the charge point's latest SetChargingProfile commands searched for the session's


def last_tx_profile(conn: Connection, cp_id: str, evse_id: int, station_tx_id: str | None) -> dict[str, Any] | None:
    """The chargingProfile of the latest TxProfile sent for this session that the station did not
    refuse: accepted, or with its answer still in flight (the car's schedule can overtake it, since a
    station relays the car's choice as soon as it has applied the profile)."""
    rows = conn.execute(select(commands.c.request, commands.c.response, commands.c.state)
                        .where(and_(commands.c.charge_point_id == cp_id, commands.c.action == "SetChargingProfile",
                                    commands.c.state.in_(("queued", "answered"))))
                        .order_by(desc(commands.c.id)).limit(PROFILES_LOOKED_AT)).all()
    for request, response, state in rows:
        profile = (request or {}).get("chargingProfile") or {}
        accepted = state == "queued" or (response or {}).get("status") == "Accepted"
        if (accepted and (request or {}).get("evseId") == evse_id
                and profile.get("chargingProfilePurpose") == "TxProfile"
                and profile.get("transactionId") == station_tx_id):
            found: dict[str, Any] = profile
            return found
    return None


def latest_needs(conn: Connection, transaction_ids: Iterable[int]) -> dict[int, CarNeeds]:
    """The latest report the planner may use of each of these sessions (Accepted or Processing)."""
    ids = sorted(set(transaction_ids))
    if not ids:
        return {}
    t = ev_charging_needs
    latest = (select(func.max(t.c.id)).where(and_(t.c.transaction_id.in_(ids), t.c.status != "Rejected"))
              .group_by(t.c.transaction_id))
    out: dict[int, CarNeeds] = {}
    for r in conn.execute(select(t).where(t.c.id.in_(latest.scalar_subquery()))):
        out[int(r.transaction_id)] = CarNeeds(
            received_at=r.received_at, dc=r.energy_transfer == "DC", phases=_phases(r.energy_transfer),
            energy_wh=None if r.energy_wh is None else float(r.energy_wh), departure=r.departure_at,
            max_power_w=r.max_power_w,
            soc_at_receipt=None if r.soc_at_receipt is None else r.soc_at_receipt / 100.0)
    return out


def _phases(transfer: str) -> int:
    return {"AC_single_phase": 1, "AC_two_phase": 2, "AC_three_phase": 3}.get(transfer, 0)
