"""The benchmark tools work: tiny loads against the ceiling and baseline servers.

These check that calls are made and answered without errors; they assert
nothing about speed (this machine is shared and small)."""

from __future__ import annotations

import base64
import functools
import json
import os
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jsonschema
import ocpp.v16
import ocpp.v201
import pytest
import websockets
from aiohttp import web
from jsonschema import Draft4Validator
from websockets.typing import Subprotocol

from voltlib.bench import baseline_ocpp, echo_server, frames_v201
from voltlib.bench.compare import ServerRun, baseline_spec, ceiling_spec, compare_servers, free_port, render_table
from voltlib.bench.frames_v16 import MeterSim, boot_notification, heartbeat, status_notification
from voltlib.bench.load import LoadPlan, check_loopback_url, percentile, run_load
from voltlib.bench.procstats import process_tree, read_rss_bytes, read_tree_cpu_seconds

pytestmark = pytest.mark.timeout(120)

SCHEMAS = Path(ocpp.v16.__file__).parent / "schemas"


@asynccontextmanager
async def aiohttp_server(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on a free loopback port; yield its ws:// base URL for charge points."""
    port = free_port()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"ws://127.0.0.1:{port}/ocpp"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def baseline_server(version: str = "1.6") -> AsyncIterator[str]:
    port = free_port()
    async with websockets.serve(functools.partial(baseline_ocpp.on_connect, version=version), "127.0.0.1", port,
                                subprotocols=[Subprotocol(baseline_ocpp.SUBPROTOCOLS[version])]):
        yield f"ws://127.0.0.1:{port}/ocpp"


def assert_clean(result: Any, n: int) -> None:
    assert result.connected == n
    # every connected charge point is accounted for exactly once
    assert result.connections_held + result.disconnects + result.unanswered + result.stalled == n
    assert result.connections_held == n
    assert result.calls > 0
    assert result.errors == 0, result.as_dict()
    assert result.latency_p50_ms > 0
    assert result.latency_max_ms >= result.latency_p99_ms >= result.latency_p50_ms


# ---- frames ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "make"),
    [
        ("MeterValues", lambda uid: MeterSim(3, random.Random(1), transaction_id=42).frame(uid)),
        ("BootNotification", lambda uid: boot_notification(uid, 3)),
        ("StatusNotification", lambda uid: status_notification(uid)),
        ("Heartbeat", lambda uid: heartbeat(uid)),
    ],
)
def test_frames_are_valid_ocpp16_calls(action: str, make: Any) -> None:
    frame = json.loads(make("17"))
    assert frame[:3] == [2, "17", action]
    schema = json.loads((SCHEMAS / f"{action}.json").read_text())
    Draft4Validator(schema).validate(frame[3])


SCHEMAS_V201 = Path(ocpp.v201.__file__).parent / "schemas"


