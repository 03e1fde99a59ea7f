"""Run the same OCPP load against several servers and compare them.

Each server is described by a :class:`ServerSpec` (argv, env, port, URL base
and an optional async ``prepare`` callback, e.g. to register the charge point
ids and password with voltlib).  :func:`compare_servers` starts each one as a
subprocess in its own session, waits until its port accepts, runs the load
(:func:`voltlib.bench.load.run_plan`), samples the server's RSS and CPU time
from ``/proc``, stops it (SIGTERM, then SIGKILL, to its process group) and
returns one :class:`ServerRun` per server.  :func:`render_table` prints them
with the ratios voltlib / baseline and voltlib / ceiling.

``python -m voltlib.bench.compare --servers ceiling,baseline -n 100`` runs the
two reference servers; ``--cmd 'NAME=ARGV WITH {port}'`` adds another one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from voltlib.bench.load import LoadPlan, LoadResult, ProgressFn, check_loopback_url, run_plan
from voltlib.bench.procstats import read_system_busy_seconds, read_tree_cpu_seconds, read_tree_rss_bytes

SUBJECT = "voltlib"
BASELINE = "baseline"
CEILING = "ceiling"


@dataclass
class ServerSpec:
    """How to start one server and where its charge points connect."""

    name: str
    argv: Sequence[str]
    port: int
    #: Charge points connect to ``{url_base}/{cp_id}``, e.g. ``ws://127.0.0.1:9000/ocpp``.
    url_base: str
    #: Added to (and overriding) this process's environment.
    env: Mapping[str, str] | None = None
    #: ``await prepare(spec, cp_ids, password)`` after the port accepts, before the load.
    prepare: PrepareFn | None = None
    cwd: str | None = None
    host: str = "127.0.0.1"
    startup_timeout_s: float = 30.0
    stop_timeout_s: float = 10.0
    #: Pin the server (and the processes it forks) to these CPUs.
    cpus: Sequence[int] | None = None


PrepareFn = Callable[[ServerSpec, Sequence[str], str | None], Awaitable[None]]


@dataclass
class ServerRun:
    """One server's outcome.  ``load`` is None when the server failed before the load ran."""

    name: str
    load: LoadResult | None = None
    rss_idle_bytes: int = 0
    rss_connected_bytes: int = 0
    server_cpu_s: float = 0.0
    #: CPU used in the window by the load generator (this process and its workers).
    client_cpu_s: float = 0.0
    #: CPU used in the window by everything else on the machine: noise if not ~0.
    other_cpu_s: float = 0.0
    error: str | None = None
    log_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mem_per_conn_bytes(self) -> float | None:
        """(RSS with every charge point connected - RSS idle) / connections."""
        if self.load is None or self.load.connected == 0 or not self.rss_connected_bytes:
            return None
        return (self.rss_connected_bytes - self.rss_idle_bytes) / self.load.connected

    @property
    def cpu_us_per_call(self) -> float | None:
        """Server CPU time (user + system, whole process tree) per answered CALL in the window."""
        if self.load is None or self.load.calls == 0:
            return None
        return self.server_cpu_s / self.load.calls * 1e6

    @property
    def cpu_util(self) -> float | None:
        """Server CPU time / window wall time (1.0 = one core busy)."""
        return self._per_window(self.server_cpu_s)

    @property
    def client_util(self) -> float | None:
        """Load generator CPU time / window wall time."""
        return self._per_window(self.client_cpu_s)

    @property
    def other_util(self) -> float | None:
        """CPU time of all other processes / window wall time."""
        return self._per_window(self.other_cpu_s)

    def _per_window(self, seconds: float) -> float | None:
        if self.load is None or self.load.window_s <= 0:
            return None
        return seconds / self.load.window_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "error": self.error,
            "log_path": self.log_path,
            "rss_idle_bytes": self.rss_idle_bytes,
            "rss_connected_bytes": self.rss_connected_bytes,
            "mem_per_conn_bytes": self.mem_per_conn_bytes,
            "server_cpu_s": self.server_cpu_s,
            "cpu_us_per_call": self.cpu_us_per_call,
            "cpu_util": self.cpu_util,
            "client_cpu_s": self.client_cpu_s,
            "client_util": self.client_util,
            "other_cpu_s": self.other_cpu_s,
            "other_util": self.other_util,
            "load": self.load.as_dict() if self.load else None,
            **self.extra,
        }


