"""Which stored security events the start-up recovery alerts on (security/recovery.py), on a real
SQLite file and PostgreSQL: the end-to-end cases are in tests/integration/test_restart_recovery.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from voltlib.security import records, recovery
from voltlib.security.detectors import Signal
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def stored(kind: str, cp_id: str | None, detail: dict[str, Any], at: datetime) -> Any:
    return partial(repo.record_security_event, kind=kind, severity="high", charge_point_id=cp_id, source="10.0.0.9",
                   detail=detail, now=at)


def test_only_events_no_alert_accounts_for_are_recovered_once(database_url: str) -> None:
    store = Store(database_url)
    upgrade(store.engine)
    try:
        stamp = {"timestamp": T0.isoformat(), "techInfo": None}
        for op in (
            stored("charge_point:TamperDetectionActivated", "CP-OLD", stamp, T0),  # alerted before keys existed
            stored("charge_point:InvalidFirmwareSignature", "CP-LOST", stamp, T0),  # never alerted
            stored("charge_point:StartupOfTheDevice", "CP-LOST", stamp, T0),  # routine: no alert
            stored("clock_skew", "CP-SKEW", {"skew_seconds": 900}, T0),  # one alert an hour, not rebuilt
            stored("unauthorised_departure", "CP-CAR", {"car_id": "c1", "connector_id": 1}, T0),  # no left_at
            stored("charge_point:InvalidFirmwareSignature", "CP-STALE", stamp, T0 - timedelta(hours=25)),
        ):
            store.run_sync(op)
        store.run_sync(partial(records.record_signal, signal=Signal(
            "physical", "tamper_detected", "critical", "CP-OLD", None, T0 + timedelta(seconds=1), True, {}),
            expected=False, work_order_id=None))
        lost = store.run_sync(partial(recovery.lost_signals, since=T0 - timedelta(hours=24)))
        assert [(s.kind, s.charge_point_id, s.at) for s in lost] == [("charge_point_security_event", "CP-LOST", T0)]
        first = store.run_sync(partial(recovery.recover, signal=lost[0]))
        assert first is not None and first.recorded.new_alert
        assert store.run_sync(partial(recovery.recover, signal=lost[0])) is None  # the key is held now
        assert store.run_sync(partial(recovery.lost_signals, since=T0 - timedelta(hours=24))) == []
    finally:
        store.close()
