"""``voltlib bench rolling-restart``: charge points behind HAProxy on two nodes (PostgreSQL, NATS),
both nodes restarted one after the other under load (docs/benchmarks.md, "Rolling restart").

Each simulated charge point connects through the balancer, boots, starts a transaction, then
sends a MeterValues of it every ``meter_s`` seconds (first at a random offset); every ``tx_every``
of those intervals (at its own phase) it sends StopTransaction and StartTransaction instead, so
transactions start and stop all through the run, the restarts included. Closed, it connects again
at once, boots again, and sends again, with the same message id and payload, a call that got no
answer, as OCPP wants. The run: every charge point in a transaction, ``settle_s`` of steady load,
SIGTERM to node A (it drains, docs/operations.md), wait until every charge point is connected
again, start A, wait until HAProxy takes it again, the same for node B, ``settle_s`` more, stop.

Measured, against the database afterwards: acknowledged MeterValues missing (must be 0);
duplicate transactions, the rows of this run's transactions beyond the StartTransactions the
charge points sent (0: a StartTransaction sent again is recognised by its natural key, charge
point, connector, timestamp and idTag, ``repo.start_transaction``, and gets the same
transactionId, on whichever node); acknowledged StartTransactions whose transactionId is not the
row stored for them, and acknowledged StopTransactions whose transaction is not closed (0). Also
the time from each SIGTERM until every charge point is connected again, the transactions started
and stopped during the restarts (so the duplicate check has something to check), and call latency
(p50, p99) in the steady windows and during the restarts. Only loopback is used: nodes on
127.0.0.1, HAProxy reaching them from 127.0.0.3.

``balancers`` > 1 runs that many HAProxy instances of the same configuration, each on its own
address and in front of both nodes, charge point ``i`` connecting to balancer ``i % balancers``:
an active pair behind DNS round-robin, as a site does once one HAProxy process's open-files limit
(two descriptors per charge point) is below its charge points (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
from sqlalchemy import select

from voltlib.bench.compare import free_port
from voltlib.bench.load import percentile
from voltlib.bench.procstats import raise_nofile_limit
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import meter_values, transactions

CONFIG = Path(__file__).parents[3] / "docs" / "haproxy.cfg"  # the repository's; see docs/operations.md
LB_SOURCE = "127.0.0.3"
RISE_S = 3.0  # docs/haproxy.cfg: "inter 1s rise 2", and a margin
QUIET_S = 3.0  # "every charge point back": all connected, and none has seen its socket close for this long


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
    # meter intervals between a charge point's StopTransaction + StartTransaction: at 10,000 charge points
    # and meter_s 30, ~330 transactions start (and stop) a minute; at meter_s 10, ~1,000
    tx_every: int = 60


@dataclass
class RollingResult:
    charge_points: int
    balancers: int = 1
    meter_s: float = 0.0
    tx_every: int = 0
    acknowledged: int = 0  # MeterValues
    lost: int = 0  # acknowledged MeterValues missing from the database
    duplicate_transactions: int = 0  # rows beyond the StartTransactions the charge points sent
    transactions_started: int = 0  # acknowledged StartTransactions
    transactions_stopped: int = 0  # acknowledged StopTransactions
    started_during_restarts: int = 0  # acknowledged between a SIGTERM and every charge point back
    stopped_during_restarts: int = 0
    starts_lost: int = 0  # acknowledged, but its transactionId is not the row stored for it
    stops_lost: int = 0  # acknowledged, but its transaction is not closed in the database
    retried: dict[str, int] = field(default_factory=dict)  # calls sent again (same id) after reconnecting
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
    __slots__ = ("acked", "cp_id", "index", "latencies", "online", "online_at", "retried", "sent_starts", "sessions",
                 "starts", "stops", "tx")

    def __init__(self, index: int) -> None:
        self.index = index
        self.cp_id = f"ROLL-{index:05d}"
        self.acked: list[int] = []  # seconds after START of each acknowledged MeterValues
        self.latencies: list[tuple[float, float]] = []  # (sent at, seconds)
        self.tx: int | None = None  # the transaction under way
        self.sent_starts: set[int] = set()  # each StartTransaction sent (its stamp, seconds after START)
        self.starts: list[tuple[int, int, float]] = []  # acknowledged: (stamp, transactionId, monotonic)
        self.stops: list[tuple[int, float]] = []  # acknowledged: (transactionId, monotonic)
        self.retried: dict[str, int] = {}
        self.online = False
        self.online_at = 0.0  # monotonic: when its current session was up (booted, in its transaction)
        self.sessions = 0


@dataclass(frozen=True, slots=True)
class _Call:
    """A call of the charge point's, kept as sent: sent again unchanged when it got no answer."""

    uid: str
    action: str
    payload: dict[str, Any]
    n: int  # its stamp, seconds after START