@pytest.mark.parametrize(
    ("action", "make"),
    [
        ("TransactionEvent", lambda uid: frames_v201.MeterSim(3, random.Random(1), transaction_id=42).frame(uid)),
        ("TransactionEvent", lambda uid: frames_v201.transaction_started(uid, 3)),
        ("BootNotification", lambda uid: frames_v201.boot_notification(uid, 3)),
        ("StatusNotification", lambda uid: frames_v201.status_notification(uid)),
        ("Heartbeat", lambda uid: frames_v201.heartbeat(uid)),
    ],
)
def test_frames_are_valid_ocpp201_calls(action: str, make: Any) -> None:
    frame = json.loads(make("17"))
    assert frame[:3] == [2, "17", action]
    schema = json.loads((SCHEMAS_V201 / f"{action}Request.json").read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(frame[3])


def test_transaction_events_carry_one_transaction_in_sequence() -> None:
    meter = frames_v201.MeterSim(4, random.Random(7), transaction_id=5)
    events = [json.loads(meter.frame(str(n)))[3] for n in range(3)]
    started = json.loads(frames_v201.transaction_started("0", 4) or "")[3]
    assert started["eventType"] == "Started" and started["seqNo"] == 0
    assert [e["seqNo"] for e in events] == [1, 2, 3] and {e["eventType"] for e in events} == {"Updated"}
    assert {e["transactionInfo"]["transactionId"] for e in events} == {started["transactionInfo"]["transactionId"]}
    sampled = {(s["measurand"], s.get("phase")): s for s in events[0]["meterValue"][0]["sampledValue"]}
    assert sampled[("Energy.Active.Import.Register", None)]["unitOfMeasure"] == {"unit": "Wh"}
    assert isinstance(sampled[("SoC", None)]["value"], (int, float))
    energy = [e["meterValue"][0]["sampledValue"][0]["value"] for e in events]
    assert energy == sorted(energy)


def test_meter_values_payload_is_realistic() -> None:
    meter = MeterSim(0, random.Random(7), transaction_id=5)
    first = json.loads(meter.frame("1"))[3]
    second = json.loads(meter.frame("2"))[3]
    assert first["connectorId"] == 1 and first["transactionId"] == 5
    (mv,) = first["meterValue"]
    assert mv["timestamp"].endswith("Z")
    sampled = {(s["measurand"], s.get("phase")): s for s in mv["sampledValue"]}
    assert sampled[("Energy.Active.Import.Register", None)]["unit"] == "Wh"
    assert sampled[("Power.Active.Import", None)]["unit"] == "W"
    assert {p for (m, p) in sampled if m == "Current.Import"} == {"L1", "L2", "L3"}
    assert ("Voltage", "L1-N") in sampled
    assert sampled[("SoC", None)]["unit"] == "Percent"
    energy = [float(p["meterValue"][0]["sampledValue"][0]["value"]) for p in (first, second)]
    assert energy[1] >= energy[0]


def test_only_loopback_targets() -> None:
    assert check_loopback_url("ws://127.0.0.1:9000/ocpp") == "127.0.0.1"
    assert check_loopback_url("ws://[::1]:9000/ocpp") == "::1"
    for bad in ("ws://10.0.0.1:9000/ocpp", "ws://example.com/ocpp", "wss://127.0.0.1/ocpp"):
        with pytest.raises(ValueError):
            check_loopback_url(bad)


def test_plan_validation_and_ids() -> None:
    plan = LoadPlan(n_charge_points=3, cp_id_prefix="X-")
    assert plan.cp_ids() == ["X-00000", "X-00001", "X-00002"]
    with pytest.raises(ValueError):
        LoadPlan(n_charge_points=0)
    with pytest.raises(ValueError):
        LoadPlan(n_charge_points=1, duration_s=0)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) == 0.0


def test_proc_helpers_read_this_process() -> None:
    assert read_rss_bytes(os.getpid()) > 1_000_000
    assert read_tree_cpu_seconds(os.getpid()) > 0
    assert os.getpid() in process_tree(os.getpid())


# ---- loads against servers --------------------------------------------------


@pytest.mark.asyncio
async def test_throughput_against_echo_server() -> None:
    async with aiohttp_server(echo_server.make_app()) as url:
        result = await run_load(url, 5, "throughput", 1.0)
    assert_clean(result, 5)
    assert result.calls_per_s > 0
    assert result.boot_p50_ms > 0


@pytest.mark.asyncio
async def test_throughput_against_ocpp_baseline() -> None:
    async with baseline_server() as url:
        result = await run_load(url, 5, "throughput", 1.0)
    assert_clean(result, 5)


@pytest.mark.asyncio
async def test_throughput_over_ocpp201_against_the_baseline_and_the_ceiling() -> None:
    async with baseline_server("2.0.1") as url:
        result = await run_load(url, 4, "throughput", 1.0, ocpp="2.0.1")
    assert_clean(result, 4)
    async with aiohttp_server(echo_server.make_app()) as url:
        result = await run_load(url, 4, "throughput", 1.0, ocpp="2.0.1")
    assert_clean(result, 4)


@pytest.mark.asyncio
async def test_soak_against_ocpp_baseline() -> None:
    async with baseline_server() as url:
        result = await run_load(url, 5, "soak", 1.5, heartbeat_s=0.3, meter_s=0.4)
    assert_clean(result, 5)
    # each charge point sends ~1.5/0.3 heartbeats and ~1.5/0.4 meter values
    assert 5 * 6 <= result.calls <= 5 * 11


@pytest.mark.asyncio
async def test_soak_survives_a_server_that_pings_often() -> None:
    """Waits longer than the server's ping interval still end on time (aiohttp's
    receive(timeout=...) would restart at every ping and never expire)."""
    async with aiohttp_server(echo_server.make_app(ping_interval=0.1)) as url:
        result = await run_load(url, 5, "soak", 1.6, heartbeat_s=0.7, meter_s=0.9)
    assert_clean(result, 5)
    assert result.calls >= 5 * 3


