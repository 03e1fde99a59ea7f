"""OCPP 1.6 behaviour over real WebSockets, on SQLite and PostgreSQL: idempotency, offline
transactions, authorization, DataTransfer routing."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import Connection, func, select
from typer.testing import CliRunner

from tests.conftest import RunningServer, basic_auth
from voltlib.cli.main import app
from voltlib.gateway.datatransfer import DataTransferAnswer
from voltlib.store.tables import meter_values, transactions

BOOT = {"chargePointVendor": "Bolloré", "chargePointModel": "AL1"}


class Client:
    """A minimal charge point: sends calls, returns the decoded answer."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, action: str, payload: dict[str, Any], message_id: str | None = None) -> list[Any]:
        message_id = message_id or f"m{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        await self.ws.send(json.dumps([2, message_id, action, payload]))
        return await self.recv()

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send(text)

    async def recv(self) -> list[Any]:
        return list(json.loads(await self.ws.recv()))

    async def sync(self) -> None:
        """A Heartbeat round trip: frames are handled in order, so everything before it is done."""
        reply = await self.call("Heartbeat", {})
        assert reply[0] == 3, reply


@asynccontextmanager
async def connect(server: RunningServer, cp_id: str, *, password: str | None = None,
                  subprotocols: list[str] | None = None) -> AsyncIterator[Client]:
    headers = basic_auth(cp_id, password) if password else None
    async with websockets.connect(f"{server.ws_url}/{cp_id}", subprotocols=subprotocols or ["ocpp1.6"],
                                  additional_headers=headers, max_size=None) as ws:
        yield Client(ws)


async def booted(server: RunningServer, cp_id: str) -> None:
    """Register ``cp_id`` (profile 0) and check it can connect and boot: the server still serves."""
    await server.add_charge_point(cp_id, profile=0)
    async with connect(server, cp_id) as cp:
        reply = await cp.call("BootNotification", BOOT)
        assert reply[0] == 3 and reply[2]["status"] == "Accepted", reply
        assert (await cp.call("Heartbeat", {}))[0] == 3