def _stamp(n: int) -> str:
    return (START + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")


def _reading(n: int) -> dict[str, Any]:
    return {"timestamp": _stamp(n), "sampledValue": [{"value": str(1000 + n),
                                                      "measurand": "Energy.Active.Import.Register"}]}


START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


class _Fleet:
    def __init__(self, plan: RollingPlan, urls: list[str], id_tag: str) -> None:
        self.plan, self.urls, self.id_tag = plan, urls, id_tag
        self.points = [_ChargePoint(i) for i in range(plan.charge_points)]
        self.stop = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.connecting = asyncio.Semaphore(200)
        self.closed_at = float("-inf")  # monotonic: the last time a charge point saw its session end

    def online(self) -> int:
        return sum(cp.online for cp in self.points)

    def settled(self) -> bool:
        """Every charge point connected, and none has seen its socket close for ``QUIET_S``: a charge
        point of the stopped node slow to read its close frame (a loaded machine) is not taken for
        one that stayed, to reconnect later to the node restarted meanwhile."""
        return self.online() == len(self.points) and time.monotonic() - self.closed_at >= QUIET_S

    async def run(self, cp: _ChargePoint) -> None:
        assert self.session is not None
        rng = random.Random(cp.index)
        url = self.urls[cp.index % len(self.urls)]  # its balancer, as DNS round-robin gave it
        phase = rng.randrange(self.plan.tx_every)  # its transactions end and start at their own time
        n = 0
        unanswered: _Call | None = None
        while not self.stop.is_set():
            try:
                async with self.connecting:
                    ws = await self.session.ws_connect(f"{url}/{cp.cp_id}", protocols=("ocpp1.6",),
                                                       autoping=True, heartbeat=None)
                async with ws:
                    cp.sessions += 1
                    await self._call(ws, f"b{cp.sessions}", "BootNotification",
                                     {"chargePointVendor": "Bench", "chargePointModel": "Roll"})
                    if unanswered is not None:  # the call the last socket took with it: again, same id
                        cp.retried[unanswered.action] = cp.retried.get(unanswered.action, 0) + 1
                        await self._send(ws, cp, unanswered)
                        unanswered = None
                    if cp.tx is None:  # its first, or the one after a stop the last socket answered
                        unanswered = self._start(cp, n)
                        await self._send(ws, cp, unanswered)
                        unanswered = None
                    cp.online, cp.online_at = True, time.monotonic()
                    await self._listen(ws, rng.uniform(0, self.plan.meter_s) if cp.sessions == 1 else 0)
                    while not self.stop.is_set():
                        n += 1
                        if (n + phase) % self.plan.tx_every == 0 and cp.tx is not None:
                            calls = [_Call(f"t{n}", "StopTransaction", {
                                "transactionId": cp.tx, "meterStop": 1000 + n, "timestamp": _stamp(n),
                                "reason": "Local"}, n), self._start(cp, n)]
                        else:
                            calls = [_Call(f"m{n}", "MeterValues", {"connectorId": 1, "transactionId": cp.tx,
                                                                    "meterValue": [_reading(n)]}, n)]
                        for call in calls:
                            unanswered = call
                            await self._send(ws, cp, call)
                            unanswered = None
                        await self._listen(ws, self.plan.meter_s)
            except (aiohttp.ClientError, ConnectionError, TimeoutError, _Closed):
                await asyncio.sleep(rng.uniform(0.05, 0.3))  # as a charge point: back in a moment
            finally:
                if cp.online:
                    self.closed_at = time.monotonic()
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

    def _start(self, cp: _ChargePoint, n: int) -> _Call:
        cp.sent_starts.add(n)
        return _Call(f"s{n}", "StartTransaction", {"connectorId": 1, "idTag": self.id_tag, "meterStart": 1000 + n,
                                                   "timestamp": _stamp(n)}, n)

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, cp: _ChargePoint, call: _Call) -> None:
        """Send ``call`` and note what its answer acknowledges."""
        sent = time.monotonic()
        reply = await self._call(ws, call.uid, call.action, call.payload)
        done = time.monotonic()
        cp.latencies.append((sent, done - sent))
        if call.action == "MeterValues":
            cp.acked.append(call.n)
        elif call.action == "StopTransaction":
            cp.stops.append((int(call.payload["transactionId"]), done))
            cp.tx = None
        else:
            cp.tx = int(reply["transactionId"])
            cp.starts.append((call.n, cp.tx, done))

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