@pytest.mark.asyncio
async def test_two_worker_processes_merge_results() -> None:
    async with aiohttp_server(echo_server.make_app()) as url:
        result = await run_load(url, 4, "throughput", 1.0, workers=2)
    assert result.workers == 2
    assert_clean(result, 4)


@pytest.mark.asyncio
async def test_basic_auth_source_addresses_and_server_calls() -> None:
    """The client sends Basic auth, binds spread source addresses, and answers server CALLs."""
    seen: list[tuple[str, str | None]] = []
    answers: list[Any] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((request.headers.get("Authorization", ""), request.remote))
        ws = web.WebSocketResponse(protocols=("ocpp1.6",))
        await ws.prepare(request)
        booted = False
        async for msg in ws:
            frame = json.loads(msg.data)
            if frame[0] == 2:
                await ws.send_str(echo_server._answer(frame) or "")
                if not booted:
                    booted = True
                    await ws.send_str('[2,"srv-1","GetConfiguration",{}]')
            else:
                answers.append(frame)
        return ws

    app = web.Application()
    app.router.add_get("/ocpp/{cp}", handler)
    async with aiohttp_server(app) as url:
        result = await run_load(url, 3, "throughput", 0.5, password="s3cret-pass-0123456", spread_source_addrs=True)
    assert_clean(result, 3)
    assert result.server_calls == 3
    assert [a[:2] for a in answers] == [[3, "srv-1"]] * 3
    creds = sorted(base64.b64decode(h.removeprefix("Basic ")).decode() for h, _ in seen)
    assert creds == [f"BENCH-0000{i}:s3cret-pass-0123456" for i in range(3)]
    assert sorted(addr or "" for _, addr in seen) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


@pytest.mark.asyncio
async def test_compare_starts_and_stops_both_reference_servers(tmp_path: Path) -> None:
    plan = LoadPlan(n_charge_points=5, mode="throughput", duration_s=1.0)
    specs = [ceiling_spec(), baseline_spec()]
    runs = await compare_servers(specs, plan, log_dir=str(tmp_path), pause_s=0.1)
    assert [r.name for r in runs] == ["ceiling", "baseline"]
    for run in runs:
        assert run.error is None, run.error
        assert run.load is not None
        assert_clean(run.load, 5)
        assert run.rss_idle_bytes > 0 and run.rss_connected_bytes > 0
        assert run.server_cpu_s > 0
    # the servers are gone
    for spec in specs:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", spec.port), timeout=0.5).close()
    table = render_table(runs)
    assert "ceiling" in table and "baseline" in table
    assert "baseline / ceiling: calls/s x" in table


def test_render_table_with_subject_and_failure() -> None:
    from voltlib.bench.load_plan import _merge, _Partial

    plan = LoadPlan(n_charge_points=1)
    part = _Partial(connected=1, held=1, calls=10, window_s=1.0)
    part.latencies.extend([0.001] * 10)
    ok = ServerRun(name="voltlib", load=_merge("ws://127.0.0.1:1/ocpp", plan, [part]), server_cpu_s=0.5)
    base = ServerRun(name="baseline", load=_merge("ws://127.0.0.1:2/ocpp", plan, [part]), server_cpu_s=1.0)
    failed = ServerRun(name="ceiling", error="boom")
    table = render_table([ok, base, failed])
    assert "voltlib / baseline: calls/s x1.00" in table
    assert "cpu/call x0.50" in table
    assert "FAILED" in table and "ceiling: boom" in table


def test_render_table_says_what_the_errors_were() -> None:
    from voltlib.bench.load_plan import _merge, _Partial

    plan = LoadPlan(n_charge_points=3)
    part = _Partial(connected=3, held=1, calls=10, window_s=1.0, disconnects=2)
    part.latencies.extend([0.001] * 10)
    part.failure_reasons["closed by server (1006)"] = 2
    table = render_table([ServerRun(name="voltlib", load=_merge("ws://127.0.0.1:1/ocpp", plan, [part]))])
    assert "voltlib errors: 2 disconnects; 2× closed by server (1006)" in table