class ServerStartError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# Reference servers
# --------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the usual bind-to-0 trick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ceiling_spec(port: int | None = None, python: str = sys.executable) -> ServerSpec:
    """The aiohttp echo server (:mod:`voltlib.bench.echo_server`)."""
    port = port or free_port()
    return ServerSpec(
        name=CEILING,
        argv=[python, "-m", "voltlib.bench.echo_server", "--host", "127.0.0.1", "--port", str(port)],
        port=port,
        url_base=f"ws://127.0.0.1:{port}/ocpp",
    )


def baseline_spec(
    port: int | None = None, python: str = sys.executable, log_level: str = "WARNING", ocpp: str = "1.6"
) -> ServerSpec:
    """The ocpp-package server (:mod:`voltlib.bench.baseline_ocpp`) speaking ``ocpp``."""
    port = port or free_port()
    return ServerSpec(
        name=BASELINE,
        argv=[
            python, "-m", "voltlib.bench.baseline_ocpp",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", log_level, "--ocpp", ocpp,
        ],
        port=port,
        url_base=f"ws://127.0.0.1:{port}/ocpp",
    )


# --------------------------------------------------------------------------
# Running one server
# --------------------------------------------------------------------------


def _open_log(path: str) -> IO[bytes]:
    return open(path, "wb")  # handed to the subprocess, closed by run_server


def _log_tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


