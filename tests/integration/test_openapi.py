"""The OpenAPI document describes what the API answers (issue 20, part 6): it passes
openapi-spec-validator, every operation declares its answer's schema and the query parameters the
handlers read, the real answers of a running server (SQLite and PostgreSQL) validate against the
response schemas it declares (the security responses too), and models generated from it
(datamodel-code-generator) drive one flow end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pydantic
import pytest
from openapi_spec_validator import validate

from tests.conftest import PASSWORD, RunningServer
from tests.integration.test_api_walk import QUERY_PARAMS
from tests.integration.test_protocol import BOOT, Client, connect
from tests.integration.test_transactions_api import start, stop
from tests.sharing.conftest import CAR_ID, City, seeded_city
from voltlib.api.paging import MAX_PAGE
from voltlib.security.detectors import Tuning


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def success(op: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(status, response)] = [(s, r) for s, r in op["responses"].items() if s.startswith("2")]
    return status, response


def check(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(instance)


def resolved(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def bare_objects(doc: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of an answer's schema (the answer, an array's items, a union's members) that are
    an object saying nothing of its fields: {"type": "object"} is no description."""
    schema = resolved(doc, schema)
    if schema.get("type") == "array":
        return bare_objects(doc, schema["items"])
    members = schema.get("anyOf", []) + schema.get("oneOf", [])
    if members:
        return [bare for member in members for bare in bare_objects(doc, member)]
    return [schema] if schema.get("type") == "object" and not schema.get("properties") else []


def not_paged_in_the_docs() -> set[str]:
    """The paths docs/operations.md lists under "Not paged" (the bullet, up to its "Nor are")."""
    text = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    bullet = text[text.index("- **Not paged**"):]
    bullet = bullet[:bullet.index("Nor are")]
    return set(re.findall(r"`(/api/v1/[^`]+)`", bullet))


