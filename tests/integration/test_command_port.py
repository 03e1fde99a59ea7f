"""The command port (issue 16): the domain's version-neutral commands reach a 1.6 charge point and
a 2.0.1 station each in its own OCPP version, over real WebSockets, on SQLite and PostgreSQL. The
charge points here answer whatever they are sent; the test checks what arrived against the
official schema of the version, and what the port made of the answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets

from tests.conftest import PASSWORD, RunningServer, basic_auth, free_port, start_server
from voltlib.config import Settings
from voltlib.domain import commands as c
from voltlib.ocpp import schemas

BOOT = {"1.6": ("BootNotification", {"chargePointVendor": "Bolloré", "chargePointModel": "AL1"}),
        "2.0.1": ("BootNotification", {"chargingStation": {"vendorName": "Bolloré", "model": "AL2"},
                                       "reason": "PowerUp"})}
SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@dataclass
class AnsweringPost:
    """A charge point that answers every call with the reply its test set, and keeps what it got."""

    ws: websockets.ClientConnection
    version: str
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _results: asyncio.Queue[list[Any]] = field(default_factory=asyncio.Queue)

    silent: set[str] = field(default_factory=set)  # actions it never answers
    hang_up_on: set[str] = field(default_factory=set)  # actions it closes its socket on, unanswered

    async def run(self) -> None:
        async for text in self.ws:
            frame = json.loads(text)
            if frame[0] == 2:
                self.received.append((frame[2], frame[3]))
                if frame[2] in self.hang_up_on:
                    await self.ws.close()
                    return
                if frame[2] not in self.silent:
                    await self.ws.send(json.dumps([3, frame[1], self.replies.get(frame[2], {"status": "Accepted"})]))
            else:
                await self._results.put(frame)

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        await self.ws.send(json.dumps([2, f"m-{len(self.received)}-{action}", action, payload]))
        return await asyncio.wait_for(self._results.get(), 10)


@asynccontextmanager
async def post(server: RunningServer, cp_id: str, version: str,
               password: str = PASSWORD) -> AsyncIterator[AnsweringPost]:
    async with websockets.connect(f"{server.ws_url}/{cp_id}", subprotocols=[SUBPROTOCOL[version]],  # type: ignore[list-item]
                                  additional_headers=basic_auth(cp_id, password), open_timeout=10) as ws:
        station = AnsweringPost(ws, version)
        reader = asyncio.get_running_loop().create_task(station.run())
        try:
            assert (await station.call(*BOOT[version]))[2]["status"] == "Accepted"
            yield station
        finally:
            reader.cancel()


@pytest_asyncio.fixture
async def mixed(database_url: str) -> AsyncIterator[RunningServer]:
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        ocpp_versions=["1.6", "2.0.1"])
    runner, running = await start_server(settings)
    try:
        yield running
    finally:
        await runner.cleanup()


LIMIT = c.PowerLimit(7, "TxDefault", (c.Period(0, 3680), c.Period(1800, 7360)), NOW, stack_level=1,
                     duration_s=3600)
COMMANDS: list[c.Command] = [
    c.Reserve(2, 41, "BADGE-1", NOW + timedelta(minutes=20)),
    c.CancelReservation(41),
    c.PushLocalList(1700000001, full=False, blocked=("STOLEN-1", "STOLEN-2")),
    c.PushLocalList(1700000002, full=True, blocked=()),
    c.ChangeAvailability(0, operative=False),
    c.ChangeAvailability(2, operative=True),
    c.Reset(immediate=True),
    c.Unlock(1),
    c.StartCharging("BADGE-1", 1, remote_start_id=5),
    c.Trigger("StatusNotification", 1),
    c.Trigger("SignCertificate"),
    c.LimitPower(0, LIMIT),
]

EXPECTED_ACTION = {
    "1.6": ["ReserveNow", "CancelReservation", "SendLocalList", "SendLocalList", "ChangeAvailability",
            "ChangeAvailability", "Reset", "UnlockConnector", "RemoteStartTransaction", "TriggerMessage",
            "ExtendedTriggerMessage", "SetChargingProfile"],
    "2.0.1": ["ReserveNow", "CancelReservation", "SendLocalList", "SendLocalList", "ChangeAvailability",
              "ChangeAvailability", "Reset", "UnlockConnector", "RequestStartTransaction", "TriggerMessage",
              "TriggerMessage", "SetChargingProfile"],
}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_each_command_arrives_in_the_charge_points_own_version(mixed: RunningServer, version: str) -> None:
    cp_id = f"CP-PORT-{version}"
    await mixed.add_charge_point(cp_id)
    async with post(mixed, cp_id, version) as station:
        station.replies["UnlockConnector"] = {"status": "Unlocked"}
        outcomes = [await mixed.gateway.commands.send(cp_id, command, requested_by="test") for command in COMMANDS]
    assert [action for action, _ in station.received] == EXPECTED_ACTION[version]
    for action, payload in station.received:
        schemas.validate(version, action, "request", payload)  # the official schema of the version
    assert [o.state for o in outcomes] == ["answered"] * len(COMMANDS)
    assert [o.status for o in outcomes] == ["Accepted"] * 7 + ["Unlocked"] + ["Accepted"] * 4
    sent = dict(zip(EXPECTED_ACTION[version], [p for _, p in station.received], strict=False))
    if version == "2.0.1":  # what a 2.0.1 station must be told differently
        assert sent["ReserveNow"]["evseId"] == 2 and sent["ReserveNow"]["idToken"] == {"idToken": "BADGE-1",
                                                                                      "type": "ISO14443"}
        profile = sent["SetChargingProfile"]["chargingProfile"]
        assert profile["chargingProfilePurpose"] == "TxDefaultProfile"
        assert [p["limit"] for p in profile["chargingSchedule"][0]["chargingSchedulePeriod"]] == [3680.0, 7360.0]
    else:
        assert sent["ReserveNow"]["connectorId"] == 2 and sent["ReserveNow"]["idTag"] == "BADGE-1"
        assert sent["SetChargingProfile"]["csChargingProfiles"]["chargingProfilePurpose"] == "TxDefaultProfile"
    first, second = [p for a, p in station.received if a == "ChangeAvailability"]
    if version == "2.0.1":
        assert first == {"operationalStatus": "Inoperative"}
        assert second == {"operationalStatus": "Operative", "evse": {"id": 2}}
    else:
        assert first == {"connectorId": 0, "type": "Inoperative"} and second == {"connectorId": 2, "type": "Operative"}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_the_schedule_the_charge_point_reports_is_read_in_either_version(
        mixed: RunningServer, version: str) -> None:
    cp_id = f"CP-SCHED-{version}"
    await mixed.add_charge_point(cp_id)
    schedule = {"startSchedule": "2026-12-07T09:00:00Z", "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 2300.0}]}
    async with post(mixed, cp_id, version) as station:
        station.replies["GetCompositeSchedule"] = (
            {"status": "Accepted", "connectorId": 1, "chargingSchedule": schedule} if version == "1.6" else
            {"status": "Accepted", "schedule": {"evseId": 1, "duration": 60, "scheduleStart": "2026-12-07T09:00:00Z",
                                                "chargingRateUnit": "W",
                                                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 2300.0}]}})
        outcome = await mixed.gateway.commands.send(cp_id, c.ReadSchedule(1, 60), requested_by="test")
    assert outcome.accepted and outcome.schedule_w == 2300.0


async def test_an_offline_charge_point_is_told_nothing_and_the_outcome_says_so(mixed: RunningServer) -> None:
    await mixed.add_charge_point("CP-AWAY")
    outcome = await mixed.gateway.commands.send("CP-AWAY", c.Reset(immediate=False), requested_by="test")
    assert outcome.state == "offline" and outcome.status is None and not outcome.accepted
    with pytest.raises(c.CommandRefused) as unknown:
        await mixed.gateway.commands.send("CP-NOBODY", c.Reset(immediate=False), requested_by="test")
    assert unknown.value.status == 404


async def test_raw_commands_to_a_2_0_1_station_use_2_0_1_and_its_safety_rules(mixed: RunningServer) -> None:
    await mixed.add_charge_point("CP-RAW")
    async with post(mixed, "CP-RAW", "2.0.1") as station, \
            httpx.AsyncClient(base_url=mixed.url, headers=mixed.api_headers(), timeout=15) as client:
        base = "/api/v1/charge-points/CP-RAW/commands"
        soft = await client.post(f"{base}/Reset", json={"type": "Soft"})  # a 1.6 payload
        assert soft.status_code == 422 and soft.json()["title"] == "invalid-payload"
        assert (await client.post(f"{base}/RemoteStartTransaction", json={"idTag": "X"})).status_code == 404
        done = await client.post(f"{base}/Reset", json={"type": "OnIdle"})
        assert done.status_code == 200 and done.json()["state"] == "answered"
        password = {"setVariableData": [{"attributeValue": "0123456789abcdef0123",
                                         "component": {"name": "SecurityCtrlr"},
                                         "variable": {"name": "BasicAuthPassword"}}]}
        refused = await client.post(f"{base}/SetVariables", json=password)
        assert refused.status_code == 422 and refused.json()["title"] == "use-rotate-password"
        lower = {"setVariableData": [{"attributeValue": "0", "component": {"name": "SecurityCtrlr"},
                                      "variable": {"name": "SecurityProfile"}}]}
        downgrade = await client.post(f"{base}/SetVariables", json=lower)
        assert downgrade.status_code == 422 and downgrade.json()["title"] == "security-profile-downgrade"
    assert [action for action, _ in station.received] == ["Reset"]  # nothing refused reached the station


async def test_password_rotation_on_2_0_1_sets_basic_auth_password_and_the_new_one_logs_in(
        mixed: RunningServer) -> None:
    await mixed.add_charge_point("CP-ROT")
    async with post(mixed, "CP-ROT", "2.0.1") as station, \
            httpx.AsyncClient(base_url=mixed.url, headers=mixed.api_headers(), timeout=15) as client:
        station.replies["SetVariables"] = {"setVariableResult": [{
            "attributeStatus": "Accepted", "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "BasicAuthPassword"}}]}
        rotated = await client.post("/api/v1/charge-points/CP-ROT/rotate-password")
        assert rotated.status_code == 200 and rotated.json()["rotated"] is True
        [(action, payload)] = station.received
        new_password = payload["setVariableData"][0]["attributeValue"]
        commands = (await client.get("/api/v1/charge-points/CP-ROT/commands")).json()
    assert action == "SetVariables" and len(new_password) == 40
    assert new_password not in json.dumps(commands)  # stored redacted
    await mixed.settled()
    async with post(mixed, "CP-ROT", "2.0.1", password=new_password):
        pass  # the new password is the one that logs in now
    with pytest.raises(websockets.InvalidStatus):
        async with post(mixed, "CP-ROT", "2.0.1"):
            pass


async def test_quarantine_takes_a_2_0_1_station_out_of_service_in_2_0_1(mixed: RunningServer) -> None:
    await mixed.add_charge_point("CP-Q")
    async with post(mixed, "CP-Q", "2.0.1") as station, \
            httpx.AsyncClient(base_url=mixed.url, headers=mixed.api_headers(), timeout=15) as client:
        answer = await client.post("/api/v1/charge-points/CP-Q/quarantine", json={"reason": "forced door"})
        assert answer.status_code == 200 and answer.json()["change_availability"] == "Accepted"
        start = await client.post("/api/v1/charge-points/CP-Q/commands/RequestStartTransaction",
                                  json={"idToken": {"idToken": "X", "type": "ISO14443"}, "remoteStartId": 1})
        assert start.status_code == 409 and start.json()["title"] == "quarantined"
    assert station.received == [("ChangeAvailability", {"operationalStatus": "Inoperative"})]


async def follow(client: httpx.AsyncClient, location: str) -> dict[str, Any]:
    """The command's row once it has left ``queued``."""
    for _ in range(200):
        row: dict[str, Any] = (await client.get(location)).json()
        if row["state"] != "queued":
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"{location} still queued")


