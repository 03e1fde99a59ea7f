"""Two gateway nodes on one database and one NATS server (127.0.0.1:4222): a command given to
either node reaches the charge point on the other, a second connection for a live identity is
refused across nodes, and an event reaches the subscribers of its scope: those of the node
holding the charge point, or of every node."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import pytest_asyncio
import websockets
from nats.aio.msg import Msg
from ocpp.v16 import call

from tests.conformance.conftest import Station, connect, wait_until
from tests.conftest import RunningServer, basic_auth, free_port, start_server
from tests.integration import test_duplicate_identity as dup
from tests.sharing.conftest import CAR_TAG, City, Member, seeded_city
from tests.sharing.test_rentals import DESTINATION, ORIGIN
from voltlib import events as ev
from voltlib.bus import SCOPES
from voltlib.cluster import NatsCluster
from voltlib.config import Settings
from voltlib.security import records
from voltlib.security.service import service_of
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
    async with two_nodes(database_url) as started:
        yield started


@asynccontextmanager
async def two_nodes(database_url: str, **overrides: Any) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    """Two nodes of one cluster; ``overrides`` change the settings of both."""
    _require_nats()
    async with AsyncExitStack() as stack:
        started = []
        name = f"test{uuid.uuid4().hex[:8]}"  # other tests and deployments on this NATS server never hear us
        for _ in range(2):
            base: dict[str, Any] = {"command_timeout": 5.0, "duplicate_probe_timeout": 1.0}
            settings = Settings(database_url=database_url, port=free_port(), bus_url=NATS_URL, cluster_name=name,
                                **{**base, **overrides})
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


async def test_a_charge_point_that_closes_on_one_node_and_reconnects_to_the_other_at_once_gets_in(
        database_url: str) -> None:
    """As on one node (test_duplicate_identity): A, busy with the charge point's last frames (paced),
    has not read its close frame yet when B asks it to probe the old socket; B takes the newcomer as
    soon as A reads that close, not when the (60 s) probe timeout has run out."""
    async with two_nodes(database_url, duplicate_probe_timeout=60.0, rate_per_second=1.0, rate_burst=1.0) as (a, b):
        await a.add_charge_point("CP-HOP")
        headers = basic_auth("CP-HOP")
        old = await dup.connect(a, "CP-HOP", headers)
        assert (await dup.call(old, "BootNotification", dup.BOOT))[2]["status"] == "Accepted"
        for _ in range(3):  # one a second: A's reading loop is busy for ~3 s
            await old.send(json.dumps([2, uuid.uuid4().hex[:12], "Heartbeat", {}]))
        closing = asyncio.create_task(old.close())
        new = await asyncio.wait_for(dup.connect(b, "CP-HOP", headers, open_timeout=90), 20)
        try:
            assert (await dup.call(new, "BootNotification", dup.BOOT))[2]["status"] == "Accepted"
            assert "CP-HOP" in b.gateway.connections and "CP-HOP" not in a.gateway.connections
        finally:
            await new.close()
        await closing
        probe = next(e for e in await dup.security_events(b, "CP-HOP")
                     if e["kind"] == "duplicate_connection" and "existing_alive" in e["detail"])
        assert probe["detail"] == {"new_address": "127.0.0.1", "existing_alive": False, "existing_node": "other"}


async def test_a_stale_connection_on_one_node_gives_way_to_the_charge_points_address_on_the_other(
        nodes: tuple[RunningServer, RunningServer]) -> None:
    """A stale socket held by A that still answers pings, and the real charge point retrying on B
    from the address it last connected from: after ``duplicate_takeover_after`` refusals, B asks A
    to close it (1008) and takes the newcomer; the takeover is recorded once, by B."""
    a, b = nodes
    await a.add_charge_point("CP-STALE")
    headers = basic_auth("CP-STALE")
    async with dup.connect(a, "CP-STALE", headers) as stale:
        assert (await dup.call(stale, "BootNotification", dup.BOOT))[2]["status"] == "Accepted"
        await dup.last_address_is(a, "CP-STALE", "127.0.0.1")
        for _ in range(b.settings.duplicate_takeover_after):
            assert await dup.refused(b, "CP-STALE", headers) == 409
        async with dup.connect(b, "CP-STALE", headers) as real:
            assert (await dup.call(real, "BootNotification", dup.BOOT))[2]["status"] == "Accepted"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(stale.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert "CP-STALE" in b.gateway.connections and "CP-STALE" not in a.gateway.connections
    takeovers = [e for e in await dup.security_events(a, "CP-STALE") if e["kind"] == "duplicate_identity_takeover"]
    assert len(takeovers) == 1 and takeovers[0]["detail"]["existing_node"] == "other"


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


async def test_a_trace_asked_of_the_other_node_reaches_the_open_connection(
        nodes: tuple[RunningServer, RunningServer]) -> None:
    a, b = nodes
    await a.add_charge_point("CP-TRACE")
    async with connect(a, "CP-TRACE") as cp:
        await cp.boot()
        async with httpx.AsyncClient(base_url=b.url, headers=b.api_headers(), timeout=20) as api:
            response = await api.post("/api/v1/charge-points/CP-TRACE/trace", json={"minutes": 10})
        assert response.status_code == 200, response.text
        assert response.json()["live"] is True  # node a holds it and took the trace
        assert a.gateway.connections["CP-TRACE"].ctx.trace_until is not None
        await cp.send(call.Heartbeat())  # compact log: only logged because it is traced
        await wait_until(lambda: _logged_heartbeats(a, "CP-TRACE"))
    async with httpx.AsyncClient(base_url=b.url, headers=b.api_headers(), timeout=20) as api:
        stopped = await api.post("/api/v1/charge-points/CP-TRACE/trace", json={"minutes": 0})
    assert stopped.json() == {"id": "CP-TRACE", "trace_until": None, "live": False}  # nobody holds it now


async def _logged_heartbeats(server: RunningServer, cp_id: str) -> bool:
    rows = await server.store.read(partial(repo.read_messages, cp_id=cp_id))
    return any(row["action"] == "Heartbeat" for row in rows)


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


async def ride_across(city: City, member: Member, origin: Station, destination: Station,
                      nodes: tuple[RunningServer, RunningServer]) -> None:
    """The car charging at ``origin`` is badged, unplugged and returned 25 minutes later at
    ``destination``, the two charge points held by different nodes; both nodes settled."""
    await origin.boot()
    await origin.status(1, "Charging")
    charging = await origin.start_tx(1, CAR_TAG)
    await destination.boot()
    await destination.status(1, "Available")
    assert (await origin.authorize(member.badge))["status"] == "Accepted"
    await origin.stop_tx(charging.transaction_id, 1200, reason="EVDisconnected")
    await origin.status(1, "Available")  # the car leaves its bay on the origin's node
    await city.wait_for_state(member, "started")
    back = (datetime.now(UTC) + timedelta(minutes=25)).isoformat()
    returned = await destination.start_tx(1, CAR_TAG, timestamp=back)  # and comes back on the other's
    assert returned.id_tag_info["status"] == "Accepted"
    await city.wait_for_state(member, None)
    for node in nodes:
        await node.settled()


async def test_a_one_way_rental_across_two_nodes_ends_and_is_invoiced_once(
        nodes: tuple[RunningServer, RunningServer]) -> None:
    """Badge and unplug at a charge point held by A, return at one held by B: each node's car sharing
    handles only its own charge point's events, from them and the database."""
    a, b = nodes
    async with seeded_city(a) as city:
        member = await city.sign_up(1)
        async with connect(a, ORIGIN) as origin, connect(b, DESTINATION) as destination:
            await ride_across(city, member, origin, destination, nodes)
        history = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
        assert [(r["state"], r["return_dock"]) for r in history] == [("closed", [DESTINATION, 1])]
        statement = (await city.client.get("/api/v1/me/invoices", headers=member.headers())).json()
        assert sorted(i["kind"] for i in statement["invoices"]) == ["rental", "subscription"]
        assert statement["totals"] == [{"currency": "EUR", "total_minor": 14900, "total": "149.00"}]