async def test_the_document_is_valid_and_describes_answers_and_parameters(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as api:
        doc = (await api.get("/api/v1/openapi.json")).json()
    validate(doc)  # openapi-spec-validator: OpenAPI 3.1 and its JSON Schema dialect
    described, undescribed = 0, set()
    for method, path, op in operations(doc):
        _, response = success(op)
        assert op["responses"]["4XX"] == {"$ref": "#/components/responses/Problem"}, (method, path)
        if "content" in response:
            described += 1
        else:
            undescribed.add((method, path))
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), (method, path)
        if "headers" in response:  # a paged list
            names = {p["name"] for p in op["parameters"] if p["in"] == "query"}
            assert {"limit", "cursor"} <= names and "Link" in response["headers"], (method, path)
    assert undescribed == set() and described >= 54  # every operation's answer has a schema
    assert "/api/v1/openapi.json" in doc["paths"]  # the document describes itself too
    bare = {(method, path) for method, path, op in operations(doc)
            for media in success(op)[1].get("content", {}).values() if bare_objects(doc, media["schema"])}
    assert bare == set(), bare  # no exception: every answer lists its fields
    unpaged = set()
    for method, path, op in operations(doc):
        query = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        if "limit" in query:  # wherever it is read, limit says its bounds
            assert query["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, (method, path)
        schema = success(op)[1].get("content", {}).get("application/json", {}).get("schema")
        if method != "GET" or schema is None or resolved(doc, schema).get("type") != "array":
            continue
        if "x-unpaged" in op:  # a small list, whole in one answer: it says why
            assert len(op["x-unpaged"]) > 20 and not {"limit", "cursor"} & set(query), (method, path)
            unpaged.add(path)
        else:  # every other list is in cursor pages, the next one in a Link header
            assert {"limit", "cursor"} <= set(query) and "Link" in success(op)[1]["headers"], (method, path)
    assert unpaged == not_paged_in_the_docs() and len(unpaged) == 4  # the code and the docs agree
    thresholds = doc["paths"]["/api/v1/security/thresholds"]
    fields = {f.name for f in dataclasses.fields(Tuning)}
    for method in ("get", "put"):
        answer = resolved(doc, success(thresholds[method])[1]["content"]["application/json"]["schema"])
        assert set(answer["properties"]) == set(answer["required"]) == fields  # every threshold, by name
    change = thresholds["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert change == {"$ref": "#/components/schemas/ThresholdChange"}
    assert set(resolved(doc, change)["properties"]) == fields and not resolved(doc, change).get("required")
    with pytest.raises(jsonschema.ValidationError):  # an unknown name is refused, as the server does
        check(doc, change, {"failed_auth_per_idnetity": 3})
    with pytest.raises(jsonschema.ValidationError):
        check(doc, change, {"reboots": 0})
    check(doc, change, {"reboots": 9, "auth_window": 30.5, "physical_codes": ["door"]})
    problem = doc["components"]["responses"]["Problem"]["content"]["application/problem+json"]["schema"]
    assert doc["components"]["schemas"][problem["$ref"].rsplit("/", 1)[1]]["required"] == [
        "type", "title", "status", "detail"]
    queries = {p["name"] for _, _, op in operations(doc) for p in op.get("parameters", []) if p["in"] == "query"}
    assert set(QUERY_PARAMS) <= queries, set(QUERY_PARAMS) - queries  # every parameter a handler reads
    transactions = doc["paths"]["/api/v1/transactions"]["get"]
    assert {p["name"]: p["schema"] for p in transactions["parameters"]}["from"] == {
        "type": "string", "format": "date-time"}


async def test_real_answers_match_their_schemas(server: RunningServer) -> None:
    await server.add_charge_point("CP-DOC", profile=0)
    await server.add_id_tag("DOC-1")
    async with seeded_city(server), connect(server, "CP-DOC") as cp, \
            httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        await cp.call("BootNotification", BOOT)
        tx = await start(cp, "DOC-1", minute=0)
        await cp.call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [{
            "timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1200", "unit": "Wh"}]}]})
        await cp.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"})
        await stop(cp, tx, 5, "Local")
        member = (await api.post("/api/v1/members", json={
            "city": "paris", "name": "Doc", "email": "doc@example.org", "licence_number": "L1",
            "licence_expiry": "2099-01-01T00:00:00Z"})).json()
        await api.post("/api/v1/security/work-orders", json={
            "technician": "tech", "badge": "DOC-1", "charge_points": ["CP-DOC"], "starts_at": "2026-01-01T00:00:00Z",
            "ends_at": "2026-01-02T00:00:00Z", "purpose": "check"})
        await api.put("/api/v1/id-tags/DOC-2", json={"status": "Blocked", "expiry_date": "2030-01-01T00:00:00Z"})
        doc = (await api.get("/api/v1/openapi.json")).json()
        values = {"cp_id": "CP-DOC", "transaction_id": str(tx), "member_id": member["member_id"], "car_id": CAR_ID,
                  "order_id": "1", "id_tag": "DOC-2", "station_id": "st-a"}
        checked = set()
        for method, path, op in operations(doc):
            status, response = success(op)
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            names = re.findall(r"\{(\w+)\}", path)
            if method != "GET" or schema is None or not set(names) <= set(values):
                continue
            answer = await api.get(re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], path))
            if answer.status_code == 403:  # a member's or a technician's own route
                continue
            assert str(answer.status_code) == status, (path, answer.text)
            check(doc, schema, answer.json())
            checked.add(path)
        city = City(server, api)
        rider = await city.sign_up(1)
        paths = doc["paths"]

        async def answered(method: str, path: str, url: str, headers: dict[str, str], **kwargs: Any) -> Any:
            status, response = success(paths[path][method.lower()])
            answer = await api.request(method, url, headers=headers, **kwargs)
            assert str(answer.status_code) == status, (path, answer.text)
            check(doc, response["content"]["application/json"]["schema"], answer.json())
            return answer.json()

        held = await answered("POST", "/api/v1/me/reservation", "/api/v1/me/reservation", rider.headers(),
                              json={"car_id": CAR_ID})
        await answered("GET", "/api/v1/me/rental", "/api/v1/me/rental", rider.headers())
        hold = held["car_hold"]["reservation_id"]  # car sharing's hold is a reservation (issue 20)
        assert [r["id"] for r in await answered("GET", "/api/v1/reservations", "/api/v1/reservations",
                                                 server.api_headers())] == [hold]
        await answered("GET", "/api/v1/reservations/{reservation_id}", f"/api/v1/reservations/{hold}",
                       server.api_headers())
        await server.add_charge_point("CP-DOC-IDLE", profile=0)  # offline: its reservation Failed, at once
        made = await answered("POST", "/api/v1/charge-points/{cp_id}/reservations",
                              "/api/v1/charge-points/CP-DOC-IDLE/reservations", server.api_headers(),
                              json={"connector_id": 2, "id_tag": "DOC-1"})
        assert made["status"] == "Failed"
        await answered("GET", "/api/v1/rentals/{rental_id}", f"/api/v1/rentals/{held['rental_id']}",
                       server.api_headers())
        assert len(await answered("GET", "/api/v1/rentals", "/api/v1/rentals", server.api_headers())) == 1
        cancelled = await answered("DELETE", "/api/v1/me/reservation", "/api/v1/me/reservation", rider.headers())
        assert cancelled["state"] != held["state"]
        assert len(await answered("GET", "/api/v1/me/rentals", "/api/v1/me/rentals", rider.headers())) == 1
        await answered("PUT", "/api/v1/stations/{station_id}/power-limit", "/api/v1/stations/st-a/power-limit",
                       server.api_headers(), json={"limit_w": 22_000})
        await answered("POST", "/api/v1/vehicles/{car_id}/telematics", f"/api/v1/vehicles/{CAR_ID}/telematics",
                       server.api_headers(), json={"soc_percent": 55.5, "at": "2026-01-01T00:00:00Z"})
        task = await answered("POST", "/api/v1/rebalancing/tasks", "/api/v1/rebalancing/tasks", server.api_headers(),
                              json={"car_id": CAR_ID, "from_station": "st-a", "to_station": "st-b"})
        await answered("GET", "/api/v1/rebalancing/tasks/{task_id}", f"/api/v1/rebalancing/tasks/{task['id']}",
                       server.api_headers())
        await answered("POST", "/api/v1/rebalancing/tasks/{task_id}/transition",
                       f"/api/v1/rebalancing/tasks/{task['id']}/transition", server.api_headers(),
                       json={"action": "cancel"})
        changed = await answered("PUT", "/api/v1/security/thresholds", "/api/v1/security/thresholds",
                                 server.api_headers(), json={"reboots": 9})
        assert changed["reboots"] == 9 and changed["auth_window"] == 600.0
        missing = await api.get("/api/v1/transactions/12345")
        check(doc, {"$ref": "#/components/schemas/ProblemDetails"}, missing.json())
    assert len(checked) >= 25 and {"/api/v1/transactions", "/api/v1/charge-points/{cp_id}",
                                   "/api/v1/charge-points/{cp_id}/meter-values", "/api/v1/invoices",
                                   "/api/v1/rebalancing/forecast", "/api/v1/rebalancing/moves",
                                   "/api/v1/ready", "/api/v1/security/thresholds", "/api/v1/openapi.json",
                                   "/api/v1/stations", "/api/v1/rebalancing/tasks",
                                   "/api/v1/charge-points/{cp_id}/events"} <= checked


