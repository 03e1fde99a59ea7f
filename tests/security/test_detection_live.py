"""Detectors, incidents, work orders and responses against real OCPP traffic (real WebSockets,
SQLite and PostgreSQL). The charge points here are raw OCPP clients so each attack is exact."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import PASSWORD, RunningServer, basic_auth, free_port, start_server
from tests.integration.test_protocol import BOOT, Client, connect
from tests.sharing.conftest import SNAPSHOT
from voltlib.config import Settings
from voltlib.security import audit, records
from voltlib.security.credentials import hash_password
from voltlib.security.service import service_of
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import parse_snapshot
from voltlib.sharing.store import import_snapshot, upsert_city
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade

pytestmark = pytest.mark.asyncio
NOW = datetime.now(UTC).replace(microsecond=0).isoformat()  # a fixed date ages past the clock policy's week


async def api(server: RunningServer, method: str, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=15) as client:
        return await client.request(method, path, json=body)


async def alerts(server: RunningServer, cp_id: str | None = None) -> list[dict[str, Any]]:
    path = "/api/v1/security/alerts" + (f"?charge_point_id={cp_id}" if cp_id else "")
    r = await api(server, "GET", path)
    assert r.status_code == 200
    return list(r.json())


def kinds(rows: list[dict[str, Any]], expected: bool = False) -> set[str]:
    return {r["kind"] for r in rows if r["expected"] is expected}


async def answer_call(cp: Client, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Read frames until the central system's call ``action`` arrives, answer it, return its payload."""
    while True:
        frame = await asyncio.wait_for(cp.recv(), 10)
        if frame[0] == 2 and frame[2] == action:
            await cp.send_raw(json.dumps([3, frame[1], payload]))
            return dict(frame[3])


async def booted_client(server: RunningServer, cp_id: str) -> Any:
    await server.add_charge_point(cp_id, profile=0)
    ctx = connect(server, cp_id)
    cp = await ctx.__aenter__()
    reply = await cp.call("BootNotification", BOOT)
    assert reply[2]["status"] == "Accepted"
    return ctx, cp


def cabinet(status: str = "Faulted") -> dict[str, Any]:
    return {"connectorId": 0, "errorCode": "OtherError", "status": status, "vendorErrorCode": "CABINET_DOOR_OPEN",
            "timestamp": NOW}


async def test_seed_intrusion_cabinet_forced_then_laptop_is_alerted_and_quarantined(server: RunningServer) -> None:
    ctx, cp = await booted_client(server, "CP-SEED")
    try:
        assert (await cp.call("StatusNotification", cabinet()))[0] == 3
        await server.gateway.services.bus.drain()
        request = await answer_call(cp, "ChangeAvailability", {"status": "Accepted"})
        assert request == {"connectorId": 0, "type": "Inoperative"}
        await server.settled()
        # the laptop: calls a charge point never makes, and malformed ones
        assert (await cp.call("GetConfiguration", {}))[0] == 4
        assert (await cp.call("Heartbeat", {"x": 1}))[0] == 4
        await server.settled()
    finally:
        await ctx.__aexit__(None, None, None)
    found = await alerts(server, "CP-SEED")
    assert {"cabinet_opened", "protocol_violation"} <= kinds(found)
    incidents = (await api(server, "GET", "/api/v1/security/incidents")).json()
    assert len(incidents) == 1 and incidents[0]["charge_point_id"] == "CP-SEED"
    assert incidents[0]["severity"] == "critical" and incidents[0]["alert_count"] >= 2
    assert (await api(server, "GET", "/api/v1/charge-points/CP-SEED/quarantine")).json()["quarantined"] is True
    assert (await api(server, "GET", "/api/v1/charge-points/CP-SEED")).json()["quarantined"] is True
    refused = await api(server, "POST", "/api/v1/charge-points/CP-SEED/commands/RemoteStartTransaction",
                        {"idTag": "T1"})
    assert refused.status_code == 409 and refused.json()["title"] == "quarantined"
    detail = (await api(server, "GET", f"/api/v1/security/incidents/{incidents[0]['id']}")).json()
    assert "quarantine" in detail["suggested_responses"]
    actions = [r["action"] for r in await server.store.read(audit.read_chain)]
    assert "response.quarantine" in actions and "response.quarantine.outcome" in actions


