"""``voltlib bench rolling-restart``: charge points behind HAProxy on two nodes (PostgreSQL, NATS),
both nodes restarted one after the other under load (docs/benchmarks.md, "Rolling restart").

Each simulated charge point connects through the balancer, boots, starts one transaction, then
sends a MeterValues of it every ``meter_s`` seconds (first at a random offset). Closed, it connects
again at once, boots again, and sends again, with the same message id, a call that got no answer,
as OCPP wants. The run: every charge point in its transaction, ``settle_s`` of steady load, SIGTERM
to node A (it drains, docs/operations.md), wait until every charge point is connected again, start
A, wait until HAProxy takes it again, the same for node B, ``settle_s`` more, stop.

Measured: acknowledged MeterValues missing from the database afterwards (must be 0), charge points
with more than one transaction (0), the time from each SIGTERM until every charge point is
connected again, and call latency (p50, p99) in the steady windows and during the restarts.
Only loopback is used: nodes on 127.0.0.1, HAProxy reaching them from 127.0.0.3.

``balancers`` > 1 runs that many HAProxy instances of the same configuration, each on its own
address and in front of both nodes, charge point ``i`` connecting to balancer ``i % balancers``:
an active pair behind DNS round-robin, as a site does once one HAProxy process's open-files limit
(two descriptors per charge point) is below its charge points (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import func, select

from voltlib.bench.compare import free_port
from voltlib.bench.load import percentile
from voltlib.bench.procstats import raise_nofile_limit
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import meter_values, transactions

CONFIG = Path(__file__).parents[3] / "docs" / "haproxy.cfg"  # the repository's; see docs/operations.md
ID_TAG = "BENCHROLL"
LB_SOURCE = "127.0.0.3"
RISE_S = 3.0  # docs/haproxy.cfg: "inter 1s rise 2", and a margin


@dataclass(frozen=True)
class RollingPlan:
    database_url: str
    charge_points: int = 2000
    meter_s: float = 10.0
    settle_s: float = 20.0
    bus_url: str = "nats://127.0.0.1:4222"
    haproxy: str = "haproxy"
    config: Path = CONFIG
    ramp_timeout_s: float = 600.0
    back_timeout_s: float = 300.0
    balancers: int = 1  # HAProxy instances, each in front of both nodes, charge points split between them


@dataclass
class RollingResult:
    charge_points: int
    balancers: int = 1
    acknowledged: int = 0
    lost: int = 0
    duplicate_transactions: int = 0
    back_s: list[float] = field(default_factory=list)  # per restart: SIGTERM until every one connected
    moved: list[int] = field(default_factory=list)  # per restart: charge points the stopped node held
    cut_short: int = 0
    steady_ms: tuple[float, float] = (0.0, 0.0)  # p50, p99
    restart_ms: tuple[float, float] = (0.0, 0.0)
    calls: int = 0
    reconnects: int = 0


class _Node:
    def __init__(self, name: str, plan: RollingPlan, cluster: str, logs: Path) -> None:
        self.name, self.plan, self.cluster, self.logs = name, plan, cluster, logs
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        env = {**os.environ, "VOLTLIB_DATABASE_URL": self.plan.database_url, "VOLTLIB_BUS_URL": self.plan.bus_url,
               "VOLTLIB_CLUSTER_NAME": self.cluster, "VOLTLIB_NODE_NAME": self.name, "VOLTLIB_LOG_LEVEL": "WARNING",
               "VOLTLIB_TRUSTED_PROXIES": json.dumps([f"{LB_SOURCE}/32"]), "VOLTLIB_SMART_CHARGING": "false",
               "VOLTLIB_LOG_FORMAT": "json"}
        with (self.logs / f"{self.name}-{self.starts}.log").open("wb") as sink:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "voltlib", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                stdout=sink, stderr=sink, env=env)
        await _until_ready(f"http://127.0.0.1:{self.port}", 120)

    async def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 120)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def _until_ready(base: str, timeout: float, times: int = 1) -> None:
    """``/api/v1/ready`` answered 200 ``times`` in a row (through HAProxy: each node in turn)."""
    deadline = time.monotonic() + timeout
    good = 0
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while good < times:
            try:
                good = good + 1 if (await http.get("/api/v1/ready")).status_code == 200 else 0
            except httpx.TransportError:
                good = 0
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base} not ready after {timeout:g} s")
            await asyncio.sleep(0.25)


class _ChargePoint:
    __slots__ = ("acked", "cp_id", "index", "latencies", "online", "sessions", "tx")

    def __init__(self, index: int) -> None:
        self.index = index
        self.cp_id = f"ROLL-{index:05d}"
        self.acked: list[int] = []  # seconds after START of each acknowledged MeterValues
        self.latencies: list[tuple[float, float]] = []  # (sent at, seconds)
        self.tx: int | None = None
        self.online = False
        self.sessions = 0


START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


class _Fleet:
    def __init__(self, plan: RollingPlan, urls: list[str]) -> None:
        self.plan, self.urls = plan, urls
        self.points = [_ChargePoint(i) for i in range(plan.charge_points)]
        self.stop = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.connecting = asyncio.Semaphore(200)

    def online(self) -> int:
        return sum(cp.online for cp in self.points)

    async def run(self, cp: _ChargePoint) -> None:
        assert self.session is not None
        rng = random.Random(cp.index)
        url = self.urls[cp.index % len(self.urls)]  # its balancer, as DNS round-robin gave it
        n = 0
        unanswered: tuple[str, str] | None = None
        while not self.stop.is_set():
            try:
                async with self.connecting:
                    ws = await self.session.ws_connect(f"{url}/{cp.cp_id}", protocols=("ocpp1.6",),
                                                       autoping=True, heartbeat=None)
                async with ws:
                    cp.sessions += 1
                    await self._call(ws, f"b{cp.sessions}", "BootNotification",
                                     {"chargePointVendor": "Bench", "chargePointModel": "Roll"})
                    if cp.tx is None:
                        reply = await self._call(ws, "start", "StartTransaction", {
                            "connectorId": 1, "idTag": ID_TAG, "meterStart": 0,
                            "timestamp": START.isoformat().replace("+00:00", "Z")})
                        cp.tx = int(reply["transactionId"])
                    cp.online = True
                    if unanswered is not None:  # the call the last socket took with it: again, same id
                        await self._meter(ws, cp, *unanswered)
                        unanswered = None
                    await self._listen(ws, rng.uniform(0, self.plan.meter_s) if cp.sessions == 1 else 0)
                    while not self.stop.is_set():
                        n += 1
                        message = (f"m{n}", str(n))
                        unanswered = message
                        await self._meter(ws, cp, *message)
                        unanswered = None
                        await self._listen(ws, self.plan.meter_s)
            except (aiohttp.ClientError, ConnectionError, TimeoutError, _Closed):
                await asyncio.sleep(rng.uniform(0.05, 0.3))  # as a charge point: back in a moment
            finally:
                cp.online = False

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse, seconds: float) -> None:
        """Wait ``seconds`` reading the socket, as a charge point's WebSocket does: a close frame is
        seen at once (and the charge point reconnects), not at the next call."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while not self.stop.is_set() and (left := until - loop.time()) > 0:
            try:
                msg = await ws.receive(timeout=min(left, 1.0))
            except TimeoutError:
                continue
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise _Closed(ws.close_code)
            frame = json.loads(msg.data)
            if frame[0] == 2:
                await ws.send_str(json.dumps([3, frame[1], {"status": "Accepted"}]))

    async def _meter(self, ws: aiohttp.ClientWebSocketResponse, cp: _ChargePoint, uid: str, n: str) -> None:
        stamp = START + timedelta(seconds=int(n))
        sent = time.monotonic()
        await self._call(ws, uid, "MeterValues", {"connectorId": 1, "transactionId": cp.tx, "meterValue": [
            {"timestamp": stamp.isoformat().replace("+00:00", "Z"),
             "sampledValue": [{"value": str(1000 + int(n)), "measurand": "Energy.Active.Import.Register"}]}]})
        cp.latencies.append((sent, time.monotonic() - sent))
        cp.acked.append(int(n))

    @staticmethod
    async def _call(ws: aiohttp.ClientWebSocketResponse, uid: str, action: str,
                    payload: dict[str, Any]) -> dict[str, Any]:
        await ws.send_str(json.dumps([2, uid, action, payload]))
        while True:
            msg = await asyncio.wait_for(ws.receive(), 60)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise _Closed(ws.close_code)
            frame = json.loads(msg.data)
            if frame[0] == 2:  # a call of the central system's: answered, not our business here
                await ws.send_str(json.dumps([3, frame[1], {"status": "Accepted"}]))
                continue
            if frame[1] != uid or frame[0] != 3:
                raise _Closed(None)
            result: dict[str, Any] = frame[2]
            return result