async def test_a_command_without_waiting_is_followed_to_each_end_it_can_have(mixed: RunningServer) -> None:
    for cp_id in ("CP-ASYNC", "CP-AWAY"):
        await mixed.add_charge_point(cp_id)
    async with httpx.AsyncClient(base_url=mixed.url, headers=mixed.api_headers(), timeout=15) as client:
        async def send(cp_id: str, action: str, body: dict[str, Any], query: str = "wait=false") -> httpx.Response:
            return await client.post(f"/api/v1/charge-points/{cp_id}/commands/{action}?{query}", json=body)

        async with post(mixed, "CP-ASYNC", "2.0.1") as station:
            accepted = await send("CP-ASYNC", "Reset", {"type": "OnIdle"})
            assert accepted.status_code == 202 and accepted.json()["state"] == "queued"
            location = accepted.headers["Location"]
            assert location == f"/api/v1/charge-points/CP-ASYNC/commands/{accepted.json()['id']}"
            answered = await follow(client, location)
            assert answered["state"] == "answered" and answered["response"] == {"status": "Accepted"}

            station.silent.add("TriggerMessage")
            timing_out = await send("CP-ASYNC", "TriggerMessage", {"requestedMessage": "Heartbeat"},
                                    "wait=false&timeout=0.3")
            assert (await follow(client, timing_out.headers["Location"]))["state"] == "timeout"

            station.hang_up_on.add("UnlockConnector")  # e.g. a station that restarts before answering
            lost = await send("CP-ASYNC", "UnlockConnector", {"evseId": 1, "connectorId": 1})
            assert (await follow(client, lost.headers["Location"]))["state"] == "lost"

        offline = await send("CP-AWAY", "Reset", {"type": "Hard"})  # never connected: 1.6 payload
        assert offline.status_code == 202
        assert (await follow(client, offline.headers["Location"]))["state"] == "offline"

        bad = await send("CP-AWAY", "Reset", {"type": "Sideways"})  # refused before anything is stored
        assert bad.status_code == 422
        mine = accepted.json()["id"]
        assert (await client.get(f"/api/v1/charge-points/CP-AWAY/commands/{mine}")).status_code == 404
        assert (await client.get("/api/v1/charge-points/CP-ASYNC/commands/99999999999999999999")).status_code == 404
        assert (await client.get("/api/v1/charge-points/CP-ASYNC/commands/x")).status_code == 404
        waited = await send("CP-AWAY", "Reset", {"type": "Hard"}, "wait=true")
        assert waited.status_code == 200 and waited.json()["state"] == "offline"