async def test_a_charge_point_detector_signal_is_recorded_once(nodes: tuple[RunningServer, RunningServer]) -> None:
    """A cabinet opened on A's charge point: one alert (no repeat from B), one automatic quarantine,
    which B learns, since the charge point may reconnect there."""
    a, b = nodes
    statuses = _heard(b, ev.ConnectorStatusChanged)
    await _listening(b)
    await a.add_charge_point("CP-DOOR")
    async with connect(a, "CP-DOOR") as cp:
        await cp.boot()
        await cp.status(1, "Available", info="cabinet door open")
        await cp.status(1, "Unavailable")  # after it, B has had every status it will get

        async def b_heard_all() -> bool:
            return ("CP-DOOR", "Unavailable") in [(e.charge_point_id, getattr(e, "status", "")) for e in statuses]

        await wait_until(b_heard_all)

        async def recorded() -> bool:
            alerts = await a.store.read(partial(records.list_alerts, cp_id="CP-DOOR"))
            return any(alert["kind"] == "cabinet_opened" for alert in alerts)

        await wait_until(recorded)
        for node in nodes:
            await node.settled()

        async def b_knows_the_quarantine() -> bool:
            return "CP-DOOR" in service_of(b.gateway).responder.quarantined

        await wait_until(b_knows_the_quarantine)
    alerts = await a.store.read(partial(records.list_alerts, cp_id="CP-DOOR"))
    assert [(alert["kind"], alert["repeats"]) for alert in alerts] == [("cabinet_opened", 0)]
    quarantines = await a.store.read(partial(records.list_quarantines, active_only=True))
    assert [q["charge_point_id"] for q in quarantines] == ["CP-DOOR"]


