"""What one load run of ``voltlib bench gateway`` is (:class:`LoadPlan`), what came of it
(:class:`LoadResult`, merged from each process's :class:`_Partial`), and the loopback-only target
checks. The charge points themselves are in :mod:`voltlib.bench.load_worker`, the runs in
:mod:`voltlib.bench.load`."""

from __future__ import annotations

import ipaddress
import math
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from voltlib.bench import frames_v16, frames_v201

Mode = Literal["throughput", "soak"]
OcppVersion = Literal["1.6", "2.0.1"]
FRAMES = {"1.6": frames_v16, "2.0.1": frames_v201}  # the frames each version's charge points send
_decode = msgspec.json.decode

#: Charge point ids: ``f"{cp_id_prefix}{index:05d}"``.
DEFAULT_CP_ID_PREFIX = "BENCH-"

_SPREAD_AUTO_THRESHOLD = 1000
_SOURCE_ADDR_COUNT = 253  # 127.0.0.2 .. 127.0.0.254

ProgressFn = Callable[[str], None]
ConnectedHook = Callable[[int], Awaitable[None]]
WindowEndHook = Callable[[], Awaitable[None]]


# --------------------------------------------------------------------------
# Plan and result
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """Everything that defines one load run, except the target URL."""

    n_charge_points: int
    mode: Mode = "throughput"
    duration_s: float = 10.0
    password: str | None = None
    workers: int = 1
    cp_id_prefix: str = DEFAULT_CP_ID_PREFIX
    heartbeat_s: float = 60.0
    meter_s: float = 30.0
    connect_concurrency: int = 200
    connect_timeout_s: float = 10.0
    ramp_timeout_s: float = 120.0
    call_timeout_s: float = 30.0
    drain_timeout_s: float = 5.0
    #: None: spread over 127.0.0.2..254 when n_charge_points > 1000.
    spread_source_addrs: bool | None = None
    seed: int = 0
    #: 1.6: MeterValues; 2.0.1: TransactionEvent(Updated) with the same meter values (frames_v201.py).
    ocpp: OcppVersion = "1.6"

    def __post_init__(self) -> None:
        if self.n_charge_points < 1:
            raise ValueError("n_charge_points must be >= 1")
        if self.mode not in ("throughput", "soak"):
            raise ValueError(f"unknown mode {self.mode!r}")
        if not 0 < self.duration_s <= 24 * 3600:
            raise ValueError("duration_s must be in (0, 86400]")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.heartbeat_s <= 0 or self.meter_s <= 0:
            raise ValueError("heartbeat_s and meter_s must be > 0")
        if self.connect_concurrency < 1:
            raise ValueError("connect_concurrency must be >= 1")
        if self.ocpp not in FRAMES:
            raise ValueError(f"unknown OCPP version {self.ocpp!r}")

    def cp_id(self, index: int) -> str:
        return f"{self.cp_id_prefix}{index:05d}"

    def cp_ids(self) -> list[str]:
        return [self.cp_id(i) for i in range(self.n_charge_points)]


@dataclass
class LoadResult:
    """Merged outcome of one run.  Latencies are in milliseconds."""

    mode: Mode
    url_base: str
    n_charge_points: int
    workers: int
    window_s: float
    ramp_s: float
    connected: int
    connect_failures: int
    boot_rejected: int
    connections_held: int
    disconnects: int
    calls: int
    calls_per_s: float
    late_calls: int
    call_errors: int
    timeouts: int
    unanswered: int
    stalled: int
    unexpected_frames: int
    server_calls: int
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    latency_mean_ms: float
    boot_p50_ms: float
    boot_p99_ms: float
    failure_reasons: dict[str, int] = field(default_factory=dict)
    call_error_codes: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        """Everything that went wrong with CALLs and connections."""
        return (
            self.connect_failures
            + self.boot_rejected
            + self.disconnects
            + self.call_errors
            + self.timeouts
            + self.unanswered
            + self.stalled
            + self.unexpected_frames
        )

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items()}
        out["errors"] = self.errors
        return out


