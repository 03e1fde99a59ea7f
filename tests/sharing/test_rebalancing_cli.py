"""``voltlib rebalancing forecast|moves|tasks`` against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from typer.testing import CliRunner

from tests.conftest import PASSWORD
from tests.sharing.test_rebalancing import MORNING, SNAPSHOT
from voltlib.cli.main import app
from voltlib.security.credentials import hash_password
from voltlib.sharing import rebalancing as store_rb
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import parse_snapshot
from voltlib.sharing.store import import_snapshot, upsert_city
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade

runner = CliRunner()


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["rebalancing", *args])
    assert result.exit_code == code, result.output
    return result.output


def test_forecast_moves_and_tasks(database_url: str) -> None:
    db = ["--database-url", database_url]
    demand = ["--at", MORNING.isoformat(), "--hours", "3", "--rentals-per-day", "60"]
    store = Store(database_url)
    upgrade(store.engine)

    def seed(conn: Any) -> None:
        upsert_city(conn, builtin_cities()["paris"])
        import_snapshot(conn, "paris", parse_snapshot(SNAPSHOT, car_prefix="PA"), security_profile=1,
                        password_hash=hash_password(PASSWORD), soc_percent=80.0, now=MORNING)

    store.run_sync(seed)
    forecast = json.loads(invoke("forecast", "--short", *demand, *db))
    assert {s["station_id"]: bool(s["no_car"]) for s in forecast["stations"]} == {"st-edge": True, "st-mid": True}
    moves = json.loads(invoke("moves", "--max", "1", *demand, *db))["moves"]
    assert [(m["car_id"], m["to_station"]) for m in moves] == [("car-pa-00006", "st-edge")]

    store.run_sync(partial(store_rb.create_task, city="paris", car_id="car-pa-00006", from_station="st-far",
                           to_station="st-edge", reason="no_car", by="cli-test", now=MORNING))
    store.close()
    (task,) = json.loads(invoke("tasks", "--state", "proposed", *db))
    assert task["car_id"] == "car-pa-00006" and task["history"][0]["by"] == "cli-test"
    assert json.loads(invoke("tasks", "--state", "done", *db)) == []
    after = json.loads(invoke("moves", *demand, *db))
    assert after["live_tasks"] == 1 and after["moves"] == []  # the task counts as done: the edge has its car
    invoke("tasks", "--state", "lost", *db, code=2)
    invoke("forecast", "--city", "atlantis", *db, code=1)


def test_only_rentable_cars_count(database_url: str) -> None:
    from voltlib.store.tables import vehicles

    store = Store(database_url)
    try:
        upgrade(store.engine)
        store.run_sync(lambda conn: (upsert_city(conn, builtin_cities()["paris"]), import_snapshot(
            conn, "paris", parse_snapshot(SNAPSHOT, car_prefix="PA"), security_profile=1,
            password_hash=hash_password(PASSWORD), soc_percent=80.0, now=MORNING)))
        store.run_sync(lambda conn: conn.execute(vehicles.update().where(vehicles.c.id == "car-pa-00005")
                                                 .values(soc_percent=5.0)))  # below the city's 20 km
        state = store.run_sync(partial(store_rb.city_state, city="paris"))
    finally:
        store.close()
    assert state is not None and state.fleet == 7 and state.min_range_km == 20
    by_id = {s.station_id: s for s in state.stations}
    assert by_id["st-mid"].cars == () and by_id["st-mid"].free_bays == 3 and by_id["st-mid"].capacity == 3
    assert [c.car_id for c in by_id["st-full"].cars] == [f"car-pa-0000{i}" for i in range(1, 5)]
    assert by_id["st-full"].free_bays == 0 and by_id["st-edge"].bays == 3
