"""The detectors of tests/security/test_detection_live.py, attacked over OCPP 2.0.1 sockets (issue 16,
deliverable 5), on SQLite and PostgreSQL: each attack in 2.0.1 terms, the same alert, incident and
response as over 1.6. The charge points are raw 2.0.1 clients so each attack is exact; what triggers
each detector over 2.0.1 is tabled in docs/security.md, "Detectors and OCPP versions"."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import websockets

from tests.conftest import PASSWORD, RunningServer, basic_auth, free_port, start_server
from tests.security.test_detection_live import alerts, api, kinds
from tests.sharing.conftest import CAR_ID, CAR_TAG, SNAPSHOT, seeded_city
from voltlib.config import Settings
from voltlib.security import audit
from voltlib.security.credentials import hash_password
from voltlib.security.service import service_of
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import parse_snapshot
from voltlib.sharing.store import import_snapshot, upsert_city
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.store.tables import meter_values

pytestmark = pytest.mark.asyncio
V201 = ["ocpp2.0.1"]
BOOT = {"chargingStation": {"vendorName": "Bolloré", "model": "AL2"}, "reason": "PowerUp"}


def stamp(seconds: float = 0.0) -> str:
    """Now (plus ``seconds``): a charge point's stamp the clock policy believes."""
    return (datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)).isoformat()


class Client:
    """A raw 2.0.1 station: sends exactly what it is told. The central system's calls that arrive
    while it waits for an answer (car sharing pushing a local list at boot...) are kept for
    ``answer_call``, or answered Accepted when ``accept_all``."""

    def __init__(self, ws: websockets.ClientConnection, accept_all: bool) -> None:
        self.ws, self.accept_all = ws, accept_all
        self.calls: list[list[Any]] = []
        self._ids = itertools.count(1)

    async def call(self, action: str, payload: dict[str, Any], message_id: str | None = None) -> list[Any]:
        message_id = message_id or f"m{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        await self.ws.send(json.dumps([2, message_id, action, payload]))
        while True:
            frame = await self.recv()
            if frame[0] != 2:
                return frame
            if self.accept_all:
                await self.ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
            else:
                self.calls.append(frame)

    async def recv(self) -> list[Any]:
        return list(json.loads(await asyncio.wait_for(self.ws.recv(), 10)))


@asynccontextmanager
async def connect(server: RunningServer, cp_id: str, accept_all: bool = False) -> AsyncIterator[Client]:
    async with websockets.connect(f"{server.ws_url}/{cp_id}", subprotocols=V201,  # type: ignore[list-item]
                                  additional_headers=basic_auth(cp_id, PASSWORD)) as ws:
        yield Client(ws, accept_all)