async def test_a_2_0_1_transaction_is_named_to_its_station_by_the_stations_own_id(mixed: RunningServer) -> None:
    await mixed.add_charge_point("CP-TX")
    async with post(mixed, "CP-TX", "2.0.1") as station, \
            httpx.AsyncClient(base_url=mixed.url, headers=mixed.api_headers(), timeout=15) as client:
        started = await station.call("TransactionEvent", {
            "eventType": "Started", "timestamp": datetime.now(UTC).isoformat(), "triggerReason": "CablePluggedIn",
            "seqNo": 0, "transactionInfo": {"transactionId": "st-7f3a"}, "evse": {"id": 1, "connectorId": 1}})
        assert started[0] == 3
        [tx] = (await client.get("/api/v1/transactions", params={"charge_point": "CP-TX"})).json()
        stop = await mixed.gateway.commands.send("CP-TX", c.StopCharging(tx["id"]), requested_by="test")
        cap = c.PowerLimit(9, "Tx", (c.Period(0, 3000),), NOW, transaction_id=tx["id"])
        limited = await mixed.gateway.commands.send("CP-TX", c.LimitPower(1, cap), requested_by="test")
        with pytest.raises(c.CommandRefused) as unknown:  # voltlib's id of nothing on this station
            await mixed.gateway.commands.send("CP-TX", c.StopCharging(tx["id"] + 1), requested_by="test")
    assert stop.accepted and limited.accepted and unknown.value.status == 409
    calls = [(a, p) for a, p in station.received if a in ("RequestStopTransaction", "SetChargingProfile")]
    assert calls[0] == ("RequestStopTransaction", {"transactionId": "st-7f3a"})
    assert calls[1][1]["chargingProfile"]["transactionId"] == "st-7f3a"
