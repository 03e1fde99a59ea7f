"""The OCPP 2.0.1 device model (issue 16, B06-B08, B12): reports asked for through the API, stored
part by part, browsed in the API, and kept in step with GetVariables / SetVariables answers; over
real WebSockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from tests.conftest import RunningServer, free_port, start_server
from tests.integration.test_command_port import AnsweringPost, post
from tests.integration.test_openapi import check
from voltlib.config import Settings


@pytest_asyncio.fixture
async def server201(database_url: str) -> AsyncIterator[RunningServer]:
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        ocpp_versions=["1.6", "2.0.1"])
    runner, running = await start_server(settings)
    try:
        yield running
    finally:
        await runner.cleanup()


def variable(component: str, name: str, value: str | None, *, mutability: str = "ReadWrite",
             evse: dict[str, int] | None = None, instance: str | None = None, data_type: str = "string",
             unit: str | None = None) -> dict[str, Any]:
    attribute: dict[str, Any] = {"type": "Actual", "mutability": mutability}
    if value is not None:
        attribute["value"] = value
    comp: dict[str, Any] = {"name": component, **({"evse": evse} if evse else {})}
    chars: dict[str, Any] = {"dataType": data_type, "supportsMonitoring": False, **({"unit": unit} if unit else {})}
    return {"component": comp, "variable": {"name": name, **({"instance": instance} if instance else {})},
            "variableAttribute": [attribute], "variableCharacteristics": chars}


SENT = itertools.count()


async def report(station: AnsweringPost, request_id: int, seq_no: int, data: list[dict[str, Any]],
                 tbc: bool) -> None:
    message_id = f"report-{next(SENT)}"
    await station.ws.send(json.dumps([2, message_id, "NotifyReport", {
        "requestId": request_id, "generatedAt": "2026-12-07T09:00:00Z", "seqNo": seq_no, "tbc": tbc,
        "reportData": data}]))
    answer = await asyncio.wait_for(station._results.get(), 10)
    assert answer == [3, message_id, {}]


def by_name(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int | None], dict[str, Any]]:
    return {(r["component"], r["variable"], r["evse_id"]): r for r in rows}


async def test_a_full_report_in_parts_is_stored_browsed_and_replaces_the_old_model(server201: RunningServer) -> None:
    await server201.add_charge_point("CP-DM")
    async with post(server201, "CP-DM", "2.0.1") as station, \
            httpx.AsyncClient(base_url=server201.url, headers=server201.api_headers(), timeout=15) as client:
        base = "/api/v1/charge-points/CP-DM"
        # an earlier configuration report: one variable the station will not report again
        await report(station, 7, 0, [variable("OCPPCommCtrlr", "RetryBackOffWaitMinimum", "30")], tbc=False)
        refresh = await client.post(f"{base}/device-model/refresh")
        assert refresh.status_code == 200, refresh.text
        request_id = refresh.json()["request_id"]
        assert refresh.json()["command"]["state"] == "answered"
        assert station.received == [("GetBaseReport", {"requestId": request_id, "reportBase": "FullInventory"})]
        await report(station, request_id, 0, [
            variable("OCPPCommCtrlr", "HeartbeatInterval", "300", data_type="integer", unit="s"),
            variable("SecurityCtrlr", "SecurityProfile", "1", mutability="ReadOnly", data_type="integer"),
            variable("SecurityCtrlr", "BasicAuthPassword", "never-stored-password", mutability="WriteOnly"),
        ], tbc=True)
        middle = (await client.get(f"{base}/device-model")).json()
        assert ("OCPPCommCtrlr", "RetryBackOffWaitMinimum", None) in by_name(middle)  # not complete yet
        await report(station, request_id, 1, [
            variable("EVSE", "AvailabilityState", "Available", mutability="ReadOnly", evse={"id": 1}),
            variable("EVSE", "AvailabilityState", "Occupied", mutability="ReadOnly", evse={"id": 2}),
            variable("OCPPCommCtrlr", "HeartbeatInterval", "600", data_type="integer", unit="s"),  # sent again
        ], tbc=False)
        rows = (await client.get(f"{base}/device-model")).json()
        one_evse = (await client.get(f"{base}/device-model", params={"component": "EVSE", "evse_id": 2})).json()
        security = (await client.get(f"{base}/device-model", params={"variable": "SecurityProfile"})).json()
        first = await client.get(f"{base}/device-model", params={"limit": 3})
        second = await client.get(first.links["next"]["url"])
        unknown = await client.get("/api/v1/charge-points/CP-NOBODY/device-model")
        bad = await client.get(f"{base}/device-model", params={"limit": "0"})
        doc = (await client.get("/api/v1/openapi.json")).json()
    schema = doc["paths"]["/api/v1/charge-points/{cp_id}/device-model"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    check(doc, schema, rows)  # the answer is the one the OpenAPI document describes
    model = by_name(rows)
    assert set(model) == {("OCPPCommCtrlr", "HeartbeatInterval", None), ("SecurityCtrlr", "SecurityProfile", None),
                          ("SecurityCtrlr", "BasicAuthPassword", None), ("EVSE", "AvailabilityState", 1),
                          ("EVSE", "AvailabilityState", 2)}  # the variable of report 7 is gone
    heartbeat = model[("OCPPCommCtrlr", "HeartbeatInterval", None)]
    assert heartbeat["value"] == "600" and heartbeat["mutability"] == "ReadWrite" and heartbeat["source"] == "report"
    assert heartbeat["characteristics"]["unit"] == "s" and heartbeat["characteristics"]["data_type"] == "integer"
    assert heartbeat["request_id"] == request_id and heartbeat["attribute_type"] == "Actual"
    assert model[("SecurityCtrlr", "BasicAuthPassword", None)]["value"] is None  # secrets are never kept
    assert [(r["evse_id"], r["value"]) for r in one_evse] == [(2, "Occupied")]
    assert [r["value"] for r in security] == ["1"]
    assert len(first.json()) == 3 and len(second.json()) == 2 and "next" not in second.links
    assert {r["id"] for r in first.json()} | {r["id"] for r in second.json()} == {r["id"] for r in rows}
    assert unknown.status_code == 404 and bad.status_code == 400


async def test_a_partial_report_adds_to_the_model_without_dropping_the_rest(server201: RunningServer) -> None:
    await server201.add_charge_point("CP-DM2")
    async with post(server201, "CP-DM2", "2.0.1") as station, \
            httpx.AsyncClient(base_url=server201.url, headers=server201.api_headers(), timeout=15) as client:
        base = "/api/v1/charge-points/CP-DM2"
        config = await client.post(f"{base}/commands/GetBaseReport",
                                   json={"requestId": 11, "reportBase": "ConfigurationInventory"})
        asked = await client.post(f"{base}/commands/GetReport", json={
            "requestId": 12, "componentVariable": [{"component": {"name": "TxCtrlr"}}]})
        assert config.json()["state"] == asked.json()["state"] == "answered"
        await report(station, 11, 0, [variable("AuthCtrlr", "AuthorizeRemoteStart", "true")], tbc=False)
        await report(station, 12, 0, [variable("TxCtrlr", "EVConnectionTimeOut", "60")], tbc=False)
        await report(station, 11, 0, [variable("AuthCtrlr", "AuthorizeRemoteStart", "false")], tbc=False)  # again
        rows = (await client.get(f"{base}/device-model")).json()
    assert [a for a, _ in station.received] == ["GetBaseReport", "GetReport"]
    assert {(r["variable"], r["value"], r["request_id"]) for r in rows} == {
        ("AuthorizeRemoteStart", "false", 11), ("EVConnectionTimeOut", "60", 12)}


async def test_get_and_set_variables_answers_update_the_stored_values(server201: RunningServer) -> None:
    await server201.add_charge_point("CP-VAR")
    async with post(server201, "CP-VAR", "2.0.1") as station, \
            httpx.AsyncClient(base_url=server201.url, headers=server201.api_headers(), timeout=15) as client:
        base = "/api/v1/charge-points/CP-VAR"
        await report(station, 1, 0, [variable("OCPPCommCtrlr", "HeartbeatInterval", "300", unit="s")], tbc=False)
        interval = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        offline = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}}
        station.replies["GetVariables"] = {"getVariableResult": [
            {"attributeStatus": "Accepted", "attributeValue": "120", **offline},
            {"attributeStatus": "UnknownVariable", **{"component": {"name": "Nope"}, "variable": {"name": "X"}}}]}
        got = await client.post(f"{base}/commands/GetVariables", json={"getVariableData": [
            offline, {"component": {"name": "Nope"}, "variable": {"name": "X"}}]})
        station.replies["SetVariables"] = {"setVariableResult": [
            {"attributeStatus": "Accepted", **interval},
            {"attributeStatus": "Rejected", **offline}]}
        done = await client.post(f"{base}/commands/SetVariables", json={"setVariableData": [
            {"attributeValue": "900", **interval}, {"attributeValue": "5", **offline}]})
        assert got.json()["state"] == done.json()["state"] == "answered"
        await server201.settled()
        rows = (await client.get(f"{base}/device-model")).json()
    model = {r["variable"]: r for r in rows}
    assert set(model) == {"HeartbeatInterval", "OfflineThreshold"}  # nothing for the unknown variable
    assert (model["HeartbeatInterval"]["value"], model["HeartbeatInterval"]["source"]) == ("900", "set")
    assert model["HeartbeatInterval"]["characteristics"]["unit"] == "s"  # what the report said stays
    assert (model["OfflineThreshold"]["value"], model["OfflineThreshold"]["source"]) == ("120", "get")  # not 5


async def test_refresh_is_for_2_0_1_stations_and_operators(server201: RunningServer) -> None:
    await server201.add_charge_point("CP-OLD")
    async with post(server201, "CP-OLD", "1.6") as station, \
            httpx.AsyncClient(base_url=server201.url, headers=server201.api_headers(), timeout=15) as client:
        refused = await client.post("/api/v1/charge-points/CP-OLD/device-model/refresh")
        missing = await client.post("/api/v1/charge-points/CP-NOBODY/device-model/refresh")
        spec = (await client.get("/api/v1/openapi.json")).json()["paths"]
    assert refused.status_code == 409 and refused.json()["title"] == "not-ocpp201" and station.received == []
    assert missing.status_code == 404
    assert set(spec["/api/v1/charge-points/{cp_id}/device-model"]["get"]["x-roles"]) == {"admin", "operator",
                                                                                          "security"}
    assert set(spec["/api/v1/charge-points/{cp_id}/device-model/refresh"]["post"]["x-roles"]) == {"admin",
                                                                                                   "operator"}


async def test_hostile_reports_get_a_call_error_store_nothing_and_the_session_goes_on(
        server201: RunningServer) -> None:
    await server201.add_charge_point("CP-BAD")
    cases = [
        ("NotifyReport", {"requestId": 1, "generatedAt": "2026-12-07T09:00:00Z", "seqNo": 0,
                          "reportData": [variable("C" * 51, "V", "1")]}, "PropertyConstraintViolation"),
        ("NotifyReport", {"requestId": 1, "generatedAt": "2026-12-07T09:00:00Z", "seqNo": 0,
                          "reportData": [variable("C", "V", "a\u0000b")]}, None),
        ("NotifyReport", {"requestId": 1, "generatedAt": "2026-12-07T09:00:00Z",
                          "reportData": [variable("C", "V", "1")]}, "OccurrenceConstraintViolation"),
        ("ReservationStatusUpdate", {"reservationId": 1, "reservationUpdateStatus": "Gone"}, None),
    ]
    async with post(server201, "CP-BAD", "2.0.1") as station, \
            httpx.AsyncClient(base_url=server201.url, headers=server201.api_headers(), timeout=15) as client:
        for n, (action, payload, code) in enumerate(cases):
            await station.ws.send(json.dumps([2, f"bad-{n}", action, payload]))
            answer = await asyncio.wait_for(station._results.get(), 10)
            assert answer[0] == 4 and answer[1] == f"bad-{n}", answer
            assert code is None or answer[2] == code, answer
        await station.ws.send(json.dumps([2, "alive", "Heartbeat", {}]))
        assert (await asyncio.wait_for(station._results.get(), 10))[0] == 3
        rows = (await client.get("/api/v1/charge-points/CP-BAD/device-model")).json()
    assert rows == []
