"""OCPP 2.0.1 transactions on the tables of 1.6 (issue 16): one TransactionEvent, recorded once.

A 2.0.1 transaction is named by the station (``transactionId``, a string); voltlib gives it a row
of ``transactions`` under an integer id of its own, like a 1.6 one, and finds it again by
(charge point, ``station_tx_id``). Every event is kept once in ``transaction_events`` by
(transaction, seqNo): the same seqNo again is a retransmission or a replay and changes nothing.
A retransmission says what the stored event says; an event under a seen seqNo that says something
else (``EventOutcome.conflict``, :func:`readings_conflict`) is a forgery, for the security detectors.
See docs/architecture.md, "2.0.1 transactions".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from voltlib.domain import idtags, meter
from voltlib.store import repo, reservations
from voltlib.store.tables import meter_values, transaction_events, transactions

NO_TOKEN = ""  # id_tag and id_tag_status of a transaction whose idToken is not known yet
NO_EVSE = 0  # connector_id of a transaction whose EVSE is not known yet (E01.FR.16: a later event names it)


@dataclass(frozen=True, slots=True)
class TxEvent:
    """What voltlib keeps of one TransactionEvent (the handler reads it from the message)."""

    station_tx_id: str
    event_type: str  # Started | Updated | Ended
    seq_no: int
    stamped_at: datetime  # the station's timestamp, as sent (stored as 1.6 stores its stamps)
    trigger_reason: str
    offline: bool
    number_of_phases_used: int | None
    charging_state: str | None
    stopped_reason: str | None
    evse_id: int | None
    id_tag: str | None  # None: no idToken in this event
    id_token_type: str | None
    no_authorization: bool  # the token says the station authorizes nobody (type NoAuthorization)
    reservation_id: int | None
    register_wh: int | None  # the energy register this event reports, if any


@dataclass(frozen=True, slots=True)
class EventOutcome:
    transaction_id: int  # voltlib's
    connector_id: int
    id_tag: str
    id_tag_status: str
    started_at: datetime
    meter_start: int
    meter_stop: int | None
    reservation_id: int | None
    created: bool  # this event made the transaction known
    repeated: bool  # the same (transaction, seqNo) was recorded before: nothing changed
    announced: bool  # its idToken and EVSE are both known since this event: TransactionStarted is due
    stopped: bool  # ended by this event: TransactionStopped is due
    published: bool  # its start has been (or is now being) published: only then is its stop
    decision: idtags.Decision | None  # when the event carried an idToken
    gap: tuple[int, int] | None  # (the seqNo expected, the one received) when some are missing
    conflict: tuple[str, ...] = ()  # repeated: the fields in which it differs from the stored event


def _published(id_tag_status: str, connector_id: int) -> bool:
    """The domain hears of a transaction once its idToken and its EVSE are both known."""
    return id_tag_status != NO_TOKEN and connector_id != NO_EVSE


def record(conn: Connection, cp_id: str, e: TxEvent, now: datetime) -> EventOutcome:
    """Apply one TransactionEvent; idempotent by (transaction, seqNo)."""
    tx = transactions.c
    row = conn.execute(select(tx.id, tx.connector_id, tx.id_tag, tx.id_tag_status, tx.started_at, tx.meter_start,
                              tx.meter_stop, tx.stopped_at, tx.reservation_id)
                       .where(tx.charge_point_id == cp_id, tx.station_tx_id == e.station_tx_id)).first()
    own_tag = None if row is None else row.id_tag
    decision = None if e.id_tag is None else _decide(conn, e, own_tag, now)
    if row is None:
        return _create(conn, cp_id, e, decision, now)
    base = {"transaction_id": int(row.id), "connector_id": int(row.connector_id), "started_at": row.started_at,
            "reservation_id": row.reservation_id, "decision": decision, "created": False}
    seen = conn.execute(select(transaction_events).where(transaction_events.c.transaction_id == row.id,
                                                         transaction_events.c.seq_no == e.seq_no)).mappings().first()
    if seen is not None:
        return EventOutcome(id_tag=row.id_tag, id_tag_status=row.id_tag_status, meter_start=int(row.meter_start),
                            meter_stop=row.meter_stop, repeated=True, announced=False, stopped=False,
                            published=_published(row.id_tag_status, int(row.connector_id)), gap=None,
                            conflict=_differences(seen, e), **base)
    last = conn.execute(select(func.max(transaction_events.c.seq_no))
                        .where(transaction_events.c.transaction_id == row.id)).scalar()
    gap = (int(last) + 1, e.seq_no) if last is not None and e.seq_no > last + 1 else None
    _insert_event(conn, cp_id, int(row.id), e, now)
    values: dict[str, object] = {}
    id_tag, status, meter_start = row.id_tag, row.id_tag_status, int(row.meter_start)
    connector = int(row.connector_id)
    was_published = _published(status, connector)
    if connector == NO_EVSE and e.evse_id is not None:  # the EVSE named at last
        connector = e.evse_id
        values["connector_id"] = connector
        base["connector_id"] = connector
    if status == NO_TOKEN and e.id_tag is not None and decision is not None:
        id_tag, status = e.id_tag, decision.status
        values.update(id_tag=id_tag, id_tag_status=status, id_token_type=e.id_token_type)
    announced = not was_published and _published(status, connector)
    if announced and meter_start == 0 and e.register_wh is not None:  # no register at the start
        meter_start = e.register_wh
        values["meter_start"] = meter_start
    stopped = e.event_type == "Ended" and row.stopped_at is None
    meter_stop = row.meter_stop
    if stopped:
        meter_stop = e.register_wh if e.register_wh is not None else _last_register(conn, int(row.id), meter_start)
        values.update(stopped_at=e.stamped_at, meter_stop=meter_stop, stop_reason=e.stopped_reason,
                      stop_id_tag=e.id_tag)
    if row.reservation_id is None and e.reservation_id is not None:  # the reservation it ends, named later
        values["reservation_id"] = base["reservation_id"] = e.reservation_id
        reservations.used(conn, cp_id, e.reservation_id, int(row.id), now)
    if values:
        conn.execute(update(transactions).where(tx.id == row.id).values(**values))
    return EventOutcome(id_tag=id_tag, id_tag_status=status, meter_start=meter_start, meter_stop=meter_stop,
                        repeated=False, announced=announced, stopped=stopped,
                        published=_published(status, connector), gap=gap, **base)


def _create(conn: Connection, cp_id: str, e: TxEvent, decision: idtags.Decision | None,
            now: datetime) -> EventOutcome:
    connector = NO_EVSE if e.evse_id is None else e.evse_id
    id_tag = NO_TOKEN if e.id_tag is None else e.id_tag
    status = NO_TOKEN if decision is None else decision.status
    meter_start = e.register_wh or 0
    stopped = e.event_type == "Ended"
    meter_stop = meter_start if stopped and e.register_wh is None else e.register_wh if stopped else None
    row = {"charge_point_id": cp_id, "connector_id": connector, "id_tag": id_tag, "id_tag_status": status,
           "reservation_id": e.reservation_id, "meter_start": meter_start, "started_at": e.stamped_at,
           "received_at": now, "station_tx_id": e.station_tx_id, "id_token_type": e.id_token_type}
    if stopped:
        row.update(stopped_at=e.stamped_at, meter_stop=meter_stop, stop_reason=e.stopped_reason, stop_id_tag=e.id_tag)
    tx_id = repo.insert_transaction(conn, row)
    reservations.used(conn, cp_id, e.reservation_id, tx_id, now)
    _insert_event(conn, cp_id, tx_id, e, now)
    # the Started event missing (lost, or sent before voltlib knew the station): recorded as a gap
    gap = None if e.event_type == "Started" else (0, e.seq_no)
    published = _published(status, connector)
    return EventOutcome(transaction_id=tx_id, connector_id=connector, id_tag=id_tag, id_tag_status=status,
                        started_at=e.stamped_at, meter_start=meter_start, meter_stop=meter_stop,
                        reservation_id=e.reservation_id, created=True, repeated=False,
                        announced=published, stopped=stopped, published=published, decision=decision, gap=gap)


def _decide(conn: Connection, e: TxEvent, own_tag: str | None, now: datetime) -> idtags.Decision:
    """The answer's idTokenInfo: the id-tag table decides, as for a 1.6 StartTransaction (a car
    returned with its own token is in it). The transaction's own token is not "concurrent" with it."""
    if e.no_authorization:
        return idtags.Decision("Accepted")
    assert e.id_tag is not None
    decision = repo.authorize(conn, e.id_tag, now)
    return repo.replayed(decision) if own_tag == e.id_tag else decision


