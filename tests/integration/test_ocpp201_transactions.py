"""OCPP 2.0.1 authorization, transactions and meter values (issue 16, blocks C, E and J) over real
WebSockets, on SQLite and PostgreSQL: every IdToken type decided as a 1.6 badge; a TransactionEvent
mapped onto the 1.6 transactions and meter tables; seqNo retransmissions and replays idempotent,
gaps recorded; offline events; a transaction started at plug-in waiting for its idToken; hostile
TransactionEvents answered with the right CallError; a car returned by ISO 15118 (eMAID)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Connection, select

from tests.conformance.conftest import connect, now_iso
from tests.conformance.station201 import Station201, voltlib_id
from tests.conftest import RunningServer
from tests.integration.test_ocpp201_gateway import BOOT
from tests.integration.test_ocpp201_gateway import connect as connect_raw
from tests.integration.test_protocol import security_events
from tests.sharing.conftest import CAR_TAG, City, catch_up, city
from voltlib import events as ev
from voltlib.security import records
from voltlib.store import repo
from voltlib.store.tables import transactions
from voltlib.store.transaction_events import events_of

pytestmark = pytest.mark.parametrize("ocpp_version", ["2.0.1"], indirect=True)
__all__ = ["city"]  # the tiny city of tests/sharing, for the car-sharing case
TYPES = ["ISO14443", "ISO15693", "eMAID", "Central", "KeyCode", "Local", "MacAddress"]


def _heard(server: RunningServer) -> list[ev.Event]:
    """Every transaction event published from now on, in order."""
    heard: list[ev.Event] = []
    server.gateway.services.bus.watch(heard.append, ev.TransactionStarted, ev.TransactionStopped,
                                      ev.TransactionStartRepeated, ev.IdTagAuthorized, name="test")
    return heard


async def _tx_row(server: RunningServer, cp_id: str, station_tx_id: str) -> dict[str, Any]:
    def op(conn: Connection) -> dict[str, Any]:
        return dict(conn.execute(select(transactions).where(
            transactions.c.charge_point_id == cp_id, transactions.c.station_tx_id == station_tx_id)).mappings().one())

    return await server.store.read(op)


async def _count(server: RunningServer, cp_id: str) -> int:
    def op(conn: Connection) -> int:
        return len(conn.execute(select(transactions.c.id).where(transactions.c.charge_point_id == cp_id)).all())

    return await server.store.read(op)


async def _online(server: RunningServer, cp_id: str) -> Any:
    await server.add_charge_point(cp_id)
    return connect(server, cp_id)


# -- C: Authorize ---------------------------------------------------------------------------------


async def test_every_id_token_type_is_decided_as_a_1_6_badge(server: RunningServer) -> None:
    now = datetime.now(UTC)
    for n, token_type in enumerate(TYPES):
        await server.add_id_tag(f"{token_type[:6]}-OK-{n}", parent_id_tag="GROUP-1",
                                expiry_date=now + timedelta(days=1))
    await server.add_id_tag("BLOCKED-1", status="Blocked")
    await server.add_id_tag("EXPIRED-1", expiry_date=now - timedelta(days=1))
    await server.add_id_tag("BUSY-1")
    heard = _heard(server)
    async with await _online(server, "CP-A201") as cp:
        assert isinstance(cp, Station201)
        await cp.boot()
        for n, token_type in enumerate(TYPES):
            info = await cp.authorize(f"{token_type[:6]}-OK-{n}", token_type)
            assert info["status"] == "Accepted", token_type
            assert info["group_id_token"] == {"id_token": "GROUP-1", "type": "Central"}
            assert datetime.fromisoformat(info["cache_expiry_date_time"]) > now
        assert (await cp.authorize("BLOCKED-1", "ISO15693"))["status"] == "Blocked"
        assert (await cp.authorize("EXPIRED-1", "KeyCode"))["status"] == "Expired"
        assert (await cp.authorize("NOBODY-1", "Central"))["status"] == "Invalid"
        assert (await cp.authorize("", "NoAuthorization"))["status"] == "Accepted"  # nothing to decide
        started = await cp.start_tx(1, "BUSY-1")
        assert started.id_tag_info is not None and started.id_tag_info["status"] == "Accepted"
        assert (await cp.authorize("BUSY-1", "MacAddress"))["status"] == "ConcurrentTx"
        app_token = "0b6f2c1e-3a5d-4e8f-9c7b-2d1a0f3e4b5c"  # a Central token of 36 characters (2.0.1's most)
        assert (await cp.authorize(app_token, "Central"))["status"] == "Invalid"  # not in the id-tag table
        long_tx = await cp.start_tx(2, app_token, token_type="Central")
        assert long_tx.id_tag_info is not None and long_tx.id_tag_info["status"] == "Invalid"
    row = await _tx_row(server, "CP-A201", long_tx.transaction_id)
    assert (row["id_tag"], row["id_token_type"], row["id_tag_status"]) == (app_token, "Central", "Invalid")
    badges = [(e.id_tag, e.status) for e in heard if isinstance(e, ev.IdTagAuthorized)]
    assert ("BLOCKED-1", "Blocked") in badges and ("NOBODY-1", "Invalid") in badges
    assert len(badges) == len(TYPES) + 5  # NoAuthorization is nobody's badge


# -- E/J: a transaction on the 1.6 tables --------------------------------------------------------


async def test_a_transaction_maps_onto_the_transactions_and_meter_tables(server: RunningServer) -> None:
    await server.add_id_tag("DRIVER-1")
    heard = _heard(server)
    async with await _online(server, "CP-T201") as cp:
        await cp.boot()
        begin = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
        started = await cp.start_tx(2, "DRIVER-1", meter_start=1_000, timestamp=begin.isoformat())
        tx = started.transaction_id
        assert started.id_tag_info == {"status": "Accepted"}
        reply = await cp.event("Updated", tx, "MeterValuePeriodic", number_of_phases_used=3, meter_value=[{
            "timestamp": now_iso(), "sampledValue": [
                {"value": 1.5, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "kWh"}},
                {"value": 7.2, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W", "multiplier": 3}},
                {"value": 230.1, "measurand": "Voltage", "phase": "L1-N", "unitOfMeasure": {"unit": "V"}},
                {"value": 16, "measurand": "Current.Import", "phase": "L2", "unitOfMeasure": {"unit": "A"}},
                {"value": 55, "measurand": "SoC", "location": "EV", "context": "Trigger",
                 "unitOfMeasure": {"unit": "Percent"}}]}])
        assert reply.id_token_info is None  # no idToken in it: nothing to answer
        await cp.stop_tx(tx, 4_500, reason="EVDisconnected")
    row = await _tx_row(server, "CP-T201", tx)
    assert (row["connector_id"], row["id_tag"], row["id_tag_status"], row["id_token_type"]) \
        == (2, "DRIVER-1", "Accepted", "ISO14443")
    assert (row["meter_start"], row["meter_stop"], row["stop_reason"]) == (1_000, 4_500, "EVDisconnected")
    assert row["started_at"] == begin and row["stopped_at"] is not None
    assert isinstance(row["id"], int) and row["id"] > 0  # voltlib's own id, which the rest of the system uses
    kept = await server.store.read(partial(events_of, tx_id=row["id"]))
    assert [(e["seq_no"], e["event_type"], e["trigger_reason"]) for e in kept] \
        == [(0, "Started", "Authorized"), (1, "Updated", "MeterValuePeriodic"), (2, "Ended", "EVCommunicationLost")]
    assert kept[1]["number_of_phases_used"] == 3 and kept[2]["stopped_reason"] == "EVDisconnected"
    readings = await server.store.read(partial(repo.read_meter_values, cp_id="CP-T201", transaction_id=row["id"]))
    assert len(readings) == 3 and all(r["connector_id"] == 2 for r in readings)
    periodic = next(r["sampled_value"] for r in readings if len(r["sampled_value"]) == 5)
    assert {"value": "1.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh", "context": "Sample.Periodic",
            "format": "Raw", "location": "Outlet"} in periodic
    assert next(s for s in periodic if s["measurand"] == "Power.Active.Import")["value"] == "7200"  # x 10^3
    assert {s.get("phase") for s in periodic} == {None, "L1-N", "L2"}
    assert next(s for s in periodic if s["measurand"] == "SoC")["context"] == "Trigger"
    started_events = [e for e in heard if isinstance(e, ev.TransactionStarted)]
    stopped_events = [e for e in heard if isinstance(e, ev.TransactionStopped)]
    assert [(e.transaction_id, e.connector_id, e.id_tag, e.meter_start, e.started_at) for e in started_events] \
        == [(row["id"], 2, "DRIVER-1", 1_000, begin)]
    assert [(e.transaction_id, e.meter_stop, e.reason, e.known) for e in stopped_events] \
        == [(row["id"], 4_500, "EVDisconnected", True)]


async def test_meter_values_outside_a_transaction_are_the_evse_s(server: RunningServer) -> None:
    async with await _online(server, "CP-M201") as cp:
        await cp.boot()
        at = now_iso()
        await cp.meter(3, None, 12_345, timestamp=at, context="Sample.Clock")
        await cp.meter(3, None, None, timestamp=at, soc=40.0)  # the same instant again: its samples join
        await cp.meter(3, None, 12_345, timestamp=at, context="Sample.Clock")  # a retransmission adds nothing
    readings = await server.store.read(partial(repo.read_meter_values, cp_id="CP-M201"))
    assert len(readings) == 1 and readings[0]["transaction_id"] is None and readings[0]["connector_id"] == 3
    assert [(s["measurand"], s["value"], s["context"]) for s in readings[0]["sampled_value"]] \
        == [("Energy.Active.Import.Register", "12345", "Sample.Clock"), ("SoC", "40", "Sample.Periodic")]


# -- seqNo: retransmissions, replays and gaps ----------------------------------------------------


async def test_the_same_seq_no_again_is_idempotent_and_a_replayed_start_is_seen(server: RunningServer) -> None:
    await server.add_id_tag("DRIVER-2")
    heard = _heard(server)
    async with await _online(server, "CP-R201") as cp:
        await cp.boot()
        at = now_iso()
        first = await cp.start_tx(1, "DRIVER-2", meter_start=10, timestamp=at)
        again = await cp.start_tx(1, "DRIVER-2", meter_start=10, timestamp=at)  # same id and seqNo, new message
        assert (again.transaction_id, again.id_tag_info) == (first.transaction_id, first.id_tag_info)
        tx = first.transaction_id
        update = {"meter_value": [{"timestamp": now_iso(), "sampledValue": [{"value": 50}]}]}
        await cp.event("Updated", tx, "MeterValuePeriodic", seq_no=1, **update)
        await cp.event("Updated", tx, "MeterValuePeriodic", seq_no=1, **update)  # retransmitted
        await cp.stop_tx(tx, 90)
        await cp.event("Started", tx, "Authorized", seq_no=0, evse={"id": 1}, timestamp=at,  # replayed after the end
                       id_token={"idToken": "DRIVER-2", "type": "ISO14443"})
    assert await _count(server, "CP-R201") == 1
    row = await _tx_row(server, "CP-R201", tx)
    assert row["stopped_at"] is not None and row["meter_stop"] == 90
    assert [e["seq_no"] for e in await server.store.read(partial(events_of, tx_id=row["id"]))] == [0, 1, 2]
    assert len([e for e in heard if isinstance(e, ev.TransactionStarted)]) == 1
    assert len([e for e in heard if isinstance(e, ev.TransactionStopped)]) == 1
    repeated = [e for e in heard if isinstance(e, ev.TransactionStartRepeated)]
    assert [(e.transaction_id, e.id_tag) for e in repeated] == [(row["id"], "DRIVER-2")] * 2
    await server.settled()
    alerts = await server.store.read(partial(records.list_alerts, cp_id="CP-R201"))
    assert any(a["kind"] == "replayed_start_transaction" and a["severity"] == "high" for a in alerts)


async def test_gaps_in_seq_no_are_recorded(server: RunningServer) -> None:
    async with await _online(server, "CP-G201") as cp:
        await cp.boot()
        tx = (await cp.start_tx(1, "ANYONE")).transaction_id
        await cp.event("Updated", tx, "MeterValuePeriodic", seq_no=3)  # 1 and 2 never came
        await cp.event("Updated", tx, "MeterValuePeriodic", seq_no=1)  # late: fills a hole, no new gap
        await cp.event("Updated", "tx-never-started", "ChargingStateChanged", seq_no=4, evse={"id": 1})
    gaps = [e for e in await server.store.read(repo.list_security_events) if e["kind"] == "transaction_seq_gap"]
    assert {(g["detail"]["station_transaction_id"], g["detail"]["expected_seq_no"], g["detail"]["received_seq_no"])
            for g in gaps} == {("tx-never-started", 0, 4), (tx, 1, 3)} and len(gaps) == 2
    assert all(g["charge_point_id"] == "CP-G201" and g["severity"] == "warning" for g in gaps)
    row = await _tx_row(server, "CP-G201", tx)
    assert [e["seq_no"] for e in await server.store.read(partial(events_of, tx_id=row["id"]))] == [0, 1, 3]


# -- offline, and a transaction started before its idToken ---------------------------------------


async def test_offline_events_keep_their_own_time_and_flag(server: RunningServer) -> None:
    await server.add_id_tag("DRIVER-3")
    heard = _heard(server)
    began = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    ended = began + timedelta(minutes=40)
    async with await _online(server, "CP-O201") as cp:
        await cp.boot()
        tx = "offline-tx-1"
        await cp.event("Started", tx, "Authorized", timestamp=began.isoformat(), offline=True, evse={"id": 1},
                       id_token={"idToken": "DRIVER-3", "type": "ISO14443"},
                       transaction_info={"transactionId": tx, "chargingState": "Charging"})
        await cp.event("Ended", tx, "EVCommunicationLost", timestamp=ended.isoformat(), offline=True,
                       transaction_info={"transactionId": tx, "stoppedReason": "PowerLoss"},
                       meter_value=[{"timestamp": ended.isoformat(), "sampledValue": [{"value": 2200}]}])
    row = await _tx_row(server, "CP-O201", tx)
    assert (row["started_at"], row["stopped_at"], row["stop_reason"], row["meter_stop"]) \
        == (began, ended, "PowerLoss", 2200)
    assert all(e["offline"] for e in await server.store.read(partial(events_of, tx_id=row["id"])))
    [start] = [e for e in heard if isinstance(e, ev.TransactionStarted)]
    [stop] = [e for e in heard if isinstance(e, ev.TransactionStopped)]
    assert (start.started_at, stop.stopped_at, stop.reason) == (began, ended, "PowerLoss")  # within the clock policy


async def test_a_transaction_started_at_plug_in_waits_for_its_id_token(server: RunningServer) -> None:
    await server.add_id_tag("DRIVER-4")
    heard = _heard(server)
    async with await _online(server, "CP-P201") as cp:
        await cp.boot()
        plugged = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
        tx = await cp.plug_in(1, timestamp=plugged.isoformat())
        await cp.event("Updated", tx, "ChargingStateChanged")
        assert [e for e in heard if isinstance(e, ev.TransactionStarted)] == []  # nobody known yet
        row = await _tx_row(server, "CP-P201", tx)
        assert (row["id_tag"], row["id_tag_status"]) == ("", "")
        info = await cp.authorized(tx, "DRIVER-4", meter_value=[{"timestamp": now_iso(),
                                                                "sampledValue": [{"value": 300}]}])
        assert info == {"status": "Accepted"}
        [start] = [e for e in heard if isinstance(e, ev.TransactionStarted)]
        assert (start.id_tag, start.id_tag_status, start.started_at, start.meter_start) \
            == ("DRIVER-4", "Accepted", plugged, 300)  # the session began at the plug-in
        assert (await cp.authorized(tx, "DRIVER-4")) == {"status": "Accepted"}  # its own token: not concurrent
        await cp.stop_tx(tx, 900, reason="Local")
        nobody = await cp.plug_in(2)  # plugged in, never authorized, unplugged
        await cp.event("Ended", nobody, "EVCommunicationLost",
                       transaction_info={"transactionId": nobody, "stoppedReason": "EVDisconnected"})
    assert len([e for e in heard if isinstance(e, ev.TransactionStarted)]) == 1
    assert [e.transaction_id for e in heard if isinstance(e, ev.TransactionStopped)] == [start.transaction_id]
    row = await _tx_row(server, "CP-P201", tx)
    assert (row["id_tag"], row["meter_start"], row["meter_stop"]) == ("DRIVER-4", 300, 900)
    unknown = await _tx_row(server, "CP-P201", nobody)
    assert (unknown["id_tag"], unknown["stop_reason"]) == ("", "EVDisconnected")


# -- hostile TransactionEvents -------------------------------------------------------------------


async def test_a_transaction_whose_evse_is_not_known_yet_waits_for_it(server: RunningServer) -> None:
    """E01.FR.16: a transaction may start before the station knows its EVSE (authorized first, the
    cable not plugged in yet); the domain hears of it once the EVSE is named, at that EVSE."""
    await server.add_id_tag("DRIVER-7")
    heard = _heard(server)
    async with await _online(server, "CP-E201") as cp:
        await cp.boot()
        token = {"idToken": "DRIVER-7", "type": "ISO14443"}
        first = await cp.event("Started", "tx-noevse", "Authorized", id_token=token)
        assert first.id_token_info == {"status": "Accepted"}
        assert [e for e in heard if isinstance(e, ev.TransactionStarted)] == []  # which bay? not known yet
        assert (await _tx_row(server, "CP-E201", "tx-noevse"))["connector_id"] == 0
        await cp.event("Updated", "tx-noevse", "CablePluggedIn", evse={"id": 2, "connectorId": 1})
        await cp.event("Updated", "tx-noevse", "MeterValuePeriodic", evse={"id": 2, "connectorId": 1})
        await cp.event("Ended", "tx-noevse", "EVCommunicationLost",
                       transaction_info={"transactionId": "tx-noevse", "stoppedReason": "EVDisconnected"})
    [start] = [e for e in heard if isinstance(e, ev.TransactionStarted)]
    assert (start.connector_id, start.id_tag) == (2, "DRIVER-7")
    assert [e.transaction_id for e in heard if isinstance(e, ev.TransactionStopped)] == [start.transaction_id]
    assert (await _tx_row(server, "CP-E201", "tx-noevse"))["connector_id"] == 2


async def test_a_call_refused_by_its_handler_is_a_violation_the_detectors_count(server: RunningServer) -> None:
    """EVSE 0 passes the schema but not the rules: the CallError is remembered for a retransmission,
    and the refusal counts as a protocol violation (published, recorded as a security event)."""
    await server.add_charge_point("CP-V201")
    seen: list[ev.Event] = []
    server.gateway.services.bus.watch(seen.append, ev.ProtocolViolationSeen, name="test", scope="node")
    async with connect_raw(server, "CP-V201") as station:
        assert (await station.call("BootNotification", BOOT))[2]["status"] == "Accepted"
        frame = json.dumps([2, "evse-zero-1", "TransactionEvent", _event(evse={"id": 0})])
        refused = await station.raw(frame)
        assert refused[:3] == [4, "evse-zero-1", "PropertyConstraintViolation"]
        assert await station.raw(frame) == refused  # the same answer to the same call
        assert (await station.call("Heartbeat", {}))[0] == 3
        await server.settled()
    assert [(e.action, e.code, e.count) for e in seen if isinstance(e, ev.ProtocolViolationSeen)] == [
        ("TransactionEvent", "PropertyConstraintViolation", 1)]
    found = [e for e in await security_events(server) if e["charge_point_id"] == "CP-V201"]
    assert [(e["kind"], e["detail"]["code"], e["detail"]["action"]) for e in found] == [
        ("protocol_violation", "PropertyConstraintViolation", "TransactionEvent")]


def _event(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"eventType": "Started", "timestamp": now_iso(), "triggerReason": "Authorized",
                               "seqNo": 0, "transactionInfo": {"transactionId": "h-1"}, "evse": {"id": 1}}
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


async def test_hostile_transaction_events_get_the_right_call_error(server: RunningServer) -> None:
    await server.add_charge_point("CP-X201")
    cases = [
        (_event(transactionInfo=None), "OccurrenceConstraintViolation"),
        (_event(eventType="Paused"), "PropertyConstraintViolation"),
        (_event(seqNo="one"), "TypeConstraintViolation"),
        (_event(seqNo=2**31), "TypeConstraintViolation"),  # as the session's other 32-bit bounds
        (_event(timestamp="yesterday"), "TypeConstraintViolation"),
        (_event(transactionInfo={"transactionId": "x" * 37}), "PropertyConstraintViolation"),
        (_event(idToken={"idToken": "A", "type": "Fingerprint"}), "PropertyConstraintViolation"),
        (_event(meterValue=[{"timestamp": now_iso(), "sampledValue": []}]), "OccurrenceConstraintViolation"),
        (_event(meterValue=[{"timestamp": now_iso(), "sampledValue": [{"value": "abc"}]}]),
         "TypeConstraintViolation"),
        (_event(evse={"id": 0}), "PropertyConstraintViolation"),  # EVSE 0 is the station
        (_event(unexpected=1), "FormatViolation"),
    ]
    async with connect_raw(server, "CP-X201") as station:
        assert (await station.call("BootNotification", BOOT))[2]["status"] == "Accepted"
        got = []
        for payload, _ in cases:
            reply = await station.call("TransactionEvent", payload)
            got.append(reply[2] if reply[0] == 4 else reply)
        assert got == [code for _, code in cases]
        assert (await station.call("Heartbeat", {}))[0] == 3  # never a crash, nor a hang
        ok = await station.call("TransactionEvent", _event())
        assert ok[0] == 3 and ok[2] == {}
    assert await _count(server, "CP-X201") == 1  # only the good one

    def logged(conn: Connection) -> int:
        from voltlib.store.tables import ocpp_messages

        return len(conn.execute(select(ocpp_messages.c.id).where(
            ocpp_messages.c.charge_point_id == "CP-X201", ocpp_messages.c.action == "TransactionEvent",
            ocpp_messages.c.outcome.in_(["violation", "error"]))).all())

    await server.gateway.services.store.write(lambda conn: None)  # the raw log goes with the next commit
    assert await server.store.read(logged) == len(cases)


# -- car sharing: a car returned by ISO 15118 Plug & Charge --------------------------------------


async def test_a_car_returned_by_plug_and_charge_closes_its_rental(city: City) -> None:
    """The car authenticates itself with its eMAID once the cable is in: Started at plug-in without
    a token, then Updated(Authorized) with the eMAID, which is the car's id tag. The return is at
    the plug-in's time."""
    server = city.server
    member = await city.sign_up(1)
    async with connect(server, "st-a-1") as a, connect(server, "st-b-1") as b:
        await a.boot()
        await b.boot()
        await a.status(1, "Charging")
        assert (await a.authorize(member.badge))["status"] == "Accepted"
        await a.status(1, "Available")  # the departure
        await city.wait_for_state(member, "started")
        back = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
        catch_up(server, back + timedelta(minutes=1))
        await b.status(1, "Occupied", timestamp=back.isoformat())
        tx = await b.plug_in(1, timestamp=back.isoformat())
        assert await city.rental(member) is not None  # no token yet: not returned
        info = await b.authorized(tx, CAR_TAG, "eMAID")
        assert info == {"status": "Accepted"}
        await city.wait_for_state(member, None)
    history = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
    assert history[0]["state"] == "closed" and history[0]["return_dock"] == ["st-b-1", 1]
    assert datetime.fromisoformat(history[0]["returned_at"]) == back
    car = await city.vehicle()
    assert (car["status"], car["charge_point_id"]) == ("docked", "st-b-1")
    row = await _tx_row(server, "st-b-1", tx)
    assert (row["id_tag"], row["id_token_type"], row["started_at"]) == (CAR_TAG, "eMAID", back)
    assert await voltlib_id(server, "st-b-1", tx) == row["id"]
