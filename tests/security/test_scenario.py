"""The scenario runner end to end (short normal phase): every attack alerted, no false alert."""

from __future__ import annotations

import pytest

from voltlib.security import scenario

pytestmark = pytest.mark.asyncio


async def test_scenario_alerts_every_attack_and_nothing_else() -> None:
    report = await scenario.run(normal_seconds=4.0, alert_timeout=20.0)
    missed = [a.name for a in report.attacks if not a.detected]
    assert missed == [] and report.false_alerts == []
    assert report.normal_sessions >= 1 and len(report.attacks) == len(scenario.ATTACKS) == 9
    assert report.meets_target() and "**met**" in report.markdown()