async def assert_still_serving(server: RunningServer) -> None:
    await booted(server, f"FRESH-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=server.url) as api:
        assert (await api.get("/api/v1/health")).status_code == 200


async def security_events(server: RunningServer) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        response = await api.get("/api/v1/security-events")
        assert response.status_code == 200
        return list(response.json())


def start(tag: str = "BADGE1", when: str = "2026-01-01T08:00:00Z", connector: int = 1, meter: int = 100) -> dict:
    return {"connectorId": connector, "idTag": tag, "meterStart": meter, "timestamp": when}


def count_rows(table: Any, **where: Any) -> Any:
    def op(conn: Connection) -> int:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return int(conn.execute(query).scalar_one())
    return op


# --- idempotency ----------------------------------------------------------------------------------


async def test_retransmitted_start_after_reconnect_gets_the_same_transaction(server: RunningServer) -> None:
    await server.add_charge_point("CP-R", profile=0)
    await server.add_id_tag("BADGE1")
    async with connect(server, "CP-R") as cp:
        await cp.call("BootNotification", BOOT)
        first = await cp.call("StartTransaction", start(), message_id="start-1")
    assert first[0] == 3
    async with connect(server, "CP-R") as cp:
        again = await cp.call("StartTransaction", start(), message_id="start-1")
    assert again == first
    assert await server.store.read(count_rows(transactions, charge_point_id="CP-R")) == 1


async def test_replayed_start_with_new_message_id_is_idempotent_by_natural_key(server: RunningServer) -> None:
    await server.add_charge_point("CP-N", profile=0)
    await server.add_id_tag("BADGE1")
    async with connect(server, "CP-N") as cp:
        first = await cp.call("StartTransaction", start())
        second = await cp.call("StartTransaction", start())
        assert first[0] == second[0] == 3 and first[1] != second[1]
        assert second[2]["transactionId"] == first[2]["transactionId"]
        assert second[2]["idTagInfo"]["status"] == "Accepted"  # not ConcurrentTx: it is the same transaction
        other = await cp.call("StartTransaction", start(connector=2, when="2026-01-01T08:00:01Z"))
        assert other[2]["transactionId"] != first[2]["transactionId"]
        assert other[2]["idTagInfo"]["status"] == "ConcurrentTx"
    assert await server.store.read(count_rows(transactions, charge_point_id="CP-N")) == 2


async def test_meter_values_retransmission_stores_nothing_twice(server: RunningServer) -> None:
    await server.add_charge_point("CP-MV", profile=0)
    await server.add_id_tag("BADGE1")
    async with connect(server, "CP-MV") as cp:
        tx = (await cp.call("StartTransaction", start()))[2]["transactionId"]
        values = {"connectorId": 1, "transactionId": tx, "meterValue": [
            {"timestamp": f"2026-01-01T08:0{i}:00Z", "sampledValue": [{"value": str(100 + i)}]} for i in range(3)]}
        first = await cp.call("MeterValues", values, message_id="mv-1")
        assert first == [3, "mv-1", {}]
        assert await cp.call("MeterValues", values, message_id="mv-1") == first  # same id: retransmission
        assert (await cp.call("MeterValues", values, message_id="mv-2"))[0] == 3  # new id, same data
    async with connect(server, "CP-MV") as cp:
        assert await cp.call("MeterValues", values, message_id="mv-1") == first
    assert await server.store.read(count_rows(meter_values, charge_point_id="CP-MV")) == 3
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        listed = (await api.get("/api/v1/charge-points/CP-MV/meter-values", params={"transaction_id": tx})).json()
    assert sorted(v["sampled_value"][0]["value"] for v in listed) == ["100", "101", "102"]


async def logged_exchanges(server: RunningServer, cp_id: str) -> list[tuple[str | None, str]]:
    """(action, outcome) of every row of ``cp_id``'s raw OCPP log, oldest first."""
    await server.settled()
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        for _ in range(50):  # the log is written with a group commit that nobody awaits
            rows = (await api.get(f"/api/v1/charge-points/{cp_id}/messages")).json()
            if any(row["action"] == "Authorize" for row in rows):
                break
            await asyncio.sleep(0.02)
    return [(row["action"], row["outcome"]) for row in reversed(rows)]


@pytest.mark.parametrize("policy", ["compact", "full"])
async def test_message_log_policy(server: RunningServer, policy: str) -> None:
    server.settings.message_log = policy  # type: ignore[assignment]
    await server.add_charge_point("CP-LOG", profile=0)
    values = {"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T08:00:00Z",
                                                "sampledValue": [{"value": "100"}]}]}
    async with connect(server, "CP-LOG") as cp:
        await cp.call("BootNotification", BOOT)
        assert (await cp.call("MeterValues", values, message_id="mv-ok"))[0] == 3
        assert (await cp.call("MeterValues", values, message_id="mv-ok"))[0] == 3  # retransmission
        assert (await cp.call("MeterValues", {"connectorId": "one"}, message_id="mv-bad"))[0] == 4
        await cp.call("Heartbeat", {})
        await cp.call("Authorize", {"idTag": "NOBODY"})
    logged = await logged_exchanges(server, "CP-LOG")
    kept_anyway = [("BootNotification", "result"), ("MeterValues", "retransmission"), ("MeterValues", "violation"),
                   ("Authorize", "result")]
    accepted = [("MeterValues", "result"), ("Heartbeat", "result")]
    if policy == "compact":
        assert logged == kept_anyway
    else:
        assert logged == [kept_anyway[0], accepted[0], *kept_anyway[1:3], accepted[1], kept_anyway[3]]
    assert await server.store.read(count_rows(meter_values, charge_point_id="CP-LOG")) == 1  # stored either way


