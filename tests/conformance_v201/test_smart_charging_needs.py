"""OCPP 2.0.1 block K, ISO 15118 smart charging (K15-K17; issue 17), CSMS under test, on SQLite and
PostgreSQL. The OCA case list has no K case; these follow the use cases' requirements instead, with
the independent station of tests/conformance_v201/conftest.py at a bay of a car-sharing station.

K15: NotifyEVChargingNeeds is answered (Accepted, Processing before the session's token is known,
Rejected when no schedule can follow), stored with the time voltlib received it, and followed by a
TxProfile for the session (K15.FR.07). NotifyEVChargingSchedule is Accepted within that profile and
Rejected above it, which starts a renegotiation: a new TxProfile (K15.FR.13). Hostile reports get
CallErrors or a Rejected answer with a reasonCode, are logged and stored, and never stop the session.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v201 import call
from sqlalchemy import select

from tests.conformance.conftest import now_iso, wait_until
from tests.conformance_v201.conftest import Station, Transaction, connect
from tests.conftest import PASSWORD, RunningServer
from tests.sharing.conftest import HEADER
from voltlib.security.credentials import hash_password
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import parse_snapshot
from voltlib.sharing.store import import_snapshot, upsert_city
from voltlib.store.tables import ev_charging_needs, ev_charging_schedules, security_events

BAY = "st-k-1"
TOKEN = "OCTT-TOKEN-1"
SNAPSHOT = HEADER + "\n" + "1 rue K;1;1;0;0;0;operational;Paris;;st-k;STATION;48.8700, 2.3300;75001;Paris/K/1;" \
                           "operational;;0;station;ok;x\n"


async def online(cs: Station) -> None:
    """Booted, with the car docked at the bay still there (Occupied, not Available: no departure)."""
    assert (await cs.boot()).status == "Accepted"
    await cs.status(1, "Occupied")


async def _bay(server: RunningServer) -> None:
    def seed(conn: Any) -> None:
        upsert_city(conn, builtin_cities()["paris"])
        import_snapshot(conn, "paris", parse_snapshot(SNAPSHOT, car_prefix="KK"), security_profile=1,
                        password_hash=hash_password(PASSWORD), soc_percent=40.0, now=datetime.now(UTC))

    await server.store.write(seed)
    await server.add_id_tag(TOKEN)


def ac_needs(evse_id: int = 1, *, energy: int = 8_000, current: int = 13, departure: datetime | None = None,
             transfer: str = "AC_single_phase") -> call.NotifyEVChargingNeeds:
    needs: dict[str, Any] = {"requestedEnergyTransfer": transfer, "acChargingParameters": {
        "energyAmount": energy, "evMinCurrent": 6, "evMaxCurrent": current, "evMaxVoltage": 230}}
    if departure is not None:
        needs["departureTime"] = departure.isoformat()
    return call.NotifyEVChargingNeeds(evse_id=evse_id, charging_needs=needs, max_schedule_tuples=12)


def tx_profiles(cs: Station, tx: Transaction) -> list[dict[str, Any]]:
    """The TxProfiles voltlib sent for the session (the ocpp package gives nested keys in snake_case)."""
    return [p for p in cs.got("SetChargingProfile") if p["charging_profile"]["charging_profile_purpose"] == "TxProfile"
            and p["charging_profile"].get("transaction_id") == tx.id and p["evse_id"] == tx.evse_id]


async def _rows(server: RunningServer, table: Any) -> list[Any]:
    return list(await server.store.read(lambda c: c.execute(select(table).order_by(table.c.id)).all()))


def schedule(limit: float, unit: str = "W", phases: int | None = None) -> call.NotifyEVChargingSchedule:
    period: dict[str, Any] = {"startPeriod": 0, "limit": limit}
    if phases is not None:
        period["numberPhases"] = phases
    return call.NotifyEVChargingSchedule(time_base=now_iso(), evse_id=1, charging_schedule={
        "id": 3, "chargingRateUnit": unit, "chargingSchedulePeriod": [period]})


async def test_K15_needs_accepted_stored_and_followed_by_a_tx_profile_then_the_cars_schedule(
        server: RunningServer) -> None:
    await _bay(server)
    async with connect(server, BAY) as cs:
        await online(cs)
        tx = cs.transaction(id_token=(TOKEN, "ISO14443"))
        await tx.energy_transfer_started()
        leaves = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        reply = await cs.send(ac_needs(departure=leaves))
        assert reply.status == "Accepted" and reply.status_info is None

        async def profiled() -> bool:
            return bool(tx_profiles(cs, tx))

        await wait_until(profiled, timeout=10)  # K15.FR.07/08: within 60 s, here within the plan's coalescing
        [row] = await _rows(server, ev_charging_needs)
        assert (row.charge_point_id, row.evse_id, row.status, row.energy_wh, row.max_current_a) == (
            BAY, 1, "Accepted", 8_000, 13)
        assert row.departure_at == leaves and row.max_power_w == 13 * 230 and row.soc_at_receipt == 40.0
        assert row.transaction_id is not None and row.received_at is not None
        profile = tx_profiles(cs, tx)[-1]["charging_profile"]
        limit = profile["charging_schedule"][0]["charging_schedule_period"][0]["limit"]
        assert 0 < limit <= 13 * 230

        assert (await cs.send(schedule(limit))).status == "Accepted"  # K15.FR.11: within voltlib's profile
        sent = len(tx_profiles(cs, tx))
        over = await cs.send(schedule(10, unit="A", phases=3))  # 6,900 W: above it
        assert over.status == "Rejected" and over.status_info["reason_code"] == "ValueTooHigh"

        async def renegotiated() -> bool:  # K15.FR.13: the CSMS starts a renegotiation (K16)
            return len(tx_profiles(cs, tx)) > sent

        await wait_until(renegotiated, timeout=10)
        stored = await _rows(server, ev_charging_schedules)
        assert [(s.status, s.reason) for s in stored] == [("Accepted", None), ("Rejected", "ValueTooHigh")]
        assert stored[1].max_w == pytest.approx(6_900) and stored[1].limit_w == limit


async def test_K15_needs_before_the_token_is_processing_and_still_get_a_tx_profile(server: RunningServer) -> None:
    await _bay(server)
    async with connect(server, BAY) as cs:
        await online(cs)
        tx = cs.transaction(id_token=(TOKEN, "ISO14443"))
        await tx.ev_connected_pre_session()  # TxStartPoint EVConnected: no idToken yet
        reply = await cs.send(ac_needs())
        assert reply.status == "Processing"

        async def profiled() -> bool:
            return bool(tx_profiles(cs, tx))

        await wait_until(profiled, timeout=10)  # K15.FR.07 holds for Processing too


async def test_K15_hostile_needs_are_refused_stored_and_the_departure_bounded_by_the_clock_policy(
        server: RunningServer) -> None:
    await _bay(server)
    async with connect(server, BAY) as cs:
        await online(cs)
        with pytest.raises(OCPPError) as refused:  # EvseId may not be 0
            await cs.send(ac_needs(evse_id=0))
        assert type(refused.value).__name__ == "PropertyConstraintViolationError"
        assert (await cs.send(ac_needs())).status_info["reason_code"] == "TxNotFound"  # no session on EVSE 1
        tx = cs.transaction(id_token=(TOKEN, "ISO14443"))
        await tx.energy_transfer_started()
        missing = await cs.send(call.NotifyEVChargingNeeds(evse_id=1, charging_needs={
            "requestedEnergyTransfer": "AC_three_phase"}))
        assert (missing.status, missing.status_info["reason_code"]) == ("Rejected", "MissingParam")  # K15.FR.06
        mismatch = await cs.send(ac_needs(transfer="DC"))
        assert (mismatch.status, mismatch.status_info["reason_code"]) == ("Rejected", "InvalidValue")
        negative = await cs.send(ac_needs(energy=-5))
        assert (negative.status, negative.status_info["reason_code"]) == ("Rejected", "ValuePositiveOnly")
        past = datetime.now(UTC) - timedelta(days=3)
        far = datetime.now(UTC) + timedelta(days=30)
        assert (await cs.send(ac_needs(departure=past))).status == "Accepted"  # planned without a departure
        assert (await cs.send(ac_needs(departure=far))).status == "Accepted"
        with pytest.raises(OCPPError):  # not a schema-valid report: a CallError, nothing stored
            await cs.send(call.NotifyEVChargingNeeds(evse_id=1, charging_needs={"departureTime": now_iso()}))
        assert (await cs.send(schedule(1_000))).status in ("Accepted", "Rejected")
        assert (await cs.heartbeat()).current_time  # the connection goes on

    rows = await _rows(server, ev_charging_needs)
    assert [(r.status, r.reason) for r in rows] == [
        ("Rejected", "TxNotFound"), ("Rejected", "MissingParam"), ("Rejected", "InvalidValue"),
        ("Rejected", "ValuePositiveOnly"), ("Accepted", None), ("Accepted", None)]
    assert rows[0].transaction_id is None and all(r.transaction_id is not None for r in rows[1:])
    assert rows[4].departure_claimed is not None and rows[4].departure_at is None  # 3 days ago: a wrong clock
    assert rows[5].departure_claimed is not None and rows[5].departure_at is None  # a month ahead: beyond a week
    skews = [e for e in await _rows(server, security_events) if e.kind == "clock_skew"]
    assert [e.detail["message"] for e in skews] == ["NotifyEVChargingNeeds"] * 2


async def test_K15_needs_from_a_charge_point_voltlib_does_not_plan_are_rejected(server: RunningServer) -> None:
    await server.add_charge_point("OCTT-CS-K")  # no bay of any station: smart charging does not plan it
    await server.add_id_tag(TOKEN)
    async with connect(server, "OCTT-CS-K") as cs:
        await cs.booted()
        await cs.transaction(id_token=(TOKEN, "ISO14443")).energy_transfer_started()
        reply = await cs.send(ac_needs())
        assert (reply.status, reply.status_info["reason_code"]) == ("Rejected", "NotEnabled")
        assert cs.got("SetChargingProfile") == []
