"""``voltlib alert|incident|workorder|audit`` against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial

from typer.testing import CliRunner

from voltlib.cli.main import app
from voltlib.security import records
from voltlib.security.detectors import Signal
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade

runner = CliRunner()


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_alerts_incidents_work_orders_and_audit(database_url: str) -> None:
    db = ["--database-url", database_url]
    store = Store(database_url)
    upgrade(store.engine)
    signal = Signal("physical", "tamper_detected", "critical", "CP-9", None, datetime.now(UTC), True, {"x": 1})
    recorded = store.run_sync(partial(records.record_signal, signal=signal, expected=False, work_order_id=None))
    store.close()
    assert recorded.new_incident

    (alert,) = json.loads(invoke("alert", "list", "--cp", "CP-9", *db))
    assert alert["kind"] == "tamper_detected" and alert["incident_id"] == recorded.incident_id
    (incident,) = json.loads(invoke("incident", "list", "--state", "open", *db))
    n = str(incident["id"])
    assert json.loads(invoke("incident", "ack", n, "--as", "ana", *db))["acknowledged_by"] == "ana"
    invoke("incident", "resolve", n, *db, code=2)  # --note is required
    resolved = json.loads(invoke("incident", "resolve", n, "--note", "false alarm: storm", "--as", "ana", *db))
    assert resolved["state"] == "resolved" and "storm" in resolved["note"]
    assert "cannot acknowledge" in invoke("incident", "ack", n, *db, code=1)
    invoke("incident", "show", "999", *db, code=1)

    order = json.loads(invoke("workorder", "add", "--technician", "tech-1", "--badge", "TECH01", "--cp", "CP-9",
                              "--cp", "CP-10", "--start", "2026-11-28T08:00:00", "--end", "2026-11-28T12:00:00",
                              "--purpose", "meter swap", *db))
    assert order["charge_points"] == ["CP-9", "CP-10"]
    invoke("workorder", "add", "--technician", "t", "--badge", "B", "--cp", "CP-9", "--start", "2026-11-28T12:00:00",
           "--end", "2026-11-28T08:00:00", "--purpose", "x", *db, code=2)
    assert "cancelled" in invoke("workorder", "cancel", str(order["id"]), *db)
    invoke("workorder", "cancel", str(order["id"]), *db, code=1)
    assert json.loads(invoke("workorder", "list", *db))[0]["cancelled_at"] is not None

    assert "audit chain OK: 4 entries" in invoke("audit", "verify", *db)
    actions = [e["action"] for e in json.loads(invoke("audit", "list", *db))]
    assert actions == ["work_order.cancel", "work_order.create", "incident.resolve", "incident.acknowledge"]