class _Closed(Exception):
    pass


def _prepare(plan: RollingPlan) -> None:
    store = Store(plan.database_url)
    try:
        upgrade(store.engine)
        now = datetime.now(UTC)

        def add(conn: Any) -> None:
            known = {row["id"] for row in repo.list_charge_points(conn)}
            for i in range(plan.charge_points):
                if f"ROLL-{i:05d}" not in known:
                    repo.add_charge_point(conn, cp_id=f"ROLL-{i:05d}", registration="Accepted", security_profile=0,
                                          password_hash=None, certificate_fingerprint=None, now=now)
            repo.upsert_id_tag(conn, id_tag=ID_TAG, status="Accepted", expiry_date=None, parent_id_tag=None, now=now)

        store.run_sync(add)
    finally:
        store.close()


def _audit(plan: RollingPlan, points: list[_ChargePoint]) -> tuple[int, int, int]:
    """(acknowledged, lost, charge points with more than one transaction), this run's only (its
    transactions start at ``START``; an earlier run on the same database had another)."""
    store = Store(plan.database_url)
    try:
        ids = [cp.cp_id for cp in points]
        txs = [cp.tx for cp in points if cp.tx is not None]
        stamps = store.run_sync(lambda conn: conn.execute(
            select(meter_values.c.charge_point_id, meter_values.c.sampled_at)
            .where(meter_values.c.transaction_id.in_(txs))).all())
        tx_counts = store.run_sync(lambda conn: conn.execute(
            select(transactions.c.charge_point_id, func.count()).where(transactions.c.charge_point_id.in_(ids))
            .where(transactions.c.started_at == START).group_by(transactions.c.charge_point_id)).all())
    finally:
        store.close()
    stored: dict[str, set[int]] = {}
    for cp_id, at in stamps:
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        stored.setdefault(cp_id, set()).add(int((at - START).total_seconds()))
    acknowledged = sum(len(cp.acked) for cp in points)
    lost = sum(len(set(cp.acked) - stored.get(cp.cp_id, set())) for cp in points)
    return acknowledged, lost, sum(1 for _, count in tx_counts if count > 1)


