"""Alerts become incidents: deduplication, correlation and the incident lifecycle (pure).

* **Dedup**: the same signal (kind, charge point, source) again within ``DEDUP_WINDOW`` is folded
  into the existing alert (``repeats`` + 1): no new alert, no new webhook.
* **Correlation**: alerts with the same correlation key — the charge point, or the source address
  when there is no charge point — within ``CORRELATION_WINDOW`` of the incident's last alert join one
  open (or acknowledged) incident, whose severity is the highest of its alerts.
* **Lifecycle**: an h11-style table; anything not in it is refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from voltlib.security.detectors import Signal, rank

DEDUP_WINDOW = timedelta(minutes=10)
CORRELATION_WINDOW = timedelta(hours=2)

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
LIVE_STATES = (OPEN, ACKNOWLEDGED)

TRANSITIONS: dict[tuple[str, str], str] = {
    (OPEN, "acknowledge"): ACKNOWLEDGED,
    (OPEN, "resolve"): RESOLVED,
    (ACKNOWLEDGED, "resolve"): RESOLVED,
}


class LifecycleError(Exception):
    def __init__(self, state: str, action: str) -> None:
        super().__init__(f"cannot {action} an incident that is {state}")
        self.state, self.action = state, action


def transition(state: str, action: str) -> str:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise LifecycleError(state, action) from None


def correlation_key(signal: Signal) -> str:
    if signal.charge_point_id:
        return f"cp:{signal.charge_point_id}"
    if signal.source:
        return f"source:{signal.source}"
    return "global"


def is_repeat(last_at: datetime, at: datetime) -> bool:
    return abs(at - last_at) <= DEDUP_WINDOW


def joins(incident_last_alert_at: datetime, at: datetime) -> bool:
    return at - incident_last_alert_at <= CORRELATION_WINDOW


def worst(a: str, b: str) -> str:
    return a if rank(a) >= rank(b) else b


def title(signal: Signal) -> str:
    where = signal.charge_point_id or signal.source or "voltlib"
    return f"{signal.kind.replace('_', ' ')} at {where}"[:200]