async def answer_every_call(cp: Client) -> None:
    """A charge point that accepts whatever voltlib asks (ChangeAvailability, ChangeConfiguration...)."""
    while True:
        frame = await cp.recv()
        if frame[0] == 2:
            await cp.send_raw(json.dumps([3, frame[1], {"status": "Accepted"}]))


async def test_security_responses_answer_their_schemas(server: RunningServer) -> None:
    await server.add_charge_point("CP-SEC")  # profile 1: it has a password to rotate
    async with connect(server, "CP-SEC", password=PASSWORD) as cp, \
            httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=30) as api:
        await cp.call("BootNotification", BOOT)
        await cp.call("SecurityEventNotification", {"type": "SettingSystemTime", "timestamp": "2026-01-01T00:00:00Z"})
        await server.settled()
        doc = (await api.get("/api/v1/openapi.json")).json()
        [incident] = (await api.get("/api/v1/security/incidents")).json()
        answering = asyncio.create_task(answer_every_call(cp))
        try:
            async def answered(path: str, url: str, body: Any = None) -> Any:
                status, response = success(doc["paths"][path]["post"])
                answer = await api.post(url, json=body if body is not None else {})
                assert str(answer.status_code) == status, (path, answer.text)
                check(doc, response["content"]["application/json"]["schema"], answer.json())
                return answer.json()

            cp_path, incident_path = "/api/v1/charge-points/{cp_id}", "/api/v1/security/incidents/{incident_id}"
            started = await answered(f"{cp_path}/quarantine", "/api/v1/charge-points/CP-SEC/quarantine",
                                     {"reason": "door forced"})
            assert (started["action"], started["new"], started["change_availability"]) == (
                "quarantine", True, "Accepted")
            released = await answered(f"{cp_path}/release", "/api/v1/charge-points/CP-SEC/release")
            assert (released["action"], released["quarantined"]) == ("release", False)
            rotated = await answered(f"{cp_path}/rotate-credentials", "/api/v1/charge-points/CP-SEC/rotate-credentials")
            assert rotated == {"action": "rotate_credentials", "charge_point_id": "CP-SEC", "status": "Accepted"}
            password = await answered(f"{cp_path}/rotate-password", "/api/v1/charge-points/CP-SEC/rotate-password")
            assert (password["rotated"], password["state"], password["action"]) == (True, "answered",
                                                                                     "ChangeConfiguration")
            blocked = await answered("/api/v1/badges/{id_tag}/block", "/api/v1/badges/SEC-LOST/block",
                                     {"reason": "stolen"})
            assert (blocked["action"], blocked["previous_status"], blocked["reason"]) == ("block_badge", None, "stolen")
            url = f"/api/v1/security/incidents/{incident['id']}"
            acknowledged = await answered(f"{incident_path}/lifecycle", f"{url}/lifecycle", {"action": "acknowledge"})
            assert acknowledged["state"] == "acknowledged" and acknowledged["alerts"]
            responses = [await answered(f"{incident_path}/respond", f"{url}/respond", order) for order in (
                {"action": "quarantine"}, {"action": "release"}, {"action": "block_badge", "id_tag": "SEC-LOST"})]
            assert [(r["action"], r.get("charge_point_id", r.get("id_tag"))) for r in responses] == [
                ("quarantine", "CP-SEC"), ("release", "CP-SEC"), ("block_badge", "SEC-LOST")]
            assert responses[2]["previous_status"] == "Blocked"
            schema = success(doc["paths"][f"{incident_path}/respond"]["post"])[1]["content"]["application/json"]
            with pytest.raises(jsonschema.ValidationError):  # the union tells the four answers apart
                check(doc, schema["schema"], {**responses[2], "action": "quarantine"})
        finally:
            answering.cancel()


