"""OCA OCPP 2.0.1 conformance, CSMS under test: block J, meter values (part 6, 3.11).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt. The OCTT sends
clock-aligned and sampled values at its configured intervals; here they are sent one after the
other with timestamps an interval apart (no test waits for a clock). voltlib stores each value with
its own timestamp, context and measurand, under the transaction when it belongs to one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ocpp.v201 import call

from tests.conformance.conftest import Api, now_iso
from tests.conformance_v201.conftest import Station, Transaction, connect
from tests.conftest import RunningServer

CS = "OCTT-CS-201"
TOKEN = "OCTT-TOKEN-1"
SIGNED = {"signedMeterData": "T0NUVC1TSUdORUQ=", "signingMethod": "ECDSA-secp256r1-SHA256", "encodingMethod": "OCMF",
          "publicKey": "T0NUVC1LRVk="}


def reading(wh: float, context: str, minutes: int = 0, **sample: Any) -> dict[str, Any]:
    """One meter value of the energy register, ``minutes`` after now."""
    return {"timestamp": now_iso(timedelta(minutes=minutes)), "sampledValue": [{
        "value": wh, "context": context, "measurand": "Energy.Active.Import.Register",
        "unitOfMeasure": {"unit": "Wh"}, **sample}]}


async def samples(api: Api, transaction_id: int | None = None) -> list[tuple[str, str, str]]:
    """(value, context, format) of the stored meter values, oldest first."""
    query = "" if transaction_id is None else f"?transaction_id={transaction_id}"
    rows = await api.get(f"/api/v1/charge-points/{CS}/meter-values{query}")
    rows.sort(key=lambda r: r["timestamp"])
    return [(s["value"], s["context"], s.get("format") or "Raw") for r in rows for s in r["sampled_value"]]


async def voltlib_id(api: Api, tx: Transaction) -> int:
    [row] = [t for t in await api.transactions(CS) if t["station_tx_id"] == tx.id]
    return int(row["id"])


async def online(server: RunningServer) -> None:
    await server.add_charge_point(CS)
    await server.add_id_tag(TOKEN)


async def charging(cs: Station) -> Transaction:
    tx = cs.transaction()
    await tx.energy_transfer_started()
    return tx


async def test_TC_J_01_Clock_aligned_Meter_Values_No_transaction_ongoing(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        for n in range(3):  # three clock-aligned intervals, for the main meter (EVSE 0) and EVSE 1
            for evse_id in (0, 1):
                await cs.send(call.MeterValues(evse_id=evse_id, meter_value=[
                    reading(1000 * (evse_id + 1) + n, "Sample.Clock", minutes=15 * n)]))
    stored = await api.get(f"/api/v1/charge-points/{CS}/meter-values")
    assert sorted((r["connector_id"], r["transaction_id"], r["sampled_value"][0]["value"]) for r in stored) == \
        [(0, None, "1000"), (0, None, "1001"), (0, None, "1002"), (1, None, "2000"), (1, None, "2001"),
         (1, None, "2002")]
    assert {r["sampled_value"][0]["context"] for r in stored} == {"Sample.Clock"}


async def test_TC_J_02_Clock_aligned_Meter_Values_Transaction_ongoing(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        tx = await charging(cs)
        for n in range(1, 3):
            for evse_id in (0, 2):  # the main meter and the idle EVSE
                await cs.send(call.MeterValues(evse_id=evse_id, meter_value=[
                    reading(500 + n, "Sample.Clock", minutes=15 * n)]))
            await tx.event("MeterValueClock", meter_value=[reading(1000 * n, "Sample.Clock", minutes=15 * n)])
    assert await samples(api, await voltlib_id(api, tx)) == [("1000", "Sample.Clock", "Raw"),
                                                              ("2000", "Sample.Clock", "Raw")]
    outside = [r for r in await api.get(f"/api/v1/charge-points/{CS}/meter-values") if r["transaction_id"] is None]
    assert sorted(r["connector_id"] for r in outside) == [0, 0, 2, 2]


async def _ended_with(server: RunningServer, api: Api, context: str, **sample: Any) -> list[tuple[str, str, str]]:
    """EnergyTransferStarted, then EVDisconnected whose Ended carries the transaction's values."""
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        await tx.ev_disconnected(meter_value=[
            reading(1500, context, 15, **sample), reading(2500, context, 30, **sample),
            reading(2600, "Transaction.End", 31, **sample)])
    [row] = [t for t in await api.transactions(CS) if t["station_tx_id"] == tx.id]
    assert (row["meter_stop"], row["stop_reason"]) == (2600, "EVDisconnected")
    return await samples(api, row["id"])