async def test_failed_logins_spread_over_both_nodes_are_counted_together_and_alerted_once(
        nodes: tuple[RunningServer, RunningServer]) -> None:
    """Five wrong passwords for one identity, three on A and two on B: each node counts the five
    (neither would alone) and the alert is recorded once."""
    a, b = nodes
    failures = {node.url: _heard(node, ev.SecurityIncident) for node in nodes}
    for node in nodes:
        await _listening(node)
    await a.add_charge_point("CP-BRUTE")
    for node in (a, b, a, b, a):
        with pytest.raises(websockets.InvalidStatus):
            async with connect(node, "CP-BRUTE", password="not the password"):
                pass

    async def both_heard_five() -> bool:
        return all(sum(e.charge_point_id == "CP-BRUTE" for e in heard) == 5 for heard in failures.values())

    await wait_until(both_heard_five)
    for node in nodes:
        await node.settled()
    alerts = await a.store.read(partial(records.list_alerts, cp_id="CP-BRUTE"))
    assert [(alert["kind"], alert["repeats"]) for alert in alerts] == [("brute_force_identity", 0)]


async def test_a_register_that_went_backwards_across_a_move_to_the_other_node_is_alerted(
        nodes: tuple[RunningServer, RunningServer]) -> None:
    """B never saw the charge point's meter: its first reading there is compared with the register A stored."""
    a, b = nodes
    await a.add_charge_point("CP-MOVED")
    async with connect(a, "CP-MOVED") as cp:
        await cp.boot()
        await cp.meter(1, None, 5000, timestamp="2026-11-28T10:00:00Z")
    await a.settled()
    async with connect(b, "CP-MOVED") as cp:
        await cp.boot()
        await cp.meter(1, None, 1000, timestamp="2026-11-28T11:00:00Z")
    for node in nodes:
        await node.settled()
    alerts = await a.store.read(partial(records.list_alerts, cp_id="CP-MOVED"))
    assert [(alert["kind"], alert["detail"]["was_wh"], alert["detail"]["now_wh"]) for alert in alerts
            if alert["kind"] == "energy_register_backwards"] == [("energy_register_backwards", 5000.0, 1000.0)]