async def test_release_sends_operative_and_allows_remote_starts(server: RunningServer) -> None:
    ctx, cp = await booted_client(server, "CP-REL")
    try:
        quarantine = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-REL/quarantine",
                                             {"reason": "suspicious"}))
        assert (await answer_call(cp, "ChangeAvailability", {"status": "Accepted"}))["type"] == "Inoperative"
        assert (await quarantine).json()["change_availability"] == "Accepted"
        release = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-REL/release"))
        assert (await answer_call(cp, "ChangeAvailability", {"status": "Accepted"}))["type"] == "Operative"
        assert (await release).status_code == 200
        start = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-REL/commands/RemoteStartTransaction",
                                        {"idTag": "T1"}))
        await answer_call(cp, "RemoteStartTransaction", {"status": "Accepted"})
        assert (await start).json()["state"] == "answered"
    finally:
        await ctx.__aexit__(None, None, None)
    again = await api(server, "POST", "/api/v1/charge-points/CP-REL/release")
    assert again.status_code == 409 and again.json()["title"] == "not-quarantined"
    assert (await api(server, "GET", "/api/v1/security/audit/verify")).json()["ok"] is True


async def test_inside_a_work_order_the_cabinet_is_expected_and_the_badge_checks_in(server: RunningServer) -> None:
    now = datetime.now(UTC)
    order = await api(server, "POST", "/api/v1/security/work-orders", {
        "technician": "tech-1", "badge": "TECH01", "charge_points": ["CP-WO"],
        "starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
        "purpose": "replace the meter"})
    assert order.status_code == 201
    await server.add_id_tag("TECH01")
    ctx, cp = await booted_client(server, "CP-WO")
    try:
        assert (await cp.call("Authorize", {"idTag": "TECH01"}))[2]["idTagInfo"]["status"] == "Accepted"
        assert (await cp.call("StatusNotification", cabinet()))[0] == 3
        await server.settled()
    finally:
        await ctx.__aexit__(None, None, None)
    found = await alerts(server, "CP-WO")
    assert kinds(found) == set()
    assert kinds(found, expected=True) == {"technician_check_in", "cabinet_opened"}
    assert (await api(server, "GET", "/api/v1/security/incidents")).json() == []
    assert (await api(server, "GET", "/api/v1/charge-points/CP-WO/quarantine")).json()["quarantined"] is False
    orders = (await api(server, "GET", "/api/v1/security/work-orders")).json()
    assert orders[0]["checked_in_at"] is not None


async def test_a_technician_badge_elsewhere_raises_an_alert(server: RunningServer) -> None:
    now = datetime.now(UTC)
    await api(server, "POST", "/api/v1/security/work-orders", {
        "technician": "tech-2", "badge": "TECH02", "charge_points": ["CP-ELSEWHERE"],
        "starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
        "purpose": "inspection"})
    await server.add_id_tag("TECH02")
    ctx, cp = await booted_client(server, "CP-BADGE")
    try:
        await cp.call("Authorize", {"idTag": "TECH02"})
        await server.settled()
    finally:
        await ctx.__aexit__(None, None, None)
    assert "badge_outside_work_order" in kinds(await alerts(server, "CP-BADGE"))


async def test_brute_force_is_alerted_and_the_webhook_is_called(server: RunningServer) -> None:
    from aiohttp import web

    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    service_of(server.gateway).webhook_url = f"http://127.0.0.1:{port}/hook"
    try:
        await server.add_charge_point("CP-BF", profile=1)
        for i in range(5):
            with pytest.raises(websockets.InvalidStatus):
                async with websockets.connect(f"{server.ws_url}/CP-BF", subprotocols=["ocpp1.6"],
                                              additional_headers=basic_auth("CP-BF", f"wrong-password-{i:04d}xx")):
                    pass
        await server.settled()
    finally:
        await runner.cleanup()
    assert "brute_force_identity" in kinds(await alerts(server, "CP-BF"))
    assert [h["kind"] for h in received] == ["brute_force_identity"]
    assert received[0]["charge_point_id"] == "CP-BF" and received[0]["suggested_responses"] == ["rotate_credentials"]


async def test_duplicate_identity_hijack_is_alerted(server: RunningServer) -> None:
    await server.add_charge_point("CP-DUP", profile=1)
    async with websockets.connect(f"{server.ws_url}/CP-DUP", subprotocols=["ocpp1.6"],
                                  additional_headers=basic_auth("CP-DUP")) as real:
        await real.send(json.dumps([2, "b1", "BootNotification", BOOT]))
        await real.recv()
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(f"{server.ws_url}/CP-DUP", subprotocols=["ocpp1.6"],
                                          additional_headers=basic_auth("CP-DUP")):
                pass
        await server.settled()
    assert "duplicate_identity" in kinds(await alerts(server, "CP-DUP"))


