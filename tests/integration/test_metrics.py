"""``/metrics`` after real OCPP traffic over real WebSockets: the values say what happened, access
is by token on the main port or open on the metrics port, and Prometheus's own ``promtool`` accepts
the exposition (it must be installed on CI: Debian's ``prometheus`` package, see .ci/run)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer, basic_auth, free_port, start_server
from tests.integration.test_readiness import READERS, refusing_connections
from tests.sim.test_chargepoint import eventually
from voltlib.config import Settings

TOKEN = "metrics-secret-for-the-test-0123"
DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"


@pytest_asyncio.fixture
async def observed(database_url: str) -> AsyncIterator[RunningServer]:
    settings = Settings(database_url=database_url, port=free_port(), metrics_port=free_port(),
                        metrics_token=TOKEN, node_name="node-a", command_timeout=5.0)
    runner, running = await start_server(settings)
    try:
        yield running
    finally:
        await runner.cleanup()


async def _call(ws: websockets.ClientConnection, message_id: str, action: str, payload: dict) -> list:
    await ws.send(json.dumps([2, message_id, action, payload]))
    return json.loads(await ws.recv())


async def _reserve_accepted(server: RunningServer, ws: websockets.ClientConnection, cp_id: str) -> None:
    """An operator reserves connector 1 through the API; the raw charge point accepts ReserveNow."""
    await server.add_id_tag("TAG-M1")
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=10) as api:
        posted = asyncio.ensure_future(api.post(f"/api/v1/charge-points/{cp_id}/reservations",
                                                json={"connector_id": 1, "id_tag": "TAG-M1", "minutes": 30}))
        call = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert call[0] == 2 and call[2] == "ReserveNow" and call[3]["idTag"] == "TAG-M1"
        await ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        answer = await posted
    assert answer.status_code == 201 and answer.json()["status"] == "Accepted"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found[(name, frozenset({"node": "node-a", **labels}.items()))]


def promtool() -> str | None:
    path = shutil.which("promtool")
    if path is None and os.environ.get("CI") == "true":
        pytest.fail("promtool is required on CI (Debian package prometheus; .ci/run installs it)")
    return path


async def test_metrics_after_real_traffic(observed: RunningServer) -> None:
    server = observed
    await server.add_charge_point("CP-M1")
    await server.add_charge_point("CP-M2")
    async with websockets.connect(f"{server.ws_url}/CP-M1", subprotocols=["ocpp1.6"],
                                  additional_headers=basic_auth("CP-M1")) as ws:
        boot = await _call(ws, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        assert boot[2]["status"] == "Accepted"
        for n in range(3):
            assert (await _call(ws, f"h{n}", "Heartbeat", {}))[0] == 3
        bad = await _call(ws, "x1", "StatusNotification", {"connectorId": 1})  # required fields missing
        assert bad[0] == 4 and bad[2] == "OccurenceConstraintViolation"
        garbage = await _call(ws, "x2", "NoSuchAction", {})
        assert garbage[0] == 4 and garbage[2] == "NotImplemented"
        await _reserve_accepted(server, ws, "CP-M1")
        with pytest.raises(websockets.InvalidStatus):  # a wrong password: a security event
            async with websockets.connect(f"{server.ws_url}/CP-M2", subprotocols=["ocpp1.6"],
                                          additional_headers=basic_auth("CP-M2", "wrong-password-0123456")):
                pass
        await server.settled()
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/metrics")).status_code == 401
            assert (await http.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
            scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200 and scraped.headers["Content-Type"].startswith("text/plain")
        found = samples(scraped.text)
        assert value(found, "voltlib_charge_points_connected", ocpp_version="1.6") == 1
        assert value(found, "voltlib_charge_points_connected", ocpp_version="2.0.1") == 0
        assert value(found, "voltlib_ocpp_calls_total", action="Heartbeat", outcome="result") == 3
        assert value(found, "voltlib_ocpp_calls_total", action="BootNotification", outcome="result") == 1
        assert value(found, "voltlib_ocpp_calls_total", action="StatusNotification", outcome="violation") == 1
        assert value(found, "voltlib_ocpp_calls_total", action="other", outcome="violation") == 1
        assert ("voltlib_ocpp_calls_total", frozenset({"node": "node-a", "action": "NoSuchAction",
                                                       "outcome": "violation"}.items())) not in found
        assert value(found, "voltlib_ocpp_call_errors_total", code="OccurenceConstraintViolation") == 1
        assert value(found, "voltlib_ocpp_call_errors_total", code="NotImplemented") == 1
        assert value(found, "voltlib_ocpp_call_duration_seconds_count", action="Heartbeat") == 3
        assert value(found, "voltlib_ocpp_call_duration_seconds_bucket", action="Heartbeat", le="+Inf") == 3
        assert value(found, "voltlib_ocpp_call_duration_seconds_sum", action="Heartbeat") > 0
        batches = sum(v for (name, labels), v in found.items() if name == "voltlib_db_commit_batch_size_count")
        writes = sum(v for (name, labels), v in found.items() if name == "voltlib_db_commit_batch_size_sum")
        assert batches >= 1 and writes >= batches
        assert value(found, "voltlib_db_writer_queue_depth") >= 0
        assert value(found, "voltlib_security_events_total", kind="auth_failed", severity="high") == 1
        assert value(found, "voltlib_security_alerts_total", kind="protocol_violation", severity="warning") == 1
        assert value(found, "voltlib_cluster_peers") == 0 and value(found, "voltlib_cluster_connected") == 1
        assert value(found, "voltlib_reservations", state="Accepted", origin="api") == 1
        assert not any(name == "voltlib_reservations" and dict(labels)["origin"] == "car-sharing"
                       for name, labels in found)
        assert value(found, "voltlib_bus_consumer_queue_depth", consumer="security", scope="node") == 0
        assert value(found, "voltlib_node_info", version=__import__("voltlib").__version__) == 1
        # the metrics port: no token needed, and OpenMetrics for who asks for it
        port = server.settings.metrics_port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            open_scrape = await http.get("/metrics")
            openmetrics = await http.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert open_scrape.status_code == 200
        assert value(samples(open_scrape.text), "voltlib_charge_points_connected", ocpp_version="1.6") == 1
        assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
        assert openmetrics.text.rstrip().endswith("# EOF")
    # every series the Grafana dashboard queries is one this node exposes
    families = {family.name for family in text_string_to_metric_families(scraped.text)}
    queried = set(re.findall(r"voltlib_[a-z_]+", DASHBOARD.read_text()))
    assert queried and {re.sub(r"_(bucket|sum|count|total)$", "", name) for name in queried} <= families
    tool = promtool()
    if tool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    checked = await asyncio.to_thread(subprocess.run, [tool, "check", "metrics"], input=scraped.text,
                                      capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_no_metrics_on_the_main_port_without_a_token(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/metrics")).status_code == 404


async def test_a_scrape_serves_while_the_readers_are_busy_then_counts(observed: RunningServer) -> None:
    """A reconnection storm keeps every reader thread busy: the scrape does not wait for them (it
    serves without the database counts), and a later scrape has them once a reader is free."""
    server = observed
    release = threading.Event()
    busy = [asyncio.ensure_future(server.store.read(lambda _conn: release.wait(60))) for _ in range(READERS)]
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            starved = await http.get("/metrics")
            assert not any(task.done() for task in busy)  # the readers were busy all along
            assert starved.status_code == 200
            found = samples(starved.text)
            assert value(found, "voltlib_node_info", version=__import__("voltlib").__version__) == 1
            assert not any(name == "voltlib_database_counts_age_seconds" for name, _ in found)
            release.set()
            await asyncio.gather(*busy)

            async def counted() -> bool:
                again = samples((await http.get("/metrics")).text)
                return any(name == "voltlib_database_counts_age_seconds" for name, _ in again)

            assert await eventually(counted)
    finally:
        release.set()
        await asyncio.gather(*busy)


async def test_a_scrape_serves_while_the_database_refuses_connections(observed: RunningServer,
                                                                      database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        return  # a SQLite file cannot refuse a connection; PostgreSQL can
    with refusing_connections(database_url):
        async with httpx.AsyncClient(base_url=observed.url, timeout=30) as http:
            down = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert down.status_code == 200
        assert value(samples(down.text), "voltlib_cluster_connected") == 1
        assert "voltlib_database_counts_age_seconds" not in down.text
