"""Two gateway nodes on one database and one NATS server (127.0.0.1:4222): a command given to
either node reaches the charge point on the other, a second connection for a live identity is
refused across nodes, and an event reaches the subscribers of its scope: those of the node
holding the charge point, or of every node."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import websockets
from ocpp.v16 import call

from tests.conformance.conftest import connect, wait_until
from tests.conftest import RunningServer, free_port, start_server
from voltlib import events as ev
from voltlib.bus import SCOPES
from voltlib.cluster import NatsCluster
from voltlib.config import Settings
from voltlib.store import repo

NATS_URL = "nats://127.0.0.1:4222"


def _require_nats() -> None:
    """Skip without NATS on 127.0.0.1:4222, except on CI, where it must be there."""
    try:
        with socket.create_connection(("127.0.0.1", 4222), timeout=1):
            return
    except OSError:
        pass
    if os.environ.get("CI") == "true":
        pytest.fail("NATS is required on CI and is not reachable on 127.0.0.1:4222")
    pytest.skip("NATS not reachable on 127.0.0.1:4222")


@pytest_asyncio.fixture
async def nodes(database_url: str) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    _require_nats()
    async with AsyncExitStack() as stack:
        started = []
        name = f"test{uuid.uuid4().hex[:8]}"  # other tests and deployments on this NATS server never hear us
        for _ in range(2):
            settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                                duplicate_probe_timeout=1.0, bus_url=NATS_URL, cluster_name=name)
            runner, running = await start_server(settings)
            stack.push_async_callback(runner.cleanup)
            started.append(running)
        yield started[0], started[1]


async def test_command_through_the_other_node(nodes: tuple[RunningServer, RunningServer]) -> None:
    a, b = nodes
    await a.add_charge_point("CP-CLUSTER")
    async with connect(a, "CP-CLUSTER") as cp:
        await cp.boot()
        async with httpx.AsyncClient(base_url=b.url, headers=b.api_headers(), timeout=20) as api:
            response = await api.post("/api/v1/charge-points/CP-CLUSTER/commands/ChangeAvailability",
                                      json={"connectorId": 0, "type": "Inoperative"})
        assert response.status_code == 200, response.text
        row = response.json()
        assert row["state"] == "answered" and row["response"] == {"status": "Accepted"}
        assert cp.got("ChangeAvailability") == [{"connector_id": 0, "type": "Inoperative"}]
    async with httpx.AsyncClient(base_url=b.url, headers=b.api_headers(), timeout=20) as api:
        offline = await api.post("/api/v1/charge-points/CP-CLUSTER/commands/ClearCache", json={})
    assert offline.json()["state"] == "offline"  # nobody holds it any more: known at once


async def test_duplicate_identity_is_refused_across_nodes(nodes: tuple[RunningServer, RunningServer]) -> None:
    a, b = nodes
    await a.add_charge_point("CP-TWICE")
    async with connect(a, "CP-TWICE") as cp:
        await cp.boot()
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(b, "CP-TWICE"):
                pass
        assert refused.value.response.status_code == 409
        assert (await cp.send(call.Heartbeat())).current_time  # the real one is undisturbed
    async with connect(b, "CP-TWICE") as again:  # once it is gone, the other node takes it
        await again.boot()


async def test_node_scope_hears_its_own_charge_points_network_scope_every_node(
        nodes: tuple[RunningServer, RunningServer]) -> None:
    """A node-scoped subscriber on B never sees the events of a charge point held by A; a
    network-scoped one sees both nodes' events; a remote-scoped one only A's."""
    a, b = nodes
    seen: dict[str, list[str]] = {"node": [], "network": [], "remote": []}

    def recorder(scope: str) -> Callable[[ev.Event], Awaitable[None]]:
        async def on_connected(event: ev.Event) -> None:
            seen[scope].append(event.charge_point_id)
        return on_connected

    bus = b.gateway.services.bus
    for scope in SCOPES:
        bus.subscribe(recorder(scope), ev.ChargePointConnected, name=f"test-{scope}", scope=scope)
    assert isinstance(bus, NatsCluster)
    await bus.drain()  # B now listens to the topic on NATS
    await a.add_charge_point("CP-ON-A")
    await a.add_charge_point("CP-ON-B")
    async with connect(a, "CP-ON-A") as on_a:
        await on_a.boot()

        async def heard_from_a() -> bool:
            return "CP-ON-A" in seen["network"] and "CP-ON-A" in seen["remote"]

        await wait_until(heard_from_a)
    async with connect(b, "CP-ON-B") as on_b:
        await on_b.boot()
        await bus.drain()
    assert seen == {"node": ["CP-ON-B"], "network": ["CP-ON-A", "CP-ON-B"], "remote": ["CP-ON-A"]}


async def test_password_rotation_asked_of_the_other_node(nodes: tuple[RunningServer, RunningServer]) -> None:
    a, b = nodes
    await a.add_charge_point("CP-ROTATE", profile=1)
    async with connect(a, "CP-ROTATE") as cp:
        await cp.boot()
        async with httpx.AsyncClient(base_url=b.url, headers=b.api_headers(), timeout=20) as api:
            response = await api.post("/api/v1/charge-points/CP-ROTATE/rotate-password")
        assert response.status_code == 200, response.text
        assert response.json()["rotated"] is True
        (change,) = cp.got("ChangeConfiguration")
    new_password = change["value"]
    assert change["key"] == "AuthorizationKey" and new_password not in response.text
    with pytest.raises(websockets.InvalidStatus):  # the old password is gone on every node
        async with connect(b, "CP-ROTATE"):
            pass
    async with connect(b, "CP-ROTATE", password=new_password) as again:
        assert (await again.send(call.Heartbeat())).current_time
    async with httpx.AsyncClient(base_url=a.url, headers=a.api_headers(), timeout=20) as api:
        offline = await api.post("/api/v1/charge-points/CP-ROTATE/rotate-password")
    assert offline.status_code == 409 and offline.json()["title"] == "offline"


async def test_a_certificate_request_is_signed_once_by_the_node_holding_the_charge_point(
        database_url: str, tmp_path: Path) -> None:
    """Every node hears every node's events; only the one holding the charge point signs its CSR
    (two nodes used to send it two different certificates)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.conformance.conftest import bring_online
    from tests.conformance.test_security import _certificate, _csr

    _require_nats()
    ca_cert, ca_key = _certificate("voltlib test CA", ca=True)
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    (tmp_path / "ca.key").write_bytes(ca_key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    name = f"test{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        nodes = []
        for _ in range(2):
            settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0, bus_url=NATS_URL,
                                cluster_name=name, ca_cert=tmp_path / "ca.pem", ca_key=tmp_path / "ca.key",
                                cpo_name="OCTT")
            runner, running = await start_server(settings)
            stack.push_async_callback(runner.cleanup)
            nodes.append(running)
        a, _ = nodes
        await a.add_charge_point("CP-CSR")
        async with connect(a, "CP-CSR") as cp:
            await bring_online(cp)
            answer = await cp.send(call.SignCertificate(csr=_csr("CP-CSR", ec.generate_private_key(ec.SECP256R1()))))
            assert answer.status == "Accepted"

            async def installed() -> bool:
                rows = await a.store.read(partial(repo.list_csrs, cp_id="CP-CSR"))
                return [row["state"] for row in rows] == ["installed"]

            await wait_until(installed)
            await asyncio.sleep(1.0)  # a second signer, if any, would have sent its certificate by now
            assert len(cp.got("CertificateSigned")) == 1