async def answer_call(cp: Client, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Wait for the central system's call ``action`` (or take it if it came already), answer it,
    return its payload."""
    while True:
        frame = cp.calls.pop(0) if cp.calls else await cp.recv()
        if frame[0] == 2 and frame[2] == action:
            await cp.ws.send(json.dumps([3, frame[1], payload]))
            return dict(frame[3])


async def booted_client(server: RunningServer, cp_id: str, boot: dict[str, Any] | None = None) -> Any:
    await server.add_charge_point(cp_id)
    ctx = connect(server, cp_id)
    cp = await ctx.__aenter__()
    assert cp.ws.subprotocol == "ocpp2.0.1"
    reply = await cp.call("BootNotification", boot or BOOT)
    assert reply[2]["status"] == "Accepted"
    return ctx, cp


@asynccontextmanager
async def station(server: RunningServer, cp_id: str, boot: dict[str, Any] | None = None) -> AsyncIterator[Client]:
    ctx, cp = await booted_client(server, cp_id, boot)
    try:
        yield cp
    finally:
        await ctx.__aexit__(None, None, None)


def security_event(kind: str, at: str | None = None) -> dict[str, Any]:
    return {"type": kind, "timestamp": at or stamp()}


def badge(id_tag: str) -> dict[str, Any]:
    return {"idToken": {"idToken": id_tag, "type": "ISO14443"}}


def register(wh: float, at: str, context: str = "Sample.Periodic",
             power_w: float | None = None) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = [{"value": wh, "context": context, "measurand": "Energy.Active.Import.Register",
                                      "unitOfMeasure": {"unit": "Wh"}}]
    if power_w is not None:
        samples.append({"value": power_w, "context": context, "measurand": "Power.Active.Import",
                        "unitOfMeasure": {"unit": "W"}})
    return [{"timestamp": at, "sampledValue": samples}]


def tx_event(event_type: str, tx_id: str, seq_no: int, at: str, **fields: Any) -> dict[str, Any]:
    trigger = {"Started": "Authorized", "Updated": "MeterValuePeriodic", "Ended": "StopAuthorized"}[event_type]
    info = {"transactionId": tx_id, **fields.pop("info", {})}
    return {"eventType": event_type, "timestamp": at, "triggerReason": trigger, "seqNo": seq_no,
            "transactionInfo": info, **fields}


def started(tx_id: str, id_tag: str, wh: float, at: str) -> dict[str, Any]:
    return tx_event("Started", tx_id, 0, at, evse={"id": 1, "connectorId": 1}, **badge(id_tag),
                    meterValue=register(wh, at, "Transaction.Begin"), info={"chargingState": "Charging"})


def ended(tx_id: str, seq_no: int, wh: float, at: str, reason: str = "Local") -> dict[str, Any]:
    return tx_event("Ended", tx_id, seq_no, at, meterValue=register(wh, at, "Transaction.End"),
                    info={"chargingState": "Idle", "stoppedReason": reason})


# -- physical: tamper, quarantine, work orders ---------------------------------------------------


async def test_tamper_detected_then_a_laptop_is_alerted_and_quarantined(server: RunningServer) -> None:
    """Seed intrusion over 2.0.1: the station's own tamper switch (SecurityEventNotification
    TamperDetectionActivated; a 2.0.1 StatusNotification carries no vendor code for a door), then
    calls no station makes and malformed ones."""
    async with station(server, "CP-SEED") as cp:
        assert (await cp.call("SecurityEventNotification", security_event("TamperDetectionActivated")))[0] == 3
        await server.gateway.services.bus.drain()
        request = await answer_call(cp, "ChangeAvailability", {"status": "Accepted"})
        assert request == {"operationalStatus": "Inoperative"}
        await server.settled()
        assert (await cp.call("GetConfiguration", {}))[0] == 4  # a 1.6 action: no 2.0.1 station sends it
        assert (await cp.call("Heartbeat", {"x": 1}))[0] == 4
        await server.settled()
    found = await alerts(server, "CP-SEED")
    assert {"tamper_detected", "protocol_violation"} <= kinds(found)
    incidents = (await api(server, "GET", "/api/v1/security/incidents")).json()
    assert len(incidents) == 1 and incidents[0]["charge_point_id"] == "CP-SEED"
    assert incidents[0]["severity"] == "critical" and incidents[0]["alert_count"] >= 2
    assert (await api(server, "GET", "/api/v1/charge-points/CP-SEED/quarantine")).json()["quarantined"] is True
    refused = await api(server, "POST", "/api/v1/charge-points/CP-SEED/commands/RequestStartTransaction",
                        {"idToken": {"idToken": "T1", "type": "ISO14443"}, "remoteStartId": 1})
    assert refused.status_code == 409 and refused.json()["title"] == "quarantined"
    actions = [r["action"] for r in await server.store.read(audit.read_chain)]
    assert "response.quarantine" in actions and "response.quarantine.outcome" in actions


async def test_release_sends_operative_and_allows_remote_starts(server: RunningServer) -> None:
    async with station(server, "CP-REL") as cp:
        quarantine = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-REL/quarantine",
                                             {"reason": "suspicious"}))
        assert await answer_call(cp, "ChangeAvailability", {"status": "Accepted"}) == \
            {"operationalStatus": "Inoperative"}
        assert (await quarantine).json()["change_availability"] == "Accepted"
        release = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-REL/release"))
        assert (await answer_call(cp, "ChangeAvailability", {"status": "Accepted"}))["operationalStatus"] == \
            "Operative"
        assert (await release).status_code == 200
        start = asyncio.create_task(api(server, "POST",
                                        "/api/v1/charge-points/CP-REL/commands/RequestStartTransaction",
                                        {"idToken": {"idToken": "T1", "type": "ISO14443"}, "remoteStartId": 1}))
        await answer_call(cp, "RequestStartTransaction", {"status": "Accepted"})
        assert (await start).json()["state"] == "answered"
    assert (await api(server, "GET", "/api/v1/security/audit/verify")).json()["ok"] is True


@pytest.mark.parametrize("tech_badge", ["TECH01", "0b7e2f1c-3d4a-4e5f-8a9b-0c1d2e3f4a5b"])  # 1.6-size, 36
async def test_inside_a_work_order_the_tamper_is_expected_and_the_badge_checks_in(server: RunningServer,
                                                                                   tech_badge: str) -> None:
    now = datetime.now(UTC)
    order = await api(server, "POST", "/api/v1/security/work-orders", {
        "technician": "tech-1", "badge": tech_badge, "charge_points": ["CP-WO"],
        "starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
        "purpose": "replace the meter"})
    assert order.status_code == 201, order.text
    assert order.json()["badge"] == tech_badge
    await server.add_id_tag(tech_badge)
    async with station(server, "CP-WO") as cp:
        assert (await cp.call("Authorize", badge(tech_badge)))[2]["idTokenInfo"]["status"] == "Accepted"
        assert (await cp.call("SecurityEventNotification", security_event("TamperDetectionActivated")))[0] == 3
        await server.settled()
    found = await alerts(server, "CP-WO")
    assert kinds(found) == set()
    assert kinds(found, expected=True) == {"technician_check_in", "tamper_detected"}
    assert (await api(server, "GET", "/api/v1/security/incidents")).json() == []
    assert (await api(server, "GET", "/api/v1/charge-points/CP-WO/quarantine")).json()["quarantined"] is False
    assert (await api(server, "GET", "/api/v1/security/work-orders")).json()[0]["checked_in_at"] is not None


async def test_a_technician_badge_elsewhere_raises_an_alert(server: RunningServer) -> None:
    now = datetime.now(UTC)
    await api(server, "POST", "/api/v1/security/work-orders", {
        "technician": "tech-2", "badge": "TECH02", "charge_points": ["CP-ELSEWHERE"],
        "starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
        "purpose": "inspection"})
    await server.add_id_tag("TECH02")
    async with station(server, "CP-BADGE") as cp:
        await cp.call("Authorize", badge("TECH02"))
        await server.settled()
    assert "badge_outside_work_order" in kinds(await alerts(server, "CP-BADGE"))


async def test_a_car_leaving_its_bay_without_a_rental_is_alerted(server: RunningServer) -> None:
    """Unauthorised departure over 2.0.1: the car charging at its bay (TransactionEvent Started with
    the car's own token), then Ended (EVDisconnected) and the EVSE Available, nobody having badged."""
    async with seeded_city(server), connect(server, "st-a-1", accept_all=True) as cp:
        assert (await cp.call("BootNotification", BOOT))[2]["status"] == "Accepted"
        at = stamp(-60)
        assert (await cp.call("TransactionEvent", started("TX-CAR", CAR_TAG, 1000, at)))[0] == 3
        assert (await cp.call("TransactionEvent", ended("TX-CAR", 1, 1200, stamp(), "EVDisconnected")))[0] == 3
        assert (await cp.call("StatusNotification", {"timestamp": stamp(), "connectorStatus": "Available",
                                                     "evseId": 1, "connectorId": 1}))[0] == 3
        for _ in range(100):  # car sharing's effect publishes on the bus, whose detector records
            await server.settled()
            if "car_left_without_rental" in kinds(await alerts(server, "st-a-1")):
                break
            await asyncio.sleep(0.05)
    events = await server.store.read(repo.list_security_events)
    assert any(e["kind"] == "unauthorised_departure" and (e["detail"] or {}).get("car_id") == CAR_ID for e in events)
    (alert,) = [a for a in await alerts(server, "st-a-1") if a["kind"] == "car_left_without_rental"]
    assert alert["severity"] == "high" and alert["detail"]["car_id"] == CAR_ID


# -- identity: brute force, duplicate identity, badges -------------------------------------------


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
                async with websockets.connect(f"{server.ws_url}/CP-BF", subprotocols=V201,  # type: ignore[arg-type]
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
    async with connect(server, "CP-DUP") as real:
        assert (await real.call("BootNotification", BOOT))[0] == 3
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(f"{server.ws_url}/CP-DUP", subprotocols=V201,  # type: ignore[arg-type]
                                          additional_headers=basic_auth("CP-DUP")):
                pass
        await server.settled()
        assert (await real.call("Heartbeat", {}))[0] == 3  # the real station keeps its socket
    assert "duplicate_identity" in kinds(await alerts(server, "CP-DUP"))


async def test_one_badge_at_two_far_stations_within_a_minute_is_alerted(database_url: str) -> None:
    """A copied badge: accepted at station A, then at station C (~7.5 street km away) seconds later,
    both 2.0.1 stations."""
    store = Store(database_url)  # the stations are known at start-up, where the detectors read their places
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
            async with connect(server, cp_id) as cp:
                assert (await cp.call("BootNotification", BOOT))[2]["status"] == "Accepted"
                for tag in tags:
                    assert (await cp.call("Authorize", badge(tag)))[2]["idTokenInfo"]["status"] == "Accepted"
        await server.settled()
        (alert,) = [a for a in await alerts(server) if a["kind"] == "badge_impossible_travel"]
        assert alert["charge_point_id"] == "st-c-1" and alert["severity"] == "high"
        assert alert["detail"]["badge"] == "COPIED-BADGE" and alert["detail"]["from_charge_point"] == "st-a-1"
    finally:
        await runner.cleanup()


# -- protocol: replays ----------------------------------------------------------------------------


async def test_a_replayed_started_and_a_reused_message_id_are_alerted(server: RunningServer) -> None:
    await server.add_id_tag("MEMBER1")
    async with station(server, "CP-RPL") as cp:
        start = started("TX-RPL", "MEMBER1", 100, stamp(-60))
        assert (await cp.call("TransactionEvent", start, message_id="s1"))[2]["idTokenInfo"]["status"] == "Accepted"
        assert (await cp.call("TransactionEvent", ended("TX-RPL", 1, 900, stamp())))[0] == 3
        assert (await cp.call("TransactionEvent", start, message_id="s2"))[0] == 3  # captured, replayed: new id
        assert (await cp.call("Heartbeat", {}, message_id="s1"))[0] == 4  # a used message id, other message
        await server.settled()
    found = await alerts(server, "CP-RPL")
    assert {"replayed_start_transaction", "replayed_message_id"} <= kinds(found)
    (replayed,) = [a for a in found if a["kind"] == "replayed_start_transaction"]
    assert replayed["severity"] == "high" and replayed["detail"]["transaction"] == "stopped"


async def test_a_retransmitted_event_is_not_alerted_but_a_forged_one_under_its_seq_no_is(
        server: RunningServer) -> None:
    """The same (transactionId, seqNo) again: as it was, a station retransmitting (nothing to say);
    with other content, a forgery under a seen sequence number: alerted, and nothing of it stored."""
    await server.add_id_tag("MEMBER2")
    async with station(server, "CP-SEQ") as cp:
        assert (await cp.call("TransactionEvent", started("TX-SEQ", "MEMBER2", 100, stamp(-120))))[0] == 3
        reading = tx_event("Updated", "TX-SEQ", 1, stamp(-60), meterValue=register(400, stamp(-60)))
        assert (await cp.call("TransactionEvent", reading))[0] == 3
        assert (await cp.call("TransactionEvent", reading))[0] == 3  # retransmitted, fresh message id
        await server.settled()
        assert "replayed_transaction_event" not in kinds(await alerts(server, "CP-SEQ"))
        forged = tx_event("Updated", "TX-SEQ", 1, stamp(-30), meterValue=register(40_000, stamp(-30)))
        assert (await cp.call("TransactionEvent", forged))[0] == 3  # answered: a station may not care why
        await server.settled()
    (alert,) = [a for a in await alerts(server, "CP-SEQ") if a["kind"] == "replayed_transaction_event"]
    assert alert["severity"] == "high"
    assert alert["detail"]["station_transaction_id"] == "TX-SEQ" and alert["detail"]["seq_no"] == 1

    def registers(conn: Any) -> list[Any]:
        return list(conn.execute(meter_values.select().where(meter_values.c.charge_point_id == "CP-SEQ")))

    assert len(await server.store.read(registers)) == 2  # the Started's and the first Updated's, not the forged


# -- data: exfiltration, meter, uploads, firmware --------------------------------------------------


async def test_exfiltration_unrequested_logs_and_a_meter_running_backwards_are_alerted(
        server: RunningServer) -> None:
    await server.add_id_tag("MEMBER3")
    async with station(server, "CP-EXF") as cp:
        big = base64.b64encode(bytes(6000)).decode()
        assert (await cp.call("DataTransfer", {"vendorId": "org.unknown", "messageId": "dump", "data": big}))[0] == 3
        assert (await cp.call("LogStatusNotification", {"status": "Uploading", "requestId": 3}))[0] == 3
        assert (await cp.call("TransactionEvent", started("TX-EXF", "MEMBER3", 5000, stamp(-120))))[0] == 3
        backwards = tx_event("Updated", "TX-EXF", 1, stamp(-60), meterValue=register(10, stamp(-60), power_w=90_000))
        assert (await cp.call("TransactionEvent", backwards))[0] == 3
        await server.settled()
    assert {"data_transfer_unknown_vendor", "data_transfer_large", "log_unrequested",
            "energy_register_backwards", "power_above_rating"} <= kinds(await alerts(server, "CP-EXF"))


async def test_a_json_data_transfer_is_measured_as_its_text(server: RunningServer) -> None:
    """2.0.1's DataTransfer data may be any JSON value: a large object is as large as a large string."""
    async with station(server, "CP-JSON") as cp:
        data = {"rows": [{"n": n, "blob": "x" * 40} for n in range(100)]}
        assert (await cp.call("DataTransfer", {"vendorId": "org.unknown", "data": data}))[0] == 3
        await server.settled()
    assert {"data_transfer_unknown_vendor", "data_transfer_large"} <= kinds(await alerts(server, "CP-JSON"))


async def test_an_ordered_log_upload_is_not_alerted_but_a_foreign_location_is(server: RunningServer) -> None:
    async with station(server, "CP-DIAG") as cp:
        order = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-DIAG/commands/GetLog", {
            "logType": "DiagnosticsLog", "requestId": 7, "log": {"remoteLocation": "ftp://203.0.113.7/loot"}}))
        await answer_call(cp, "GetLog", {"status": "Accepted", "filename": "diag.zip"})
        assert (await order).status_code == 200
        assert (await cp.call("LogStatusNotification", {"status": "Uploading", "requestId": 7}))[0] == 3
        await server.settled()
    found = kinds(await alerts(server, "CP-DIAG"))
    assert "log_unrequested" not in found and "upload_location_not_allowed" in found
    detail = (await api(server, "GET", "/api/v1/charge-points/CP-DIAG")).json()
    assert detail["log_status"] == "Uploading"