async def settled_rss(pid: int, *, interval: float = 0.5, timeout: float = 30.0) -> int:
    """The server's memory once start-up is over: sampled until it stops growing (within 1 %).
    One port open is not the end of start-up: with several nodes sharing a port, the others may
    still be importing, and their start-up memory would be counted as the connections'."""
    previous = read_tree_rss_bytes(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(interval)
        current = read_tree_rss_bytes(pid)
        if current <= previous * 1.01:
            return current
        previous = current
    return previous


async def wait_port(
    host: str, port: int, timeout_s: float, proc: asyncio.subprocess.Process | None = None
) -> None:
    """Return once ``host:port`` accepts a TCP connection; raise ServerStartError otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.returncode is not None:
            raise ServerStartError(f"server exited with code {proc.returncode} before listening")
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
        except (OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise ServerStartError(f"{host}:{port} did not accept within {timeout_s:.0f}s") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def stop_process_group(proc: asyncio.subprocess.Process, timeout_s: float = 10.0) -> None:
    """SIGTERM the group ``proc`` leads (it was started in a new session), then SIGKILL."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            pass
    # Children may outlive a shell wrapper: make sure the whole group is gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5.0)


async def run_server(
    spec: ServerSpec,
    plan: LoadPlan,
    *,
    log_dir: str,
    progress: ProgressFn | None = None,
    client_cpus: Sequence[int] | None = None,
) -> ServerRun:
    """Start ``spec``, load it with ``plan``, stop it.  Never raises for server failures."""
    say = progress or (lambda _msg: None)
    check_loopback_url(spec.url_base)
    log_path = os.path.join(log_dir, f"{spec.name}.log")
    run = ServerRun(name=spec.name, log_path=log_path)
    env = dict(os.environ)
    if spec.env:
        env.update(spec.env)
    log = _open_log(log_path)
    proc: asyncio.subprocess.Process | None = None
    try:
        say(f"[{spec.name}] starting: {shlex.join(spec.argv)}")
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=spec.cwd,
            start_new_session=True,
        )
        if spec.cpus:
            os.sched_setaffinity(proc.pid, spec.cpus)
        await wait_port(spec.host, spec.port, spec.startup_timeout_s, proc)
        if spec.prepare is not None:
            say(f"[{spec.name}] preparing {plan.n_charge_points} charge points")
            await spec.prepare(spec, plan.cp_ids(), plan.password)
        pid = proc.pid
        run.rss_idle_bytes = await settled_rss(pid)
        me = os.getpid()
        at_start = (0.0, 0.0, 0.0)  # server tree, this process's tree, whole machine

        async def on_connected(_n: int) -> None:
            nonlocal at_start
            run.rss_connected_bytes = read_tree_rss_bytes(pid)
            at_start = (read_tree_cpu_seconds(pid), read_tree_cpu_seconds(me), read_system_busy_seconds())

        async def on_window_end() -> None:
            server = read_tree_cpu_seconds(pid) - at_start[0]
            mine = read_tree_cpu_seconds(me) - at_start[1]  # includes the server: it is our child
            busy = read_system_busy_seconds() - at_start[2]
            run.server_cpu_s = server
            run.client_cpu_s = max(mine - server, 0.0)
            run.other_cpu_s = max(busy - mine, 0.0)

        say(f"[{spec.name}] {plan.mode}: {plan.n_charge_points} charge points, {plan.duration_s:g}s")
        run.load = await run_plan(
            spec.url_base,
            plan,
            on_connected=on_connected,
            on_window_end=on_window_end,
            progress=lambda msg: say(f"[{spec.name}] {msg}"),
            worker_cpus=client_cpus,
        )
        if proc.returncode is not None:
            run.error = f"server exited with code {proc.returncode} during the run"
    except (ServerStartError, OSError, RuntimeError, ValueError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        tail = _log_tail(log_path)
        if tail:
            run.error += "\n--- server log tail ---\n" + tail
    finally:
        if proc is not None:
            await stop_process_group(proc, spec.stop_timeout_s)
        log.close()
    return run


async def compare_servers(
    specs: Sequence[ServerSpec],
    plan: LoadPlan,
    *,
    log_dir: str | None = None,
    progress: ProgressFn | None = None,
    client_cpus: Sequence[int] | None = None,
    pause_s: float = 1.0,
) -> list[ServerRun]:
    """Run the same ``plan`` against each server in turn (never concurrently).

    ``client_cpus`` pins this process (and load worker processes) for the
    duration of the comparison; the previous affinity is restored afterwards.
    """
    log_dir = log_dir or tempfile.mkdtemp(prefix="voltlib-bench-")
    previous_affinity = os.sched_getaffinity(0)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    runs: list[ServerRun] = []
    try:
        for i, spec in enumerate(specs):
            if i:
                await asyncio.sleep(pause_s)  # let the previous server's sockets go
            runs.append(
                await run_server(spec, plan, log_dir=log_dir, progress=progress, client_cpus=client_cpus)
            )
    finally:
        if client_cpus:
            os.sched_setaffinity(0, previous_affinity)
    return runs


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"x{a / b:.2f}"


def render_table(
    runs: Sequence[ServerRun],
    *,
    subject: str = SUBJECT,
    baseline: str = BASELINE,
    ceiling: str = CEILING,
) -> str:
    """Plain-text table of the runs plus ratio lines (subject / baseline, subject / ceiling)."""
    headers = (
        "server", "conns", "held", "calls/s", "p50 ms", "p99 ms", "max ms",
        "errors", "KiB/conn", "srv us/call", "srv cpu", "load cpu", "other cpu",
    )
    rows: list[tuple[str, ...]] = []
    for r in runs:
        ld = r.load
        if ld is None:
            rows.append((r.name, "-", "-", "FAILED", *("-" for _ in headers[4:])))
            continue
        mem = r.mem_per_conn_bytes
        util = r.cpu_util
        rows.append(
            (
                r.name,
                str(ld.connected),
                str(ld.connections_held),
                f"{ld.calls_per_s:,.0f}",
                f"{ld.latency_p50_ms:.2f}",
                f"{ld.latency_p99_ms:.2f}",
                f"{ld.latency_max_ms:.1f}",
                str(ld.errors),
                _fmt(mem / 1024 if mem is not None else None, ".1f"),
                _fmt(r.cpu_us_per_call, ".0f"),
                _pct(util),
                _pct(r.client_util),
                _pct(r.other_util),
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest))

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]

    by_name = {r.name: r for r in runs if r.load is not None}
    pairs = [(subject, baseline), (subject, ceiling)]
    if subject not in by_name:
        pairs = [(baseline, ceiling)]
    ratio_lines: list[str] = []
    for num, den in pairs:
        a, b = by_name.get(num), by_name.get(den)
        if a is None or b is None or a.load is None or b.load is None:
            continue
        ratio_lines.append(
            f"{num} / {den}: calls/s {_ratio(a.load.calls_per_s, b.load.calls_per_s)}, "
            f"p50 {_ratio(a.load.latency_p50_ms, b.load.latency_p50_ms)}, "
            f"p99 {_ratio(a.load.latency_p99_ms, b.load.latency_p99_ms)}, "
            f"mem/conn {_ratio(a.mem_per_conn_bytes, b.mem_per_conn_bytes)}, "
            f"cpu/call {_ratio(a.cpu_us_per_call, b.cpu_us_per_call)}"
        )
    if ratio_lines:
        out.append("")
        out += ratio_lines
    for r in runs:
        if r.load is not None and r.load.errors:
            out.append(f"{r.name} errors: {_error_kinds(r.load)}")
    failed = [r for r in runs if r.error]
    for r in failed:
        out.append(f"{r.name}: {r.error}")
    return "\n".join(out)


