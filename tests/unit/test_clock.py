"""Simulated time: ScaledClock follows origin + (wall − wall_start) × factor, agrees across
instances built from the same description, and sleeps simulated seconds."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from voltlib.clock import ScaledClock, SystemClock, describe, period
from voltlib.config import Settings
from voltlib.server import clock_for

ORIGIN = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def test_now_is_origin_plus_scaled_wall_time() -> None:
    clock = ScaledClock(ORIGIN, 200.0, wall_start=time.time() - 10.0)
    elapsed = (clock.now() - ORIGIN).total_seconds()
    assert 2000.0 <= elapsed < 2000.0 + 200.0 * 5  # ten wall seconds ago, times 200


def test_simulated_is_exact_for_a_given_wall_time() -> None:
    clock = ScaledClock(ORIGIN, 50.0, wall_start=1_000_000.0)
    assert clock.simulated(1_000_000.0) == 0.0
    assert clock.simulated(1_000_036.0) == 1800.0  # 36 wall seconds at 50x: a 30-minute hold


def test_a_clock_built_from_the_description_agrees() -> None:
    server = ScaledClock.starting_now(200.0, ORIGIN)
    description = describe(server)
    assert description["factor"] == 200.0 and description["origin"] == "2026-03-02T07:00:00Z"
    simulator = ScaledClock.from_description(description)
    assert simulator == server  # same (origin, factor, wall_start)
    a, b = server.now(), simulator.now()
    assert abs((b - a).total_seconds()) < 200.0 * 1.0  # read one after the other: well within a wall second


def test_starting_now_starts_at_the_origin() -> None:
    clock = ScaledClock.starting_now(100.0, ORIGIN)
    assert ORIGIN <= clock.now() < ORIGIN + timedelta(seconds=100.0 * 5)
    assert ScaledClock.starting_now(1.0).now() - datetime.now(UTC) < timedelta(seconds=5)


def test_monotonic_runs_at_the_factor_and_never_goes_back() -> None:
    clock = ScaledClock.starting_now(100.0, ORIGIN)
    first = clock.monotonic()
    assert abs(first - ORIGIN.timestamp()) < 100.0 * 5
    wall = time.monotonic()
    while time.monotonic() - wall < 0.05:
        pass
    second = clock.monotonic()
    assert second - first >= 100.0 * 0.05 * 0.99


async def test_sleep_waits_simulated_seconds() -> None:
    clock = ScaledClock.starting_now(200.0, ORIGIN)
    before = clock.now()
    await asyncio.wait_for(clock.sleep(60.0), timeout=5.0)  # 0.3 wall seconds
    assert (clock.now() - before).total_seconds() >= 60.0 * 0.99
    await asyncio.wait_for(clock.sleep(-5.0), timeout=1.0)  # a past deadline does not wait


async def test_system_clock_is_the_wall_clock() -> None:
    clock = SystemClock()
    assert clock.factor == 1.0
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 5
    before = time.monotonic()
    await clock.sleep(0.01)
    assert time.monotonic() - before >= 0.009
    description = describe(clock)
    assert description["factor"] == 1.0
    assert abs(ScaledClock.from_description(description).now() - clock.now()) < timedelta(seconds=5)


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan"), float("inf"), 1001.0])
def test_bad_factors_are_refused(factor: float) -> None:
    with pytest.raises(ValueError, match="factor"):
        ScaledClock(ORIGIN, factor)


def test_naive_origin_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ScaledClock(datetime(2026, 3, 2, 7, 0), 10.0)


def test_period_keeps_a_wall_floor() -> None:
    assert period(SystemClock(), 5.0, 0.5) == 5.0
    assert period(ScaledClock.starting_now(200.0), 5.0, 0.5) == 100.0  # half a wall second at 200x


def test_settings_choose_the_clock() -> None:
    assert isinstance(clock_for(Settings()), SystemClock)
    scaled = clock_for(Settings(time_scale=200.0, time_origin=datetime(2026, 3, 2, 7, 0)))  # naive: UTC
    assert isinstance(scaled, ScaledClock) and scaled.factor == 200.0 and scaled.origin == ORIGIN
    with pytest.raises(ValueError):
        Settings(time_scale=0.5)