def _prepare(plan: RollingPlan, id_tag: str) -> None:
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
            repo.upsert_id_tag(conn, id_tag=id_tag, status="Accepted", expiry_date=None, parent_id_tag=None, now=now)

        store.run_sync(add)
    finally:
        store.close()


@dataclass(frozen=True)
class _Audit:
    acknowledged: int
    lost: int
    duplicates: int
    starts_lost: int
    stops_lost: int


def _seconds(at: datetime) -> int:
    return int(((at if at.tzinfo else at.replace(tzinfo=UTC)) - START).total_seconds())


def _audit(plan: RollingPlan, points: list[_ChargePoint], id_tag: str) -> _Audit:
    """This run's figures, read back from the database: its transactions are those of its own idTag
    (an earlier run on the same database had another), its readings those of its transactions."""
    store = Store(plan.database_url)
    try:
        ids = [cp.cp_id for cp in points]
        txs = sorted({tx for cp in points for _, tx, _ in cp.starts})
        stamps = store.run_sync(lambda conn: conn.execute(
            select(meter_values.c.charge_point_id, meter_values.c.sampled_at)
            .where(meter_values.c.transaction_id.in_(txs))).all()) if txs else []
        rows = store.run_sync(lambda conn: conn.execute(
            select(transactions.c.charge_point_id, transactions.c.id, transactions.c.started_at,
                   transactions.c.stopped_at)
            .where(transactions.c.charge_point_id.in_(ids), transactions.c.id_tag == id_tag)).all())
    finally:
        store.close()
    stored: dict[str, set[int]] = {}
    for cp_id, at in stamps:
        stored.setdefault(cp_id, set()).add(_seconds(at))
    started: dict[str, list[tuple[int, int]]] = {}  # (stamp, id) of each row
    closed: set[int] = set()
    for cp_id, tx_id, started_at, stopped_at in rows:
        started.setdefault(cp_id, []).append((_seconds(started_at), int(tx_id)))
        if stopped_at is not None:
            closed.add(int(tx_id))
    duplicates = starts_lost = 0
    for cp in points:
        mine = started.get(cp.cp_id, [])
        # a row whose start it never sent, or a second row for one it did (sent again after a reconnect)
        duplicates += len(mine) - len({at for at, _ in mine if at in cp.sent_starts})
        starts_lost += len({(at, tx) for at, tx, _ in cp.starts} - set(mine))
    acknowledged = sum(len(cp.acked) for cp in points)
    lost = sum(len(set(cp.acked) - stored.get(cp.cp_id, set())) for cp in points)
    stops_lost = sum(1 for cp in points for tx, _ in cp.stops if tx not in closed)
    return _Audit(acknowledged, lost, duplicates, starts_lost, stops_lost)


