"""Durability: ``voltlib serve`` in a subprocess is SIGKILLed in the middle of a burst of
transactions from ten charge points. Everything that was acknowledged must be in the database
after a restart, nothing twice; the unacknowledged messages, replayed, are stored exactly once.

A SIGKILL loses no OS buffers, so this proves "acknowledge only after commit" (and idempotent
replays), not fsync on power loss."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import websockets
from sqlalchemy import Connection, func, select
from websockets.exceptions import ConnectionClosed

from tests.conftest import free_port
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import meter_values, transactions

VOLTLIB = str(Path(sys.executable).with_name("voltlib"))
CHARGE_POINTS = 11  # ten in the burst, and one whose acknowledgement is lost (see below)
TRANSACTIONS_PER_CP = 6
SAMPLES_PER_TX = 3
KILL_AFTER_ACKS = 120  # of 10 * 6 * (1 + 3 + 1) = 300 messages in the burst
BASE = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Step:
    """One planned message. ``payload`` of MeterValues/StopTransaction is completed with the
    transaction id once the StartTransaction is acknowledged."""

    message_id: str
    action: str
    tx_index: int
    payload: dict[str, Any]
    reply: list[Any] | None = None


@dataclass
class Plan:
    cp_id: str
    steps: list[Step] = field(default_factory=list)
    tx_ids: dict[int, int] = field(default_factory=dict)

    def build(self, cp_number: int) -> None:
        tag = f"TAG-{cp_number:02d}"
        for t in range(TRANSACTIONS_PER_CP):
            begin = BASE + timedelta(hours=t, minutes=cp_number)
            self.steps.append(Step(f"{self.cp_id}-{t}-start", "StartTransaction", t, {
                "connectorId": 1, "idTag": tag, "meterStart": 1000 * t, "timestamp": iso(begin)}))
            for s in range(SAMPLES_PER_TX):
                self.steps.append(Step(f"{self.cp_id}-{t}-mv{s}", "MeterValues", t, {
                    "connectorId": 1, "meterValue": [{"timestamp": iso(begin + timedelta(minutes=10 * (s + 1))),
                                                      "sampledValue": [{"value": str(1000 * t + 100 * (s + 1))}]}]}))
            self.steps.append(Step(f"{self.cp_id}-{t}-stop", "StopTransaction", t, {
                "meterStop": 1000 * t + 500, "timestamp": iso(begin + timedelta(minutes=45)), "reason": "Local"}))

    def payload_of(self, step: Step) -> dict[str, Any]:
        if step.action == "MeterValues":
            return {**step.payload, "transactionId": self.tx_ids[step.tx_index]}
        if step.action == "StopTransaction":
            return {**step.payload, "transactionId": self.tx_ids[step.tx_index]}
        return step.payload

    def acknowledged(self) -> list[Step]:
        return [s for s in self.steps if s.reply is not None]


class Acks:
    def __init__(self, threshold: int) -> None:
        self.count = 0
        self.threshold = threshold
        self.reached = asyncio.Event()

    def add(self) -> None:
        self.count += 1
        if self.count >= self.threshold:
            self.reached.set()


@contextmanager
def running_server(database_url: str, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([VOLTLIB, "serve", "--port", str(port), "--database-url", database_url,
                                 "--log-level", "WARNING"], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "VOLTLIB_CONFIG": ""})
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def wait_until_up(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            assert proc.poll() is None, f"server exited early:\n{tail(log)}"
            try:
                if (await client.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"server did not come up:\n{tail(log)}")


async def run_plan(plan: Plan, port: int, acks: Acks | None, start_at: int = 0) -> None:
    """Send the plan's steps in order from ``start_at``, recording each CallResult. Stops quietly
    when the server goes away."""
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ocpp/{plan.cp_id}", subprotocols=["ocpp1.6"],
                                      open_timeout=10) as ws:
            for step in plan.steps[start_at:]:
                await ws.send(json.dumps([2, step.message_id, step.action, plan.payload_of(step)]))
                answer = json.loads(await ws.recv())
                assert answer[0] == 3 and answer[1] == step.message_id, answer
                step.reply = answer
                if step.action == "StartTransaction":
                    tx_id = answer[2]["transactionId"]
                    assert plan.tx_ids.setdefault(step.tx_index, tx_id) == tx_id
                if acks is not None:
                    acks.add()
    except (ConnectionClosed, OSError):
        if acks is None:
            raise


async def committed_transaction(database_url: str, cp_id: str) -> int:
    """The id of ``cp_id``'s first transaction, once it is committed (bounded wait)."""
    store = Store(database_url)
    try:
        for _ in range(400):
            tx_id = await store.read(lambda conn: conn.execute(
                select(transactions.c.id).where(transactions.c.charge_point_id == cp_id)).scalar())
            if tx_id is not None:
                return int(tx_id)
            await asyncio.sleep(0.025)
    finally:
        store.close()
    raise AssertionError(f"{cp_id}'s StartTransaction was never committed")


