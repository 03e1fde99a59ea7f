"""SIGTERM drains a real ``voltlib serve``: charge points sending MeterValues back to back see their
sockets closed with 1001 (going away), the process exits 0, and every MeterValues it acknowledged is
in the database afterwards. In-process: a drain waits for a command's answer before closing, and
/api/v1/ready says 503 from its start, and so does a WebSocket upgrade reaching the node meanwhile."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import select

from tests.conftest import RunningServer, free_port, start_server
from tests.integration.test_logs import _up
from voltlib.config import Settings
from voltlib.server import drain
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import meter_values

CHARGE_POINTS = 12
BEFORE_STOP = 15  # acknowledged MeterValues per charge point before SIGTERM
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)  # stamps in the past: believed as sent


def _prepare(url: str) -> None:
    store = Store(url)
    try:
        upgrade(store.engine)
        for n in range(CHARGE_POINTS):
            store.run_sync(partial(repo.add_charge_point, cp_id=f"CP-D{n}", registration="Accepted",
                                   security_profile=0, password_hash=None, certificate_fingerprint=None,
                                   now=datetime.now(UTC)))
    finally:
        store.close()


def _stored(url: str) -> dict[str, set[datetime]]:
    store = Store(url)
    try:
        rows = store.run_sync(lambda conn: conn.execute(
            select(meter_values.c.charge_point_id, meter_values.c.sampled_at)).all())
    finally:
        store.close()
    found: dict[str, set[datetime]] = {}
    for cp_id, at in rows:
        found.setdefault(cp_id, set()).add(at if at.tzinfo else at.replace(tzinfo=UTC))
    return found


class ChargePoint:
    def __init__(self, cp_id: str) -> None:
        self.cp_id = cp_id
        self.acked: list[datetime] = []
        self.close_code: int | None = None
        self.reached = asyncio.Event()

    async def run(self, ws_url: str) -> None:
        async with websockets.connect(f"{ws_url}/{self.cp_id}", subprotocols=["ocpp1.6"]) as ws:
            await ws.send(json.dumps([2, "boot", "BootNotification", {"chargePointVendor": "V",
                                                                       "chargePointModel": "M"}]))
            assert json.loads(await ws.recv())[2]["status"] == "Accepted"
            n = 0
            try:
                while True:
                    n += 1
                    stamp = START + timedelta(seconds=n)
                    await ws.send(json.dumps([2, f"mv{n}", "MeterValues", {"connectorId": 1, "meterValue": [
                        {"timestamp": stamp.isoformat().replace("+00:00", "Z"),
                         "sampledValue": [{"value": str(1000 + n), "measurand": "Energy.Active.Import.Register",
                                           "unit": "Wh"}]}]}]))
                    answer = json.loads(await ws.recv())
                    assert answer[:2] == [3, f"mv{n}"], answer
                    self.acked.append(stamp)
                    if len(self.acked) == BEFORE_STOP:
                        self.reached.set()
            except websockets.ConnectionClosed as closed:
                self.close_code = closed.rcvd.code if closed.rcvd is not None else None


async def test_sigterm_drains_without_losing_an_acknowledged_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    await asyncio.to_thread(_prepare, url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voltlib", "serve", "--port", str(port), "--database-url", url,
            "--log-level", "INFO", stdout=sink, stderr=sink,
            env={**__import__("os").environ, "VOLTLIB_RATE_PER_SECOND": "100000", "VOLTLIB_RATE_BURST": "100000",
                 "VOLTLIB_SMART_CHARGING": "false"})
        try:
            await _up(base, process)
            points = [ChargePoint(f"CP-D{n}") for n in range(CHARGE_POINTS)]
            tasks = [asyncio.create_task(cp.run(f"ws://127.0.0.1:{port}/ocpp")) for cp in points]
            await asyncio.wait_for(asyncio.gather(*(cp.reached.wait() for cp in points)), 60)
            async with httpx.AsyncClient(base_url=base) as http:
                assert (await http.get("/api/v1/ready")).status_code == 200
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(asyncio.gather(*tasks), 60)  # every charge point was closed
            assert await asyncio.wait_for(process.wait(), 60) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    log = (tmp_path / "serve.log").read_text()
    assert "drained:" in log and "Traceback" not in log, log[-3000:]
    assert [cp.close_code for cp in points] == [1001] * CHARGE_POINTS
    stored = await asyncio.to_thread(_stored, url)
    for cp in points:
        assert len(cp.acked) >= BEFORE_STOP
        missing = [at for at in cp.acked if at not in stored.get(cp.cp_id, set())]
        assert not missing, f"{cp.cp_id}: {len(missing)} acknowledged MeterValues not stored"


async def test_drain_answers_what_is_under_way_then_closes(server: RunningServer) -> None:
    await server.add_charge_point("CP-W", profile=0)
    async with websockets.connect(f"{server.ws_url}/CP-W", subprotocols=["ocpp1.6"]) as ws:
        await ws.send(json.dumps([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]))
        assert json.loads(await ws.recv())[2]["status"] == "Accepted"
        async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=30) as http:
            command = asyncio.create_task(http.post("/api/v1/charge-points/CP-W/commands/ClearCache", json={}))
            call = json.loads(await ws.recv())  # our command is out, waiting for its answer
            draining = asyncio.create_task(drain(server.gateway, []))
            await asyncio.sleep(0.2)
            assert not draining.done() and not ws.close_code  # held open for the answer
            assert (await http.get("/api/v1/ready")).status_code == 503
            await ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
            await asyncio.wait_for(draining, 10)
            assert (await command).json()["state"] == "answered"
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1001
        else:
            raise AssertionError("the socket was not closed")


async def test_a_draining_node_refuses_a_new_connection_while_it_closes_the_others(database_url: str) -> None:
    """The listener is left open here (``drain(gateway, [])``), as a socket accepted just before it
    closes would be: the upgrade must get 503 from the application, not a session the drain has
    already stopped looking for. Meanwhile an idle charge point is closed with 1001 and a busy one is
    held open until our command is answered (long timeouts: the drain waits on the answer alone)."""
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=60.0, drain_timeout=60.0,
                        duplicate_probe_timeout=1.0)
    runner, server = await start_server(settings)
    try:
        for cp_id in ("CP-BUSY", "CP-IDLE", "CP-NEW"):
            await server.add_charge_point(cp_id, profile=0)
        async with (websockets.connect(f"{server.ws_url}/CP-BUSY", subprotocols=["ocpp1.6"]) as busy,
                    websockets.connect(f"{server.ws_url}/CP-IDLE", subprotocols=["ocpp1.6"]) as idle):
            for ws in (busy, idle):
                await ws.send(json.dumps([2, "b", "BootNotification", {"chargePointVendor": "V",
                                                                        "chargePointModel": "M"}]))
                assert json.loads(await ws.recv())[2]["status"] == "Accepted"
            async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=90) as http:
                command = asyncio.create_task(http.post("/api/v1/charge-points/CP-BUSY/commands/ClearCache",
                                                        json={}))
                call = json.loads(await asyncio.wait_for(busy.recv(), 30))  # out, its answer withheld
                draining = asyncio.create_task(drain(server.gateway, []))
                assert await _close_code(idle) == 1001  # the idle one goes at once
                with pytest.raises(websockets.InvalidStatus) as refused:
                    async with websockets.connect(f"{server.ws_url}/CP-NEW", subprotocols=["ocpp1.6"],
                                                  open_timeout=30):
                        pass
                assert refused.value.response.status_code == 503
                assert refused.value.response.headers["Retry-After"] == "1"
                assert "CP-NEW" not in server.gateway.connections
                assert not draining.done()  # still held by CP-BUSY's command, which is not answered yet
                await busy.send(json.dumps([3, call[1], {"status": "Accepted"}]))
                await asyncio.wait_for(draining, 30)
                assert (await command).json()["state"] == "answered"
            assert await _close_code(busy) == 1001
        events = await server.store.read(lambda conn: repo.list_security_events(conn, cp_id="CP-NEW"))
        assert events == []  # a node going away is no failed attempt of the charge point's
    finally:
        await runner.cleanup()


async def _close_code(ws: websockets.ClientConnection) -> int | None:
    """The close code the server sent, reading (bounded) until the socket closes."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 30)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