async def test_firmware_tampering_and_profile_downgrade_are_alerted(server: RunningServer) -> None:
    def boot(firmware: str) -> dict[str, Any]:
        return {**BOOT, "chargingStation": {**BOOT["chargingStation"], "firmwareVersion": firmware}}

    async with station(server, "CP-FW", boot("evil-2.0")):
        pass
    await server.settled()
    assert "firmware_changed_unordered" not in kinds(await alerts(server, "CP-FW"))  # no firmware known before
    async with connect(server, "CP-FW") as cp:
        await cp.call("BootNotification", boot("evil-3.0"))
        assert (await cp.call("FirmwareStatusNotification", {"status": "Downloading"}))[0] == 3
        await server.settled()
    assert {"firmware_changed_unordered", "firmware_unrequested"} <= kinds(await alerts(server, "CP-FW"))
    await server.add_charge_point("CP-P2", profile=2)
    with pytest.raises(websockets.InvalidStatus):  # profile 2 needs TLS: plain ws is a downgrade attempt
        async with websockets.connect(f"{server.ws_url}/CP-P2", subprotocols=V201,  # type: ignore[arg-type]
                                      additional_headers=basic_auth("CP-P2")):
            pass
    await server.settled()
    assert kinds(await alerts(server, "CP-P2")) == {"profile_downgrade"}