def read(database_url: str, op: Any) -> Any:
    store = Store(database_url)
    try:
        return store.run_sync(op)
    finally:
        store.close()


def all_transactions(conn: Connection) -> dict[int, dict[str, Any]]:
    return {int(r["id"]): dict(r) for r in conn.execute(select(transactions)).mappings()}


def meter_keys(conn: Connection) -> list[tuple[str, int, int, datetime]]:
    rows = conn.execute(select(meter_values.c.charge_point_id, meter_values.c.connector_id,
                               meter_values.c.transaction_id, meter_values.c.sampled_at))
    return [(r[0], int(r[1]), int(r[2]), r[3]) for r in rows]


def duplicated_natural_keys(conn: Connection) -> list[Any]:
    tx = conn.execute(select(transactions.c.charge_point_id, transactions.c.connector_id, transactions.c.started_at,
                             transactions.c.id_tag, func.count()).group_by(
        transactions.c.charge_point_id, transactions.c.connector_id, transactions.c.started_at,
        transactions.c.id_tag).having(func.count() > 1)).all()
    mv = conn.execute(select(meter_values.c.charge_point_id, meter_values.c.connector_id,
                             meter_values.c.transaction_id, meter_values.c.sampled_at, func.count()).group_by(
        meter_values.c.charge_point_id, meter_values.c.connector_id, meter_values.c.transaction_id,
        meter_values.c.sampled_at).having(func.count() > 1)).all()
    return [*tx, *mv]


def check_acknowledged(plans: list[Plan], stored: dict[int, dict[str, Any]],
                       keys: list[tuple[str, int, int, datetime]]) -> None:
    key_set = set(keys)
    for plan in plans:
        for step in plan.acknowledged():
            if step.action == "StartTransaction":
                row = stored.get(plan.tx_ids[step.tx_index])
                assert row is not None, f"acknowledged {step.message_id} lost"
                assert row["charge_point_id"] == plan.cp_id and row["meter_start"] == step.payload["meterStart"]
                assert iso(row["started_at"]) == step.payload["timestamp"]
            elif step.action == "MeterValues":
                sampled = datetime.fromisoformat(step.payload["meterValue"][0]["timestamp"].replace("Z", "+00:00"))
                key = (plan.cp_id, 1, plan.tx_ids[step.tx_index], sampled)
                assert key in key_set, f"acknowledged {step.message_id} lost"
            else:
                row = stored[plan.tx_ids[step.tx_index]]
                assert row["meter_stop"] == step.payload["meterStop"], f"acknowledged {step.message_id} lost"
                assert iso(row["stopped_at"]) == step.payload["timestamp"]


