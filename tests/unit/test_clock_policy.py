"""The clock policy (issue 22): which of a charge point's stamps voltlib believes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voltlib.domain.clock_policy import ClockPolicy, Stamp, judge

RECEIVED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
POLICY = ClockPolicy(ahead=timedelta(minutes=2), behind=timedelta(days=7))


def test_a_stamp_days_ahead_is_replaced_by_the_receipt_time_and_reported() -> None:
    assert judge(RECEIVED + timedelta(days=3), RECEIVED, POLICY) == Stamp(RECEIVED, timedelta(days=3))


def test_a_stamp_ahead_within_the_tolerance_is_not_reported_but_never_used_either() -> None:
    assert judge(RECEIVED + timedelta(seconds=30), RECEIVED, POLICY) == Stamp(RECEIVED)
    assert judge(RECEIVED + timedelta(minutes=2), RECEIVED, POLICY) == Stamp(RECEIVED)
    assert judge(RECEIVED + timedelta(minutes=2, seconds=1), RECEIVED, POLICY).skew == timedelta(minutes=2, seconds=1)


def test_an_old_stamp_is_believed_it_may_come_from_an_offline_queue() -> None:
    for behind in (timedelta(0), timedelta(minutes=2), timedelta(hours=5), timedelta(days=7)):
        assert judge(RECEIVED - behind, RECEIVED, POLICY) == Stamp(RECEIVED - behind)


def test_a_stamp_older_than_any_offline_queue_is_a_lost_clock() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert judge(epoch, RECEIVED, POLICY) == Stamp(RECEIVED, epoch - RECEIVED)
    assert judge(RECEIVED - timedelta(days=7, seconds=1), RECEIVED, POLICY).at == RECEIVED


def test_no_stamp_is_the_receipt_time() -> None:
    assert judge(None, RECEIVED, POLICY) == Stamp(RECEIVED)


def test_a_policy_needs_sane_bounds() -> None:
    with pytest.raises(ValueError):
        ClockPolicy(ahead=timedelta(seconds=-1))
    with pytest.raises(ValueError):
        ClockPolicy(behind=timedelta(0))


@given(st.integers(min_value=-10**9, max_value=10**9))
def test_the_time_used_is_never_after_the_receipt_nor_older_than_allowed(offset: int) -> None:
    judged = judge(RECEIVED + timedelta(seconds=offset), RECEIVED, POLICY)
    assert RECEIVED - POLICY.behind <= judged.at <= RECEIVED
    assert (judged.skew is None) == (-POLICY.behind.total_seconds() <= offset <= POLICY.ahead.total_seconds())
