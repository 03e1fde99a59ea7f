"""HTTP API: OpenAPI document, authentication, roles, problem details, registration."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import httpx

from tests.conftest import RunningServer
from voltlib.security.credentials import hash_api_token
from voltlib.store import repo


async def test_openapi_lists_every_route_with_its_security(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as api:
        spec = (await api.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    assert "/api/v1/charge-points/{cp_id}/commands/{action}" in paths
    post_cp = paths["/api/v1/charge-points"]["post"]
    schema_ref = post_cp["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref.split("/")[-1] in spec["components"]["schemas"]
    assert post_cp["security"] == [{"bearer": []}]
    assert "security" not in paths["/api/v1/health"]["get"]


async def test_roles_limit_what_a_token_may_do(server: RunningServer) -> None:
    now = datetime.now(UTC)
    await server.store.write(partial(repo.add_api_token, name="sec", role="security",
                                     token_hash=hash_api_token("vlt_security_token"), now=now))
    await server.store.write(partial(repo.add_api_token, name="op", role="operator",
                                     token_hash=hash_api_token("vlt_operator_token"), now=now))
    security = {"Authorization": "Bearer vlt_security_token"}
    operator = {"Authorization": "Bearer vlt_operator_token"}
    async with httpx.AsyncClient(base_url=server.url) as api:
        assert (await api.get("/api/v1/security-events", headers=security)).status_code == 200
        assert (await api.get("/api/v1/security-events", headers=operator)).status_code == 403
        created = await api.post("/api/v1/charge-points", headers=security, json={"id": "X", "security_profile": 0})
        assert created.status_code == 403
        assert created.json()["title"] == "forbidden"
        assert (await api.get("/api/v1/charge-points", headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_registering_a_charge_point_validates_input(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        weak = await api.post("/api/v1/charge-points", json={"id": "CP-W", "security_profile": 1, "password": "x"})
        assert weak.status_code == 422 and weak.headers["content-type"].startswith("application/problem+json")
        bad_id = await api.post("/api/v1/charge-points", json={"id": "has space", "security_profile": 0})
        assert bad_id.status_code == 422
        wrong_type = await api.post("/api/v1/charge-points", json={"id": "CP-T", "security_profile": "one"})
        assert wrong_type.status_code == 422
        ok = await api.post("/api/v1/charge-points", json={"id": "CP-OK", "security_profile": 1,
                                                           "password": "sixteen-bytes-long"})
        assert ok.status_code == 201 and "password_hash" not in ok.json()
        again = await api.post("/api/v1/charge-points", json={"id": "CP-OK", "security_profile": 0})
        assert again.status_code == 409
        huge = await api.post("/api/v1/charge-points", content=b"x" * 300_000)
        assert huge.status_code == 413
        tag = await api.put("/api/v1/id-tags/TOO-LONG-EVEN-FOR-A-2-0-1-ID-TOKEN-VALUE", json={})
        assert tag.status_code == 422
        assert (await api.put("/api/v1/id-tags/BADGE-1", json={"status": "Blocked"})).status_code == 200
        tags = (await api.get("/api/v1/id-tags")).json()
        assert [(t["id_tag"], t["status"]) for t in tags] == [("BADGE-1", "Blocked")]


async def test_bus_stats_show_each_consumer_to_operators_only(server: RunningServer) -> None:
    now = datetime.now(UTC)
    await server.store.write(partial(repo.add_api_token, name="op", role="operator",
                                     token_hash=hash_api_token("vlt_operator_token"), now=now))
    async with httpx.AsyncClient(base_url=server.url) as api:
        assert (await api.get("/api/v1/bus")).status_code == 401
        body = (await api.get("/api/v1/bus", headers={"Authorization": "Bearer vlt_operator_token"})).json()
    consumers = {c["name"]: c for c in body["consumers"]}
    assert consumers["security"]["kind"] == "subscriber"
    assert consumers["gbfs-cache"]["kind"] == consumers["dashboard-live"]["kind"] == "watcher"
    assert all(c["failures"] == 0 and c["queued"] >= 0 for c in consumers.values())
