"""Asyncio OCPP-J load generator for ``voltlib bench gateway``.

Every simulated charge point opens its own WebSocket to ``{url_base}/{cp_id}``
(subprotocol ``ocpp1.6`` or ``ocpp2.0.1`` as the plan says, optional HTTP Basic
auth ``cp_id:password``), sends BootNotification and a StatusNotification (2.0.1:
and a TransactionEvent(Started)), then waits until every charge point of the run
is connected.  Only then does the measurement window open:

* ``throughput``: each charge point sends meter values back to back (1.6
  MeterValues, 2.0.1 TransactionEvent(Updated)), one outstanding CALL per
  connection as OCPP-J requires, for ``duration_s``;
* ``soak``: each charge point sends Heartbeat every ``heartbeat_s`` and
  meter values every ``meter_s`` (first of each at a random offset), and holds
  its connection for ``duration_s``.

The client is aiohttp's WebSocket client.  It was picked by measurement
against :mod:`voltlib.bench.echo_server` on the 2-core benchmark machine:
aiohttp ~27k calls/s with the server pinned at ~95-100 % of its core,
``websockets`` 15-23k calls/s with the *client* pinned at ~98 % (the client
was the bottleneck), a hand-written callback-driven raw-socket client
25-30k calls/s (less user CPU than aiohttp but the same total, which is
dominated by the kernel's loopback TCP path).  ``workers > 1`` runs the load in
several processes and merges their results; it only helps on machines with
cores to spare beyond the server's.

The run is bounded: connecting gets ``ramp_timeout_s``, the window lasts
``duration_s``, CALLs still outstanding ``drain_timeout_s`` after the window
are abandoned (counted as ``unanswered``; charge points stuck elsewhere as
``stalled``), and every connection is closed.  Every connected charge point
ends up counted exactly once as held, disconnected, unanswered or stalled.
Only loopback targets are accepted.

The frames are in :mod:`voltlib.bench.frames_v16` and :mod:`voltlib.bench.frames_v201`,
what a process costs in :mod:`voltlib.bench.procstats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import queue
import time
from collections.abc import Sequence
from typing import Any

from voltlib.bench.load_plan import (
    DEFAULT_CP_ID_PREFIX,
    ConnectedHook,
    LoadPlan,
    LoadResult,
    Mode,
    OcppVersion,
    ProgressFn,
    WindowEndHook,
    _merge,
    _Partial,
    check_loopback_url,
    percentile,
)
from voltlib.bench.load_worker import _Worker
from voltlib.bench.procstats import raise_nofile_limit

__all__ = ["DEFAULT_CP_ID_PREFIX", "LoadPlan", "LoadResult", "Mode", "ProgressFn", "check_loopback_url", "percentile",
           "run_load", "run_plan"]

# --------------------------------------------------------------------------
# Running: one process or K worker processes
# --------------------------------------------------------------------------


def _split(n: int, k: int) -> list[tuple[int, int]]:
    base, extra = divmod(n, k)
    out: list[tuple[int, int]] = []
    lo = 0
    for i in range(k):
        hi = lo + base + (1 if i < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def _worker_process_main(
    url_base: str,
    plan: LoadPlan,
    lo: int,
    hi: int,
    ready_q: Any,
    go_evt: Any,
    result_q: Any,
    cpus: tuple[int, ...] | None,
) -> None:
    if cpus:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)
    raise_nofile_limit()

    async def body() -> _Partial:
        worker = _Worker(url_base, plan, lo, hi)
        worker.start()
        connected = await worker.wait_ready()
        ready_q.put(connected)
        go_timeout = plan.ramp_timeout_s + 120.0
        if not await asyncio.to_thread(go_evt.wait, go_timeout):
            for t in worker.tasks:
                t.cancel()
        worker.open_window()
        return await worker.finish()

    try:
        result = asyncio.run(body())
    except BaseException as exc:  # report instead of leaving the parent waiting
        result_q.put(("error", f"{type(exc).__name__}: {exc}"))
        raise
    result_q.put(("ok", result))


async def run_plan(
    url_base: str,
    plan: LoadPlan,
    *,
    on_connected: ConnectedHook | None = None,
    on_window_end: WindowEndHook | None = None,
    progress: ProgressFn | None = None,
    worker_cpus: Sequence[int] | None = None,
) -> LoadResult:
    """Run ``plan`` against ``url_base`` (``ws://127.0.0.1:P/ocpp``, no trailing cp id).

    ``on_connected(n_connected)`` runs after the ramp and before the window
    opens (sample server RSS there); ``on_window_end()`` right after the window
    closes, before the drain (sample server CPU there).  ``worker_cpus`` pins
    worker processes (only used when ``plan.workers > 1``).
    """
    check_loopback_url(url_base)
    nofile = raise_nofile_limit()
    say = progress or (lambda _msg: None)
    per_process = math.ceil(plan.n_charge_points / plan.workers)
    if per_process + 64 > nofile:
        say(f"warning: RLIMIT_NOFILE is {nofile}, fewer than {per_process} connections per process")
    if plan.workers == 1:
        worker = _Worker(url_base, plan, 0, plan.n_charge_points)
        worker.start()
        try:
            connected = await worker.wait_ready()
            say(f"connected {connected}/{plan.n_charge_points} in {worker.stats.ramp_s:.1f}s")
            if on_connected is not None:
                await on_connected(connected)
            worker.open_window()
            await asyncio.sleep(plan.duration_s)
            if on_window_end is not None:
                await on_window_end()
        finally:
            parts = [await worker.finish()]
        return _merge(url_base, plan, parts)
    return await _run_processes(url_base, plan, on_connected, on_window_end, say, worker_cpus)


async def _run_processes(
    url_base: str,
    plan: LoadPlan,
    on_connected: ConnectedHook | None,
    on_window_end: WindowEndHook | None,
    say: ProgressFn,
    worker_cpus: Sequence[int] | None,
) -> LoadResult:
    ctx = multiprocessing.get_context("spawn")
    ready_q = ctx.Queue()
    result_q = ctx.Queue()
    go_evt = ctx.Event()
    cpus = tuple(worker_cpus) if worker_cpus else None
    procs = [
        ctx.Process(
            target=_worker_process_main,
            args=(url_base, plan, lo, hi, ready_q, go_evt, result_q, cpus),
            name=f"voltlib-bench-load-{i}",
            daemon=True,
        )
        for i, (lo, hi) in enumerate(_split(plan.n_charge_points, plan.workers))
    ]
    for p in procs:
        p.start()
    parts: list[_Partial] = []
    try:
        connected = 0
        deadline = time.monotonic() + plan.ramp_timeout_s + 60.0
        for _ in procs:
            timeout = max(deadline - time.monotonic(), 0.1)
            try:
                connected += await asyncio.to_thread(ready_q.get, True, timeout)
            except queue.Empty:
                raise RuntimeError("load worker processes did not finish connecting") from None
        say(f"connected {connected}/{plan.n_charge_points} over {len(procs)} processes")
        if on_connected is not None:
            await on_connected(connected)
        go_evt.set()
        await asyncio.sleep(plan.duration_s)
        if on_window_end is not None:
            await on_window_end()
        deadline = time.monotonic() + plan.drain_timeout_s + 30.0
        for _ in procs:
            timeout = max(deadline - time.monotonic(), 0.1)
            try:
                status, payload = await asyncio.to_thread(result_q.get, True, timeout)
            except queue.Empty:
                raise RuntimeError("load worker processes did not report") from None
            if status != "ok":
                raise RuntimeError(f"load worker failed: {payload}")
            parts.append(payload)
    finally:
        go_evt.set()
        for p in procs:
            await asyncio.to_thread(p.join, 10.0)
            if p.is_alive():
                p.terminate()
                await asyncio.to_thread(p.join, 5.0)
    return _merge(url_base, plan, parts)


async def run_load(
    url_base: str,
    n_charge_points: int,
    mode: Mode = "throughput",
    duration_s: float = 10.0,
    *,
    password: str | None = None,
    workers: int = 1,
    heartbeat_s: float = 60.0,
    meter_s: float = 30.0,
    cp_id_prefix: str = DEFAULT_CP_ID_PREFIX,
    connect_concurrency: int = 200,
    ramp_timeout_s: float = 120.0,
    call_timeout_s: float = 30.0,
    drain_timeout_s: float = 5.0,
    spread_source_addrs: bool | None = None,
    seed: int = 0,
    ocpp: OcppVersion = "1.6",
    on_connected: ConnectedHook | None = None,
    on_window_end: WindowEndHook | None = None,
    progress: ProgressFn | None = None,
) -> LoadResult:
    """Convenience wrapper: build a :class:`LoadPlan` and :func:`run_plan` it."""
    plan = LoadPlan(
        n_charge_points=n_charge_points,
        mode=mode,
        duration_s=duration_s,
        password=password,
        workers=workers,
        heartbeat_s=heartbeat_s,
        meter_s=meter_s,
        cp_id_prefix=cp_id_prefix,
        connect_concurrency=connect_concurrency,
        ramp_timeout_s=ramp_timeout_s,
        call_timeout_s=call_timeout_s,
        drain_timeout_s=drain_timeout_s,
        spread_source_addrs=spread_source_addrs,
        seed=seed,
        ocpp=ocpp,
    )
    return await run_plan(
        url_base, plan, on_connected=on_connected, on_window_end=on_window_end, progress=progress
    )