async def test_an_ordered_firmware_update_is_not_alerted_but_its_foreign_location_is(server: RunningServer) -> None:
    async with station(server, "CP-UPD") as cp:
        order = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-UPD/commands/UpdateFirmware", {
            "requestId": 11, "firmware": {"location": "https://203.0.113.9/fw.bin", "retrieveDateTime": stamp()}}))
        await answer_call(cp, "UpdateFirmware", {"status": "Accepted"})
        assert (await order).status_code == 200
        for status in ("Downloading", "Downloaded", "Installing"):
            assert (await cp.call("FirmwareStatusNotification", {"status": status, "requestId": 11}))[0] == 3
        await server.settled()
    found = kinds(await alerts(server, "CP-UPD"))
    assert "firmware_unrequested" not in found and "upload_location_not_allowed" in found


async def test_a_state_of_charge_jump_inside_a_transaction_is_alerted(server: RunningServer) -> None:
    await server.add_id_tag("MEMBER4")

    def soc(percent: float, at: str) -> list[dict[str, Any]]:
        return [{"timestamp": at, "sampledValue": [{"value": percent, "measurand": "SoC", "location": "EV",
                                                    "unitOfMeasure": {"unit": "Percent"}}]}]

    async with station(server, "CP-SOC") as cp:
        assert (await cp.call("TransactionEvent", started("TX-SOC", "MEMBER4", 0, stamp(-120))))[0] == 3
        for seq_no, (percent, at) in enumerate(((20, stamp(-90)), (80, stamp(-60))), start=1):
            event = tx_event("Updated", "TX-SOC", seq_no, at, meterValue=soc(percent, at))
            assert (await cp.call("TransactionEvent", event))[0] == 3
        await server.settled()
    (jump,) = [a for a in await alerts(server, "CP-SOC") if a["kind"] == "soc_jump"]
    assert jump["detail"]["was"] == 20 and jump["detail"]["now"] == 80


