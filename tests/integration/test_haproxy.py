"""Two ``voltlib serve`` nodes on PostgreSQL and NATS behind a real HAProxy running docs/haproxy.cfg:
charge points connect through it and are spread over both nodes, each node sees the charge point's
own address (X-Forwarded-For from the trusted balancer only, never from anyone else), the API answers
through it, and a rolling restart (SIGTERM one node, start it again, then the other) loses no
acknowledged MeterValues: every charge point comes back through the balancer to the node left.

Addresses on loopback: charge points connect from 127.0.0.2, HAProxy reaches the nodes from
127.0.0.3 (the nodes' ``trusted_proxies``), direct clients come from 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import websockets
from sqlalchemy import select

from tests.conftest import PASSWORD, _truncate_all, basic_auth, free_port
from tests.integration.test_cluster import NATS_URL, _require_nats
from tests.integration.tls_pki import make_pki
from voltlib.security.credentials import hash_api_token, hash_password
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import meter_values

CONFIG = Path(__file__).parents[2] / "docs" / "haproxy.cfg"
CHARGE_POINTS = 8
TOKEN = "vlt_haproxy_test_token_0123456789abcdef"
CP_SOURCE, LB_SOURCE = "127.0.0.2", "127.0.0.3"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def _haproxy() -> str:
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("haproxy is required on CI (Debian package haproxy; .ci/run installs it)")
        pytest.skip("haproxy not installed")
    return path


@pytest_asyncio.fixture
async def pg_url(pg_database: str) -> AsyncIterator[str]:
    def prepare() -> None:
        store = Store(pg_database)
        upgrade(store.engine)
        store.close()
        _truncate_all(pg_database)
        store = Store(pg_database)
        try:
            now = datetime.now(UTC)
            for n in range(CHARGE_POINTS):
                store.run_sync(partial(repo.add_charge_point, cp_id=f"CP-H{n}", registration="Accepted",
                                       security_profile=1, password_hash=hash_password(PASSWORD),
                                       certificate_fingerprint=None, now=now))
            store.run_sync(partial(repo.add_api_token, name="haproxy", role="admin",
                                   token_hash=hash_api_token(TOKEN), now=now))
        finally:
            store.close()

    await asyncio.to_thread(prepare)
    yield pg_database


class Node:
    """One ``voltlib serve`` process; started again on the same port after a stop."""

    def __init__(self, name: str, url: str, cluster: str, logs: Path) -> None:
        self.name, self.url, self.cluster, self.logs = name, url, cluster, logs
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        env = {**os.environ, "VOLTLIB_DATABASE_URL": self.url, "VOLTLIB_BUS_URL": NATS_URL,
               "VOLTLIB_CLUSTER_NAME": self.cluster, "VOLTLIB_NODE_NAME": self.name,
               "VOLTLIB_TRUSTED_PROXIES": json.dumps([f"{LB_SOURCE}/32"]), "VOLTLIB_METRICS_TOKEN": TOKEN,
               "VOLTLIB_SMART_CHARGING": "false", "VOLTLIB_DUPLICATE_PROBE_TIMEOUT": "1"}
        sink = (self.logs / f"{self.name}-{self.starts}.log").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voltlib", "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--log-format", "json", stdout=sink, stderr=sink, env=env)
        sink.close()
        await _until_ready(f"http://127.0.0.1:{self.port}", lambda: self.process is not None
                           and self.process.returncode is None)

    async def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 60)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def _until_ready(base: str, alive: object = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base) as http:
        while True:
            try:
                if (await http.get("/api/v1/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert alive is None or alive(), "the process exited"  # type: ignore[operator]
            assert time.monotonic() < deadline, f"{base} never became ready"
            await asyncio.sleep(0.2)


@dataclass
class ChargePoint:
    """Sends MeterValues back to back through the balancer; reconnects when closed, and sends a call
    that got no answer again (as OCPP wants), with the same id."""

    cp_id: str
    acked: list[datetime] = field(default_factory=list)
    sessions: int = 0
    close_codes: list[int | None] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, ws_url: str) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                async with websockets.connect(f"{ws_url}/{self.cp_id}", subprotocols=["ocpp1.6"],
                                              additional_headers=basic_auth(self.cp_id),
                                              local_addr=(CP_SOURCE, 0), open_timeout=10) as ws:
                    self.sessions += 1
                    await ws.send(json.dumps([2, f"boot{self.sessions}", "BootNotification",
                                              {"chargePointVendor": "V", "chargePointModel": "M"}]))
                    assert json.loads(await ws.recv())[2]["status"] == "Accepted"
                    while not self.stop.is_set():
                        stamp = START + timedelta(seconds=n + 1)
                        await ws.send(json.dumps([2, f"mv{n + 1}", "MeterValues", {"connectorId": 1, "meterValue": [
                            {"timestamp": stamp.isoformat().replace("+00:00", "Z"), "sampledValue": [
                                {"value": str(1000 + n), "measurand": "Energy.Active.Import.Register"}]}]}]))
                        answer = json.loads(await ws.recv())
                        assert answer[:2] == [3, f"mv{n + 1}"], answer
                        self.acked.append(stamp)
                        n += 1
                        await asyncio.sleep(0.02)
            except websockets.ConnectionClosed as closed:
                self.close_codes.append(closed.rcvd.code if closed.rcvd is not None else None)
            except (OSError, websockets.InvalidStatus, websockets.InvalidHandshake, TimeoutError):
                await asyncio.sleep(0.2)  # no node to take it just now: try again, as a charge point does


async def _connected(node: Node) -> int:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.port}") as http:
        text = (await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("voltlib_charge_points_connected{"))


async def _progress(points: list[ChargePoint], more: int, timeout: float = 90) -> float:
    """Wait until every charge point has ``more`` acknowledged MeterValues than now; seconds taken."""
    started = time.monotonic()
    targets = {cp.cp_id: len(cp.acked) + more for cp in points}
    while any(len(cp.acked) < targets[cp.cp_id] for cp in points):
        assert time.monotonic() - started < timeout, {cp.cp_id: len(cp.acked) for cp in points}
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def _stored(url: str) -> dict[str, list[datetime]]:
    """Every stored reading's stamp, one entry per row: a reading stored twice appears twice."""
    store = Store(url)
    try:
        rows = store.run_sync(lambda conn: conn.execute(
            select(meter_values.c.charge_point_id, meter_values.c.sampled_at)).all())
    finally:
        store.close()
    found: dict[str, list[datetime]] = {}
    for cp_id, at in rows:
        found.setdefault(cp_id, []).append(at.astimezone(UTC))
    return found