@dataclass
class _Partial:
    """One worker's raw counts; picklable so worker processes can return it."""

    connected: int = 0
    connect_failures: int = 0
    boot_rejected: int = 0
    held: int = 0
    disconnects: int = 0
    calls: int = 0
    late_calls: int = 0
    call_errors: int = 0
    timeouts: int = 0
    unanswered: int = 0
    stalled: int = 0
    unexpected: int = 0
    server_calls: int = 0
    window_s: float = 0.0
    ramp_s: float = 0.0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    boot_latencies: array[float] = field(default_factory=lambda: array("d"))
    failure_reasons: Counter[str] = field(default_factory=Counter)
    call_error_codes: Counter[str] = field(default_factory=Counter)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _merge(url_base: str, plan: LoadPlan, parts: Sequence[_Partial]) -> LoadResult:
    lat: list[float] = []
    boot: list[float] = []
    reasons: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for p in parts:
        lat.extend(p.latencies)
        boot.extend(p.boot_latencies)
        reasons.update(p.failure_reasons)
        codes.update(p.call_error_codes)
    lat.sort()
    boot.sort()
    window = max((p.window_s for p in parts), default=0.0)
    calls = sum(p.calls for p in parts)
    return LoadResult(
        mode=plan.mode,
        url_base=url_base,
        n_charge_points=plan.n_charge_points,
        workers=len(parts),
        window_s=window,
        ramp_s=max((p.ramp_s for p in parts), default=0.0),
        connected=sum(p.connected for p in parts),
        connect_failures=sum(p.connect_failures for p in parts),
        boot_rejected=sum(p.boot_rejected for p in parts),
        connections_held=sum(p.held for p in parts),
        disconnects=sum(p.disconnects for p in parts),
        calls=calls,
        calls_per_s=calls / window if window > 0 else 0.0,
        late_calls=sum(p.late_calls for p in parts),
        call_errors=sum(p.call_errors for p in parts),
        timeouts=sum(p.timeouts for p in parts),
        unanswered=sum(p.unanswered for p in parts),
        stalled=sum(p.stalled for p in parts),
        unexpected_frames=sum(p.unexpected for p in parts),
        server_calls=sum(p.server_calls for p in parts),
        latency_p50_ms=percentile(lat, 50) * 1e3,
        latency_p90_ms=percentile(lat, 90) * 1e3,
        latency_p99_ms=percentile(lat, 99) * 1e3,
        latency_max_ms=(lat[-1] * 1e3) if lat else 0.0,
        latency_mean_ms=(sum(lat) / len(lat) * 1e3) if lat else 0.0,
        boot_p50_ms=percentile(boot, 50) * 1e3,
        boot_p99_ms=percentile(boot, 99) * 1e3,
        failure_reasons=dict(reasons.most_common(10)),
        call_error_codes=dict(codes.most_common(10)),
    )


# --------------------------------------------------------------------------
# Target checks
# --------------------------------------------------------------------------


def check_loopback_url(url_base: str) -> str:
    """Return the host of ``url_base``; raise ValueError unless it is ws:// on loopback."""
    parts = urlsplit(url_base)
    if parts.scheme != "ws":
        raise ValueError(f"only ws:// URLs are supported, got {url_base!r}")
    host = parts.hostname or ""
    if host == "localhost":
        return host
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"load target must be a loopback address, got {host!r}") from None
    if not addr.is_loopback:
        raise ValueError(f"load target must be a loopback address, got {host!r}")
    return host


def _spread_enabled(plan: LoadPlan, host: str) -> bool:
    try:
        v4 = ipaddress.ip_address(host).version == 4
    except ValueError:
        v4 = False  # "localhost" may resolve to ::1: binding 127.0.0.x would fail
    if plan.spread_source_addrs is None:
        return v4 and plan.n_charge_points > _SPREAD_AUTO_THRESHOLD
    if plan.spread_source_addrs and not v4:
        raise ValueError("spreading source addresses needs an IPv4 loopback literal target")
    return plan.spread_source_addrs


def source_addr(index: int) -> str:
    """Source address for charge point ``index`` when spreading: 127.0.0.2..254."""
    return f"127.0.0.{2 + index % _SOURCE_ADDR_COUNT}"
