"""The simulation report as files: ``report.json``, two PNG plots and ``report.html`` showing them."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from voltlib.sim import measure
from voltlib.sim.city import Report

BASELINE_CREWS, BASELINE_PLANNER = "without-crews", "todays-planner"  # the baseline's folder in ``out``


def write(report: Report, out: Path, baseline: Report | None = None, *, planner: bool = False) -> dict[str, Path]:
    """``baseline``: the same scenario and seed without crews (``simulate --compare``): its report goes
    in ``out/without-crews``, the two side by side in ``comparison.json``; with ``planner``, the same
    day planned without the cars' needs (``simulate --compare-planner``), in ``out/todays-planner``."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "report.json", "soc": out / "fleet-soc.png", "power": out / "power.png",
             "lost": out / "lost-per-hour.png", "html": out / "report.html"}
    files["json"].write_text(json.dumps(report.as_dict(), indent=1, default=str), "utf-8")
    _soc_plot(report, files["soc"])
    _power_plot(report, files["power"])
    _lost_plot(report, None if planner else baseline, files["lost"])
    if baseline is not None:
        files["baseline"] = write(baseline, out / (BASELINE_PLANNER if planner else BASELINE_CREWS))["json"]
        files["comparison"] = out / "comparison.json"
        compare = measure.planner_comparison if planner else measure.comparison
        files["comparison"].write_text(json.dumps(compare(baseline.as_dict(), report.as_dict()),
                                                  indent=1, default=str), "utf-8")
    files["html"].write_text(_html(report, files), "utf-8")
    return files


def _lost_plot(report: Report, baseline: Report | None, path: Path) -> None:
    """Trips lost per simulated hour (no car, no bay), with crews and, when given, without."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    runs = [(baseline, "without crews", "--"), (report, _crewed(report), "-")] if baseline else [
        (report, _crewed(report), "-")]
    for run, label, style in runs:
        if run is None:
            continue
        for reason, colour in (("no_car", "tab:red"), ("no_bay", "tab:blue")):
            values = run.lost_by_hour.get(reason, [0] * len(run.served_by_hour))
            ax.plot([h + 0.5 for h in range(len(values))], values, style, color=colour,
                    label=f"{reason.replace('_', ' ')}, {label} ({run.served_share:.1%} served)")
    ax.set_xlabel("simulated hours")
    ax.set_ylabel("trips lost per hour")
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(f"{report.scenario}: trips lost per hour (seed {report.seed})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _crewed(report: Report) -> str:
    return f"{report.crews['crews']} crews" if report.crews else "no crews"


def _soc_plot(report: Report, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    if report.soc_samples:
        hours = [h for h, _ in report.soc_samples]
        for q, style in ((0.1, ":"), (0.5, "-"), (0.9, ":")):
            ax.plot(hours, [_quantile(v, q) for _, v in report.soc_samples], style, label=f"p{int(q * 100)}")
    ax.set_xlabel("simulated hours")
    ax.set_ylabel("fleet state of charge (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower left")
    ax.set_title(f"{report.scenario}: fleet state of charge")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _power_plot(report: Report, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    if report.power_samples:
        hours = [h for h, _, _ in report.power_samples]
        ax.plot(hours, [p for _, p, _ in report.power_samples], label="charging power")
        ax.plot(hours, [lim for _, _, lim in report.power_samples], "--", label="sum of station limits")
    ax.set_xlabel("simulated hours")
    ax.set_ylabel("kW")
    ax.legend(loc="upper right")
    ax.set_title(f"{report.scenario}: network charging power (peak station at {report.peak_station_ratio:.0%} "
                 "of its limit)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def _html(report: Report, files: dict[str, Path]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in report.as_dict().items() if k not in ("soc_samples", "power_samples"))
    return (f"<!doctype html><meta charset='utf-8'><title>voltlib simulation: {html.escape(report.scenario)}"
            f"</title><h1>voltlib simulation: {html.escape(report.scenario)}</h1><table>{rows}</table>"
            f"<p><img src='{files['soc'].name}' alt='fleet state of charge'></p>"
            f"<p><img src='{files['power'].name}' alt='charging power'></p>"
            f"<p><img src='{files['lost'].name}' alt='trips lost per hour'></p>")
