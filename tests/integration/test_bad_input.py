"""Hostile and broken charge points over real WebSockets, on SQLite and PostgreSQL. After each
hostile step a fresh, well-behaved charge point must still be able to connect and boot."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import RunningServer, basic_auth, free_port, start_server
from tests.integration.test_protocol import BOOT, assert_still_serving, connect, security_events, start
from voltlib.config import Settings


def kinds(events: list[dict[str, Any]], cp_id: str | None = None) -> list[str]:
    return [e["kind"] for e in events if cp_id is None or e["charge_point_id"] == cp_id]


async def eventually_recorded(server: RunningServer, cp_id: str, kind: str) -> None:
    for _ in range(100):
        if kind in kinds(await security_events(server), cp_id):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} security event for {cp_id}")


async def test_malformed_frames_are_answered_and_the_connection_stays_up(server: RunningServer) -> None:
    await server.add_charge_point("CP-BAD", profile=0)
    async with connect(server, "CP-BAD") as cp:
        await cp.send_raw("this is not json")
        assert (await cp.recv())[:3] == [4, "-1", "FormationViolation"]
        await cp.send_raw('{"an": "object"}')
        assert (await cp.recv())[:3] == [4, "-1", "FormationViolation"]
        await cp.send_raw('[2, "m1", "Heartbeat"]')
        assert (await cp.recv())[:3] == [4, "m1", "FormationViolation"]
        await cp.send_raw('[7, "m2", "Heartbeat", {}]')
        assert (await cp.recv())[:3] == [4, "m2", "ProtocolError"]
        await cp.send_raw(json.dumps([2, "x" * 37, "Heartbeat", {}]))
        assert (await cp.recv())[:3] == [4, "-1", "FormationViolation"]
        await cp.send_raw("\x00\x01\x02")
        assert (await cp.recv())[:3] == [4, "-1", "FormationViolation"]
        # Wrong types, enum and required violations, extra properties.
        assert (await cp.call("Authorize", {"idTag": 12}, "t1"))[:3] == [4, "t1", "TypeConstraintViolation"]
        assert (await cp.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Nope"},
                              "t2"))[:3] == [4, "t2", "PropertyConstraintViolation"]
        assert (await cp.call("Authorize", {}, "t3"))[:3] == [4, "t3", "OccurenceConstraintViolation"]
        assert (await cp.call("Heartbeat", {"x": 1}, "t4"))[:3] == [4, "t4", "FormationViolation"]
        assert (await cp.call("StartTransaction", {**start(), "timestamp": "tomorrow"}, "t5"))[:3] == [
            4, "t5", "TypeConstraintViolation"]
        # Unknown action vs an action only the central system may send.
        assert (await cp.call("MakeCoffee", {}, "u1"))[:3] == [4, "u1", "NotImplemented"]
        assert (await cp.call("Reset", {"type": "Hard"}, "u2"))[:3] == [4, "u2", "NotSupported"]
        await cp.sync()
    events = await security_events(server)
    assert "protocol_violation" in kinds(events, "CP-BAD")
    await assert_still_serving(server)


@pytest.mark.parametrize(
    "payload",
    [
        {**start(), "meterStart": 2**63},
        {**start(), "meterStart": 10**40},
        {**start(), "connectorId": 2**40},
        {**start(), "timestamp": "0001-01-01T00:00:00+14:00"},
        {**start(), "timestamp": "9999-12-31T23:59:59-14:00"},
        {**start(), "idTag": "A\u0000"},
    ],
)
async def test_values_the_database_cannot_hold_are_the_peers_fault(server: RunningServer,
                                                                   payload: dict[str, Any]) -> None:
    await server.add_charge_point("CP-RANGE", profile=0)
    await server.add_id_tag("BADGE1")
    async with connect(server, "CP-RANGE") as cp:
        reply = await cp.call("StartTransaction", payload, "r1")
        assert reply[0] == 4 and reply[2] in ("TypeConstraintViolation", "PropertyConstraintViolation"), reply
        stop = await cp.call("StopTransaction", {"transactionId": 2**40, "meterStop": 1,
                                                 "timestamp": "2026-01-01T00:00:00Z"}, "r2")
        assert stop[0] == 4 and stop[2] == "TypeConstraintViolation"
        await cp.sync()
    await assert_still_serving(server)


async def test_oversize_frame_closes_with_1009_and_others_are_served(server: RunningServer) -> None:
    await server.add_charge_point("CP-BIG", profile=0)
    await server.add_charge_point("CP-NEIGHBOUR", profile=0)
    async with connect(server, "CP-NEIGHBOUR") as neighbour:
        assert (await neighbour.call("BootNotification", BOOT))[0] == 3
        async with connect(server, "CP-BIG") as cp:
            data = "x" * (server.settings.max_frame_bytes + 10)
            await cp.send_raw(json.dumps([2, "big", "DataTransfer", {"vendorId": "v", "data": data}]))
            with pytest.raises(ConnectionClosed):
                await cp.recv()
            assert cp.ws.close_code == 1009
        assert (await neighbour.call("Heartbeat", {}))[0] == 3
    # The server closes the socket before recording the event: wait for it, boundedly.
    await eventually_recorded(server, "CP-BIG", "transport_error")
    await assert_still_serving(server)


async def test_binary_frame_closes_with_1003(server: RunningServer) -> None:
    await server.add_charge_point("CP-BIN", profile=0)
    async with connect(server, "CP-BIN") as cp:
        await cp.send_raw(b'[2,"1","Heartbeat",{}]')
        with pytest.raises(ConnectionClosed):
            await cp.recv()
        assert cp.ws.close_code == 1003
    await eventually_recorded(server, "CP-BIN", "binary_frame")
    await assert_still_serving(server)


async def test_pending_charge_point_may_only_boot(server: RunningServer) -> None:
    await server.add_charge_point("CP-PEND", profile=0, registration="Pending")
    await server.add_id_tag("BADGE1")
    async with connect(server, "CP-PEND") as cp:
        for action, payload in [("Heartbeat", {}), ("StartTransaction", start()), ("Authorize", {"idTag": "BADGE1"})]:
            reply = await cp.call(action, payload)
            assert reply[0] == 4 and reply[2] == "SecurityError", reply
        boot = await cp.call("BootNotification", BOOT)
        assert boot[0] == 3 and boot[2]["status"] == "Pending"
        assert boot[2]["interval"] == server.settings.pending_retry_interval
        assert (await cp.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                     "status": "Available"}))[2] == "SecurityError"
        # Accepted by the operator: the next boot is accepted and calls go through.
        assert await server.gateway.set_registration("CP-PEND", "Accepted")
        assert (await cp.call("BootNotification", BOOT))[2]["status"] == "Accepted"
        assert (await cp.call("Heartbeat", {}))[0] == 3
    from tests.integration.test_protocol import count_rows
    from voltlib.store.tables import transactions

    assert await server.store.read(count_rows(transactions, charge_point_id="CP-PEND")) == 0
    await assert_still_serving(server)


async def test_result_for_unknown_message_id_is_ignored_and_recorded(server: RunningServer) -> None:
    await server.add_charge_point("CP-RES", profile=0)
    async with connect(server, "CP-RES") as cp:
        await cp.send_raw(json.dumps([3, "never-sent", {"status": "Accepted"}]))
        await cp.send_raw(json.dumps([4, "never-sent-2", "GenericError", "", {}]))
        await cp.sync()  # no answer came to the results: the next answer is the heartbeat's
        events = [e for e in await security_events(server) if e["charge_point_id"] == "CP-RES"]
        assert [e["kind"] for e in events] == ["protocol_violation"]
        assert events[0]["detail"]["message_id"] == "never-sent"
        assert events[0]["detail"]["code"] == "ProtocolError"
        assert (await cp.call("BootNotification", BOOT))[0] == 3
    await assert_still_serving(server)


async def test_flood_is_paced_then_closed_and_others_stay_served(database_url: str) -> None:
    """A peer over its rate is answered later, not refused (a backlog replay must not lose data);
    one that keeps it up past flood_seconds is a flood: recorded and disconnected."""
    settings = Settings(database_url=database_url, port=free_port(), rate_per_second=50, rate_burst=10,
                        flood_seconds=1.0)
    runner, server = await start_server(settings)
    try:
        await server.add_charge_point("CP-FLOOD", profile=0)
        await server.add_charge_point("CP-CALM", profile=0)
        answers: list[list[Any]] = []
        async with connect(server, "CP-CALM") as calm, connect(server, "CP-FLOOD") as flood:
            assert (await calm.call("BootNotification", BOOT))[0] == 3
            sent = 0
            for i in range(500):
                try:
                    await flood.send_raw(json.dumps([2, f"f{i}", "Heartbeat", {}]))
                except ConnectionClosed:
                    break
                sent += 1
            assert (await calm.call("Heartbeat", {}))[0] == 3
            for _ in range(sent):
                try:
                    answers.append(await flood.recv())
                except ConnectionClosed:
                    break
            assert (await calm.call("Heartbeat", {}))[0] == 3
        assert answers and all(a[0] == 3 for a in answers)  # paced, never refused
        assert 10 < len(answers) < 500
        assert flood.ws.close_code == 1008
        await eventually_recorded(server, "CP-FLOOD", "flood")
        await assert_still_serving(server)
    finally:
        await runner.cleanup()


async def test_reused_message_id_is_a_protocol_error_and_a_security_event(server: RunningServer) -> None:
    await server.add_charge_point("CP-REUSE", profile=0)
    await server.add_id_tag("BADGE1")
    async with connect(server, "CP-REUSE") as cp:
        first = await cp.call("StartTransaction", start(), "same-id")
        assert first[0] == 3
        reused = await cp.call("StartTransaction", start(meter=999), "same-id")
        assert reused[:3] == [4, "same-id", "ProtocolError"]
        await cp.sync()
    events = [e for e in await security_events(server) if e["charge_point_id"] == "CP-REUSE"]
    assert any(e["kind"] == "protocol_violation" and e["detail"]["code"] == "ProtocolError"
               and e["detail"]["message_id"] == "same-id" for e in events)
    await assert_still_serving(server)


async def test_violations_beyond_the_limit_close_the_connection(server: RunningServer) -> None:
    await server.add_charge_point("CP-VIOL", profile=0)
    async with connect(server, "CP-VIOL") as cp:
        closed = False
        for i in range(60):  # the limit is 50
            try:
                await cp.send_raw(f"garbage {i}")
                await cp.recv()
            except ConnectionClosed:
                closed = True
                break
        assert closed and cp.ws.close_code == 1008
    await assert_still_serving(server)


# --- the WebSocket upgrade ----------------------------------------------------------------------


async def upgrade_status(server: RunningServer, cp_id: str, *, subprotocols: list[str] | None,
                         headers: dict[str, str] | None = None) -> int:
    kwargs: dict[str, Any] = {"additional_headers": headers}
    if subprotocols is not None:
        kwargs["subprotocols"] = subprotocols
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(f"{server.ws_url}/{cp_id}", **kwargs):
            pass
    return int(info.value.response.status_code)


async def closed_without_subprotocol(server: RunningServer, cp_id: str, subprotocols: list[str] | None,
                                     headers: dict[str, str]) -> int | None:
    """OCPP-J 4.1.2: the handshake completes with no subprotocol, then the server closes."""
    kwargs: dict[str, Any] = {"additional_headers": headers}
    if subprotocols is not None:
        kwargs["subprotocols"] = subprotocols
    async with websockets.connect(f"{server.ws_url}/{cp_id}", **kwargs) as ws:
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return ws.close_code


async def test_upgrade_refusals_are_http_errors_and_security_events(server: RunningServer) -> None:
    await server.add_charge_point("CP-P1")
    assert await closed_without_subprotocol(server, "CP-P1", None, basic_auth("CP-P1")) == 1002
    assert await closed_without_subprotocol(server, "CP-P1", ["ocpp2.0"], basic_auth("CP-P1")) == 1002
    assert await upgrade_status(server, "CP-NOBODY", subprotocols=["ocpp1.6"]) == 404
    assert await upgrade_status(server, "CP-P1", subprotocols=["ocpp1.6"],
                                headers=basic_auth("CP-P1", "wrong-password-123456")) == 401
    assert await upgrade_status(server, "CP-P1", subprotocols=["ocpp1.6"]) == 401
    assert await upgrade_status(server, "CP-P1", subprotocols=["ocpp1.6"],
                                headers=basic_auth("CP-OTHER")) == 401
    events = await security_events(server)
    assert kinds(events, "CP-P1").count("no_subprotocol") == 2
    assert "unknown_identity" in kinds(events, "CP-NOBODY")
    assert "auth_failed" in kinds(events, "CP-P1")
    assert "auth_missing" in kinds(events, "CP-P1")
    async with connect(server, "CP-P1", password="correct-horse-battery-9") as cp:
        assert (await cp.call("BootNotification", BOOT))[2]["status"] == "Accepted"
    await assert_still_serving(server)


async def test_second_connection_does_not_displace_a_live_one(server: RunningServer) -> None:
    await server.add_charge_point("CP-DUP", profile=0)
    async with connect(server, "CP-DUP") as first:
        assert (await first.call("BootNotification", BOOT))[0] == 3
        assert await upgrade_status(server, "CP-DUP", subprotocols=["ocpp1.6"]) == 409
        assert (await first.call("Heartbeat", {}))[0] == 3
    assert "duplicate_connection" in kinds(await security_events(server), "CP-DUP")
    await assert_still_serving(server)


async def test_hostile_frames_are_kept_in_the_message_log(server: RunningServer) -> None:
    """The raw log is evidence: a frame must not be able to erase itself from it. PostgreSQL
    refuses NUL characters in text, so the log keeps them escaped."""
    await server.add_charge_point("CP-LOG", profile=0)
    async with connect(server, "CP-LOG") as cp:
        await cp.send_raw("evil\x00frame")
        assert (await cp.recv())[:3] == [4, "-1", "FormationViolation"]
        assert (await cp.call("Make\u0000Coffee", {}, "nul-action"))[:3] == [4, "nul-action", "NotImplemented"]
        assert (await cp.call("Authorize", {"idTag": "AFTER"}, "after"))[0] == 3  # logged under any policy
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        for _ in range(100):
            rows = (await api.get("/api/v1/charge-points/CP-LOG/messages")).json()
            if any(r["message_id"] == "after" for r in rows):
                break
            await asyncio.sleep(0.05)
    logged = {r["message_id"]: r for r in rows}
    assert "after" in logged
    hostile = [r for r in rows if r["outcome"] == "violation"]
    assert len(hostile) == 2
    assert any("evil" in r["request"] for r in hostile)
    assert "nul-action" in logged


async def test_deeply_nested_frames_are_violations_and_the_connection_stays_up(server: RunningServer) -> None:
    """Issue 22: a payload nesting a few thousand arrays raised RecursionError in the frame decoder,
    logged as an API error, and the socket died."""
    await server.add_charge_point("CP-DEEP", profile=0)
    async with connect(server, "CP-DEEP") as cp:
        for n, depth in enumerate((100, 3000, 20000)):
            deep = "[" * depth + "]" * depth
            await cp.send_raw(f'[2,"deep{n}","Authorize",{{"idTag":{deep}}}]')
            assert (await cp.recv())[:3] == [4, f"deep{n}", "FormationViolation"]
        await cp.send_raw("[" * 5000 + "]" * 5000)
        assert (await cp.recv())[:3] == [4, "-1", "FormationViolation"]
        assert (await cp.call("Authorize", {"idTag": "AFTER"}))[0] == 3
    await eventually_recorded(server, "CP-DEEP", "protocol_violation")
    await assert_still_serving(server)