class _SharedClock:
    """One hand-moved clock for both nodes: the failures' times, and so the windows, are the test's."""

    factor = 1.0

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def test_a_second_burst_of_failed_logins_soon_after_the_first_is_a_new_crossing(database_url: str) -> None:
    """Five failures over both nodes, then, the first five out of the 30 s window but well within a
    minute of the alert, five more: every node crosses twice. The first crossing is one alert on
    both nodes, and the second is recorded (a repeat), not taken for another node's copy of the first."""
    async with two_nodes(database_url, security_thresholds={"auth_window": 30}, auth_failures_per_minute=100) \
            as (a, b):
        clock = _SharedClock()
        for node in (a, b):
            node.gateway.services.clock = clock
        failures = {node.url: _heard(node, ev.SecurityIncident) for node in (a, b)}
        for node in (a, b):
            await _listening(node)
        await a.add_charge_point("CP-BURSTS")

        async def burst(total: int) -> None:
            for node in (a, b, a, b, a):
                with pytest.raises(websockets.InvalidStatus):
                    async with connect(node, "CP-BURSTS", password="not the password"):
                        pass

            async def both_heard() -> bool:
                return all(sum(e.charge_point_id == "CP-BURSTS" for e in heard) == total
                           for heard in failures.values())

            await wait_until(both_heard)
            for node in (a, b):
                await node.settled()

        await burst(5)
        clock.at += timedelta(seconds=31)
        await burst(10)
        alerts = await a.store.read(partial(records.list_alerts, cp_id="CP-BURSTS"))
    assert [(alert["kind"], alert["repeats"]) for alert in alerts] == [("brute_force_identity", 1)]
    assert len(alerts[0]["detail"]["crossings"]) == 2


def _heard(node: RunningServer, kind: type[ev.Event]) -> list[ev.Event]:
    """Every event of ``kind`` from any node, as ``node`` receives them (a network-scoped subscriber)."""
    heard: list[ev.Event] = []

    async def on_event(event: ev.Event) -> None:
        heard.append(event)

    node.gateway.services.bus.subscribe(on_event, kind, name="test-heard", scope="network")
    return heard


async def _listening(node: RunningServer) -> None:
    """Until ``node`` listens on NATS to what its consumers added after the start want."""
    bus = node.gateway.services.bus
    assert isinstance(bus, NatsCluster)
    await bus.drain()


async def test_a_node_still_handles_its_own_events_when_nats_refuses_them() -> None:
    """The other nodes miss an event NATS did not take; the node publishing it does not."""
    _require_nats()
    cluster = NatsCluster(NATS_URL, f"test{uuid.uuid4().hex[:8]}")
    got: list[str] = []

    async def on_heartbeat(event: ev.Event) -> None:
        got.append(event.charge_point_id)

    cluster.subscribe(on_heartbeat, ev.HeartbeatReceived, name="test", scope="node")
    cluster.watch(lambda event: None, ev.HeartbeatReceived, name="test-others", scope="remote")  # so it is sent
    await cluster.connect()
    await cluster.nc.close()  # from now on every NATS publish raises
    await cluster.publish(ev.HeartbeatReceived(charge_point_id="CP-ALONE", at=datetime.now(UTC)))
    await cluster.local.drain()
    await cluster.local.close()
    assert got == ["CP-ALONE"]


