"""The duplicate-identity policy (the CVE-2026-27652 class): a second connection for an identity
that is already online must never silently displace the first. Over real sockets, on SQLite and
PostgreSQL (the ``server`` fixture probes with a 1 s timeout; ``running`` starts one with other
settings)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import pytest
import websockets
from aiohttp import web
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import RunningServer, basic_auth, free_port, start_server
from voltlib.config import Settings
from voltlib.security import records
from voltlib.store import repo

BOOT = {"chargePointVendor": "voltlib", "chargePointModel": "test"}
WS_PING = 0x9


OTHER_ADDRESS = ("127.0.0.2", 0)  # another source address on the loopback network


def connect(server: RunningServer, cp_id: str, headers: dict[str, str] | None = None, *, open_timeout: float = 10,
            local_addr: tuple[str, int] | None = None) -> Any:
    return websockets.connect(f"{server.ws_url}/{cp_id}", subprotocols=["ocpp1.6"], additional_headers=headers,
                              open_timeout=open_timeout, local_addr=local_addr)


async def refused(server: RunningServer, cp_id: str, headers: dict[str, str] | None = None, *,
                  local_addr: tuple[str, int] | None = None) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(server, cp_id, headers, local_addr=local_addr):
            pass
    return info.value.response.status_code


@asynccontextmanager
async def running(database_url: str, **settings: Any) -> AsyncIterator[RunningServer]:
    """voltlib with settings of its own (the ``server`` fixture's, overridden by ``settings``)."""
    base: dict[str, Any] = {"command_timeout": 5.0, "duplicate_probe_timeout": 1.0}
    runner, server = await start_server(Settings(database_url=database_url, port=free_port(),
                                                 **{**base, **settings}))
    try:
        yield server
    finally:
        await runner.cleanup()


async def call(ws: Any, action: str, payload: dict[str, Any]) -> list[Any]:
    await ws.send(json.dumps([2, uuid.uuid4().hex[:12], action, payload]))
    return list(json.loads(await asyncio.wait_for(ws.recv(), 10)))


async def security_events(server: RunningServer, cp_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        rows: list[dict[str, Any]] = (await api.get("/api/v1/security-events")).json()
    return [r for r in rows if r["charge_point_id"] == cp_id]


class DeadPeer:
    """A raw TCP client that completes the WebSocket handshake and then never reads again: it
    answers no ping, as a charge point whose link silently died (half-open TCP) would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: RunningServer, cp_id: str, headers: dict[str, str]) -> DeadPeer:
        host, port = server.settings.host, server.settings.port
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET /ocpp/{cp_id} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 "Sec-WebSocket-Protocol: ocpp1.6", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"sec-websocket-protocol: ocpp1.6" in head.lower()
        return cls(reader, writer)

    async def received_nothing(self, seconds: float) -> bool:
        """True if no byte (no ping, no close) arrived within ``seconds``."""
        try:
            await asyncio.wait_for(self.reader.read(1), seconds)
        except TimeoutError:
            return True
        return False  # a ping frame, or the end of the stream (closed)

    async def received_ping(self, seconds: float) -> bool:
        data = await asyncio.wait_for(self.reader.read(2), seconds)
        return len(data) > 0 and data[0] & 0x0F == WS_PING

    def close(self) -> None:
        self.writer.close()


async def wait_for(condition: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_live_first_connection_is_kept_and_the_second_refused(server: RunningServer) -> None:
    await server.add_charge_point("CP-D")
    async with connect(server, "CP-D", basic_auth("CP-D")) as first:
        assert (await call(first, "BootNotification", BOOT))[2]["status"] == "Accepted"
        original = server.gateway.connections["CP-D"]
        # the newcomer authenticates correctly, but the first answers the liveness ping: 409
        assert await refused(server, "CP-D", basic_auth("CP-D")) == 409
        assert server.gateway.connections["CP-D"] is original
        assert (await call(first, "Heartbeat", {}))[0] == 3
        events = await security_events(server, "CP-D")
        probe = next(e for e in events if e["kind"] == "duplicate_connection" and "existing_alive" in e["detail"])
        assert probe["detail"]["existing_alive"] is True and probe["severity"] == "high"
        assert any(e["kind"] == "duplicate_connection" and e["detail"].get("status") == 409 for e in events)


async def test_dead_first_connection_is_replaced(server: RunningServer) -> None:
    await server.add_charge_point("CP-D")
    dead = await DeadPeer.open(server, "CP-D", basic_auth("CP-D"))
    try:
        await wait_for(lambda: "CP-D" in server.gateway.connections)
        stale = server.gateway.connections["CP-D"]
        async with connect(server, "CP-D", basic_auth("CP-D")) as newcomer:
            assert (await call(newcomer, "BootNotification", BOOT))[2]["status"] == "Accepted"
            assert server.gateway.connections["CP-D"] is not stale
            assert stale.ws.closed
            assert "liveness probe" in stale.close_reason
            assert await dead.received_ping(1.0), "the stale connection was not probed first"
        probe = next(e for e in await security_events(server, "CP-D")
                     if e["kind"] == "duplicate_connection" and "existing_alive" in e["detail"])
        assert probe["detail"]["existing_alive"] is False
    finally:
        dead.close()


@pytest.mark.parametrize("headers", [None, basic_auth("CP-D", "wrong-password-but-long")],
                         ids=["no-auth", "wrong-password"])
async def test_unauthenticated_second_connection_never_probes(server: RunningServer,
                                                              headers: dict[str, str] | None) -> None:
    await server.add_charge_point("CP-D")
    # even a first connection that would fail the probe must be left alone
    dead = await DeadPeer.open(server, "CP-D", basic_auth("CP-D"))
    try:
        await wait_for(lambda: "CP-D" in server.gateway.connections)
        original = server.gateway.connections["CP-D"]
        assert await refused(server, "CP-D", headers) == 401
        assert await dead.received_nothing(1.5), "the first connection was pinged (probed) or closed"
        assert server.gateway.connections["CP-D"] is original and not original.ws.closed
        kinds = [e["kind"] for e in await security_events(server, "CP-D")]
        assert "duplicate_connection" not in kinds
        assert kinds[0] in ("auth_missing", "auth_failed")
    finally:
        dead.close()


async def test_unauthenticated_second_connection_leaves_a_live_first_working(server: RunningServer) -> None:
    await server.add_charge_point("CP-D")
    async with connect(server, "CP-D", basic_auth("CP-D")) as first:
        assert (await call(first, "BootNotification", BOOT))[2]["status"] == "Accepted"
        assert await refused(server, "CP-D") == 401
        assert (await call(first, "Heartbeat", {}))[0] == 3
        assert "duplicate_connection" not in [e["kind"] for e in await security_events(server, "CP-D")]


async def test_simultaneous_newcomers_get_one_connection(server: RunningServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Several authenticated upgrades at once for an identity that is offline: exactly one is taken,
    never more (a later one must not overwrite the first in the registry while it is still being
    upgraded). The 101 response is slowed down, as under back-pressure, to widen that window."""
    await server.add_charge_point("CP-D")
    prepare = web.WebSocketResponse.prepare

    async def slow_prepare(self: web.WebSocketResponse, request: web.BaseRequest) -> Any:
        await asyncio.sleep(0.3)
        return await prepare(self, request)

    monkeypatch.setattr(web.WebSocketResponse, "prepare", slow_prepare)

    async def attempt() -> Any:
        try:
            ws = await connect(server, "CP-D", basic_auth("CP-D"))
        except InvalidStatus as exc:
            return exc.response.status_code
        return ws

    outcomes = await asyncio.gather(*(attempt() for _ in range(4)))
    opened = [o for o in outcomes if not isinstance(o, int)]
    try:
        assert len(opened) == 1, outcomes
        assert sorted(o for o in outcomes if isinstance(o, int)) == [409, 409, 409]
        winner = opened[0]
        assert (await call(winner, "BootNotification", BOOT))[2]["status"] == "Accepted"
    finally:
        for ws in opened:
            await ws.close()


async def last_address_is(server: RunningServer, cp_id: str, address: str) -> None:
    """Wait until the store has the address the charge point connected from (written with a group commit)."""
    for _ in range(100):
        record = await server.store.read(partial(repo.get_charge_point, cp_id=cp_id))
        if record is not None and record.last_address == address:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{cp_id}'s last address never became {address}")


async def test_a_charge_point_that_closes_and_reconnects_at_once_is_taken_without_waiting_out_the_probe(
        database_url: str) -> None:
    """The charge point closes its connection and opens a new one at once, while the server is still
    busy with its last frames (paced here: one a second), so the old socket is still registered,
    its close frame not read yet, when the newcomer's duplicate check probes it. The newcomer is
    taken as soon as that close is read, not when the (here 60 s) probe timeout has run out: the
    test's own bound is far below it."""
    async with running(database_url, duplicate_probe_timeout=60.0, rate_per_second=1.0, rate_burst=1.0) as server:
        await server.add_charge_point("CP-R")
        old = await connect(server, "CP-R", basic_auth("CP-R"))
        assert (await call(old, "BootNotification", BOOT))[2]["status"] == "Accepted"
        stale = server.gateway.connections["CP-R"]
        for _ in range(3):  # paced to one a second: the old connection's reading loop is busy for ~3 s
            await old.send(json.dumps([2, uuid.uuid4().hex[:12], "Heartbeat", {}]))
        closing = asyncio.create_task(old.close())  # its close frame, and without waiting, a new connection
        new = await asyncio.wait_for(connect(server, "CP-R", basic_auth("CP-R"), open_timeout=90), 20)
        try:
            assert server.gateway.connections["CP-R"] is not stale
            assert stale.ws.closed
            assert (await call(new, "BootNotification", BOOT))[2]["status"] == "Accepted"
        finally:
            await new.close()
        await closing
        probe = next(e for e in await security_events(server, "CP-R")
                     if e["kind"] == "duplicate_connection" and "existing_alive" in e["detail"])
        assert probe["detail"]["existing_alive"] is False


async def test_a_hard_reset_charge_point_retrying_while_the_probe_runs_gets_in(database_url: str) -> None:
    """Reset Hard: the charge point accepts and loses power, so its end of the old connection goes
    silent (no close frame, no FIN: it answers no ping). Back up, it connects at once, gives up on
    that attempt before the probe of the old socket is over (its connect timeout is shorter) and
    tries again: the retry waits for the probe's outcome instead of getting 409, and gets in once
    the old socket is found dead."""
    async with running(database_url, duplicate_probe_timeout=3.0) as server:
        await server.add_charge_point("CP-H")
        old = await connect(server, "CP-H", basic_auth("CP-H"))
        try:
            assert (await call(old, "BootNotification", BOOT))[2]["status"] == "Accepted"
            stale = server.gateway.connections["CP-H"]
            reset = asyncio.create_task(server.gateway.send_command("CP-H", "Reset", {"type": "Hard"}))
            request = json.loads(await asyncio.wait_for(old.recv(), 10))
            assert request[2] == "Reset"
            await old.send(json.dumps([3, request[1], {"status": "Accepted"}]))
            assert (await reset)["response"] == {"status": "Accepted"}
            old.transport.pause_reading()  # the power is gone: nothing on this socket is answered any more
            with pytest.raises(TimeoutError):  # its first attempt gives up while the old socket is probed
                await connect(server, "CP-H", basic_auth("CP-H"), open_timeout=1.0)
            new = await asyncio.wait_for(connect(server, "CP-H", basic_auth("CP-H"), open_timeout=30), 15)
            try:
                assert (await call(new, "BootNotification", BOOT))[2]["status"] == "Accepted"
                assert server.gateway.connections["CP-H"] is not stale
                assert stale.ws.closed and "liveness probe" in stale.close_reason
            finally:
                await new.close()
        finally:
            old.transport.abort()


async def test_a_stale_connection_that_answers_pings_gives_way_to_the_charge_points_address_only(
        server: RunningServer) -> None:
    """A stale socket that still answers pings (an old session kept open by a NAT box or a proxy, a
    hung firmware process) and the real charge point retrying: from the address the charge point
    last connected from, the newcomer is refused ``duplicate_takeover_after`` times, then wins, the
    stale socket is closed (1008) and an alert raised. From any other address - someone else with
    its credentials - a newcomer never wins, however often it tries."""
    await server.add_charge_point("CP-S")
    after = server.settings.duplicate_takeover_after
    stale_ws = await connect(server, "CP-S", basic_auth("CP-S"))
    try:
        assert (await call(stale_ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
        stale = server.gateway.connections["CP-S"]
        await last_address_is(server, "CP-S", "127.0.0.1")
        for _ in range(2 * after + 1):
            assert await refused(server, "CP-S", basic_auth("CP-S"), local_addr=OTHER_ADDRESS) == 409
        assert server.gateway.connections["CP-S"] is stale
        assert (await call(stale_ws, "Heartbeat", {}))[0] == 3
        for _ in range(after):
            assert await refused(server, "CP-S", basic_auth("CP-S")) == 409
        async with connect(server, "CP-S", basic_auth("CP-S")) as real:
            assert (await call(real, "BootNotification", BOOT))[2]["status"] == "Accepted"
            assert server.gateway.connections["CP-S"] is not stale and stale.ws.closed
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(stale_ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    finally:
        await stale_ws.close()
    takeovers = [e for e in await security_events(server, "CP-S") if e["kind"] == "duplicate_identity_takeover"]
    assert len(takeovers) == 1 and takeovers[0]["severity"] == "high"
    assert takeovers[0]["source"] == "127.0.0.1" and takeovers[0]["detail"]["refused_before"] == after
    await server.settled()
    alerts = await server.store.read(partial(records.list_alerts, cp_id="CP-S"))
    assert "duplicate_identity_takeover" in [alert["kind"] for alert in alerts]
