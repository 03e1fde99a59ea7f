"""Incident lifecycle table, correlation keys, dedup windows, work-order coverage and the response policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from voltlib.security import incidents as inc
from voltlib.security import workorders as wo
from voltlib.security.detectors import Signal
from voltlib.security.response import Policy

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def sig(kind: str = "tamper_detected", cp: str | None = "CP-1", source: str | None = None) -> Signal:
    return Signal("physical", kind, "critical", cp, source, T0, True, {})


def test_lifecycle_table() -> None:
    assert inc.transition("open", "acknowledge") == "acknowledged"
    assert inc.transition("acknowledged", "resolve") == "resolved"
    assert inc.transition("open", "resolve") == "resolved"
    for state, action in [("resolved", "acknowledge"), ("resolved", "resolve"), ("acknowledged", "acknowledge"),
                          ("open", "reopen")]:
        with pytest.raises(inc.LifecycleError):
            inc.transition(state, action)


def test_correlation_and_dedup() -> None:
    assert inc.correlation_key(sig()) == "cp:CP-1"
    assert inc.correlation_key(sig(cp=None, source="10.1.1.1")) == "source:10.1.1.1"
    assert inc.correlation_key(sig(cp=None)) == "global"
    assert inc.is_repeat(T0, T0 + timedelta(minutes=9)) and not inc.is_repeat(T0, T0 + timedelta(minutes=11))
    assert inc.joins(T0, T0 + timedelta(hours=1)) and not inc.joins(T0, T0 + timedelta(hours=3))
    assert inc.worst("warning", "critical") == "critical" and inc.worst("high", "info") == "high"


def test_work_order_coverage() -> None:
    order = wo.WorkOrder(1, "tech", "B1", ("CP-1", "CP-2"), T0, T0 + timedelta(hours=2), "fix")
    assert wo.covering([order], "CP-2", T0 + timedelta(hours=1)) == order
    assert wo.covering([order], "CP-3", T0 + timedelta(hours=1)) is None
    assert wo.covering([order], "CP-1", T0 + timedelta(hours=3)) is None
    cancelled = wo.WorkOrder(2, "tech", "B1", ("CP-1",), T0, T0 + timedelta(hours=2), "fix", cancelled=True)
    assert wo.covering([cancelled], "CP-1", T0) is None
    assert wo.badge_orders([order, cancelled], "B1") == [order]


@pytest.mark.parametrize("cps,start,end,purpose,badge", [
    ([], T0, T0 + timedelta(hours=1), "x", "B"),
    (["CP"], T0, T0, "x", "B"),
    (["CP"], T0, T0 + timedelta(days=8), "x", "B"),
    (["CP"], T0, T0 + timedelta(hours=1), " ", "B"),
    (["CP"], T0, T0 + timedelta(hours=1), "x", "B" * 37),  # longer than any OCPP id token
    (["CP"], T0, T0 + timedelta(hours=1), "x", " B1"),
    (["CP"], T0, T0 + timedelta(hours=1), "x", ""),
])
def test_invalid_work_orders(cps: list[str], start: datetime, end: datetime, purpose: str, badge: str) -> None:
    with pytest.raises(wo.InvalidWorkOrder):
        wo.check(cps, start, end, purpose, badge)


def test_a_work_order_badge_may_be_a_2_0_1_token_of_36_characters() -> None:
    wo.check(["CP"], T0, T0 + timedelta(hours=1), "x", "B" * 21)
    wo.check(["CP"], T0, T0 + timedelta(hours=1), "x", "0b7e2f1c-3d4a-4e5f-8a9b-0c1d2e3f4a5b")


def test_response_policy() -> None:
    policy = Policy()
    assert policy.automatic(sig(), expected=False) == ("quarantine",)
    assert policy.automatic(sig(), expected=True) == ()
    assert policy.automatic(sig("protocol_violation"), expected=False) == ()
    assert policy.suggested("duplicate_identity") == ("quarantine", "rotate_credentials")
    assert policy.suggested("tamper_detected") == ("quarantine",)
    assert policy.suggested("soc_jump") == ()
