"""Injectable time, so the simulator can run voltlib's clock faster than the wall clock.

Domain and service time (timestamps, holds, timers, detector windows) comes from a :class:`Clock`;
waits between timer ticks go through ``clock.sleep(sim_seconds)``. Transport time (socket
timeouts, WebSocket pings, rate limiting, caches, garbage collection) stays on the wall clock:
it is about the process and its peers, not about the city. docs/simulator.md lists which is which.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

MAX_FACTOR = 1000.0  # beyond it a wall millisecond is more than a simulated second: timers get coarse


class Clock(Protocol):
    """Simulated or real time. ``factor`` is simulated seconds per wall second (1 for real time)."""

    @property
    def factor(self) -> float: ...

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The wall clock."""

    @property
    def factor(self) -> float:
        return 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


@dataclass(frozen=True)
class ScaledClock:
    """Simulated time running ``factor`` times faster than the wall clock:
    ``now = origin + (wall − wall_start) × factor``.

    Everything follows from ``(origin, wall_start, factor)``, with ``wall_start`` in Unix seconds of
    the wall clock, so another process building a ScaledClock from the same three values (e.g. read
    from ``GET /api/v1/clock``) reads the same simulated time. ``monotonic`` runs at the same rate and
    equals ``now().timestamp()`` when the clock is made, but never goes back if the wall clock is set.
    """

    origin: datetime
    factor: float
    wall_start: float = field(default_factory=time.time)
    _mono_start: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.origin.tzinfo is None:
            raise ValueError("origin must be timezone-aware")
        if not (math.isfinite(self.factor) and 0 < self.factor <= MAX_FACTOR):
            raise ValueError(f"factor must be in (0, {MAX_FACTOR:g}], not {self.factor}")
        if not math.isfinite(self.wall_start):
            raise ValueError("wall_start must be a finite Unix time")
        # the monotonic reading that corresponds to wall_start, taken once
        object.__setattr__(self, "_mono_start", time.monotonic() - (time.time() - self.wall_start))

    @classmethod
    def starting_now(cls, factor: float, origin: datetime | None = None) -> ScaledClock:
        """Simulated time starts at ``origin`` (default: the wall time now) at this instant."""
        wall = time.time()
        return cls(origin or datetime.fromtimestamp(wall, UTC), factor, wall)

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> ScaledClock:
        """The clock another process described with :meth:`describe` (``GET /api/v1/clock``)."""
        origin = datetime.fromisoformat(str(description["origin"]).replace("Z", "+00:00"))
        return cls(origin, float(description["factor"]), float(description["wall_start"]))

    def describe(self) -> dict[str, Any]:
        return {"now": _iso(self.now()), "factor": self.factor, "origin": _iso(self.origin),
                "wall_start": self.wall_start}

    def simulated(self, wall_seconds: float) -> float:
        """Simulated seconds elapsed since ``origin`` at Unix wall time ``wall_seconds``."""
        return (wall_seconds - self.wall_start) * self.factor

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=self.simulated(time.time()))

    def monotonic(self) -> float:
        return self.origin.timestamp() + (time.monotonic() - self._mono_start) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.factor)


def describe(clock: Clock) -> dict[str, Any]:
    """What ``GET /api/v1/clock`` answers, for any clock (the wall clock is factor 1 from now)."""
    if isinstance(clock, ScaledClock):
        return clock.describe()
    wall = time.time()
    now = datetime.fromtimestamp(wall, UTC)
    return {"now": _iso(clock.now()), "factor": clock.factor, "origin": _iso(now), "wall_start": wall}


def period(clock: Clock, seconds: float, min_wall_seconds: float) -> float:
    """A timer period in simulated seconds: ``seconds``, but never shorter than ``min_wall_seconds``
    of wall time, so a high factor makes timers coarser rather than the process busier."""
    return max(seconds, min_wall_seconds * clock.factor)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
