"""What an operator watches: metrics for Prometheus (``metrics.py``, counted on the hot path in plain
ints by ``counters.py``), structured logs (``logs.py``) and readiness (``readiness.py``).
See docs/operations.md."""