async def test_replays_are_alerted(server: RunningServer) -> None:
    await server.add_id_tag("MEMBER1")
    ctx, cp = await booted_client(server, "CP-RPL")
    start = {"connectorId": 1, "idTag": "MEMBER1", "meterStart": 100, "timestamp": NOW}
    try:
        tx = (await cp.call("StartTransaction", start, message_id="s1"))[2]["transactionId"]
        await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 900, "timestamp": NOW})
        again = await cp.call("StartTransaction", start, message_id="s2")  # replayed with a fresh id
        assert again[2]["transactionId"] == tx
        assert (await cp.call("Heartbeat", {}, message_id="s1"))[0] == 4  # a used message id, other message
        await server.settled()
    finally:
        await ctx.__aexit__(None, None, None)
    assert {"replayed_start_transaction", "replayed_message_id"} <= kinds(await alerts(server, "CP-RPL"))


async def test_exfiltration_and_unrequested_uploads_are_alerted(server: RunningServer) -> None:
    ctx, cp = await booted_client(server, "CP-EXF")
    try:
        big = base64.b64encode(bytes(6000)).decode()
        await cp.call("DataTransfer", {"vendorId": "org.unknown", "messageId": "dump", "data": big})
        await cp.call("DiagnosticsStatusNotification", {"status": "Uploading"})
        await cp.call("MeterValues", {"connectorId": 1, "meterValue": [
            {"timestamp": NOW, "sampledValue": [{"value": "5000", "measurand": "Energy.Active.Import.Register"}]}]})
        await cp.call("MeterValues", {"connectorId": 1, "meterValue": [
            {"timestamp": "2026-11-28T10:01:00Z",
             "sampledValue": [{"value": "10", "measurand": "Energy.Active.Import.Register"},
                              {"value": "90000", "measurand": "Power.Active.Import", "unit": "W"}]}]})
        await server.settled()
    finally:
        await ctx.__aexit__(None, None, None)
    assert {"data_transfer_unknown_vendor", "data_transfer_large", "diagnostics_unrequested",
            "energy_register_backwards", "power_above_rating"} <= kinds(await alerts(server, "CP-EXF"))


async def test_ordered_diagnostics_are_not_alerted_but_a_foreign_location_is(server: RunningServer) -> None:
    ctx, cp = await booted_client(server, "CP-DIAG")
    try:
        order = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-DIAG/commands/GetDiagnostics",
                                        {"location": "ftp://203.0.113.7/loot"}))
        await answer_call(cp, "GetDiagnostics", {"fileName": "diag.zip"})
        assert (await order).status_code == 200
        await cp.call("DiagnosticsStatusNotification", {"status": "Uploading"})
        await server.settled()
    finally:
        await ctx.__aexit__(None, None, None)
    found = kinds(await alerts(server, "CP-DIAG"))
    assert "diagnostics_unrequested" not in found and "upload_location_not_allowed" in found


async def test_firmware_tampering_and_profile_downgrade_are_alerted(server: RunningServer) -> None:
    ctx, _ = await booted_client(server, "CP-FW")
    await ctx.__aexit__(None, None, None)
    await server.settled()
    async with connect(server, "CP-FW") as cp:
        await cp.call("BootNotification", {**BOOT, "firmwareVersion": "evil-2.0"})
        await server.settled()
    await server.add_charge_point("CP-P2", profile=2)
    with pytest.raises(websockets.InvalidStatus):  # profile 2 needs TLS: plain ws is a downgrade attempt
        async with websockets.connect(f"{server.ws_url}/CP-P2", subprotocols=["ocpp1.6"],
                                      additional_headers=basic_auth("CP-P2")):
            pass
    await server.settled()
    assert "firmware_changed_unordered" not in kinds(await alerts(server, "CP-FW"))  # no firmware known before
    async with connect(server, "CP-FW") as cp:
        await cp.call("BootNotification", {**BOOT, "firmwareVersion": "evil-3.0"})
        await server.settled()
    assert "firmware_changed_unordered" in kinds(await alerts(server, "CP-FW"))
    assert kinds(await alerts(server, "CP-P2")) == {"profile_downgrade"}


