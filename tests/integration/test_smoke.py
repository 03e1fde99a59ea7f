"""The gateway end to end over a real WebSocket: boot, status, a transaction, an API command."""

from __future__ import annotations

import json

import httpx
import websockets

from tests.conftest import RunningServer, basic_auth


async def call(ws: websockets.ClientConnection, message_id: str, action: str, payload: dict) -> list:
    await ws.send(json.dumps([2, message_id, action, payload]))
    return json.loads(await ws.recv())


async def test_boot_status_and_transaction_are_stored(server: RunningServer) -> None:
    await server.add_charge_point("CP-1")
    await server.add_id_tag("BADGE1")
    async with websockets.connect(f"{server.ws_url}/CP-1", subprotocols=["ocpp1.6"],
                                  additional_headers=basic_auth("CP-1")) as ws:
        assert ws.subprotocol == "ocpp1.6"
        boot = await call(ws, "1", "BootNotification", {"chargePointVendor": "Bolloré", "chargePointModel": "AL1"})
        assert boot[2]["status"] == "Accepted"
        assert (await call(ws, "2", "StatusNotification",
                           {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}))[0] == 3
        start = await call(ws, "3", "StartTransaction",
                           {"connectorId": 1, "idTag": "BADGE1", "meterStart": 100,
                            "timestamp": "2026-01-01T08:00:00Z"})
        tx = start[2]["transactionId"]
        assert start[2]["idTagInfo"]["status"] == "Accepted"
        await call(ws, "4", "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            {"timestamp": "2026-01-01T08:01:00Z", "sampledValue": [
                {"value": "250", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "64", "measurand": "SoC", "unit": "Percent", "location": "EV"}]}]})
        stop = await call(ws, "5", "StopTransaction",
                          {"transactionId": tx, "meterStop": 900, "timestamp": "2026-01-01T08:30:00Z",
                           "idTag": "BADGE1"})
        assert stop[2]["idTagInfo"]["status"] == "Accepted"
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        cp = (await api.get("/api/v1/charge-points/CP-1")).json()
        assert cp["vendor"] == "Bolloré" and cp["connectors"][0]["status"] == "Preparing"
        txs = (await api.get("/api/v1/charge-points/CP-1/transactions")).json()
        assert txs[0]["id"] == tx and txs[0]["meter_stop"] == 900
        values = (await api.get("/api/v1/charge-points/CP-1/meter-values")).json()
        assert {"value": "64", "measurand": "SoC", "unit": "Percent", "location": "EV",
                "context": "Sample.Periodic", "format": "Raw"} in values[0]["sampled_value"]
