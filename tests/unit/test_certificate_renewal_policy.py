"""When a station certificate is due for renewal (security/renewal.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from voltlib.security.renewal import RenewalPolicy

NOW = datetime(2026, 12, 7, 9, tzinfo=UTC)
DAY = timedelta(days=1)


def test_a_year_long_certificate_is_due_30_days_before_it_lapses() -> None:
    policy = RenewalPolicy()
    installed = NOW - 335 * DAY
    assert not policy.due(NOW + 31 * DAY, installed, None, NOW)
    assert policy.due(NOW + 30 * DAY, installed, None, NOW)
    assert policy.due(NOW - DAY, installed, None, NOW)  # lapsed: still asked (and alerted)


def test_asked_once_it_is_asked_again_after_the_retry_period_only() -> None:
    policy = RenewalPolicy(retry_every=timedelta(hours=24))
    installed, not_after = NOW - 350 * DAY, NOW + 15 * DAY
    assert not policy.due(not_after, installed, NOW - timedelta(hours=23), NOW)
    assert policy.due(not_after, installed, NOW - timedelta(hours=24), NOW)


def test_a_short_lived_certificate_is_due_when_a_third_of_its_life_remains() -> None:
    policy = RenewalPolicy()
    assert not policy.due(NOW + 9 * DAY, NOW - DAY, None, NOW)  # 10-day certificate, 9 days left
    assert policy.due(NOW + 3 * DAY, NOW - 7 * DAY, None, NOW)  # a third (3.3 days) or less left
    assert policy.lapsed(NOW, NOW) and not policy.lapsed(NOW + DAY, NOW)
