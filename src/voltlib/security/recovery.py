"""Alerts rebuilt at start-up from the stored security events (issue 22: alerts lost on kill -9).

A security event is stored before the message that caused it is answered, but its alert is raised
afterwards, by the security service reading the bus; a voltlib stopped in between (kill -9, power
loss) keeps the event and loses the alert. At start-up (``SecurityService.load``) the events of the
last ``RECOVERY_WINDOW`` that raise an alert by themselves are read again, and each that no alert
accounts for is recorded as the live path would have recorded it.

* Only kinds whose alert follows from the one event (``signals_of``): the charge point's own
  SecurityEventNotification, a car that left without a rental, and the gateway incidents alerted at
  once (certificate refusals, duplicate identity, lowered profile, flood…). Not the counted ones
  (brute force, identity scans: their counts are in memory) nor ``clock_skew`` (one alert per
  charge point per hour, and every stamp stays a security event).
* Each occurrence has a key (``occurrence``) that the live path and the stored event both give:
  the charge point's own stamp of its notification, voltlib's time of a gateway incident, the
  car and time of a departure. The alert keeps the keys of its last ``CROSSINGS_KEPT`` occurrences
  (its first and its repeats), as it does for the crossings of NETWORK_KINDS, and a key it holds is
  never counted again (a charge point's replay of an unanswered notification either).
* An event is accounted for when an alert of the same kind, charge point and source, whatever its
  incident's state, holds its key; or spans its time (within ``DEDUP_WINDOW``) but cannot tell
  (the event older than the oldest key kept, or an alert older than the keys). Otherwise it is
  recorded: as a repeat of the alert spanning it, or as a new alert. Each in a transaction of its
  own holding the lock of that alert's identity, which the live path takes for these kinds too:
  nodes starting at once, or a node handling that very event live, go one after the other and the
  second finds the key.

Running it again finds every key and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select, update

from voltlib import events as ev
from voltlib.security import records
from voltlib.security.detectors import (
    CERTIFICATE_REFUSALS,
    CROSSING,
    INCIDENT_SIGNALS,
    Signal,
    car_left_signals,
    cp_security_signals,
    incident_signals,
)
from voltlib.security.incidents import DEDUP_WINDOW
from voltlib.security.workorders import covering
from voltlib.store.tables import security_alerts, security_events

RECOVERY_WINDOW = timedelta(hours=24)  # events older than this are not looked at again
MAX_RECOVERED = 10_000  # stored events read at one start-up (the newest)
CAR_LEFT = "unauthorised_departure"  # car sharing's security event for a car that left without a rental
CP_EVENT = "charge_point:"  # the prefix of a SecurityEventNotification's security event
# the stored kinds that may raise one (besides CP_EVENT): the rest (clock_skew, one per message with a
# wrong stamp; failed logins...) are never read here
STORED_KINDS = frozenset({CAR_LEFT, *CERTIFICATE_REFUSALS, "duplicate_connection", "security_profile_changed",
                          *INCIDENT_SIGNALS})
# the alerts those events raise: recorded with their occurrence's key, under their identity's lock
RECOVERED_KINDS = frozenset({"tamper_detected", "charge_point_security_event", "car_left_without_rental",
                             "certificate_mismatch", "tls_certificate_refused", "duplicate_identity",
                             "profile_lowered", *(name for _, name, _ in INCIDENT_SIGNALS.values())})


@dataclass(frozen=True, slots=True)
class Recovered:
    signal: Signal
    recorded: records.Recorded
    expected: bool


def occurrence(what: str, at: datetime) -> str:
    return f"{what}@{at.astimezone(UTC).isoformat()}"


def occurrence_of(event: ev.Event) -> str | None:
    """The key of the bus event's occurrence (before the service replaces a charge point's time)."""
    if isinstance(event, ev.ChargePointSecurityEvent):
        return occurrence(event.type, event.at)
    if isinstance(event, ev.CarLeftWithoutRental):
        return occurrence(event.car_id, event.at)
    if isinstance(event, ev.SecurityIncident):
        return occurrence(event.kind, event.at)
    return None


def keyed(signal: Signal, key: str | None) -> Signal:
    """``signal`` carrying its occurrence's key, when its kind is one recovered here."""
    if key is None or signal.kind not in RECOVERED_KINDS:
        return signal
    return replace(signal, detail={**signal.detail, CROSSING: key})


def signals_of(kind: str, severity: str, cp_id: str | None, source: str | None, detail: dict[str, Any],
               at: datetime) -> list[Signal]:
    """The signals, with their key, the live path raised from the bus event of this stored event."""
    event: ev.Event
    if kind.startswith(CP_EVENT):
        stamp, tech_info = _time(detail.get("timestamp")), detail.get("techInfo")
        if stamp is None:
            return []
        event = ev.ChargePointSecurityEvent(charge_point_id=cp_id or "", at=stamp, type=kind.removeprefix(CP_EVENT),
                                            tech_info=tech_info if isinstance(tech_info, str) else None)
        key = occurrence_of(event)
        return [keyed(replace(s, at=at), key) for s in cp_security_signals(event)]  # at receipt, as live
    if kind == CAR_LEFT:
        car_id, connector_id, rental_id = detail.get("car_id"), detail.get("connector_id"), detail.get("rental_id")
        left = _time(detail.get("left_at"))
        if not isinstance(car_id, str) or not isinstance(connector_id, int) or left is None:
            return []  # stored before its departure time was: not recovered
        event = ev.CarLeftWithoutRental(charge_point_id=cp_id or "", at=left, connector_id=connector_id,
                                        car_id=car_id, rental_id=rental_id if isinstance(rental_id, str) else None)
        return [keyed(s, occurrence_of(event)) for s in car_left_signals(event)]
    event = ev.SecurityIncident(charge_point_id=cp_id or "", at=at, kind=kind, severity=severity, source=source,
                                detail=dict(detail))
    return [keyed(s, occurrence_of(event)) for s in incident_signals(event)]