async def test_only_the_topics_some_node_listens_to_go_on_nats() -> None:
    """Each node announces what it listens to; an event nobody listens to is never encoded and sent,
    and a node started later learns what the earlier ones want (they announce again for it)."""
    _require_nats()
    name = f"test{uuid.uuid4().hex[:8]}"
    on_the_wire: list[str] = []
    spy = await nats.connect(NATS_URL)

    async def overheard(msg: Msg) -> None:
        on_the_wire.append(msg.subject.rsplit(".", 1)[-1])

    await spy.subscribe(f"voltlib.{name}.events.>", cb=overheard)
    await spy.flush()
    a, b, c = (NatsCluster(NATS_URL, name) for _ in range(3))
    meters: list[ev.Event] = []
    a.watch(lambda event: None, ev.ConnectorStatusChanged, name="status-view", scope="network")
    b.watch(meters.append, ev.MeterValuesReceived, name="meter-view", scope="network")
    now = datetime.now(UTC)
    status = ev.ConnectorStatusChanged(charge_point_id="CP-W", at=now, connector_id=1, previous=None,
                                       status="Charging", error_code="NoError", vendor_error_code=None,
                                       info=None, expected=True)
    meter = ev.MeterValuesReceived(charge_point_id="CP-W", at=now, connector_id=1, transaction_id=None,
                                   sampled_at=now, energy_wh=1.0, power_w=None, soc_percent=None)
    try:
        await a.connect()
        await b.connect()

        async def a_heard_b() -> bool:
            return meter.__struct_config__.tag in a._publishing

        await wait_until(a_heard_b)
        await c.connect()  # wants nothing itself

        async def c_heard_both() -> bool:
            return {status.__struct_config__.tag, meter.__struct_config__.tag} <= c._publishing

        await wait_until(c_heard_both)
        for node in (a, c):
            await node.publish(ev.HeartbeatReceived(charge_point_id="CP-W", at=now))
            await node.publish(status)
            await node.publish(meter)
            await node.nc.flush()

        async def all_heard() -> bool:
            return len(meters) == 2 and len(on_the_wire) == 4

        await wait_until(all_heard)
        await asyncio.sleep(0.1)  # anything else would have arrived by now
        assert sorted(on_the_wire) == ["meter_values", "meter_values", "status", "status"]
    finally:
        for node in (a, b, c):
            if node._nc is not None:
                await node.close()
        await spy.close()


async def test_a_node_that_leaves_or_falls_silent_is_forgotten() -> None:
    """Nodes announce again every period; one that closes says goodbye, one that stops announcing
    (killed) is forgotten after three periods: either way what only it wanted is no longer sent."""
    _require_nats()
    name = f"test{uuid.uuid4().hex[:8]}"
    meter_topic = ev.MeterValuesReceived.__struct_config__.tag
    status_topic = ev.ConnectorStatusChanged.__struct_config__.tag
    a, b = (NatsCluster(NATS_URL, name, announce_every=0.2) for _ in range(2))
    b.watch(lambda event: None, ev.MeterValuesReceived, name="meter-view", scope="network")
    ghost = await nats.connect(NATS_URL)  # a node that announces once and dies without a goodbye
    announcements: list[dict[str, Any]] = []

    async def overheard(msg: Msg) -> None:
        announcements.append(json.loads(msg.data))

    await ghost.subscribe(f"voltlib.{name}.wants", cb=overheard)
    await ghost.flush()
    try:
        await a.connect()
        await b.connect()

        async def a_sends_meters() -> bool:
            return meter_topic in a._publishing

        async def a_keeps_announcing() -> bool:
            return sum(1 for body in announcements if body["node"] == a._node) >= 4

        await wait_until(a_sends_meters)
        await wait_until(a_keeps_announcing)
        await b.close()

        async def a_forgot_b() -> bool:
            return meter_topic not in a._publishing

        await wait_until(a_forgot_b)
        assert any(body["node"] == b._node and body["goodbye"] for body in announcements)
        await ghost.publish(f"voltlib.{name}.wants", json.dumps({"node": "ghost", "topics": [status_topic]}).encode())

        async def a_sends_status() -> bool:
            return status_topic in a._publishing

        async def a_forgot_the_ghost() -> bool:
            return status_topic not in a._publishing

        await wait_until(a_sends_status)
        await wait_until(a_forgot_the_ghost)  # three periods unheard
    finally:
        for node in (a, b):
            if node._nc is not None:
                await node.close()
        await ghost.close()
