"""``voltlib demo`` (``make demo``): a morning of Autolib' in central Paris, live, on this machine.

voltlib runs in-process on SQLite (``voltlib-demo.db`` in the current directory, recreated each
run) with the ``demo`` scenario: 40 real Autolib' stations, a simulated charge point per bay on its
own WebSocket (30 % of them speaking OCPP 2.0.1, the rest 1.6J), members reserving, badging,
driving and returning cars at 120× real time, smart charging under half the stations' ratings, and
two intrusions at charge points. The addresses
(dashboard, API, GBFS) and an admin token come first; the key numbers follow as the morning plays;
then the server keeps running for exploring until Ctrl-C. ``duration`` (wall seconds of play,
for tests) stops it instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from voltlib.sim import scenario as sim_scenario
from voltlib.sim.city import CitySimulation, Report

DEMO_DB = "voltlib-demo.db"


def banner(console: Console, base: str, token: str) -> None:
    lines = Text.assemble(
        ("voltlib demo", "bold"), " - a morning of Autolib' in central Paris, at 120x real time\n\n",
        ("Dashboard  ", "bold"), f"{base}/dashboard/  (sign in with the admin token)\n",
        ("API        ", "bold"), f"{base}/api/v1  ({base}/api/v1/openapi.json)\n",
        ("GBFS       ", "bold"), f"{base}/gbfs/manifest.json\n",
        ("OCPP       ", "bold"), f"{base.replace('http', 'ws', 1)}/ocpp/<charge point id>  (OCPP 1.6J and 2.0.1)\n",
        ("Admin token", "bold"), f" {token}\n",
        ("Database   ", "bold"), f"{DEMO_DB} (SQLite, recreated each run)")
    console.print(Panel(lines, expand=False))
    console.print(f'Try: curl -s -H "Authorization: Bearer {token}" {base}/api/v1/security/alerts', soft_wrap=True,
                  markup=False, highlight=False)


def summary(console: Console, report: Report) -> None:
    lost = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in report.lost.items()) or "none"
    console.print(Panel(Text.assemble(
        ("Simulated ", "bold"), f"{report.simulated_hours:g} h in {report.wall_seconds:g} s "
                                f"(x{report.speed_reached:g} while playing)\n",
        ("Rentals   ", "bold"), f"{report.rentals_served} served of {report.demand} wanted; lost: {lost}; "
                                f"{report.in_progress} on the road\n",
        ("Energy    ", "bold"), f"{report.energy_delivered_kwh:g} kWh delivered; busiest station at "
                                f"{report.peak_station_ratio:.0%} of its grid limit\n",
        ("Security  ", "bold"), f"{report.alerts} alerts (intrusions injected: "
                                f"{sum(1 for e in report.events if e['kind'] == 'intrusion')})\n",
        ("Protocol  ", "bold"), f"{report.protocol_errors} errors; posts: "
                                f"{', '.join(f'{n} on OCPP {v}' for v, n in report.ocpp_versions.items())}"),
        title="the morning", expand=False))


async def run_demo(*, port: int = 8180, duration: float | None = None, db_path: str | Path = DEMO_DB,
                   console: Console | None = None) -> Report:
    console = console or Console()
    chosen = sim_scenario.load("demo")
    path = Path(db_path)
    _fresh(path)
    hours = chosen.hours if duration is None else max(0.05, duration * chosen.speed / 3600.0)
    last = Counter[str]()

    def progress(hour: float, counts: Counter[str]) -> None:
        served, lost = counts["rentals_served"], sum(v for k, v in counts.items() if k.startswith("lost:"))
        if served // 25 != last["served"] // 25:
            console.print(f"  {hour:4.1f} h simulated: {served} rentals served, {lost} lost")
        last["served"] = served

    async def hold() -> None:
        summary(console, sim.report)
        if duration is None:
            console.print("The server keeps running: explore the dashboard. Ctrl-C stops it.")
            await asyncio.Event().wait()

    console.print(f"Starting voltlib and {chosen.name!r}: 40 Paris stations, one simulated charge point per bay ...")
    sim = CitySimulation(chosen, port=port, hours=hours, db_path=path, on_progress=progress,
                         on_ready=lambda base, token: banner(console, base, token), hold=hold)
    return await sim.run()


def _fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def run(port: int = 8180, duration: float | None = None) -> Report | None:
    """Blocking entry point for the CLI: Ctrl-C ends the demo cleanly."""
    try:
        return asyncio.run(run_demo(port=port, duration=duration))
    except KeyboardInterrupt:
        return None
