"""Field crews in the city simulation (issue 19): the `crews` scenario (40 Paris stations, two crews)
played twice on one seed, without and with its crews, against a real voltlib (its own process,
SQLite, real WebSockets, simulated time). voltlib plans the moves; the crews carry them out over
OCPP and the task API; the report compares the service."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from sqlalchemy import func, select

from voltlib.bench.compare import free_port
from voltlib.sim import report as sim_report
from voltlib.sim import scenario
from voltlib.sim.city import CitySimulation, Report
from voltlib.store.db import Store
from voltlib.store.tables import audit_log, field_tasks, security_events


def _run(chosen: scenario.Scenario, db: Path) -> Report:
    return asyncio.run(CitySimulation(chosen, port=free_port(), speed=120, hours=1.0, db_path=db).run())


def test_crews_carry_out_voltlibs_moves_as_authorised_work_and_the_report_compares(tmp_path: Path) -> None:
    crews = scenario.load("crews")
    assert sum(s.crews for s in crews.crew_shifts) == 2
    without = _run(dataclasses.replace(crews, crew_shifts=()), tmp_path / "without.db")
    with_crews = _run(crews, tmp_path / "with.db")

    assert without.crews is None and without.demand == with_crews.demand  # one seed, the same trips
    assert with_crews.crews is not None and with_crews.crews["moves"] >= 1
    assert with_crews.crews["crew_km"] > 0 and with_crews.crews["crews"] == 2
    for report in (without, with_crews):
        assert report.protocol_errors == 0
        assert report.alerts == 0  # the scenario injects nothing: a crew's move is no alert
        assert report.docks["not_docked_there"] == report.docks["on_open_rental"] == 0
        assert report.docks["billed_closed"] == report.rentals_served  # crew moves are not billed
        assert report.served_share == round(report.rentals_served / report.demand, 4)
        assert sum(report.served_by_hour) == report.rentals_served
        assert {k: sum(v) for k, v in report.lost_by_hour.items()} == report.lost

    store = Store(f"sqlite:///{tmp_path / 'with.db'}")
    try:
        def count(query: object) -> int:
            return int(store.run_sync(lambda c: c.execute(query).scalar_one()))

        departures = count(select(func.count()).select_from(audit_log)
                           .where(audit_log.c.action == "rebalancing.crew.departure"))
        done = count(select(func.count()).select_from(field_tasks).where(field_tasks.c.state == "done"))
        assert departures >= done >= 1  # each move in the audit log, voltlib's task done
        assert done <= with_crews.crews["moves"] <= done + 2  # a crew may be plugging in as the play ends
        assert count(select(func.count()).select_from(security_events)
                     .where(security_events.c.kind == "unauthorised_departure")) == 0
    finally:
        store.close()

    files = sim_report.write(with_crews, tmp_path / "out", without)
    compared = json.loads(files["comparison"].read_text())
    assert compared["with_crews"]["crews"]["moves"] == with_crews.crews["moves"]
    assert compared["without_crews"]["served_share"] == without.served_share
    assert json.loads(files["baseline"].read_text())["crews"] is None
    assert files["lost"].stat().st_size > 1000 and "lost-per-hour.png" in files["html"].read_text()