async def test_TC_J_03_Clock_aligned_Meter_Values_EventType_Ended(server: RunningServer, api: Api) -> None:
    assert await _ended_with(server, api, "Sample.Clock") == [
        ("1500", "Sample.Clock", "Raw"), ("2500", "Sample.Clock", "Raw"), ("2600", "Transaction.End", "Raw")]


async def test_TC_J_04_Clock_aligned_Meter_Values_Signed(server: RunningServer, api: Api) -> None:
    assert await _ended_with(server, api, "Sample.Clock", signedMeterValue=SIGNED) == [
        ("1500", "Sample.Clock", "SignedData"), ("2500", "Sample.Clock", "SignedData"),
        ("2600", "Transaction.End", "SignedData")]


async def test_TC_J_07_Sampled_Meter_Values_EventType_Started_EVSE_known(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        await cs.status(1, "Occupied")
        await tx.event("CablePluggedIn", charging_state="EVConnected", meter_value=[reading(700, "Transaction.Begin")])
    [row] = [t for t in await api.transactions(CS) if t["station_tx_id"] == tx.id]
    assert (row["connector_id"], row["meter_start"]) == (1, 700)
    assert await samples(api, row["id"]) == [("700", "Transaction.Begin", "Raw")]


async def test_TC_J_08_Sampled_Meter_Values_Context_Transaction_Begin_EVSE_not_known(
        server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        assert (await cs.authorize())["status"] == "Accepted"
        started = await tx.event("Authorized", id_token=tx.token, evse=False)  # which EVSE is not known yet
        assert started.id_token_info["status"] == "Accepted"
        tx.authorized = True
        await cs.status(1, "Occupied")
        await tx.event("CablePluggedIn", charging_state="EVConnected", evse=True,
                       meter_value=[reading(800, "Transaction.Begin")])
        tx.ev_connected = True
        await tx.energy_transfer_started()
    [row] = [t for t in await api.transactions(CS) if t["station_tx_id"] == tx.id]
    assert (row["connector_id"], row["id_tag"], row["meter_start"]) == (1, TOKEN, 800)
    assert await samples(api, row["id"]) == [("800", "Transaction.Begin", "Raw")]


async def test_TC_J_09_Sampled_Meter_Values_EventType_Updated(server: RunningServer, api: Api) -> None:
    await online(server)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = await charging(cs)
        for n in range(1, 4):
            await tx.event("MeterValuePeriodic", meter_value=[reading(1000 + 250 * n, "Sample.Periodic", n)])
    assert await samples(api, await voltlib_id(api, tx)) == [
        ("1250", "Sample.Periodic", "Raw"), ("1500", "Sample.Periodic", "Raw"), ("1750", "Sample.Periodic", "Raw")]


async def test_TC_J_10_Sampled_Meter_Values_EventType_Ended(server: RunningServer, api: Api) -> None:
    assert await _ended_with(server, api, "Sample.Periodic") == [
        ("1500", "Sample.Periodic", "Raw"), ("2500", "Sample.Periodic", "Raw"), ("2600", "Transaction.End", "Raw")]


async def test_TC_J_11_Sampled_Meter_Values_Signed(server: RunningServer, api: Api) -> None:
    assert await _ended_with(server, api, "Sample.Periodic", signedMeterValue=SIGNED) == [
        ("1500", "Sample.Periodic", "SignedData"), ("2500", "Sample.Periodic", "SignedData"),
        ("2600", "Transaction.End", "SignedData")]
