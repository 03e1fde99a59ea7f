"""Counters kept in plain ints on the hot path, read by the Prometheus collector at scrape time.

Calling a ``prometheus_client`` metric per OCPP message takes a lock and walks its label cache
each time; a dict increment here costs a fraction of that, and the collector turns these numbers
into metric families only when Prometheus asks (``voltlib.telemetry.metrics``). Each object is
written by one thread only (the event loop, or one writer thread): no lock, no lost increment.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

import msgspec

from voltlib.ocpp import versions

# Bucket upper bounds (Prometheus ``le``): seconds of an OCPP call, of a group commit, of a rebuild.
CALL_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WORK_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

# Action names a label may take: a charge point's garbage action must not make a new time series.
KNOWN_ACTIONS = frozenset(versions.requests("1.6")) | frozenset(versions.requests("2.0.1"))
OTHER = "other"
_error_reply = msgspec.json.Decoder(list[object])


class Histogram:
    """Observations counted per bucket; cumulated into Prometheus buckets at scrape time."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: a value equal to a bound is in its bucket
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``(le, count)`` pairs, ``+Inf`` last, as ``HistogramMetricFamily`` wants them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(repr, map(float, self.bounds)), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out

    def merged(self, other: Histogram) -> Histogram:
        total = Histogram(self.bounds)
        total.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        total.sum = self.sum + other.sum
        return total


class CallStats:
    """Charge points' calls on this node, counted by the connections (event-loop thread only)."""

    __slots__ = ("calls", "errors", "latency")

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], int] = {}  # (action, outcome) -> count
        self.errors: dict[str, int] = {}  # CallError code we answered -> count
        self.latency: dict[str, Histogram] = {}  # action -> seconds from frame read to answer sent

    def answered(self, action: str, reply: str, seconds: float) -> None:
        """A call answered: ``result`` or ``error`` (the code read from the reply, errors being rare)."""
        if reply.startswith("[4"):
            outcome = "error"
            self._error(_code_of(reply))
        else:
            outcome = "result"
        self._count(action, outcome)
        latency = self.latency.get(action)
        if latency is None:
            latency = self.latency[action] = Histogram(CALL_SECONDS)
        latency.observe(seconds)

    def retransmitted(self, action: str) -> None:
        self._count(action, "retransmission")

    def violation(self, action: str | None, code: str, outcome: str = "violation") -> None:
        """A frame that broke the protocol (or that we failed to read: ``outcome="failed"``); its
        action, if any, is the peer's word: bounded to the actions OCPP knows."""
        self._count(action if action in KNOWN_ACTIONS else OTHER, outcome)
        self._error(code)

    def _count(self, action: str, outcome: str) -> None:
        key = (action, outcome)
        self.calls[key] = self.calls.get(key, 0) + 1

    def _error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


class WriterStats:
    """One group-commit writer thread's batches (written by that thread only)."""

    __slots__ = ("batch_size", "commit_seconds", "ops")

    def __init__(self) -> None:
        self.batch_size = Histogram(BATCH_SIZES)
        self.commit_seconds = Histogram(COMMIT_SECONDS)
        self.ops = 0

    def batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.commit_seconds.observe(seconds)
        self.ops += size


def _code_of(reply: str) -> str:
    try:
        frame = _error_reply.decode(reply)
        return str(frame[2]) if len(frame) > 2 else OTHER
    except msgspec.DecodeError:
        return OTHER
