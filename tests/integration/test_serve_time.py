"""`voltlib serve --time-scale/--time-origin` serves simulated time, and GET /api/v1/clock says so."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tests.conftest import RunningServer, free_port
from voltlib.cli.main import app
from voltlib.clock import ScaledClock

ORIGIN = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def test_serve_runs_on_the_simulated_clock_it_was_given(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "voltlib", "serve", "--port", str(port), "--time-scale", "200",
         "--time-origin", "2026-03-02T07:00:00Z", "--database-url", f"sqlite:///{tmp_path / 'v.db'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/v1/clock", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "voltlib serve did not come up"
                time.sleep(0.2)
        assert response.status_code == 200
        described = response.json()
        assert described["factor"] == 200.0 and described["origin"] == "2026-03-02T07:00:00Z"
        served_now = datetime.fromisoformat(described["now"].replace("Z", "+00:00"))
        assert ORIGIN <= served_now < ORIGIN + timedelta(hours=12)  # minutes of wall time at most
        mine = ScaledClock.from_description(described)  # what a simulator in another process computes
        assert mine.origin == ORIGIN and mine.factor == 200.0
        assert mine.now() >= served_now
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_bad_time_flags_are_refused_clearly() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--time-scale", "5000"])
    assert result.exit_code == 1 and "time_scale" in result.output
    result = runner.invoke(app, ["serve", "--time-origin", "yesterday"])
    assert result.exit_code == 1 and "time_origin" in result.output


async def test_a_wall_clock_server_describes_itself(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        described = (await client.get("/api/v1/clock")).json()
    assert described["factor"] == 1.0
    served = datetime.fromisoformat(described["now"].replace("Z", "+00:00"))
    assert abs((served - datetime.now(UTC)).total_seconds()) < 60
    assert abs((ScaledClock.from_description(described).now() - datetime.now(UTC)).total_seconds()) < 60
