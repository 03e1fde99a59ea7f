"""Wrong clocks: the small city with every post's clock off by up to 90 s, and one post's clock
jumping 30 minutes ahead (the built-in `skew` scenario). The clock policy (docs/car-sharing.md) must
keep every rental ending and billing from sane times, and name only the post beyond it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from voltlib.cli.main import app


def test_posts_with_wrong_clocks_end_every_rental_and_only_the_one_beyond_the_policy_is_alerted(
        tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--scenario", "skew", "--hours", "0.6", "--speed", "120",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    [jump] = [e for e in report["events"] if e["kind"] == "clock_jump"]
    assert report["alert_kinds"].get("clock_skew") == {jump["charge_point"]: 1}  # once, naming that post
    assert report["docks"]["plugged_in"] >= 1
    assert report["docks"]["not_docked_there"] == report["docks"]["on_open_rental"] == 0  # nothing stuck
    assert report["docks"]["billed_closed"] >= 1  # and billed from sane times
    assert report["docks"]["billed_negative"] == report["docks"]["billed_too_long"] == 0
    assert report["rentals_served"] >= 1
    assert report["protocol_errors"] == 0
