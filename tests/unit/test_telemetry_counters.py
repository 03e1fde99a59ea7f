"""The plain-int counters behind /metrics: Prometheus bucket semantics (a value equal to a bound is
in that bucket, buckets cumulate, +Inf holds everything) and bounded action labels."""

from __future__ import annotations

from voltlib.telemetry.counters import CallStats, Histogram


def test_histogram_buckets_are_cumulative_with_le_semantics() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(value)
    assert histogram.buckets() == [("0.1", 2.0), ("1.0", 4.0), ("+Inf", 5.0)]
    assert histogram.count == 5 and histogram.sum == 8.65
    assert histogram.merged(histogram).buckets()[-1] == ("+Inf", 10.0)


def test_calls_errors_and_labels_a_peer_cannot_multiply() -> None:
    stats = CallStats()
    stats.answered("Heartbeat", '[3,"1",{"currentTime":"2026-01-01T00:00:00Z"}]', 0.002)
    stats.answered("Authorize", '[4,"2","InternalError","failed",{}]', 0.3)
    stats.violation("MadeUpAction-1", "NotImplemented")
    stats.violation("MadeUpAction-2", "NotImplemented")
    stats.violation("StatusNotification", "FormationViolation")
    stats.retransmitted("Heartbeat")
    assert stats.calls == {("Heartbeat", "result"): 1, ("Authorize", "error"): 1, ("other", "violation"): 2,
                           ("StatusNotification", "violation"): 1, ("Heartbeat", "retransmission"): 1}
    assert stats.errors == {"InternalError": 1, "NotImplemented": 2, "FormationViolation": 1}
    assert set(stats.latency) == {"Heartbeat", "Authorize"} and stats.latency["Authorize"].count == 1