def operation(doc: dict[str, Any], operation_id: str, **path: str) -> tuple[str, str]:
    """(method, URL) of the operation the document names ``operation_id``, its path filled in."""
    for method, template, op in operations(doc):
        if op["operationId"] == operation_id:
            return method, re.sub(r"\{(\w+)\}", lambda match: path[match.group(1)], template)
    raise KeyError(operation_id)


def generated_models(doc_text: str, where: Path) -> Any:
    """The document's schemas as pydantic models, written by datamodel-code-generator and imported."""
    from datamodel_code_generator import DataModelType, InputFileType, generate
    from datamodel_code_generator.format import Formatter

    target = where / "voltlib_client_models.py"
    generate(doc_text, input_file_type=InputFileType.OpenAPI, output=target,
             output_model_type=DataModelType.PydanticV2BaseModel, formatters=[Formatter.BUILTIN])
    spec = importlib.util.spec_from_file_location("voltlib_client_models", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the forward references through it
    spec.loader.exec_module(module)
    return module


async def test_a_client_generated_from_the_document_closes_a_transaction(server: RunningServer,
                                                                        tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        text = (await api.get("/api/v1/openapi.json")).text
        doc = json.loads(text)
        client = await asyncio.to_thread(generated_models, text, tmp_path)

        async def call(operation_id: str, answer: Any, body: Any = None, params: Any = None, **path: str) -> Any:
            method, url = operation(doc, operation_id, **path)
            content = None if body is None else body.model_dump_json(exclude_unset=True)
            response = await api.request(method, url, content=content, params=params,
                                         headers={"Content-Type": "application/json"})
            if response.status_code >= 400:
                return client.ProblemDetails.model_validate_json(response.content)
            return pydantic.TypeAdapter(answer).validate_json(response.content)

        created = await call("post_charge_points", client.NewChargePointRow,
                             client.NewChargePoint(id="CP-GEN", security_profile=0))
        assert created.id == "CP-GEN" and created.connectors == []
        tag = await call("put_id_tags_id_tag", client.IdTagSet, client.IdTagChange(status="Accepted"), id_tag="GEN-1")
        assert tag.status == "Accepted"
        async with connect(server, "CP-GEN") as cp:
            await cp.call("BootNotification", BOOT)
            tx = await start(cp, "GEN-1", minute=0, meter=500)
        running = await call("get_transactions", list[client.Transaction], params={"open": "true"})
        assert [t.id for t in running] == [tx] and running[0].stopped_at is None
        closed = await call("post_transactions_transaction_id_close", client.Transaction,
                            client.TransactionClose(reason="generated client", meter_stop=900),
                            transaction_id=str(tx))
        assert (closed.meter_stop, closed.closed_by is not None) == (900, True)
        again = await call("get_transactions_transaction_id", client.Transaction, transaction_id=str(tx))
        assert again == closed
        problem = await call("get_transactions_transaction_id", client.Transaction, transaction_id="7")
        assert isinstance(problem, client.ProblemDetails) and problem.status == 404
