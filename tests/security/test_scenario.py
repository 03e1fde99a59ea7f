"""The scenario runner end to end (short normal phase): every attack alerted, no false alert."""

from __future__ import annotations

import pytest

from voltlib.security import scenario

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("ocpp", scenario.VERSIONS)
async def test_scenario_alerts_every_attack_and_nothing_else(ocpp: str) -> None:
    """Ten simulated minutes of normal traffic at 200x: three wall seconds; the attacks from 1.6
    posts, then from 2.0.1 posts."""
    report = await scenario.run(normal_seconds=600.0, alert_timeout=20.0, speed=200.0, ocpp=ocpp)
    missed = [a.name for a in report.attacks if not a.detected]
    assert missed == [] and report.false_alerts == []
    assert report.speed == 200.0 and report.normal_seconds >= 600.0  # simulated seconds
    for attack in report.attacks:  # on voltlib's clock the same interval is the wall one times the speed
        assert attack.simulated_seconds_to_alert is not None and attack.seconds_to_alert is not None
        assert attack.simulated_seconds_to_alert >= attack.seconds_to_alert
    assert report.normal_sessions >= 1 and len(report.attacks) == len(scenario.ATTACKS) == 9
    assert report.still_online == 4 and report.meets_target() and "**met**" in report.markdown()
    assert f"attacks over OCPP {ocpp}" in report.markdown()