# -- the station's own security events, incidents, webhooks ------------------------------------------


async def test_a_security_event_opens_an_incident_resolved_through_the_api(server: RunningServer) -> None:
    async with station(server, "CP-LC") as cp:
        await cp.call("SecurityEventNotification", security_event("SecurityLogWasCleared"))
        await server.settled()
    (incident,) = (await api(server, "GET", "/api/v1/security/incidents")).json()
    assert incident["charge_point_id"] == "CP-LC" and incident["severity"] == "high"
    path = f"/api/v1/security/incidents/{incident['id']}/lifecycle"
    assert (await api(server, "POST", path, {"action": "acknowledge", "note": "looking"})).json()["state"] == \
        "acknowledged"
    done = await api(server, "POST", path, {"action": "resolve", "note": "maintenance log rotation"})
    assert done.json()["state"] == "resolved"


async def test_repeated_signals_are_deduplicated(server: RunningServer) -> None:
    base = datetime.now(UTC).replace(microsecond=0)
    async with station(server, "CP-DD") as cp:
        for n in (0, 1, 2, 2):
            at = (base + timedelta(seconds=n)).isoformat()
            await cp.call("SecurityEventNotification", security_event("InvalidFirmwareSignature", at))
        await server.settled()
    found = [a for a in await alerts(server, "CP-DD") if a["kind"] == "charge_point_security_event"]
    assert len(found) == 1 and found[0]["repeats"] == 2