def _time(value: Any) -> datetime | None:
    try:
        found = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return found if found is not None and found.tzinfo is not None else None


def lost_signals(conn: Connection, since: datetime) -> list[Signal]:
    """The signals of the security events stored since ``since`` that no alert accounts for, oldest first."""
    e = security_events.c
    alerting = or_(e.kind.in_(sorted(STORED_KINDS)), e.kind.startswith(CP_EVENT, autoescape=True))
    rows = conn.execute(select(e.kind, e.severity, e.charge_point_id, e.source, e.detail, e.at)
                        .where(e.at >= since, alerting).order_by(e.at.desc(), e.id.desc()).limit(MAX_RECOVERED)).all()
    found: list[Signal] = []
    for row in rows:
        detail = row.detail if isinstance(row.detail, dict) else {}
        found.extend(signals_of(row.kind, row.severity, row.charge_point_id, row.source, detail, row.at))
    if not found:
        return []
    alerts = _alerts(conn, {s.kind for s in found}, min(s.at for s in found) - DEDUP_WINDOW)
    return sorted((s for s in found if not _accounted(s, alerts.get(_identity(s), []))), key=lambda s: s.at)


def recover(conn: Connection, signal: Signal) -> Recovered | None:
    """Record ``signal`` unless an alert accounts for it now (under its identity's lock, looked at again)."""
    records.take_turns(conn, signal)
    alerts = _alerts(conn, {signal.kind}, signal.at - DEDUP_WINDOW, signal).get(_identity(signal), [])
    if _accounted(signal, alerts):
        return None
    spanning = [a for a in alerts if _spans(a, signal.at)]
    if spanning:  # lost inside a run of repeats: one more, in the alert it belonged to
        return Recovered(signal, _repeat(conn, spanning[-1], signal), spanning[-1].expected)
    order = covering(records.live_work_orders(conn, signal.at), signal.charge_point_id, signal.at) \
        if signal.physical and signal.charge_point_id else None
    recorded = records.record_signal(conn, signal, expected=order is not None,
                                     work_order_id=order.id if order is not None else None, shared=True)
    return Recovered(signal, recorded, order is not None)


@dataclass(frozen=True, slots=True)
class _Alert:
    id: int
    incident_id: int | None
    expected: bool
    at: datetime
    last_at: datetime
    detail: dict[str, Any]


Identity = tuple[str, str | None, str | None]


def _identity(signal: Signal) -> Identity:
    return signal.kind, signal.charge_point_id, signal.source


def _spans(alert: _Alert, at: datetime) -> bool:
    return alert.at - DEDUP_WINDOW <= at <= alert.last_at + DEDUP_WINDOW


def _accounted(signal: Signal, alerts: list[_Alert]) -> bool:
    key = signal.detail[CROSSING]
    for alert in alerts:
        held = alert.detail.get(records.CROSSINGS)
        if isinstance(held, list) and key in held:
            return True
        if _spans(alert, signal.at) and not _would_hold(held, key):
            return True  # cannot tell: counted already, as far as anyone can know
    return False


def _would_hold(held: Any, key: str) -> bool:
    """Would the alert's kept keys hold ``key`` had it been counted? Yes while fewer than
    ``CROSSINGS_KEPT`` are kept, or when it is newer than the oldest kept; no for an alert older
    than the keys (recorded before this existed)."""
    if not isinstance(held, list):
        return False
    if len(held) < records.CROSSINGS_KEPT:
        return True
    times = [t for t in map(_key_time, held) if t is not None]
    at = _key_time(key)
    return bool(times) and at is not None and at > min(times)


def _key_time(key: Any) -> datetime | None:
    return _time(key.rpartition("@")[2]) if isinstance(key, str) else None


def _repeat(conn: Connection, alert: _Alert, signal: Signal) -> records.Recorded:
    held = list(alert.detail.get(records.CROSSINGS) or [])
    conn.execute(update(security_alerts).where(security_alerts.c.id == alert.id).values(
        repeats=security_alerts.c.repeats + 1, last_at=max(alert.last_at, signal.at),
        detail={**alert.detail, records.CROSSINGS: [*held, signal.detail[CROSSING]][-records.CROSSINGS_KEPT:]}))
    return records.Recorded(alert.id, alert.incident_id, False, False)


def _alerts(conn: Connection, kinds: set[str], since: datetime,
            only: Signal | None = None) -> dict[Identity, list[_Alert]]:
    a = security_alerts.c
    query = select(a.id, a.incident_id, a.expected, a.kind, a.charge_point_id, a.source, a.at, a.last_at, a.detail) \
        .where(a.kind.in_(sorted(kinds)), or_(a.last_at >= since, a.at >= since)).order_by(a.id)
    if only is not None:
        query = query.where(a.charge_point_id.is_(None) if only.charge_point_id is None
                            else a.charge_point_id == only.charge_point_id,
                            a.source.is_(None) if only.source is None else a.source == only.source)
    found: dict[Identity, list[_Alert]] = {}
    for row in conn.execute(query):
        detail = row.detail if isinstance(row.detail, dict) else {}
        found.setdefault((row.kind, row.charge_point_id, row.source), []).append(
            _Alert(int(row.id), row.incident_id, bool(row.expected), row.at, row.last_at, detail))
    return found
