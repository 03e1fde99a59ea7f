"""The duplicate-identity policy (the CVE-2026-27652 class): a second connection for an identity
that is already online must never silently displace the first. Over real sockets, on SQLite and
PostgreSQL (the ``server`` fixture probes with a 1 s timeout)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from typing import Any

import httpx
import pytest
import websockets
from aiohttp import web
from websockets.exceptions import InvalidStatus

from tests.conftest import RunningServer, basic_auth

BOOT = {"chargePointVendor": "voltlib", "chargePointModel": "test"}
WS_PING = 0x9


def connect(server: RunningServer, cp_id: str, headers: dict[str, str] | None = None) -> Any:
    return websockets.connect(f"{server.ws_url}/{cp_id}", subprotocols=["ocpp1.6"], additional_headers=headers,
                              open_timeout=10)


async def refused(server: RunningServer, cp_id: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(server, cp_id, headers):
            pass
    return info.value.response.status_code


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