def register(database_url: str) -> None:
    """The first charge point through the CLI, the others and the id tags through the store."""
    cli = subprocess.run([VOLTLIB, "cp", "add", "CP-00", "--profile", "0", "--database-url", database_url],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "VOLTLIB_CONFIG": ""})
    assert cli.returncode == 0, cli.stderr
    setup = Store(database_url)
    try:
        upgrade(setup.engine)
        now = datetime.now(UTC)
        for n in range(CHARGE_POINTS):
            if n:
                setup.run_sync(partial(repo.add_charge_point, cp_id=f"CP-{n:02d}", registration="Accepted",
                                       security_profile=0, password_hash=None, certificate_fingerprint=None, now=now))
            setup.run_sync(partial(repo.upsert_id_tag, id_tag=f"TAG-{n:02d}", status="Accepted", expiry_date=None,
                                   parent_id_tag=None, now=now))
    finally:
        setup.close()


async def test_acknowledged_messages_survive_sigkill(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    register(database_url)
    plans = [Plan(f"CP-{n:02d}") for n in range(CHARGE_POINTS)]
    for n, plan in enumerate(plans):
        plan.build(n)
    total = sum(len(p.steps) for p in plans)

    # --- the burst, killed in the middle -----------------------------------------------------
    # The last charge point's StartTransaction is committed but its acknowledgement never read
    # (as if lost with the crash): its replay must find the same transaction, not make another.
    ghost, burst = plans[-1], plans[:-1]
    acks = Acks(KILL_AFTER_ACKS)
    with running_server(database_url, log) as (proc, port):
        await wait_until_up(proc, port, log)
        async with websockets.connect(f"ws://127.0.0.1:{port}/ocpp/{ghost.cp_id}", subprotocols=["ocpp1.6"],
                                      open_timeout=10) as ghost_ws:
            clients = [asyncio.create_task(run_plan(plan, port, acks)) for plan in burst]
            waiter = asyncio.create_task(acks.reached.wait())
            await asyncio.wait([waiter, *clients], return_when=asyncio.FIRST_COMPLETED, timeout=60)
            assert acks.reached.is_set(), f"only {acks.count} acks:\n{tail(log)}"
            step = ghost.steps[0]
            await ghost_ws.send(json.dumps([2, step.message_id, step.action, ghost.payload_of(step)]))
            ghost_tx = await committed_transaction(database_url, ghost.cp_id)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            await asyncio.wait_for(asyncio.gather(*clients), timeout=30)
            waiter.cancel()
    acknowledged = sum(len(p.acknowledged()) for p in plans)
    assert KILL_AFTER_ACKS <= acknowledged < total, "the kill did not land in the middle of the burst"
    assert ghost.acknowledged() == []

    # --- after the crash: every acknowledged message is stored, nothing twice ------------------
    stored = read(database_url, all_transactions)
    keys = read(database_url, meter_keys)
    check_acknowledged(plans, stored, keys)
    assert read(database_url, duplicated_natural_keys) == []

    # --- restart on the same database and replay ---------------------------------------------
    with running_server(database_url, log) as (proc, port):
        await wait_until_up(proc, port, log)
        replays = []
        for plan in plans:
            first_unacked = next((i for i, s in enumerate(plan.steps) if s.reply is None), len(plan.steps))
            # Also retransmit the last acknowledged message: it must change nothing.
            replays.append(run_plan(plan, port, None, start_at=max(first_unacked - 1, 0)))
        previous = {p.cp_id: dict(p.tx_ids) for p in plans}
        await asyncio.wait_for(asyncio.gather(*replays), timeout=60)
        for plan in plans:  # replayed starts got the ids they had before the crash
            for index, tx_id in previous[plan.cp_id].items():
                assert plan.tx_ids[index] == tx_id
        assert ghost.tx_ids[0] == ghost_tx
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    assert all(s.reply is not None for p in plans for s in p.steps)
    stored = read(database_url, all_transactions)
    keys = read(database_url, meter_keys)
    check_acknowledged(plans, stored, keys)
    assert read(database_url, duplicated_natural_keys) == []
    assert len(stored) == CHARGE_POINTS * TRANSACTIONS_PER_CP
    assert set(stored) == {tx for p in plans for tx in p.tx_ids.values()}
    assert all(row["stopped_at"] is not None for row in stored.values())
    assert len(keys) == len(set(keys)) == CHARGE_POINTS * TRANSACTIONS_PER_CP * SAMPLES_PER_TX