def _error_kinds(load: LoadResult) -> str:
    counts = {"connect failures": load.connect_failures, "boot rejected": load.boot_rejected,
              "disconnects": load.disconnects, "call errors": load.call_errors, "timeouts": load.timeouts,
              "unanswered": load.unanswered, "stalled": load.stalled, "unexpected frames": load.unexpected_frames}
    kinds = [f"{n:,} {kind}" for kind, n in counts.items() if n]
    kinds += [f"{n:,}× {reason}" for reason, n in sorted(load.failure_reasons.items(), key=lambda kv: -kv[1])[:5]]
    kinds += [f"{n:,}× {code}" for code, n in sorted(load.call_error_codes.items(), key=lambda kv: -kv[1])[:5]]
    return "; ".join(kinds)


# --------------------------------------------------------------------------
# Command line (for running the reference servers by hand)
# --------------------------------------------------------------------------


def _custom_spec(text: str, python: str) -> ServerSpec:
    """``NAME=ARGV`` where ARGV may contain ``{port}`` and ``{python}``; URL base ws://127.0.0.1:{port}/ocpp."""
    name, sep, command = text.partition("=")
    if not sep or not name or not command:
        raise argparse.ArgumentTypeError(f"--cmd wants NAME=COMMAND, got {text!r}")
    port = free_port()
    argv = [a.format(port=port, python=python) for a in shlex.split(command)]
    return ServerSpec(name=name, argv=argv, port=port, url_base=f"ws://127.0.0.1:{port}/ocpp")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare OCPP servers under the same loopback load.")
    parser.add_argument("--servers", default="ceiling,baseline", help="comma list of ceiling,baseline")
    parser.add_argument("--cmd", action="append", default=[], help="NAME=COMMAND with {port}")
    parser.add_argument("-n", "--charge-points", type=int, default=100)
    parser.add_argument("--mode", choices=("throughput", "soak"), default="throughput")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--heartbeat", type=float, default=60.0)
    parser.add_argument("--meter", type=float, default=30.0)
    parser.add_argument("--password", default=None)
    parser.add_argument("--baseline-log-level", default="WARNING")
    parser.add_argument(
        "--pin", action="store_true", help="servers on CPU 0, load generator on the other CPUs"
    )
    parser.add_argument("--json", dest="json_path", default=None, help="also write results here")
    args = parser.parse_args(argv)

    python = sys.executable
    specs: list[ServerSpec] = []
    for name in filter(None, (s.strip() for s in str(args.servers).split(","))):
        if name == CEILING:
            specs.append(ceiling_spec(python=python))
        elif name == BASELINE:
            specs.append(baseline_spec(python=python, log_level=args.baseline_log_level))
        else:
            parser.error(f"unknown server {name!r} (use --cmd for others)")
    specs += [_custom_spec(c, python) for c in args.cmd]
    client_cpus: list[int] | None = None
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            parser.error("--pin needs at least 2 CPUs")
        for s in specs:
            s.cpus = cpus[:1]
        client_cpus = cpus[1:]
    plan = LoadPlan(
        n_charge_points=args.charge_points,
        mode=args.mode,
        duration_s=args.duration,
        workers=args.workers,
        heartbeat_s=args.heartbeat,
        meter_s=args.meter,
        password=args.password,
    )
    runs = asyncio.run(
        compare_servers(
            specs, plan, progress=lambda m: print(m, file=sys.stderr, flush=True), client_cpus=client_cpus
        )
    )
    print(render_table(runs))
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump([r.as_dict() for r in runs], fh, indent=2)
    return 0 if all(r.error is None for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