async def test_incident_lifecycle_through_the_api(server: RunningServer) -> None:
    ctx, cp = await booted_client(server, "CP-LC")
    try:
        await cp.call("SecurityEventNotification", {"type": "SecurityLogWasCleared", "timestamp": NOW})
        await server.settled()
    finally:
        await ctx.__aexit__(None, None, None)
    (incident,) = (await api(server, "GET", "/api/v1/security/incidents")).json()
    path = f"/api/v1/security/incidents/{incident['id']}/lifecycle"
    ack = await api(server, "POST", path, {"action": "acknowledge", "note": "looking"})
    assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"
    no_note = await api(server, "POST", path, {"action": "resolve"})
    assert no_note.status_code == 422 and no_note.json()["title"] == "note-required"
    done = await api(server, "POST", path, {"action": "resolve", "note": "maintenance log rotation"})
    assert done.json()["state"] == "resolved" and "maintenance log rotation" in done.json()["note"]
    again = await api(server, "POST", path, {"action": "acknowledge"})
    assert again.status_code == 409 and again.json()["title"] == "invalid-transition"
    blocked = await api(server, "POST", f"/api/v1/security/incidents/{incident['id']}/respond",
                        {"action": "block_badge", "id_tag": "STOLEN1"})
    assert blocked.json()["status"] == "Blocked"
    tags = (await api(server, "GET", "/api/v1/id-tags")).json()
    assert {"id_tag": "STOLEN1", "status": "Blocked"}.items() <= tags[0].items()
    actions = [r["action"] for r in await server.store.read(audit.read_chain)]
    # the car-sharing hook (local-list push) is wired in the server, so its outcome is audited too
    assert actions == ["incident.acknowledge", "incident.resolve", "response.block_badge",
                       "response.block_badge.outcome"]


async def test_repeated_signals_are_deduplicated(server: RunningServer) -> None:
    """Three notifications, one alert with two repeats; the same notification again (its type and
    stamp: a retransmission) is the same occurrence, not a third repeat."""
    ctx, cp = await booted_client(server, "CP-DD")
    base = datetime.fromisoformat(NOW)
    try:
        for n in (0, 1, 2, 2):
            stamp = (base + timedelta(seconds=n)).isoformat()
            await cp.call("SecurityEventNotification", {"type": "InvalidFirmwareSignature", "timestamp": stamp})
        await server.settled()
    finally:
        await ctx.__aexit__(None, None, None)
    found = [a for a in await alerts(server, "CP-DD") if a["kind"] == "charge_point_security_event"]
    assert len(found) == 1 and found[0]["repeats"] == 2



async def test_a_dead_webhook_never_loses_the_alert(server: RunningServer) -> None:
    from tests.conftest import free_port

    service = service_of(server.gateway)
    service.webhook_url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    ctx, cp = await booted_client(server, "CP-HOOK")
    try:
        await cp.call("SecurityEventNotification", {"type": "InvalidFirmwareSignature", "timestamp": NOW})
        await server.settled()
    finally:
        await ctx.__aexit__(None, None, None)
    assert service.webhook_failures == 1
    assert "charge_point_security_event" in kinds(await alerts(server, "CP-HOOK"))


async def test_block_badge_also_calls_the_plugged_in_blocker(server: RunningServer) -> None:
    from voltlib.security.response import set_badge_blocker

    calls: list[tuple[str, str, str]] = []

    async def sharing_blocker(id_tag: str, reason: str, by: str) -> None:  # stands in for the car-sharing branch
        calls.append((id_tag, reason, by))

    set_badge_blocker(server.gateway, sharing_blocker)
    r = await api(server, "POST", "/api/v1/badges/LOST42/block")
    assert r.status_code == 200 and r.json()["status"] == "Blocked"
    assert calls == [("LOST42", "lost", calls[0][2])] and calls[0][2].startswith("test-")
    actions = [e["action"] for e in await server.store.read(audit.read_chain)]
    assert actions == ["response.block_badge", "response.block_badge.outcome"]


async def test_a_quarantine_set_through_the_api_outlives_a_reconnection_and_a_release_ends_it(
        server: RunningServer) -> None:
    ctx, cp = await booted_client(server, "CP-BACK")  # the security service has seen events by now
    quarantine = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-BACK/quarantine",
                                         {"reason": "suspicious"}))
    await answer_call(cp, "ChangeAvailability", {"status": "Accepted"})
    assert (await quarantine).status_code == 200
    await ctx.__aexit__(None, None, None)
    ctx = connect(server, "CP-BACK")  # back online: still in quarantine, so Inoperative again
    cp = await ctx.__aenter__()
    try:
        assert (await answer_call(cp, "ChangeAvailability", {"status": "Accepted"}))["type"] == "Inoperative"
        release = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-BACK/release"))
        assert (await answer_call(cp, "ChangeAvailability", {"status": "Accepted"}))["type"] == "Operative"
        assert (await release).status_code == 200
    finally:
        await ctx.__aexit__(None, None, None)
    ctx = connect(server, "CP-BACK")  # released: a reconnection is left alone
    cp = await ctx.__aenter__()
    try:
        assert (await cp.call("Heartbeat", {}))[0] == 3
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(answer_call(cp, "ChangeAvailability", {"status": "Accepted"}), 1.5)
    finally:
        await ctx.__aexit__(None, None, None)