async def test_a_traced_charge_point_is_logged_in_full(server: RunningServer) -> None:
    """Under the compact log, an operator can trace one charge point: its accepted MeterValues are
    logged too, on this connection and the next, until the trace ends."""
    assert server.settings.message_log == "compact"
    await server.add_charge_point("CP-TRACE", profile=0)

    def values(minute: int) -> dict[str, Any]:
        return {"connectorId": 1, "meterValue": [{"timestamp": f"2026-01-01T08:{minute:02d}:00Z",
                                                  "sampledValue": [{"value": str(100 + minute)}]}]}

    async def trace(minutes: int) -> httpx.Response:
        async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
            return await api.post("/api/v1/charge-points/CP-TRACE/trace", json={"minutes": minutes})

    async with connect(server, "CP-TRACE") as cp:
        await cp.call("BootNotification", BOOT)
        await cp.call("MeterValues", values(1), message_id="before")
        on = await trace(30)
        assert on.status_code == 200 and on.json()["live"] is True and on.json()["trace_until"]
        await cp.call("MeterValues", values(2), message_id="traced")
    async with connect(server, "CP-TRACE") as cp:  # the next connection is traced too
        await cp.call("MeterValues", values(3), message_id="traced-again")
        cli = await asyncio.to_thread(CliRunner().invoke, app, [
            "cp", "trace", "CP-TRACE", "--minutes", "0", "--url", server.url, "--token", server.token])
        assert cli.exit_code == 0, cli.output
        assert json.loads(cli.output)["trace_until"] is None
        await cp.call("MeterValues", values(4), message_id="after")
        await cp.call("Authorize", {"idTag": "NOBODY"})
    rows = await logged_exchanges(server, "CP-TRACE")
    assert rows.count(("MeterValues", "result")) == 2
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        logged = {row["message_id"] for row in (await api.get("/api/v1/charge-points/CP-TRACE/messages")).json()
                  if row["action"] == "MeterValues"}
    assert logged == {"traced", "traced-again"}
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        entries = (await api.get("/api/v1/security/audit")).json()
    assert [(e["action"], e["target"], e["detail"]) for e in entries if e["action"] == "charge_point.trace"] \
        == [("charge_point.trace", "CP-TRACE", {"minutes": 0}), ("charge_point.trace", "CP-TRACE", {"minutes": 30})]
    assert (await trace(-1)).status_code == 422
    assert (await trace(24 * 60 + 1)).status_code == 422
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        assert (await api.post("/api/v1/charge-points/NOPE/trace", json={"minutes": 5})).status_code == 404


async def test_offline_transaction_is_stored_and_listed_by_start_time(server: RunningServer) -> None:
    await server.add_charge_point("CP-OFF", profile=0)
    await server.add_id_tag("BADGE1")
    await server.add_id_tag("BADGE2")
    async with connect(server, "CP-OFF") as cp:
        recent = (await cp.call("StartTransaction", start("BADGE1", "2026-03-01T10:00:00Z")))[2]["transactionId"]
        # Sent after reconnecting from a long offline period: started weeks before the one above.
        old = await cp.call("StartTransaction", start("BADGE2", "2026-02-01T10:00:00Z", connector=2))
        old_tx = old[2]["transactionId"]
        assert old[2]["idTagInfo"]["status"] == "Accepted"
        stop = await cp.call("StopTransaction", {
            "transactionId": old_tx, "meterStop": 5100, "timestamp": "2026-02-01T11:00:00Z", "reason": "Local",
            "transactionData": [
                {"timestamp": "2026-02-01T10:30:00Z", "sampledValue": [{"value": "2600"}]},
                {"timestamp": "2026-02-01T11:00:00Z", "sampledValue": [{"value": "5100",
                                                                        "context": "Transaction.End"}]}]})
        assert stop[0] == 3 and stop[2] == {}
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        listed = (await api.get("/api/v1/charge-points/CP-OFF/transactions")).json()
        values = (await api.get("/api/v1/charge-points/CP-OFF/meter-values",
                                params={"transaction_id": old_tx})).json()
    assert [t["id"] for t in listed] == [recent, old_tx]
    starts = [datetime.fromisoformat(t["started_at"].replace("Z", "+00:00")) for t in listed]
    assert starts == sorted(starts, reverse=True)
    stopped = listed[1]
    assert stopped["meter_stop"] == 5100 and stopped["stopped_at"] is not None and stopped["connector_id"] == 2
    assert listed[0]["stopped_at"] is None
    assert sorted(v["sampled_value"][0]["value"] for v in values) == ["2600", "5100"]
    assert all(v["connector_id"] == 2 for v in values)


async def test_stop_is_applied_once(server: RunningServer) -> None:
    await server.add_charge_point("CP-S", profile=0)
    await server.add_id_tag("BADGE1")
    async with connect(server, "CP-S") as cp:
        tx = (await cp.call("StartTransaction", start()))[2]["transactionId"]
        stop = {"transactionId": tx, "meterStop": 900, "timestamp": "2026-01-01T09:00:00Z", "idTag": "BADGE1"}
        assert (await cp.call("StopTransaction", stop))[2]["idTagInfo"]["status"] == "Accepted"
        later = {**stop, "meterStop": 1000, "timestamp": "2026-01-01T10:00:00Z"}
        assert (await cp.call("StopTransaction", later))[0] == 3
    rows = await server.store.read(lambda conn: conn.execute(
        select(transactions.c.meter_stop).where(transactions.c.id == tx)).all())
    assert [r[0] for r in rows] == [900]


