"""Crash drill: voltlib is killed with SIGKILL in the middle of a simulated morning and started again
on the same SQLite file and clock. Everything it had acknowledged must be there exactly once
(voltlib.sim.audit), every charge point back, no protocol error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert
from typer.testing import CliRunner

from voltlib.cli.main import app
from voltlib.sim import audit
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import transactions

T0 = datetime(2018, 5, 18, 6, 0, tzinfo=UTC)


def test_a_kill_9_in_the_morning_loses_and_doubles_nothing_acknowledged(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--scenario", "crash", "--speed", "120", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    [crash] = report["crashes"]
    assert crash["all_back"] and crash["wall_seconds_until_all_back"] is not None, crash  # back within the play
    assert crash["queued_while_down"] > 0  # the posts kept working offline and replayed after the restart
    audited = report["crash_audit"]
    assert audited["ok"], audited["problems"]
    acknowledged = sum(audited["acknowledged"].values())
    assert 0 < crash["acknowledged_before"] < acknowledged  # messages acknowledged on both sides of the crash
    assert audited["rentals_closed"] >= 1
    assert audited["acknowledged"]["SecurityEventNotification"] == 1  # the intrusion, before the crash
    assert report["protocol_errors"] == 0
    assert report["docks"]["not_docked_there"] == report["docks"]["on_open_rental"] == 0
    assert report["demand"] == report["rentals_served"] + sum(report["lost"].values()) + report["in_progress"]


def test_the_audit_finds_what_an_acknowledging_server_did_not_keep(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        upgrade(store.engine)
        store.run_sync(lambda c: c.execute(insert(transactions).values(
            id=7, charge_point_id="cp-1", connector_id=1, id_tag="CAR1", id_tag_status="Accepted", meter_start=0,
            started_at=T0, received_at=T0)))
        acknowledged = {"cp-1": [("StartTransaction", 7), ("StopTransaction", 7), ("MeterValues", 7),
                                 ("StartTransaction", 8), ("SecurityEventNotification", None)],
                        "cp-2": [("StartTransaction", 7)]}  # another post answered with cp-1's id
        found = store.run_sync(lambda c: audit.audit(c, acknowledged))
    finally:
        store.close()
    assert found["problems"]["lost_start_transactions"] == 2  # 8 never stored, 7 stored for cp-1 only
    assert found["problems"]["lost_stop_transactions"] == 1  # 7 still open
    assert found["problems"]["lost_meter_values"] == 1
    assert found["problems"]["lost_security_events"] == 1
    assert not found["ok"]
    assert found["acknowledged"] == {"MeterValues": 1, "SecurityEventNotification": 1, "StartTransaction": 3,
                                     "StopTransaction": 1}