async def run(plan: RollingPlan, progress: Any = print) -> RollingResult:
    if not plan.database_url.startswith(("postgresql", "postgres")):
        raise ValueError("two nodes share one database: give a PostgreSQL --database-url")
    binary = await asyncio.to_thread(_haproxy, plan)
    files = raise_nofile_limit()  # HAProxy inherits it: two descriptors per charge point it carries
    if 2 * -(-plan.charge_points // plan.balancers) + 100 > files:
        progress(f"warning: {files} open files per process is short for {plan.charge_points} charge points "
                 f"on {plan.balancers} HAProxy (two each): raise the limit or add --balancers")
    await asyncio.to_thread(_prepare, plan)
    logs = Path(tempfile.mkdtemp(prefix="voltlib-rolling-"))
    cluster = f"roll{uuid.uuid4().hex[:8]}"
    a, b = _Node("node-a", plan, cluster, logs), _Node("node-b", plan, cluster, logs)
    lb_ports = [free_port() for _ in range(plan.balancers)]
    balancers: list[asyncio.subprocess.Process] = []
    result = RollingResult(plan.charge_points, balancers=plan.balancers)
    fleet = _Fleet(plan, [f"ws://127.0.0.1:{port}/ocpp" for port in lb_ports])
    tasks: list[asyncio.Task[None]] = []
    windows: list[tuple[float, float]] = []  # restarts: SIGTERM until every charge point is back
    try:
        await asyncio.gather(a.start(), b.start())
        for k, port in enumerate(lb_ports):
            balancers.append(await _balancer(binary, plan, port, (a, b), logs / f"haproxy-{k + 1}.log"))
        await asyncio.gather(*(_until_ready(f"http://127.0.0.1:{port}", 60, times=4) for port in lb_ports))
        fleet.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                              timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))
        tasks = [asyncio.create_task(fleet.run(cp)) for cp in fleet.points]
        progress(f"{plan.charge_points} charge points connecting through {plan.balancers} HAProxy "
                 f"(logs in {logs})")
        await _wait(lambda: all(cp.tx is not None and cp.online for cp in fleet.points), plan.ramp_timeout_s)
        progress(f"every charge point in its transaction; {plan.settle_s:g} s of steady load")
        await asyncio.sleep(plan.settle_s)
        for node in (a, b):
            before = {cp.index: cp.sessions for cp in fleet.points}
            started = time.monotonic()
            code = await node.stop()
            progress(f"{node.name} stopped (exit {code}); waiting for every charge point to be back")
            with contextlib.suppress(TimeoutError):  # first its charge points see their sockets close (a node
                await _wait(lambda: fleet.online() < plan.charge_points, 5.0)  # holding none: 5 s, then on)
            await _wait(lambda: fleet.online() == plan.charge_points, plan.back_timeout_s)
            back = time.monotonic()
            result.back_s.append(back - started)
            windows.append((started, back))
            result.moved.append(sum(1 for cp in fleet.points if cp.sessions > before[cp.index]))
            progress(f"every charge point back {back - started:.1f} s after {node.name}'s SIGTERM "
                     f"({result.moved[-1]} moved); starting it again")
            await node.start()
            await asyncio.sleep(RISE_S)  # HAProxy takes it back after two good health checks
        await asyncio.sleep(plan.settle_s)
    finally:
        fleet.stop.set()
        if tasks:
            await asyncio.wait(tasks, timeout=plan.meter_s + 30)
        for task in tasks:
            task.cancel()
        if fleet.session is not None:
            await fleet.session.close()
        for balancer in balancers:
            if balancer.returncode is None:
                balancer.terminate()
                await balancer.wait()
        for node in (a, b):
            if node.process is not None and node.process.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await node.stop()
            await node.kill()
    result.cut_short = await asyncio.to_thread(lambda: sum(_cut_short(path) for path in logs.glob("node-*.log")))
    result.acknowledged, result.lost, result.duplicate_transactions = await asyncio.to_thread(
        _audit, plan, fleet.points)
    during = sorted(s for cp in fleet.points for at, s in cp.latencies if any(lo <= at <= hi for lo, hi in windows))
    steady = sorted(s for cp in fleet.points for at, s in cp.latencies
                    if not any(lo <= at <= hi for lo, hi in windows))
    result.steady_ms = (percentile(steady, 0.5) * 1000, percentile(steady, 0.99) * 1000) if steady else (0, 0)
    result.restart_ms = (percentile(during, 0.5) * 1000, percentile(during, 0.99) * 1000) if during else (0, 0)
    result.calls = len(steady) + len(during)
    result.reconnects = sum(cp.sessions - 1 for cp in fleet.points)
    return result