async def test_stop_for_unknown_transaction_is_acknowledged(server: RunningServer) -> None:
    await server.add_charge_point("CP-U", profile=0)
    await server.add_id_tag("BADGE1")
    async with connect(server, "CP-U") as cp:
        reply = await cp.call("StopTransaction", {"transactionId": 123456, "meterStop": 5,
                                                  "timestamp": "2026-01-01T09:00:00Z"})
        assert reply[0] == 3 and reply[2] == {}
        with_tag = await cp.call("StopTransaction", {"transactionId": 654321, "meterStop": 5, "idTag": "BADGE1",
                                                     "timestamp": "2026-01-01T09:00:00Z"})
        assert with_tag[0] == 3 and with_tag[2]["idTagInfo"]["status"] == "Accepted"
    assert await server.store.read(count_rows(transactions, charge_point_id="CP-U")) == 0


async def test_stop_of_another_charge_points_transaction_changes_nothing(server: RunningServer) -> None:
    await server.add_charge_point("CP-A", profile=0)
    await server.add_charge_point("CP-B", profile=0)
    await server.add_id_tag("BADGE1")
    async with connect(server, "CP-A") as cp:
        tx = (await cp.call("StartTransaction", start()))[2]["transactionId"]
    async with connect(server, "CP-B") as cp:
        reply = await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 1,
                                                  "timestamp": "2026-01-01T09:00:00Z"})
        assert reply[0] == 3
    stopped = await server.store.read(lambda conn: conn.execute(
        select(transactions.c.stopped_at).where(transactions.c.id == tx)).scalar())
    assert stopped is None


async def test_transaction_ids_are_not_guessable(server: RunningServer) -> None:
    await server.add_charge_point("CP-IDS", profile=0)
    ids: list[int] = []
    async with connect(server, "CP-IDS") as cp:
        for i in range(50):
            tag = f"T{i}"
            await server.add_id_tag(tag)
            reply = await cp.call("StartTransaction", start(tag, f"2026-01-01T08:00:{i:02d}Z"))
            ids.append(reply[2]["transactionId"])
    assert len(set(ids)) == 50
    assert all(1 <= i <= 2**31 - 1 for i in ids)
    gaps = [b - a for a, b in itertools.pairwise(ids)]
    assert not all(g > 0 for g in gaps), "ids increase monotonically"
    assert max(abs(g) for g in gaps) > 1_000_000, "ids are close to one another"
    assert sum(1 for g in gaps if abs(g) < 1000) < 3


# --- authorization ----------------------------------------------------------------------------------


async def test_authorize_statuses_and_parent(server: RunningServer) -> None:
    await server.add_charge_point("CP-AUTH", profile=0)
    future = datetime.now(UTC) + timedelta(days=30)
    await server.add_id_tag("OK", parent_id_tag="FLEET", expiry_date=future)
    await server.add_id_tag("BLOCKED", "Blocked", parent_id_tag="FLEET")
    await server.add_id_tag("LAPSED", expiry_date=datetime.now(UTC) - timedelta(days=1))
    await server.add_id_tag("EXPIRED", "Expired")
    await server.add_id_tag("INVALID", "Invalid")
    await server.add_id_tag("BUSY")
    async with connect(server, "CP-AUTH") as cp:
        ok = await cp.call("Authorize", {"idTag": "OK"})
        assert ok[2]["idTagInfo"]["status"] == "Accepted"
        assert ok[2]["idTagInfo"]["parentIdTag"] == "FLEET"
        expiry = datetime.fromisoformat(ok[2]["idTagInfo"]["expiryDate"].replace("Z", "+00:00"))
        assert abs(expiry - future) < timedelta(seconds=1)
        blocked = await cp.call("Authorize", {"idTag": "BLOCKED"})
        assert blocked[2]["idTagInfo"] == {"status": "Blocked", "parentIdTag": "FLEET"}
        assert (await cp.call("Authorize", {"idTag": "LAPSED"}))[2]["idTagInfo"]["status"] == "Expired"
        assert (await cp.call("Authorize", {"idTag": "EXPIRED"}))[2]["idTagInfo"]["status"] == "Expired"
        assert (await cp.call("Authorize", {"idTag": "INVALID"}))[2]["idTagInfo"]["status"] == "Invalid"
        assert (await cp.call("Authorize", {"idTag": "NOBODY"}))[2]["idTagInfo"] == {"status": "Invalid"}
        assert (await cp.call("Authorize", {"idTag": "BUSY"}))[2]["idTagInfo"]["status"] == "Accepted"
        tx = await cp.call("StartTransaction", start("BUSY"))
        assert tx[2]["idTagInfo"]["status"] == "Accepted"
        assert (await cp.call("Authorize", {"idTag": "BUSY"}))[2]["idTagInfo"]["status"] == "ConcurrentTx"
        await cp.call("StopTransaction", {"transactionId": tx[2]["transactionId"], "meterStop": 200,
                                          "timestamp": "2026-01-01T09:00:00Z"})
        assert (await cp.call("Authorize", {"idTag": "BUSY"}))[2]["idTagInfo"]["status"] == "Accepted"
        blocked_start = await cp.call("StartTransaction", start("BLOCKED", connector=2))
        assert blocked_start[0] == 3 and blocked_start[2]["idTagInfo"]["status"] == "Blocked"