async def test_two_nodes_behind_haproxy_and_a_rolling_restart(pg_url: str, tmp_path: Path) -> None:
    _require_nats()
    binary = _haproxy()
    cluster = f"lb{uuid.uuid4().hex[:8]}"
    a, b = Node("node-a", pg_url, cluster, tmp_path), Node("node-b", pg_url, cluster, tmp_path)
    lb_port = free_port()
    balancer: asyncio.subprocess.Process | None = None
    points = [ChargePoint(f"CP-H{n}") for n in range(CHARGE_POINTS)]
    tasks: list[asyncio.Task[None]] = []
    try:
        await asyncio.gather(a.start(), b.start())
        env = {**os.environ, "VOLTLIB_LB_BIND": f"127.0.0.1:{lb_port}", "VOLTLIB_LB_SOURCE": LB_SOURCE,
               "VOLTLIB_NODE_A": f"127.0.0.1:{a.port}", "VOLTLIB_NODE_B": f"127.0.0.1:{b.port}"}
        with (tmp_path / "haproxy.log").open("wb") as sink:
            balancer = await asyncio.create_subprocess_exec(binary, "-db", "-f", str(CONFIG), stdout=sink,
                                                            stderr=sink, env=env)
        front = f"http://127.0.0.1:{lb_port}"
        await _until_ready(front)
        tasks = [asyncio.create_task(cp.run(f"ws://127.0.0.1:{lb_port}/ocpp")) for cp in points]
        await _progress(points, 5)

        # spread over both nodes (leastconn), each holding its own
        held = {a.name: await _connected(a), b.name: await _connected(b)}
        assert sum(held.values()) == CHARGE_POINTS and min(held.values()) >= 1, held

        async with httpx.AsyncClient(base_url=front, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            # the API through the balancer; each node saw the charge point's own address
            rows = (await api.get("/api/v1/charge-points")).json()
            rows = rows.get("items", rows) if isinstance(rows, dict) else rows
            assert {row["id"]: row["last_address"] for row in rows} == {cp.cp_id: CP_SOURCE for cp in points}
            # a forged X-Forwarded-For through the balancer is dropped there
            with pytest.raises(websockets.InvalidStatus):
                async with websockets.connect(f"ws://127.0.0.1:{lb_port}/ocpp/CP-H0", subprotocols=["ocpp1.6"],
                                              additional_headers={**basic_auth("CP-H0", "wrong-password-000000"),
                                                                  "X-Forwarded-For": "203.0.113.7"},
                                              local_addr=(CP_SOURCE, 0)):
                    pass
        # ...and sent straight to a node by someone who is no trusted proxy, it is not believed
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(f"ws://127.0.0.1:{a.port}/ocpp/CP-H1", subprotocols=["ocpp1.6"],
                                          additional_headers={**basic_auth("CP-H1", "wrong-password-000000"),
                                                              "X-Forwarded-For": "203.0.113.8"}):
                pass
        async with httpx.AsyncClient(base_url=front, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            events = (await api.get("/api/v1/security-events")).json()
            events = events.get("items", events) if isinstance(events, dict) else events
        failed = {e["charge_point_id"]: e["source"] for e in events if e["kind"] == "auth_failed"}
        assert failed == {"CP-H0": CP_SOURCE, "CP-H1": "127.0.0.1"}, failed

        # rolling restart: a, then b; the charge points move to the node left, through the balancer
        back_after = []
        for node in (a, b):
            assert await node.stop() == 0
            back_after.append(await _progress(points, 5))
            await node.start()
            await _until_ready(front)
        await _progress(points, 5)
        print(f"charge points back after each node's SIGTERM: {', '.join(f'{t:.2f} s' for t in back_after)}")
        for cp in points:
            cp.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        moved = [cp for cp in points if cp.sessions >= 2]
        assert len(moved) == CHARGE_POINTS, {cp.cp_id: cp.sessions for cp in points}  # each node held some
        assert all(code == 1001 for cp in points for code in cp.close_codes), [cp.close_codes for cp in points]
    finally:
        for cp in points:
            cp.stop.set()
        for task in tasks:
            task.cancel()
        if balancer is not None and balancer.returncode is None:
            balancer.terminate()
            await balancer.wait()
        await a.kill()
        await b.kill()
    stored = await asyncio.to_thread(_stored, pg_url)
    for cp in points:
        missing = [at for at in cp.acked if at not in stored.get(cp.cp_id, set())]
        assert not missing, f"{cp.cp_id}: {len(missing)} acknowledged MeterValues lost"
        # and nothing twice: a call sent again was stored once (rows counted, not a set of them)
        assert sorted(stored[cp.cp_id]) == cp.acked, f"{cp.cp_id}: {len(stored[cp.cp_id])} rows for {len(cp.acked)}"


async def test_tls_terminated_at_haproxy_keeps_security_profiles_2_and_3(pg_url: str, tmp_path: Path) -> None:
    """wss:// ends at HAProxy in front of two nodes: a profile 2 charge point's password and a profile
    3 one's certificate (checked by HAProxy against the CA, by the node against its pin) pass, and
    still pass once one node is stopped; the same claims sent to a node by anyone but the balancer,
    or over the balancer's plain ws://, do not."""
    _require_nats()
    binary = _haproxy()
    pki = make_pki(tmp_path / "pki")
    cp3 = pki.charge_point("CP-T3")
    bundle = tmp_path / "haproxy.pem"
    bundle.write_bytes(pki.server.cert.read_bytes() + pki.server.key.read_bytes())

    def register() -> None:
        store = Store(pg_url)
        try:
            now = datetime.now(UTC)
            store.run_sync(partial(repo.add_charge_point, cp_id="CP-T2", registration="Accepted", security_profile=2,
                                   password_hash=hash_password(PASSWORD), certificate_fingerprint=None, now=now))
            store.run_sync(partial(repo.add_charge_point, cp_id="CP-T3", registration="Accepted", security_profile=3,
                                   password_hash=None, certificate_fingerprint=cp3.fingerprint, now=now))
        finally:
            store.close()

    await asyncio.to_thread(register)
    cluster = f"tls{uuid.uuid4().hex[:8]}"
    node, other = Node("node-tls", pg_url, cluster, tmp_path), Node("node-tls-b", pg_url, cluster, tmp_path)
    lb_port, tls_port = free_port(), free_port()
    balancer: asyncio.subprocess.Process | None = None
    try:
        await asyncio.gather(node.start(), other.start())
        env = {**os.environ, "VOLTLIB_LB_BIND": f"127.0.0.1:{lb_port}", "VOLTLIB_LB_SOURCE": LB_SOURCE,
               "VOLTLIB_NODE_A": f"127.0.0.1:{node.port}", "VOLTLIB_NODE_B": f"127.0.0.1:{other.port}",
               "VOLTLIB_LB_TLS_BIND": f"127.0.0.1:{tls_port}", "VOLTLIB_LB_CERT": str(bundle),
               "VOLTLIB_LB_CLIENT_CA": str(pki.ca.cert)}
        with (tmp_path / "haproxy-tls.log").open("wb") as sink:
            balancer = await asyncio.create_subprocess_exec(binary, "-db", "-f", str(CONFIG), stdout=sink,
                                                            stderr=sink, env=env)
        await _until_ready(f"http://127.0.0.1:{lb_port}")
        wss, ws = f"wss://127.0.0.1:{tls_port}/ocpp", f"ws://127.0.0.1:{lb_port}/ocpp"

        async def boots(url: str, cp_id: str, **options: object) -> bool:
            try:
                async with websockets.connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"], local_addr=(CP_SOURCE, 0),
                                              **options) as socket:  # type: ignore[arg-type]
                    await socket.send(json.dumps([2, "b", "BootNotification", {"chargePointVendor": "V",
                                                                               "chargePointModel": "M"}]))
                    return bool(json.loads(await socket.recv())[2]["status"] == "Accepted")
            except websockets.InvalidStatus as refused:
                assert refused.response.status_code in (401, 403), refused.response.status_code
                return False

        assert await boots(wss, "CP-T2", ssl=pki.client_context(), additional_headers=basic_auth("CP-T2"))
        assert not await boots(ws, "CP-T2", additional_headers=basic_auth("CP-T2"))  # profile 2 wants TLS
        assert await boots(wss, "CP-T3", ssl=pki.client_context(cp3))
        assert not await boots(wss, "CP-T3", ssl=pki.client_context())  # no certificate, no profile 3
        forged = {"X-Forwarded-Proto": "https", "X-Client-Cert": base64.b64encode(
            ssl.PEM_cert_to_DER_cert(cp3.cert.read_text())).decode()}
        assert not await boots(ws, "CP-T3", additional_headers=forged)  # dropped by the balancer
        direct = f"ws://127.0.0.1:{node.port}/ocpp"
        assert not await boots(direct, "CP-T3", additional_headers=forged)  # not from a trusted proxy
        assert not await boots(direct, "CP-T2", additional_headers={**basic_auth("CP-T2"), **forged})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.port}",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            detail = (await api.get("/api/v1/charge-points/CP-T3")).json()
        assert detail["last_address"] == CP_SOURCE
        assert await other.stop() == 0  # one node drained and gone: wss goes on through the one left
        for _ in range(2):  # the second connection would land on the stopped node if HAProxy still sent there
            assert await boots(wss, "CP-T3", ssl=pki.client_context(cp3))
            assert await boots(wss, "CP-T2", ssl=pki.client_context(), additional_headers=basic_auth("CP-T2"))
        assert not await boots(wss, "CP-T3", ssl=pki.client_context())
    finally:
        if balancer is not None and balancer.returncode is None:
            balancer.terminate()
            await balancer.wait()
        await asyncio.gather(node.kill(), other.kill())
