"""A walk of every operation of the OpenAPI document over a real server with hostile input
(issue 22): malformed bodies (deep nesting, wrong types, huge strings, not JSON), odd path
parameters and odd query strings. No request may get a 5xx, and every 4xx is an RFC 9457 problem.

The API declares its path parameters in the document; the query parameters it reads are listed
here (``QUERY_PARAMS``) and each is sent with odd values to every GET operation.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.sharing.conftest import CAR_ID, seeded_city
from voltlib.security.credentials import hash_api_token
from voltlib.store import repo

# Every query parameter an API handler reads (grep "request.query" in src/voltlib/api).
QUERY_PARAMS = ["limit", "max", "hours", "rentals_per_day", "transaction_id", "timeout", "near", "date", "month",
                "city", "with", "member", "action", "expected", "charge_point_id", "state", "all", "technician",
                "short", "cursor", "charge_point", "id_tag", "open", "from", "to", "stop_reason", "component",
                "variable", "evse_id", "status", "origin"]
ODD_QUERY_VALUES = ["abc", "-99999999999999999999999", "\x00", "²"]
ODD_QUERY_EVERYWHERE = ["1e999", "nan", "-inf", "", "1.5", "0x10", "٣", "9" * 400, "nan,nan", "1e999,0", "-1", "0"]
ODD_PATH_VALUES = ["0", "-1", "99999999999999999999999", "%00", "%E2%9C%93", "x" * 300, "null", "1.5", "%20", "²"]
DEPTH = 5000
HOSTILE_BODIES: list[bytes] = [
    b"[" * DEPTH + b"]" * DEPTH,
    b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    b"not json", b"", b"\xff\xfe\x00", b"null", b"[]", b'"x"', b"123", b"1e999", b'{"a": NaN}', b"{,}",
    b'{"x": "' + b"a" * 200_000 + b'"}',
    b'{"x": "' + b"a" * 300_000 + b'"}',  # over the body limit
]
ODD_FIELD_VALUES: list[Any] = [None, [], {}, "x" * 10_000, -1, 2**70, -(2**70), 1e308, True, "\u0000", "é✓",
                               "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00"]
DEEP_VALUE = "[" * DEPTH + "]" * DEPTH


def body_properties(doc: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref")
    if ref is not None:
        schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return sorted(schema.get("properties", {})) or ["x"]


def bodies_for(doc: dict[str, Any], operation: dict[str, Any]) -> list[bytes]:
    found = list(HOSTILE_BODIES)
    for name in body_properties(doc, operation):
        found.append(b"{" + json.dumps(name).encode() + b":" + DEEP_VALUE.encode() + b"}")
        found.extend(json.dumps({name: value}).encode() for value in ODD_FIELD_VALUES)
    return found


async def fixtures(server: RunningServer, api: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, str]]:
    """(a plausible value for each path parameter, a token for each role)."""
    await server.add_charge_point("CP-WALK", profile=0)
    await server.add_id_tag("BADGE1")
    signup = await api.post("/api/v1/members", json={
        "city": "paris", "name": "Walker", "email": f"w{uuid.uuid4().hex[:6]}@example.org",
        "licence_number": "L1", "licence_expiry": "2099-01-01T00:00:00Z"})
    assert signup.status_code == 201, signup.text
    technician = "vlt_tech_" + uuid.uuid4().hex
    await server.store.write(partial(repo.add_api_token, name="walk-tech", role="technician",
                                     token_hash=hash_api_token(technician), now=datetime.now(UTC)))
    values = {"cp_id": "CP-WALK", "id_tag": "BADGE1", "action": "Reset", "incident_id": "1", "order_id": "1",
              "member_id": signup.json()["member_id"], "station_id": "st-a", "rental_id": "1", "car_id": CAR_ID,
              "task_id": "1", "transaction_id": "1", "command_id": "1", "request_id": "1",
              "profile_id": "1", "charging_profile_id": "1001",
              "reservation_id": "1", "emaid": "FRVLTC000000017"}
    tokens = {"admin": server.token, "member": signup.json()["token"], "technician": technician}
    return values, tokens


def headers_for(operation: dict[str, Any], tokens: dict[str, str]) -> dict[str, str]:
    roles = operation.get("x-roles") or ["admin"]
    role = "admin" if "admin" in roles else roles[0]
    return {"Authorization": f"Bearer {tokens[role]}"}


def fill(path: str, values: dict[str, str], odd: tuple[str, str] | None = None) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        return odd[1] if odd is not None and odd[0] == name else values[name]

    return re.sub(r"\{(\w+)\}", one, path)


class Walk:
    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self.sent = 0
        self.failures: list[str] = []

    async def send(self, method: str, url: str, headers: dict[str, str], *, body: bytes | None = None,
                   params: dict[str, str] | None = None, declared: frozenset[str] | None = None) -> None:
        """``declared``: the operation's query parameters; a problem naming another one is a failure
        (the handler reads a parameter the document does not declare)."""
        response = await self.api.request(method, url, headers={**headers, "Content-Type": "application/json"},
                                          content=body, params=params)
        self.sent += 1
        what = f"{method} {url[:80]} params={str(params)[:60]} body={(body or b'')[:40]!r}"
        if response.status_code >= 500:
            self.failures.append(f"{response.status_code} {what}: {response.text[:200]}")
        elif response.status_code >= 400:
            kind = response.headers.get("Content-Type", "")
            if not kind.startswith("application/problem+json"):
                self.failures.append(f"{response.status_code} not a problem ({kind}) {what}")
            elif not response.json().get("detail"):
                self.failures.append(f"{response.status_code} problem without detail {what}")
            elif declared is not None and response.json().get("parameter") not in {None, *declared}:
                self.failures.append(f"{response.status_code} reads an undeclared parameter {what}")


# About 5,500 requests; the walk grows with every route, and a loaded 2-core machine took 172 s.
@pytest.mark.timeout(600)
async def test_every_operation_answers_hostile_input_with_a_4xx_problem(server: RunningServer) -> None:
    async with seeded_city(server), httpx.AsyncClient(base_url=server.url, timeout=30) as api:
        doc = (await api.get("/api/v1/openapi.json")).json()
        values, tokens = await fixtures(server, api)
        walk = Walk(api)
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                verb, headers = method.upper(), headers_for(operation, tokens)
                writes = "requestBody" in operation
                url = fill(path, values)
                if writes:
                    for body in bodies_for(doc, operation):
                        await walk.send(verb, url, headers, body=body)
                for name in re.findall(r"\{(\w+)\}", path):
                    for odd in ODD_PATH_VALUES:
                        await walk.send(verb, fill(path, values, (name, odd)), headers, body=b"{}" if writes else None)
                if verb == "GET":
                    declared = frozenset(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
                    for name in QUERY_PARAMS:
                        for odd in ODD_QUERY_VALUES:
                            await walk.send(verb, url, headers, params={name: odd}, declared=declared)
                for odd in ODD_QUERY_EVERYWHERE:  # in two halves: 27 values of 400 digits overflow a request line
                    for half in (QUERY_PARAMS[::2], QUERY_PARAMS[1::2]):
                        await walk.send(verb, url, headers, params=dict.fromkeys(half, odd),
                                        body=b"{}" if writes else None)
    assert walk.sent > 2000
    assert not walk.failures, f"{len(walk.failures)} of {walk.sent} requests:\n" + "\n".join(walk.failures)


async def test_routes_outside_the_document_answer_hostile_input_with_a_4xx(server: RunningServer) -> None:
    """The dashboard's login, its static files, the GBFS feeds and the OCPP endpoint (without an upgrade)."""
    async with seeded_city(server), httpx.AsyncClient(base_url=server.url, timeout=30) as api:
        walk = Walk(api)
        for prefix in ("/dashboard", "/member"):
            for body in [*HOSTILE_BODIES, *(json.dumps({"token": v}).encode() for v in ODD_FIELD_VALUES)]:
                await walk.send("POST", f"{prefix}/login", {}, body=body)
            for odd in ODD_PATH_VALUES:
                await walk.send("GET", f"{prefix}/static/{odd}", {})
        for odd in ODD_PATH_VALUES:
            for path in (f"/gbfs/{odd}/system_information.json", f"/gbfs/paris/{odd}.json", f"/ocpp/{odd}"):
                await walk.send("GET", path, {})
        for odd in ODD_QUERY_EVERYWHERE:
            await walk.send("GET", "/gbfs/manifest.json", {}, params={"limit": odd})
    assert not walk.failures, f"{len(walk.failures)} of {walk.sent} requests:\n" + "\n".join(walk.failures)