# what a stored event keeps of its message, by column: a retransmission repeats each of them (the
# offline flag aside: it says when the station sent it, and some set it on a resend)
_COMPARED = ("event_type", "trigger_reason", "number_of_phases_used", "charging_state", "stopped_reason",
             "id_token_type", "stamped_at")


def _differences(stored: Any, e: TxEvent) -> tuple[str, ...]:
    """The columns in which an event repeating a stored seqNo says something else."""
    return tuple(name for name in _COMPARED if stored[name] != getattr(e, name))


def readings_conflict(conn: Connection, rows: list[dict[str, Any]]) -> bool:
    """Would the readings of a repeated event change readings stored at their instants (another value,
    a sample more)? A retransmission's add nothing; a reading missing altogether is not a conflict
    (lost between the event's commit and its readings', the retransmission brings it back)."""
    mv = meter_values.c
    for row in rows:
        stored = conn.execute(select(mv.samples).where(
            mv.charge_point_id == row["charge_point_id"], mv.connector_id == row["connector_id"],
            mv.sampled_at == row["sampled_at"], mv.transaction_id == row["transaction_id"])).scalar()
        if stored is not None and meter.merge(stored, row["samples"]) != stored:
            return True
    return False


def _insert_event(conn: Connection, cp_id: str, tx_id: int, e: TxEvent, now: datetime) -> None:
    conn.execute(transaction_events.insert().values(
        charge_point_id=cp_id, transaction_id=tx_id, seq_no=e.seq_no, event_type=e.event_type,
        trigger_reason=e.trigger_reason, offline=e.offline, number_of_phases_used=e.number_of_phases_used,
        charging_state=e.charging_state, stopped_reason=e.stopped_reason, id_token_type=e.id_token_type,
        stamped_at=e.stamped_at, received_at=now))