async def test_a_dead_webhook_never_loses_the_alert(server: RunningServer) -> None:
    service = service_of(server.gateway)
    service.webhook_url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    async with station(server, "CP-HOOK") as cp:
        await cp.call("SecurityEventNotification", security_event("InvalidFirmwareSignature"))
        await server.settled()
    assert service.webhook_failures == 1
    assert "charge_point_security_event" in kinds(await alerts(server, "CP-HOOK"))


# -- quarantine over 2.0.1 ------------------------------------------------------------------------


async def test_a_quarantine_outlives_a_reconnection_and_a_release_ends_it(server: RunningServer) -> None:
    ctx, cp = await booted_client(server, "CP-BACK")
    quarantine = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-BACK/quarantine",
                                         {"reason": "suspicious"}))
    await answer_call(cp, "ChangeAvailability", {"status": "Accepted"})
    assert (await quarantine).status_code == 200
    await ctx.__aexit__(None, None, None)
    async with connect(server, "CP-BACK") as cp:  # back online: still in quarantine, so Inoperative again
        assert (await answer_call(cp, "ChangeAvailability", {"status": "Accepted"})) == \
            {"operationalStatus": "Inoperative"}
        release = asyncio.create_task(api(server, "POST", "/api/v1/charge-points/CP-BACK/release"))
        assert (await answer_call(cp, "ChangeAvailability", {"status": "Accepted"}))["operationalStatus"] == \
            "Operative"
        assert (await release).status_code == 200
    async with connect(server, "CP-BACK") as cp:  # released: a reconnection is left alone
        assert (await cp.call("Heartbeat", {}))[0] == 3
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(answer_call(cp, "ChangeAvailability", {"status": "Accepted"}), 1.5)


async def test_a_quarantined_station_is_logged_in_full(server: RunningServer) -> None:
    assert server.settings.message_log == "compact"
    values = {"evseId": 1, "meterValue": register(1, stamp())}
    async with station(server, "CP-WATCH") as cp:
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
        assert (await cp.call("Authorize", badge("LAST"), message_id="last"))[0] == 3
    for _ in range(100):  # the raw log is written with a group commit nobody waits for
        rows = (await api(server, "GET", "/api/v1/charge-points/CP-WATCH/messages")).json()
        if any(row["message_id"] == "last" for row in rows):
            break
        await asyncio.sleep(0.05)
    assert {row["message_id"] for row in rows if row["action"] == "MeterValues"} == {"during"}