async def _balancer(binary: str, plan: RollingPlan, port: int, nodes: tuple[_Node, _Node],
                    log: Path) -> asyncio.subprocess.Process:
    """One HAProxy running ``plan.config`` on ``port``, in front of both nodes."""
    env = {**os.environ, "VOLTLIB_LB_BIND": f"127.0.0.1:{port}", "VOLTLIB_LB_SOURCE": LB_SOURCE,
           "VOLTLIB_NODE_A": f"127.0.0.1:{nodes[0].port}", "VOLTLIB_NODE_B": f"127.0.0.1:{nodes[1].port}"}
    with log.open("wb") as sink:
        return await asyncio.create_subprocess_exec(binary, "-db", "-f", str(plan.config),
                                                    stdout=sink, stderr=sink, env=env)


def _haproxy(plan: RollingPlan) -> str:
    binary = shutil.which(plan.haproxy) or plan.haproxy
    if not os.path.exists(binary) or not plan.config.exists():
        raise ValueError(f"needs HAProxy ({plan.haproxy}) and its configuration ({plan.config})")
    return binary


def _cut_short(path: Path) -> int:
    cut = 0
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            message = json.loads(line)["message"]
            if message.startswith("drain:") and "still busy" in message:
                cut += int(message.split()[1])
    return cut


async def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout:g} s")
        await asyncio.sleep(0.1)


def render(result: RollingResult) -> str:
    lines = [
        f"charge points                      {result.charge_points:,}",
        f"HAProxy instances                  {result.balancers}",
        f"acknowledged MeterValues           {result.acknowledged:,}",
        f"acknowledged, missing from the db  {result.lost}",
        f"charge points with 2+ transactions {result.duplicate_transactions}",
        f"connections cut short by a drain   {result.cut_short}",
        f"reconnections                      {result.reconnects:,}",
    ]
    for n, (back, moved) in enumerate(zip(result.back_s, result.moved, strict=True)):
        lines.append(f"restart {n + 1}: every charge point back {back:.1f} s after SIGTERM ({moved:,} moved)")
    lines.append(f"latency steady   p50 {result.steady_ms[0]:.1f} ms  p99 {result.steady_ms[1]:.1f} ms")
    lines.append(f"latency restarts p50 {result.restart_ms[0]:.1f} ms  p99 {result.restart_ms[1]:.1f} ms")
    return "\n".join(lines)
