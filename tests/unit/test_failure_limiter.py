"""The upgrade lock-out: counts failures per key over a minute, and keeps nothing for keys that never failed."""

from __future__ import annotations

from voltlib.gateway.auth import FailureLimiter


def test_checking_keys_that_never_failed_keeps_no_memory_of_them() -> None:
    limiter = FailureLimiter(per_minute=3)
    assert not any(limiter.blocked(f"CP-{n}") for n in range(1_000))  # every upgrade asks
    assert limiter._failures == {}  # 20,000 charge points held: no per-connection cost


def test_a_key_is_blocked_once_it_failed_per_minute_times() -> None:
    limiter = FailureLimiter(per_minute=3)
    for _ in range(2):
        limiter.failed("CP-1", "10.0.0.9")
    assert not limiter.blocked("CP-1")
    limiter.failed("CP-1")
    assert limiter.blocked("CP-1") and not limiter.blocked("10.0.0.9") and not limiter.blocked("CP-2")