def _last_register(conn: Connection, tx_id: int, meter_start: int) -> int:
    """The latest energy register stored for the transaction: the stop's reading when its Ended
    event carries none."""
    rows = conn.execute(select(meter_values.c.samples).where(meter_values.c.transaction_id == tx_id)
                        .order_by(meter_values.c.sampled_at.desc()).limit(20)).scalars()
    for blob in rows:
        value = meter.find_packed(blob, "Energy.Active.Import.Register")
        if value is not None:
            return round(value)
    return meter_start


def insert_merging(conn: Connection, rows: list[dict[str, Any]], then: Callable[[Connection], None] | None) -> None:
    """Store readings by their natural key (connector, instant, transaction) like 1.6's, except that a
    reading of an instant already stored adds the samples it lacks instead of being dropped: 2.0.1
    spreads one instant over several messages (the Started event's Transaction.Begin values, a
    TransactionEvent's and a MeterValues' readings). A retransmission adds nothing. ``then`` runs
    after (the state of charge, :func:`voltlib.store.repo.record_soc`)."""
    mv = meter_values.c
    for row in rows:
        if repo.insert_one_if_new(conn, meter_values, row):
            continue
        stored = conn.execute(select(mv.id, mv.samples).where(
            mv.charge_point_id == row["charge_point_id"], mv.connector_id == row["connector_id"],
            mv.sampled_at == row["sampled_at"], mv.transaction_id == row["transaction_id"])).first()
        if stored is not None:
            merged = meter.merge(stored.samples, row["samples"])
            if merged != stored.samples:
                conn.execute(update(meter_values).where(mv.id == stored.id).values(samples=merged))
    if then is not None:
        then(conn)


def events_of(conn: Connection, tx_id: int) -> list[dict[str, object]]:
    """A transaction's 2.0.1 events in seqNo order (tests, the API)."""
    return [dict(r) for r in conn.execute(select(transaction_events).where(
        transaction_events.c.transaction_id == tx_id).order_by(transaction_events.c.seq_no)).mappings()]
