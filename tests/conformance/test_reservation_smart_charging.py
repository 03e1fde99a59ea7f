"""OCA OCPP 1.6 conformance, central system under test: reservation and smart charging profiles."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ocpp.v16 import call_result

from tests.conformance.conftest import Api, Station, bring_online, connect, now_iso
from tests.conftest import RunningServer

CP = "OCTT-CP"
TAG = "OCTT-TAG-1"


async def _history(api: Api, connector_id: int) -> list[tuple[str, bool]]:
    rows = await api.get(f"/api/v1/charge-points/{CP}/status-history")
    return [(r["status"], r["expected"]) for r in reversed(rows) if r["connector_id"] == connector_id]


def _reservation(connector_id: int, reservation_id: int, tag: str = TAG, **extra: Any) -> dict[str, Any]:
    return {"connectorId": connector_id, "expiryDate": now_iso(timedelta(hours=1)), "idTag": tag,
            "reservationId": reservation_id, **extra}


def _reserves(cp: Station) -> None:
    async def reserved(connector_id: int, **_: object) -> None:
        if connector_id > 0:
            await cp.status(connector_id, "Reserved")

    cp.follow_ups["ReserveNow"] = reserved


async def _use_reservation(cp: Station, tag: str, reservation_id: int, connector_id: int = 1) -> int:
    await cp.status(connector_id, "Preparing")
    assert (await cp.authorize(tag))["status"] == "Accepted"
    start = await cp.start_tx(connector_id, tag, 0, reservation_id=reservation_id)
    assert start.id_tag_info["status"] == "Accepted"
    await cp.status(connector_id, "Charging")
    return int(start.transaction_id)


async def test_TC_046_ReservationOfConnector_Transaction(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        _reserves(cp)
        row = await api.command(CP, "ReserveNow", _reservation(1, 4601))
        await cp.settle()
        tx_id = await _use_reservation(cp, TAG, 4601)
    got = cp.got("ReserveNow")[0]
    assert (got["connector_id"], got["id_tag"], got["reservation_id"]) == (1, TAG, 4601)
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})
    assert (await api.transaction(CP, tx_id))["reservation_id"] == 4601
    assert await _history(api, 1) == [(s, True) for s in ("Available", "Reserved", "Preparing", "Charging")]


async def test_TC_047_ReservationOfConnector_Expire(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        _reserves(cp)
        payload = _reservation(1, 4701)
        payload["expiryDate"] = now_iso(timedelta(seconds=1))
        row = await api.command(CP, "ReserveNow", payload)
        await cp.settle()
        await cp.status(1, "Available")  # the reservation expired unused
    assert row["response"] == {"status": "Accepted"}
    assert await api.transactions(CP) == []
    assert await _history(api, 1) == [("Available", True), ("Reserved", True), ("Available", True)]


async def _reserve_refused(server: RunningServer, api: Api, answer: str) -> None:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        cp.replies["ReserveNow"] = call_result.ReserveNow(status=answer)
        row = await api.command(CP, "ReserveNow", _reservation(1, 4800))
    assert len(cp.got("ReserveNow")) == 1
    assert (row["state"], row["response"]) == ("answered", {"status": answer})


async def test_TC_048_1_ReservationOfConnector_Faulted(server: RunningServer, api: Api) -> None:
    await _reserve_refused(server, api, "Faulted")


async def test_TC_048_2_ReservationOfConnector_Occupied(server: RunningServer, api: Api) -> None:
    await _reserve_refused(server, api, "Occupied")


async def test_TC_048_3_ReservationOfConnector_Unavailable(server: RunningServer, api: Api) -> None:
    await _reserve_refused(server, api, "Unavailable")


async def test_TC_048_4_ReservationOfConnector_Rejected(server: RunningServer, api: Api) -> None:
    await _reserve_refused(server, api, "Rejected")


async def test_TC_049_ReservationOfChargePoint_Transaction(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp, connectors=2)
        _reserves(cp)  # connector 0: no connector turns Reserved (ReserveConnectorZeroSupported = true)
        row = await api.command(CP, "ReserveNow", _reservation(0, 4901))
        await cp.settle()
        tx_id = await _use_reservation(cp, TAG, 4901, connector_id=2)
    assert cp.got("ReserveNow")[0]["connector_id"] == 0
    assert row["response"] == {"status": "Accepted"}
    tx = await api.transaction(CP, tx_id)
    assert (tx["connector_id"], tx["reservation_id"]) == (2, 4901)


async def test_TC_051_CancelReservation(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        _reserves(cp)

        async def freed(reservation_id: int) -> None:
            await cp.status(1, "Available")

        cp.follow_ups["CancelReservation"] = freed
        reserved = await api.command(CP, "ReserveNow", _reservation(1, 5101))
        await cp.settle()
        cancelled = await api.command(CP, "CancelReservation", {"reservationId": 5101})
        await cp.settle()
    assert cp.got("CancelReservation") == [{"reservation_id": 5101}]
    assert (reserved["response"], cancelled["response"]) == ({"status": "Accepted"}, {"status": "Accepted"})
    assert await _history(api, 1) == [("Available", True), ("Reserved", True), ("Available", True)]


async def test_TC_052_CancelReservation_Rejected(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        cp.replies["CancelReservation"] = call_result.CancelReservation(status="Rejected")
        row = await api.command(CP, "CancelReservation", {"reservationId": 999})
    assert (row["state"], row["response"]) == ("answered", {"status": "Rejected"})


async def test_TC_053_UseReservedConnectorWithParentIdTag(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag("OCTT-GROUP")
    await server.add_id_tag("OCTT-TAG-A", parent_id_tag="OCTT-GROUP")
    await server.add_id_tag("OCTT-TAG-B", parent_id_tag="OCTT-GROUP")
    async with connect(server, CP) as cp:
        await bring_online(cp)
        _reserves(cp)
        row = await api.command(CP, "ReserveNow", _reservation(1, 5301, "OCTT-TAG-A", parentIdTag="OCTT-GROUP"))
        await cp.settle()
        # another badge of the same group arrives: the station needs its parent to honour the reservation
        await cp.status(1, "Preparing")
        info = await cp.authorize("OCTT-TAG-B")
        assert (info["status"], info["parent_id_tag"]) == ("Accepted", "OCTT-GROUP")
        start = await cp.start_tx(1, "OCTT-TAG-B", 0, reservation_id=5301)
        assert (start.id_tag_info["status"], start.id_tag_info["parent_id_tag"]) == ("Accepted", "OCTT-GROUP")
        await cp.status(1, "Charging")
    assert cp.got("ReserveNow")[0]["parent_id_tag"] == "OCTT-GROUP"
    assert row["response"] == {"status": "Accepted"}
    tx = await api.transaction(CP, start.transaction_id)
    assert (tx["id_tag"], tx["reservation_id"]) == ("OCTT-TAG-B", 5301)


def _profile(purpose: str, profile_id: int, **extra: Any) -> dict[str, Any]:
    return {"chargingProfileId": profile_id, "stackLevel": 0, "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute", **extra,
            "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": now_iso(),
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0},
                                                            {"startPeriod": 1800, "limit": 10.0}]}}


async def _charging(cp: Station, tag: str = TAG) -> int:
    await cp.status(1, "Preparing")
    start = await cp.start_tx(1, tag, 0)
    await cp.status(1, "Charging")
    return int(start.transaction_id)


async def test_TC_056_CentralSmartCharging_TxDefaultProfile(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    profile = _profile("TxDefaultProfile", 56)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        row = await api.command(CP, "SetChargingProfile", {"connectorId": 0, "csChargingProfiles": profile})
        await _charging(cp)
    got = cp.got("SetChargingProfile")[0]
    assert got["connector_id"] == 0
    assert got["cs_charging_profiles"]["charging_profile_purpose"] == "TxDefaultProfile"
    assert got["cs_charging_profiles"]["charging_schedule"]["charging_schedule_period"][1]["limit"] == 10.0
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})


async def test_TC_057_CentralSmartCharging_TxProfile(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        tx_id = await _charging(cp)
        profile = _profile("TxProfile", 57, transactionId=tx_id)
        row = await api.command(CP, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile})
    got = cp.got("SetChargingProfile")[0]["cs_charging_profiles"]
    assert (got["charging_profile_purpose"], got["transaction_id"]) == ("TxProfile", tx_id)
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})


async def test_TC_059_RemoteStartTransactionWithChargingProfile(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag(TAG)
    started: list[int] = []
    async with connect(server, CP) as cp:
        await bring_online(cp)

        async def start(id_tag: str, connector_id: int, **_: object) -> None:
            started.append(await _charging(cp, id_tag))

        cp.follow_ups["RemoteStartTransaction"] = start
        profile = _profile("TxProfile", 59)
        row = await api.command(CP, "RemoteStartTransaction", {"connectorId": 1, "idTag": TAG,
                                                               "chargingProfile": profile})
        await cp.settle()
    got = cp.got("RemoteStartTransaction")[0]
    assert (got["charging_profile"]["charging_profile_id"], got["charging_profile"]["charging_profile_purpose"]) \
        == (59, "TxProfile")
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})
    assert (await api.transaction(CP, started[0]))["id_tag"] == TAG


async def test_TC_066_GetCompositeSchedule(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    schedule = {"chargingRateUnit": "W", "duration": 3600, "startSchedule": now_iso(),
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}]}
    async with connect(server, CP) as cp:
        await bring_online(cp)
        cp.replies["GetCompositeSchedule"] = call_result.GetCompositeSchedule(
            status="Accepted", connector_id=1, schedule_start=schedule["startSchedule"], charging_schedule=schedule)
        row = await api.command(CP, "GetCompositeSchedule", {"connectorId": 1, "duration": 3600,
                                                             "chargingRateUnit": "W"})
    assert cp.got("GetCompositeSchedule") == [{"connector_id": 1, "duration": 3600, "charging_rate_unit": "W"}]
    assert row["state"] == "answered"
    assert row["response"] == {"status": "Accepted", "connectorId": 1, "scheduleStart": schedule["startSchedule"],
                               "chargingSchedule": schedule}


async def test_TC_067_ClearChargingProfile(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        set_row = await api.command(CP, "SetChargingProfile", {"connectorId": 0,
                                                               "csChargingProfiles": _profile("TxDefaultProfile", 67)})
        row = await api.command(CP, "ClearChargingProfile", {"id": 67})
    assert cp.got("ClearChargingProfile") == [{"id": 67}]
    assert set_row["response"] == {"status": "Accepted"}
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})