async def test_a_quarantined_charge_point_is_logged_in_full(server: RunningServer) -> None:
    """Under the default compact raw log an accepted MeterValues is not copied into the raw log, except
    while its charge point is in quarantine: then every frame is evidence."""
    assert server.settings.message_log == "compact"
    ctx, cp = await booted_client(server, "CP-WATCH")
    values = {"connectorId": 1, "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": "1"}]}]}
    try:
        assert (await cp.call("MeterValues", values, message_id="before"))[0] == 3
        quarantine = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-WATCH/quarantine",
                                             {"reason": "suspicious"}))
        await answer_call(cp, "ChangeAvailability", {"status": "Accepted"})
        assert (await quarantine).status_code == 200
        assert (await cp.call("MeterValues", values, message_id="during"))[0] == 3
        release = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-WATCH/release"))
        await answer_call(cp, "ChangeAvailability", {"status": "Accepted"})
        assert (await release).status_code == 200
        assert (await cp.call("MeterValues", values, message_id="after"))[0] == 3
        assert (await cp.call("Authorize", {"idTag": "LAST"}, message_id="last"))[0] == 3
    finally:
        await ctx.__aexit__(None, None, None)
    for _ in range(100):  # the raw log is written with a group commit nobody waits for
        rows = (await api(server, "GET", "/api/v1/charge-points/CP-WATCH/messages")).json()
        if any(row["message_id"] == "last" for row in rows):
            break
        await asyncio.sleep(0.05)
    meter_ids = {row["message_id"] for row in rows if row["action"] == "MeterValues"}
    assert meter_ids == {"during"}


async def test_the_quarantine_is_known_before_the_first_charge_point_connects(database_url: str) -> None:
    """After a restart the gateway knows at once which charge points are in quarantine: none of a
    quarantined charge point's first frames may miss the full log."""
    store = Store(database_url)
    upgrade(store.engine)
    store.run_sync(partial(records.start_quarantine, cp_id="CP-KEPT", reason="forced cabinet", by="analyst",
                           incident_id=None, now=datetime.now(UTC)))
    store.close()
    runner, running = await start_server(Settings(database_url=database_url, port=free_port()))
    try:
        assert running.gateway.services.quarantined == {"CP-KEPT"}
    finally:
        await runner.cleanup()


async def test_one_badge_at_two_far_stations_within_a_minute_is_alerted(database_url: str) -> None:
    """A copied badge: accepted at station A, then at station C (~7.5 street km away) seconds later."""
    store = Store(database_url)
    upgrade(store.engine)

    def city(conn: Any) -> None:
        upsert_city(conn, builtin_cities()["paris"])
        import_snapshot(conn, "paris", parse_snapshot(SNAPSHOT, car_prefix="PA"), security_profile=1,
                        password_hash=hash_password(PASSWORD), soc_percent=80.0, now=datetime.now(UTC))

    store.run_sync(city)
    store.close()
    runner, server = await start_server(Settings(database_url=database_url, port=free_port()))
    try:
        await server.add_id_tag("COPIED-BADGE")
        await server.add_id_tag("HONEST-BADGE")
        for cp_id, tags in (("st-a-1", ("COPIED-BADGE", "HONEST-BADGE")), ("st-c-1", ("COPIED-BADGE",))):
            async with connect(server, cp_id, password=PASSWORD) as cp:
                assert (await cp.call("BootNotification", BOOT))[2]["status"] == "Accepted"
                for tag in tags:
                    assert (await cp.call("Authorize", {"idTag": tag}))[2]["idTagInfo"]["status"] == "Accepted"
        await server.settled()
        (alert,) = [a for a in await alerts(server) if a["kind"] == "badge_impossible_travel"]
        assert alert["charge_point_id"] == "st-c-1" and alert["severity"] == "high"
        assert alert["detail"]["badge"] == "COPIED-BADGE" and alert["detail"]["from_charge_point"] == "st-a-1"
        assert 6 < alert["detail"]["street_km"] < 9
    finally:
        await runner.cleanup()
