"""OCA OCPP 2.0.1 conformance, CSMS under test: block G, availability (part 6, 3.8).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt. The station
reports each change with a StatusNotification; the NotifyEvent (AvailabilityState) it may send
beside it is not handled by voltlib (docs/conformance.md).
"""

from __future__ import annotations

from typing import Any

from tests.conformance.conftest import Api
from tests.conformance_v201.conftest import Station, connect
from tests.conftest import RunningServer

CS = "OCTT-CS-201"


async def _statuses(api: Api) -> list[tuple[int, str]]:
    return [(c["connector_id"], c["status"]) for c in (await api.charge_point(CS))["connectors"]]


async def _change(cs: Station, api: Api, operative: bool, evse: dict[str, int] | None, evses: list[int]) -> None:
    """The operator changes availability; the station accepts and reports its connectors' new status."""
    status = "Available" if operative else "Unavailable"

    async def report(**_: Any) -> None:
        for evse_id in evses:
            await cs.status(evse_id, status)

    cs.follow_ups["ChangeAvailability"] = report
    payload: dict[str, Any] = {"operationalStatus": "Operative" if operative else "Inoperative"}
    if evse is not None:
        payload["evse"] = evse
    row = await api.command(CS, "ChangeAvailability", payload)
    await cs.settle()
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})
    sent = cs.got("ChangeAvailability")[-1]
    assert sent["operational_status"] == payload["operationalStatus"]
    if evse is None:
        assert "evse" not in sent
    else:
        assert sent["evse"] == {"id": evse["id"], **({"connector_id": evse["connectorId"]} if "connectorId" in evse
                                                      else {})}


async def test_TC_G_03_Change_Availability_EVSE_Operative_to_inoperative(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        await _change(cs, api, False, {"id": 1}, [1])
    assert await _statuses(api) == [(1, "Unavailable"), (2, "Available")]


async def test_TC_G_04_Change_Availability_EVSE_Inoperative_to_operative(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        await _change(cs, api, False, {"id": 1}, [1])  # memory state Unavailable
        await _change(cs, api, True, {"id": 1}, [1])
    assert await _statuses(api) == [(1, "Available"), (2, "Available")]


async def test_TC_G_05_Change_Availability_Charging_Station_Operative_to_inoperative(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        await _change(cs, api, False, None, [1, 2])
    assert await _statuses(api) == [(1, "Unavailable"), (2, "Unavailable")]


async def test_TC_G_06_Change_Availability_Charging_Station_Inoperative_to_operative(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        await _change(cs, api, False, None, [1, 2])
        await _change(cs, api, True, None, [1, 2])
    assert await _statuses(api) == [(1, "Available"), (2, "Available")]


async def test_TC_G_07_Change_Availability_Connector_Operative_to_inoperative(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        await _change(cs, api, False, {"id": 2, "connectorId": 1}, [2])
    assert await _statuses(api) == [(1, "Available"), (2, "Unavailable")]


async def test_TC_G_08_Change_Availability_Connector_Inoperative_to_operative(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        await _change(cs, api, False, {"id": 2, "connectorId": 1}, [2])
        await _change(cs, api, True, {"id": 2, "connectorId": 1}, [2])
    assert await _statuses(api) == [(1, "Available"), (2, "Available")]


async def test_TC_G_20_Connector_status_Notification_Lock_Failure(server: RunningServer, api: Api) -> None:
    """The lock failure comes as NotifyEvent (ConnectorPlugRetentionLock.Problem): stored before it is
    answered, readable in GET .../events; not a tamper (docs/security.md, "Monitoring → tamper")."""
    from ocpp.v201 import call

    from tests.conformance.conftest import now_iso

    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        await cs.send(call.NotifyEvent(generated_at=now_iso(), seq_no=0, event_data=[{
            "eventId": 1, "timestamp": now_iso(), "trigger": "Delta", "actualValue": "true",
            "eventNotificationType": "HardWiredNotification",
            "component": {"name": "ConnectorPlugRetentionLock", "evse": {"id": 1, "connectorId": 1}},
            "variable": {"name": "Problem"}}]))
        [event] = await api.get(f"/api/v1/charge-points/{CS}/events")
    assert (event["component"], event["evse_id"], event["connector_id"], event["variable"], event["actual_value"],
            event["security"]) == ("ConnectorPlugRetentionLock", 1, 1, "Problem", "true", None)


async def _while_charging(server: RunningServer, api: Api, evse: dict[str, int] | None) -> list[tuple[int, str]]:
    """State EnergyTransferStarted on EVSE 1; the operator makes ``evse`` (or the station)
    Inoperative; the station answers Scheduled, reports its idle EVSE Unavailable at once, and
    the charging one once its transaction has ended."""
    await server.add_charge_point(CS)
    await server.add_id_tag("OCTT-TOKEN-1")
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        tx = cs.transaction()
        await tx.energy_transfer_started()
        cs.replies["ChangeAvailability"] = {"status": "Scheduled"}
        payload: dict[str, Any] = {"operationalStatus": "Inoperative", **({"evse": evse} if evse else {})}
        row = await api.command(CS, "ChangeAvailability", payload)
        assert (row["state"], row["response"]) == ("answered", {"status": "Scheduled"})
        if evse is None:
            await cs.status(2, "Unavailable")  # the unoccupied EVSE at once
        await tx.charging_to_end()
        await cs.status(1, "Unavailable")
    [stopped] = [t for t in await api.transactions(CS) if t["station_tx_id"] == tx.id]
    assert stopped["stop_reason"] == "EVDisconnected"
    return await _statuses(api)


async def test_TC_G_11_Change_Availability_EVSE_With_ongoing_transaction(server: RunningServer, api: Api) -> None:
    assert await _while_charging(server, api, {"id": 1}) == [(1, "Unavailable"), (2, "Available")]


async def test_TC_G_14_Change_Availability_Charging_Station_With_ongoing_transaction(
        server: RunningServer, api: Api) -> None:
    assert await _while_charging(server, api, None) == [(1, "Unavailable"), (2, "Unavailable")]


async def test_TC_G_17_Change_Availability_Connector_With_ongoing_transaction(server: RunningServer, api: Api) -> None:
    assert await _while_charging(server, api, {"id": 1, "connectorId": 1}) == [(1, "Unavailable"), (2, "Available")]
