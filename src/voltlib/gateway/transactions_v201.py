"""OCPP 2.0.1 transactions (E) and meter values (J) at the gateway: what a TransactionEvent and a
MeterValues mean, told in the version-neutral terms of :mod:`voltlib.gateway.neutral`, so the
detectors, car sharing and energy see a 2.0.1 charging session as they see a 1.6 one.

How a 2.0.1 transaction maps onto the 1.6 tables is in docs/architecture.md, "2.0.1 transactions":
the station's transactionId is ``transactions.station_tx_id`` beside voltlib's own integer id;
every event is kept once by (transaction, seqNo) (:mod:`voltlib.store.transaction_events`);
``TransactionStarted`` is published once the idToken is known, ``TransactionStopped`` on Ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from voltlib import events as ev
from voltlib.domain.idtags import Decision
from voltlib.gateway import neutral
from voltlib.gateway.clock import stamp
from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.errors import ErrorCode, OcppError
from voltlib.ocpp.v16 import messages as v16
from voltlib.ocpp.v201 import messages as m
from voltlib.store import repo
from voltlib.store.tables import transaction_events
from voltlib.store.transaction_events import EventOutcome, TxEvent, readings_conflict, record

NO_AUTHORIZATION = "NoAuthorization"  # the IdToken type of a station that authorizes nobody
_REGISTER = "Energy.Active.Import.Register"


def id_tag_of(token: m.IdToken) -> str:
    """What a 2.0.1 IdToken is among voltlib's id tags: its value, whatever its type (an RFID's UID,
    an eMAID, a Central or Local token, a key code, a MAC address); NoAuthorization carries none."""
    return "" if token.type == NO_AUTHORIZATION else token.id_token


def token_info(decision: Decision) -> m.IdTokenInfo:
    """1.6's IdTagInfo in 2.0.1 terms: the statuses are 2.0.1's too (Accepted, Blocked, Expired,
    Invalid, ConcurrentTx); the expiry is how long the station may cache it; the parent id tag is
    the group token."""
    group = None if decision.parent_id_tag is None else m.IdToken(id_token=decision.parent_id_tag, type="Central")
    return m.IdTokenInfo(status=decision.status, cache_expiry_date_time=decision.expiry_date, group_id_token=group)


def readings(values: list[m.MeterValue] | None) -> list[v16.MeterValue]:
    """2.0.1 meter values in the shape voltlib stores (1.6's): the value times 10^multiplier, in the
    unit sent; ``SignedData`` when the sample was signed (the signature stays in the raw log)."""
    return [v16.MeterValue(timestamp=value.timestamp, sampled_value=[_sample(s) for s in value.sampled_value])
            for value in values or []]


def _sample(s: m.SampledValue) -> v16.SampledValue:
    unit = s.unit_of_measure
    value = float(s.value) * (10.0 ** unit.multiplier if unit is not None and unit.multiplier else 1.0)
    return v16.SampledValue(value=_text(value), context=s.context, measurand=s.measurand, phase=s.phase,
                            location=s.location, unit="Wh" if unit is None else unit.unit,
                            format="Raw" if s.signed_meter_value is None else "SignedData")


def _text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _register_wh(values: list[v16.MeterValue]) -> int | None:
    """The energy register (total, not per phase) of the latest reading that has one, in Wh."""
    for value in sorted(values, key=lambda v: v.timestamp, reverse=True):
        for s in value.sampled_value:
            if s.measurand == _REGISTER and s.phase is None:
                scale = 1000.0 if s.unit == "kWh" else 1.0
                return round(float(s.value) * scale)
    return None


@dataclass(slots=True)
class _Open:
    """What a connection knows of one of its station's open transactions after an event of it was
    recorded: enough to tell the next periodic reading needs nothing but to be stored."""

    transaction_id: int  # voltlib's
    connector_id: int
    seq_no: int  # the last one recorded
    latest: datetime | None  # the latest reading's instant recorded through this connection


def _routine(ctx: ChargePointContext, req: m.TransactionEvent) -> _Open | None:
    """The known transaction when ``req`` is a routine update: the next seqNo, no token, no stop,
    no EVSE news, and readings later than any this connection recorded for it (nothing to merge,
    nothing to compare). Anything else takes the full path (:func:`record`), where seqNo
    repeats, gaps, replays and state changes are judged."""
    known = ctx.open_transactions.get(req.transaction_info.transaction_id)
    if not isinstance(known, _Open) or req.event_type != "Updated" or req.seq_no != known.seq_no + 1 \
            or req.id_token is not None or req.reservation_id is not None \
            or req.transaction_info.stopped_reason is not None \
            or (req.evse is not None and req.evse.id != known.connector_id):
        return None
    if known.latest is not None and any(value.timestamp <= known.latest for value in req.meter_value or []):
        return None
    return known


async def _routine_update(ctx: ChargePointContext, req: m.TransactionEvent, known: _Open) -> m.Reply:
    """The periodic readings of a known transaction (the hot path of a charging session): its event
    row and its readings in one group commit, through the same multi-row inserts as 1.6
    MeterValues, instead of a transaction of several reads and writes."""
    now = ctx.services.clock.now()
    values = readings(req.meter_value)
    info = req.transaction_info
    row = {"charge_point_id": ctx.cp_id, "transaction_id": known.transaction_id, "seq_no": req.seq_no,
           "event_type": req.event_type, "trigger_reason": req.trigger_reason, "offline": req.offline,
           "number_of_phases_used": req.number_of_phases_used, "charging_state": info.charging_state,
           "stopped_reason": None, "id_token_type": None, "stamped_at": req.timestamp, "received_at": now}
    _, *sampled = await stamp(ctx, m.TransactionEvent.ACTION, [req.timestamp, *(v.timestamp for v in values)], now)
    if values:
        await neutral.metered(ctx, m.TransactionEvent.ACTION, known.connector_id, known.transaction_id, values,
                              sampled=sampled, beside=(transaction_events, [row]))
        known.latest = max(value.timestamp for value in values)
    else:
        await ctx.services.store.insert(transaction_events, [row], ignore_duplicates=True)
    known.seq_no = req.seq_no
    # every word of it is in transaction_events and meter_values, unless it signed a reading or
    # carried customData: then the raw log keeps it
    ctx.stored_whole = req.custom_data is None and info.custom_data is None and all(
        sample.signed_meter_value is None for value in req.meter_value or [] for sample in value.sampled_value)
    return m.TransactionEventReply()


def _remember(ctx: ChargePointContext, req: m.TransactionEvent, outcome: EventOutcome) -> None:
    """After the full path: the transaction as the next routine update will find it."""
    station_tx_id = req.transaction_info.transaction_id
    if outcome.stopped or outcome.conflict or outcome.connector_id == 0 or req.event_type == "Ended":
        ctx.open_transactions.pop(station_tx_id, None)
        return
    latest = max((value.timestamp for value in req.meter_value or []), default=None)
    known = ctx.open_transactions.get(station_tx_id)
    if isinstance(known, _Open) and not outcome.repeated:
        known.seq_no = max(known.seq_no, req.seq_no)
        known.latest = latest if known.latest is None or (latest is not None and latest > known.latest) \
            else known.latest
    elif not isinstance(known, _Open) and not outcome.repeated:
        ctx.open_transactions[station_tx_id] = _Open(outcome.transaction_id, outcome.connector_id, req.seq_no, latest)


async def transaction_event(ctx: ChargePointContext, req: m.TransactionEvent) -> m.Reply:
    """E01-E15: recorded (committed) first, then published: the start once the idToken is known,
    the readings, the stop. The answer carries idTokenInfo when the event carried an idToken,
    decided as a 1.6 StartTransaction's (a car returned with its own token is in the id-tag table).
    A routine periodic update of a transaction this connection knows takes a shorter path."""
    if req.evse is not None and req.evse.id < 1:
        raise OcppError(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, "evse.id must be 1 or more: EVSE 0 is the station")
    known = _routine(ctx, req)
    if known is not None:
        return await _routine_update(ctx, req, known)
    reply = await _recorded(ctx, req)
    return reply


async def _recorded(ctx: ChargePointContext, req: m.TransactionEvent) -> m.Reply:
    s = ctx.services
    now = s.clock.now()
    token, info = req.id_token, req.transaction_info
    values = readings(req.meter_value)
    event = TxEvent(
        station_tx_id=info.transaction_id, event_type=req.event_type, seq_no=req.seq_no, stamped_at=req.timestamp,
        trigger_reason=req.trigger_reason, offline=req.offline, number_of_phases_used=req.number_of_phases_used,
        charging_state=info.charging_state, stopped_reason=info.stopped_reason,
        evse_id=None if req.evse is None else req.evse.id, id_tag=None if token is None else id_tag_of(token),
        id_token_type=None if token is None else token.type,
        no_authorization=token is not None and token.type == NO_AUTHORIZATION,
        reservation_id=req.reservation_id, register_wh=_register_wh(values))
    outcome = await s.store.write(partial(record, cp_id=ctx.cp_id, e=event, now=now))
    if outcome.gap is not None:
        await _sequence_gap(ctx, event, outcome, now)
    conflict = list(outcome.conflict)
    if outcome.repeated and values and await s.store.read(partial(
            readings_conflict, rows=repo.meter_rows(ctx.cp_id, outcome.connector_id, outcome.transaction_id,
                                                    values, now))):
        conflict.append("meterValue")
    if conflict:  # a seen seqNo saying something else: a forgery, nothing of it is kept
        await _replayed(ctx, event, outcome, conflict, now)
    action = m.TransactionEvent.ACTION
    # every stamp the message makes voltlib use, judged at once: one clock_skew event for the message,
    # as in 1.6 (the start's own stamp only when it is published now: a long session's start is old)
    start = outcome.started_at if outcome.announced else event.stamped_at
    started_at, stopped_at, *sampled = await stamp(
        ctx, action, [start, event.stamped_at, *(value.timestamp for value in values)], now)
    if event.event_type == "Started" and not outcome.created:  # a retry, or a replay (issue 5)
        await neutral.transaction_repeated(ctx, transaction_id=outcome.transaction_id,
                                           connector_id=outcome.connector_id, id_tag=outcome.id_tag,
                                           stamped=event.stamped_at)
    elif outcome.announced:
        await neutral.transaction_started(
            ctx, transaction_id=outcome.transaction_id, connector_id=outcome.connector_id, id_tag=outcome.id_tag,
            id_tag_status=outcome.id_tag_status, meter_start=outcome.meter_start, started_at=started_at,
            reservation_id=outcome.reservation_id)
    if values and not conflict:  # a retransmission's readings: stored once (those lost with a crash come back)
        await neutral.metered(ctx, action, outcome.connector_id, outcome.transaction_id, values, merge=True,
                              sampled=sampled)
    if outcome.stopped and outcome.published:
        assert outcome.meter_stop is not None
        await neutral.transaction_stopped(ctx, transaction_id=outcome.transaction_id, meter_stop=outcome.meter_stop,
                                          stopped_at=stopped_at, reason=event.stopped_reason, known=True)
    _remember(ctx, req, outcome)
    decision = outcome.decision
    return m.TransactionEventReply(id_token_info=None if decision is None else token_info(decision))


async def meter_values(ctx: ChargePointContext, req: m.MeterValues) -> m.Reply:
    """J01: readings of an EVSE outside a transaction (those of a transaction come in its
    TransactionEvents); EVSE 0 is the station's main meter."""
    await neutral.metered(ctx, m.MeterValues.ACTION, req.evse_id, None, readings(req.meter_value), merge=True)
    return m.MeterValuesReply()


async def _sequence_gap(ctx: ChargePointContext, event: TxEvent, outcome: EventOutcome, now: datetime) -> None:
    """Events of a transaction missing between two seqNos (or before the first one voltlib got):
    lost, or held back. A ``transaction_seq_gap`` security event, stored and published."""
    s = ctx.services
    assert outcome.gap is not None
    expected, received = outcome.gap
    detail: dict[str, Any] = {"transaction_id": outcome.transaction_id, "station_transaction_id": event.station_tx_id,
                              "expected_seq_no": expected, "received_seq_no": received,
                              "event_type": event.event_type, "offline": event.offline}
    await s.store.write(partial(repo.record_security_event, kind="transaction_seq_gap", severity="warning",
                                charge_point_id=ctx.cp_id, source=ctx.address, detail=detail, now=now))
    await s.bus.publish(ev.SecurityIncident(charge_point_id=ctx.cp_id, at=now, kind="transaction_seq_gap",
                                            severity="warning", source=ctx.address, detail=detail))


async def _replayed(ctx: ChargePointContext, event: TxEvent, outcome: EventOutcome, conflict: list[str],
                    now: datetime) -> None:
    """A TransactionEvent under a (transactionId, seqNo) voltlib has, saying something else: not a
    retransmission (which repeats the event) but a replay or a forgery. A ``transaction_event_replayed``
    security event, stored and published (alerted as ``replayed_transaction_event``)."""
    s = ctx.services
    detail: dict[str, Any] = {"transaction_id": outcome.transaction_id, "station_transaction_id": event.station_tx_id,
                              "seq_no": event.seq_no, "event_type": event.event_type, "differs_in": conflict}
    await s.store.write(partial(repo.record_security_event, kind="transaction_event_replayed", severity="high",
                                charge_point_id=ctx.cp_id, source=ctx.address, detail=detail, now=now))
    await s.bus.publish(ev.SecurityIncident(charge_point_id=ctx.cp_id, at=now, kind="transaction_event_replayed",
                                            severity="high", source=ctx.address, detail=detail))