async def run(plan: RollingPlan, progress: Any = print) -> RollingResult:
    if not plan.database_url.startswith(("postgresql", "postgres")):
        raise ValueError("two nodes share one database: give a PostgreSQL --database-url")
    binary = await asyncio.to_thread(_haproxy, plan)
    files = raise_nofile_limit()  # HAProxy inherits it: two descriptors per charge point it carries
    if 2 * -(-plan.charge_points // plan.balancers) + 100 > files:
        progress(f"warning: {files} open files per process is short for {plan.charge_points} charge points "
                 f"on {plan.balancers} HAProxy (two each): raise the limit or add --balancers")
    if plan.tx_every < 1:
        raise ValueError("tx_every: at least 1 meter interval between a charge point's transactions")
    id_tag = f"ROLL{uuid.uuid4().hex[:12].upper()}"  # this run's transactions are those of its idTag
    await asyncio.to_thread(_prepare, plan, id_tag)
    logs = Path(tempfile.mkdtemp(prefix="voltlib-rolling-"))
    cluster = f"roll{uuid.uuid4().hex[:8]}"
    a, b = _Node("node-a", plan, cluster, logs), _Node("node-b", plan, cluster, logs)
    lb_ports = [free_port() for _ in range(plan.balancers)]
    balancers: list[asyncio.subprocess.Process] = []
    result = RollingResult(plan.charge_points, balancers=plan.balancers, meter_s=plan.meter_s, tx_every=plan.tx_every)
    fleet = _Fleet(plan, [f"ws://127.0.0.1:{port}/ocpp" for port in lb_ports], id_tag)
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
        await _wait(lambda: all(cp.starts and cp.online for cp in fleet.points), plan.ramp_timeout_s)
        progress(f"every charge point in a transaction; {plan.settle_s:g} s of steady load")
        await asyncio.sleep(plan.settle_s)
        for node in (a, b):
            before = {cp.index: cp.sessions for cp in fleet.points}
            started = time.monotonic()
            code = await node.stop()
            progress(f"{node.name} stopped (exit {code}); waiting for every charge point to be back")
            with contextlib.suppress(TimeoutError):  # first its charge points see their sockets close (a node
                await _wait(lambda: fleet.online() < plan.charge_points, 5.0)  # holding none: 5 s, then on)
            await _wait(fleet.settled, plan.back_timeout_s)
            moved = [cp for cp in fleet.points if cp.sessions > before[cp.index]]
            back = max((cp.online_at for cp in moved), default=time.monotonic())  # the last one back
            result.back_s.append(back - started)
            windows.append((started, back))
            result.moved.append(len(moved))
            begun = sum(1 for cp in fleet.points for _, _, at in cp.starts if started <= at <= back)
            progress(f"every charge point back {back - started:.1f} s after {node.name}'s SIGTERM "
                     f"({result.moved[-1]} moved, {begun} transactions started meanwhile); starting it again")
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
    audit = await asyncio.to_thread(_audit, plan, fleet.points, id_tag)
    result.acknowledged, result.lost, result.duplicate_transactions = audit.acknowledged, audit.lost, audit.duplicates
    result.starts_lost, result.stops_lost = audit.starts_lost, audit.stops_lost

    def restarting(at: float) -> bool:
        return any(lo <= at <= hi for lo, hi in windows)

    result.transactions_started = sum(len(cp.starts) for cp in fleet.points)
    result.transactions_stopped = sum(len(cp.stops) for cp in fleet.points)
    result.started_during_restarts = sum(1 for cp in fleet.points for _, _, at in cp.starts if restarting(at))
    result.stopped_during_restarts = sum(1 for cp in fleet.points for _, at in cp.stops if restarting(at))
    for cp in fleet.points:
        for action, count in cp.retried.items():
            result.retried[action] = result.retried.get(action, 0) + count
    during = sorted(s for cp in fleet.points for at, s in cp.latencies if restarting(at))
    steady = sorted(s for cp in fleet.points for at, s in cp.latencies if not restarting(at))
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


def failed(result: RollingResult) -> bool:
    """Anything acknowledged lost, or a transaction stored twice: the bench's exit status 1."""
    return bool(result.lost or result.duplicate_transactions or result.starts_lost or result.stops_lost)


def as_json(result: RollingResult) -> str:
    """The result as one JSON object, for a run's record beside its printout."""
    return json.dumps(dataclasses.asdict(result), indent=2)


def render(result: RollingResult) -> str:
    retried = ", ".join(f"{count:,} {action}" for action, count in sorted(result.retried.items())) or "none"
    lines = [
        f"charge points                      {result.charge_points:,}",
        f"HAProxy instances                  {result.balancers}",
        f"acknowledged MeterValues           {result.acknowledged:,}",
        f"acknowledged, missing from the db  {result.lost}",
        f"transactions started / stopped     {result.transactions_started:,} / {result.transactions_stopped:,} "
        f"(one each {result.tx_every} meter intervals of {result.meter_s:g} s)",
        f"  during the restarts              {result.started_during_restarts:,} / "
        f"{result.stopped_during_restarts:,}",
        f"duplicate transactions             {result.duplicate_transactions}",
        f"acknowledged starts not stored     {result.starts_lost}",
        f"acknowledged stops not stored      {result.stops_lost}",
        f"calls sent again after reconnect   {retried}",
        f"connections cut short by a drain   {result.cut_short}",
        f"reconnections                      {result.reconnects:,}",
    ]
    for n, (back, moved) in enumerate(zip(result.back_s, result.moved, strict=True)):
        lines.append(f"restart {n + 1}: every charge point back {back:.1f} s after SIGTERM ({moved:,} moved)")
    lines.append(f"latency steady   p50 {result.steady_ms[0]:.1f} ms  p99 {result.steady_ms[1]:.1f} ms")
    lines.append(f"latency restarts p50 {result.restart_ms[0]:.1f} ms  p99 {result.restart_ms[1]:.1f} ms")
    return "\n".join(lines)
