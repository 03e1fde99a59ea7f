"""`voltlib bench energy`: how long one smart-charging re-plan takes, for a 20-bay station and for
the whole Paris network (1,119 stations from the packaged Autolib' snapshot), every bay charging.

The planner (:func:`voltlib.energy.smart_charging.plan_station`: priority tiers, keep-warm first,
per-phase headroom, safe-start reserve) is compared in the same run with a naive equal split of
the limit, the floor any planner costs. Pure computation: the database read and the OCPP
commands of a re-plan are measured by the gateway and sharing benchmarks.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from voltlib.energy.smart_charging import DockState, StationState, plan_station
from voltlib.sharing.cities import paris_snapshot
from voltlib.sharing.importer import parse_snapshot

RATED_W = 3_000.0
AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class EnergyBenchResult:
    case: str
    stations: int
    sessions: int
    planner_ms_p50: float
    planner_ms_p99: float
    naive_ms_p50: float


def station(name: str, bays: int, rng: random.Random, fraction: float = 0.5) -> StationState:
    docks = tuple(DockState(f"{name}-{n}", 1, RATED_W, 10_000 + n, f"{name}-car-{n}", rng.uniform(0.05, 1.0),
                            AT + timedelta(minutes=rng.randint(5, 90)) if rng.random() < 0.2 else None, 100.0)
                  for n in range(1, bays + 1))
    return StationState(name, bays * RATED_W * fraction, None, docks)


def naive(state: StationState) -> dict[tuple[str, int], int]:
    share = int(state.limit_w // max(1, len(state.docks)))
    return {(d.cp_id, d.connector_id): min(share, int(d.rated_w)) for d in state.docks}


def _times(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def _p99(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]


def run(repeat: int = 200, seed: int = 7) -> list[EnergyBenchResult]:
    rng = random.Random(seed)
    one = station("bench", 20, rng)
    paris = [station(s.id, s.bays, rng) for s in parse_snapshot(paris_snapshot()).stations]
    results = []
    for case, states, n in (("20-bay station", [one], repeat), ("Paris network", paris, max(5, repeat // 20))):
        planner = _times(lambda states=states: [plan_station(s, AT) for s in states], n)  # type: ignore[misc]
        baseline = _times(lambda states=states: [naive(s) for s in states], n)  # type: ignore[misc]
        results.append(EnergyBenchResult(case, len(states), sum(len(s.docks) for s in states),
                                         statistics.median(planner), _p99(planner), statistics.median(baseline)))
    return results


def render(results: list[EnergyBenchResult]) -> str:
    lines = ["| case | stations | sessions | re-plan p50 ms | re-plan p99 ms | naive split p50 ms | planner ÷ naive |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        ratio = r.planner_ms_p50 / r.naive_ms_p50 if r.naive_ms_p50 else float("inf")
        lines.append(f"| {r.case} | {r.stations:,} | {r.sessions:,} | {r.planner_ms_p50:.3f} | {r.planner_ms_p99:.3f} "
                     f"| {r.naive_ms_p50:.3f} | {ratio:.0f}× |")
    return "\n".join(lines)
