"""`voltlib bench` subcommands run end to end on tiny loads (tools work; no timing asserted)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from voltlib.cli.main import app
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import transactions


def test_bench_validators_compares_the_three_libraries() -> None:
    result = CliRunner().invoke(app, ["bench", "validators", "--seconds", "0.01"])
    assert result.exit_code == 0, result.output
    for name in ("jsonschema-rs", "fastjsonschema", "jsonschema", "parse + jsonschema-rs + convert",
                 "compiled (one pass)"):
        assert f"| {name} | MeterValues |" in result.output


def test_bench_gateway_runs_voltlib_with_storage() -> None:
    result = CliRunner().invoke(app, ["bench", "gateway", "-n", "3", "--duration", "1", "--servers", "voltlib"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("voltlib "))
    columns = row.split()
    assert columns[1] == "3" and columns[2] == "3"  # connected and held
    assert columns[7] == "0"  # no errors


def test_bench_gateway_on_two_nodes_over_nats_holds_every_charge_point(pg_database: str) -> None:
    result = CliRunner().invoke(app, ["bench", "gateway", "-n", "6", "--duration", "1", "--servers", "voltlib",
                                      "--nodes", "2", "--database-url", pg_database])
    assert result.exit_code == 0, result.output
    columns = next(line for line in result.output.splitlines() if line.startswith("voltlib ")).split()
    assert columns[1] == columns[2] == "6" and columns[7] == "0"


def test_bench_gateway_refuses_several_nodes_on_sqlite() -> None:
    result = CliRunner().invoke(app, ["bench", "gateway", "-n", "2", "--servers", "voltlib", "--nodes", "2"])
    assert result.exit_code != 0 and "PostgreSQL" in result.output


def test_bench_sharing_runs_every_operation_and_checks_double_booking(tmp_path: Path) -> None:
    import asyncio

    from voltlib.bench.sharing import render, run

    result = asyncio.run(run(f"sqlite:///{tmp_path / 's.db'}", stations=5, cars_per_station=2, concurrency=8))
    assert result.cars == 10 and result.double_booking_attempts == 11
    assert result.double_booking_winners == 1
    assert result.reservations_per_s > 0 and result.rentals_per_s > 0
    assert "sqlite" in render([result])


def test_bench_energy_times_a_station_and_the_paris_network() -> None:
    result = CliRunner().invoke(app, ["bench", "energy", "--repeat", "5"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| 20-bay") or line.startswith("| Paris")]
    assert len(rows) == 2
    assert rows[1].split("|")[2].strip() == "1,119" and int(rows[1].split("|")[3].strip().replace(",", "")) > 4_000


def test_bench_gbfs_serves_paris_from_a_voltlib_process_and_times_a_change() -> None:
    import asyncio

    from voltlib.bench.gbfs import run

    result = asyncio.run(run(seconds=0.3, concurrency=2, rounds=1))
    assert result.stations == 1_119 and result.gzip_bytes < result.body_bytes
    assert result.identity_per_s > 0 and result.requests_per_s > 0 and result.not_modified_per_s > 0
    assert len(result.rebuild_ms) == 2 and all(ms > 0 for ms in result.rebuild_ms)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_bench_fuzz_sends_hostile_frames_and_the_server_survives_them(version: str) -> None:
    """Issue 22: on the unfixed gateway, 300 such frames left RecursionError tracebacks in the log.
    Issue 16: a 2.0.1 station's hostile frames get the same."""
    result = CliRunner().invoke(app, ["bench", "fuzz", "-n", "300", "--connections", "2", "--ocpp", version])
    assert result.exit_code == 0, result.output
    lines = {line[:22].strip(): line[22:] for line in result.output.splitlines()}
    sent, unsent = re.fullmatch(r"(\d+) in .*; (\d+) found the socket closed", lines["frames sent"]).groups()
    assert int(sent) + int(unsent) == 300
    assert lines["hangs"] == "0" and lines["tracebacks in the log"].startswith("0 ")
    assert lines["well-behaved served"] == "yes"
    assert lines["rows from refused"].startswith("0 ")


def test_the_fuzz_bench_sees_a_transaction_no_accepted_call_wrote(tmp_path: Path) -> None:
    from voltlib.bench.fuzz import _rows_from_refused

    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = Store(url)
    try:
        upgrade(store.engine)
        at = datetime(2026, 12, 7, tzinfo=UTC)
        store.run_sync(lambda c: c.execute(insert(transactions).values(
            id=1, charge_point_id="FUZZ-0", connector_id=1, id_tag="X", id_tag_status="Invalid", meter_start=0,
            started_at=at, received_at=at)))
    finally:
        store.close()
    assert _rows_from_refused(url) == 1
    store = Store(url)
    try:  # a 2.0.1 transaction no stored TransactionEvent accounts for
        store.run_sync(lambda c: c.execute(insert(transactions).values(
            id=2, charge_point_id="FUZZ-1", connector_id=1, id_tag="X", id_tag_status="Invalid", meter_start=0,
            started_at=at, received_at=at, station_tx_id="fz-1")))
    finally:
        store.close()
    assert _rows_from_refused(url) == 2
