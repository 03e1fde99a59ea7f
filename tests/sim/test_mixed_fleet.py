"""A mixed fleet end to end: the `small` city with 30 % of its posts on OCPP 2.0.1 and the rest on
1.6J, against a real voltlib process (real WebSockets, SQLite, simulated time): rentals served on
both, no protocol error, no alert but the scenario's intrusion, every returned car docked."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from voltlib.cli.main import app


def test_a_small_city_with_30_percent_of_2_0_1_posts_serves_rentals_with_no_protocol_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--scenario", "small", "--hours", "0.6", "--speed", "120",
                                      "--ocpp201-share", "0.3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    newer = round(0.3 * report["bays"])
    assert report["ocpp_versions"] == {"1.6": report["bays"] - newer, "2.0.1": newer}
    assert report["protocol_errors"] == 0
    assert report["rentals_served"] >= 1
    by_version = report["rentals_by_ocpp_version"]
    assert all(by_version[v]["picked_up"] >= 1 for v in ("1.6", "2.0.1")), by_version  # cars left posts of both
    assert sum(v.get("returned", 0) for v in by_version.values()) == report["rentals_served"]
    assert set(report["alert_kinds"]) == {"tamper_detected"}  # the scenario's intrusion, nothing false
    assert report["docks"]["plugged_in"] >= 1
    assert report["docks"]["not_docked_there"] == report["docks"]["on_open_rental"] == 0
    assert report["peak_station_ratio"] <= 1.0 and report["seconds_over_limit"] == 0
