"""Short garbage-collection pauses while tens of thousands of charge points are connected.

CPython's full collection (generation 2) walks every tracked object. Holding 20,000 charge points
is ~1.8 million objects, and each full collection then stops the event loop for up to ~1.6 s
(measured, docs/benchmarks.md): every charge point sees it as latency. The collector starts one
whenever long-lived objects have grown by a quarter, which is all the time while stations
connect. Most of those objects live as long as their connection, so voltlib moves survivors out
of the collector's sight at a fixed interval (``gc.freeze``) and, less often, brings them back for
one full collection that reclaims cyclic garbage among them (a closed connection's tasks and
futures). Reference counting still frees frozen objects as soon as nothing refers to them.

Wall clock on purpose, never voltlib's injected (possibly simulated) clock: this is about the
process's memory and pauses, not about the city.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class GcPolicy:
    freeze_interval: float  # seconds between freezes; 0 leaves the collector as CPython sets it
    full_interval: float  # seconds between full collections of everything, frozen objects included
    last_full: float = field(default_factory=time.monotonic)

    def tick(self, now: float) -> float | None:
        """Freeze the survivors; first run the full collection if it is due. Returns its pause (s)."""
        pause = None
        if now - self.last_full >= self.full_interval:
            gc.unfreeze()
            started = time.perf_counter()
            collected = gc.collect()
            pause = time.perf_counter() - started
            self.last_full = now
            log.info("full garbage collection: %d objects freed in %.0f ms", collected, pause * 1000)
        gc.freeze()
        return pause