# --- DataTransfer --------------------------------------------------------------------------------------


async def test_data_transfer_unknown_vendor_and_registered_vendor(server: RunningServer) -> None:
    await server.add_charge_point("CP-DT", profile=0)
    seen: list[tuple[str, str | None, str | None]] = []

    async def handler(cp_id: str, message_id: str | None, data: str | None) -> DataTransferAnswer:
        seen.append((cp_id, message_id, data))
        return DataTransferAnswer("Accepted", f"echo:{data}")

    server.gateway.services.data_transfer.register("com.voltlib.test", handler)
    async with connect(server, "CP-DT") as cp:
        unknown = await cp.call("DataTransfer", {"vendorId": "com.nobody", "messageId": "x", "data": "1"})
        assert unknown[0] == 3 and unknown[2] == {"status": "UnknownVendorId"}
        routed = await cp.call("DataTransfer", {"vendorId": "com.voltlib.test", "messageId": "ping", "data": "42"})
        assert routed[0] == 3 and routed[2] == {"status": "Accepted", "data": "echo:42"}
        bare = await cp.call("DataTransfer", {"vendorId": "com.voltlib.test"})
        assert bare[2]["status"] == "Accepted"
    assert seen == [("CP-DT", "ping", "42"), ("CP-DT", None, None)]


async def test_data_transfer_handler_failure_is_an_internal_error_and_retryable(server: RunningServer) -> None:
    await server.add_charge_point("CP-DT2", profile=0)
    calls = 0

    async def flaky(cp_id: str, message_id: str | None, data: str | None) -> DataTransferAnswer:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("vendor backend down")
        return DataTransferAnswer("Accepted")

    server.gateway.services.data_transfer.register("com.flaky", flaky)
    async with connect(server, "CP-DT2") as cp:
        failed = await cp.call("DataTransfer", {"vendorId": "com.flaky"}, message_id="dt-1")
        assert failed[:3] == [4, "dt-1", "InternalError"]
        retried = await cp.call("DataTransfer", {"vendorId": "com.flaky"}, message_id="dt-1")
        assert retried == [3, "dt-1", {"status": "Accepted"}]
    await assert_still_serving(server)


# --- registration -----------------------------------------------------------------------------------------


async def test_boot_records_the_charge_point_and_profile_1_needs_its_password(server: RunningServer) -> None:
    await server.add_charge_point("CP-P1")
    async with connect(server, "CP-P1", password="correct-horse-battery-9") as cp:
        reply = await cp.call("BootNotification", {**BOOT, "firmwareVersion": "1.2.3"})
        assert reply[2]["status"] == "Accepted" and reply[2]["interval"] == server.settings.heartbeat_interval
    record = await server.store.read(partial(_firmware, cp_id="CP-P1"))
    assert record == "1.2.3"


def _firmware(conn: Connection, cp_id: str) -> str | None:
    from voltlib.store.tables import charge_points

    return conn.execute(select(charge_points.c.firmware_version).where(charge_points.c.id == cp_id)).scalar()


async def test_pending_policy_is_capped_and_idle_memories_are_forgotten(database_url: str) -> None:
    from tests.conftest import free_port, start_server
    from voltlib.config import Settings

    settings = Settings(database_url=database_url, port=free_port(), registration_policy="pending",
                        max_pending_registrations=2)
    runner, server = await start_server(settings)
    try:
        for cp_id in ("NEW-1", "NEW-2"):
            async with connect(server, cp_id, password=None) as cp:
                assert (await cp.call("BootNotification", BOOT))[2]["status"] == "Pending"
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with connect(server, "NEW-3", password=None):
                pass
        assert refused.value.response.status_code == 404
        assert "pending_registrations_full" in [e["kind"] for e in await security_events(server)]
        assert server.gateway.forget_idle_memories() == 2
        assert server.gateway.forget_idle_memories() == 0
    finally:
        await runner.cleanup()
