"""Security profiles 1-3 for charging stations speaking OCPP 2.0.1 (part 2, A00-A02), over real
sockets (ws and wss) on SQLite and PostgreSQL. The rules are 1.6's (tests/integration/
test_security_profiles.py): Basic username equal to the station's identity (A00.FR.203),
a password of 16 to 40 characters (A00.FR.205), TLS for profiles 2 and 3 and a client certificate
whose CN is the identity for 3 (A00.FR.302/403), never a weaker connection than registered
(A00.FR.005). The same gateway code checks both versions, before the subprotocol matters."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest_asyncio

from tests.conftest import basic_auth
from tests.integration.test_security_profiles import Env, Launch, connect, launch, pki, refused

__all__ = ["launch", "pki"]  # fixtures

V201 = ["ocpp2.0.1"]
BOOT = {"chargingStation": {"vendorName": "voltlib", "model": "test"}, "reason": "PowerUp"}


@pytest_asyncio.fixture
async def env(launch: Launch) -> Env:
    return await launch(ocpp_versions=["1.6", "2.0.1"])


async def boot(ws: Any) -> str:
    assert ws.subprotocol == "ocpp2.0.1"
    await ws.send(json.dumps([2, f"boot-{uuid.uuid4().hex[:8]}", "BootNotification", BOOT]))
    reply = json.loads(await ws.recv())
    assert reply[0] == 3, reply
    return str(reply[2]["status"])


async def test_profile_1_basic_auth_with_the_station_id_as_username(env: Env) -> None:
    await env.server.add_charge_point("CS-1", profile=1)
    await env.server.add_charge_point("CS-OTHER", profile=1)
    async with connect(f"{env.ws_url}/CS-1", headers=basic_auth("CS-1"), subprotocols=V201) as ws:
        assert await boot(ws) == "Accepted"
    url = f"{env.ws_url}/CS-1"
    assert await refused(url, headers=basic_auth("CS-1", "wrong-password-but-long"), subprotocols=V201) == 401
    assert await refused(url, headers=basic_auth("CS-OTHER"), subprotocols=V201) == 401  # username is not the id
    assert await refused(url, subprotocols=V201) == 401
    kinds = await env.kinds("CS-1")
    assert kinds.count("auth_failed") == 2 and kinds.count("auth_missing") == 1


async def test_profile_1_password_rules(env: Env) -> None:
    """A00.FR.205: 16 to 40 characters; a station is registered with none shorter or longer."""
    for password, status in (("x" * 15, 422), ("x" * 41, 422), ("p" * 40, 201)):
        response = await env.api("POST", "/api/v1/charge-points", json={
            "id": f"CS-PW{len(password)}", "security_profile": 1, "password": password})
        assert response.status_code == status, response.text
    async with connect(f"{env.ws_url}/CS-PW40", headers=basic_auth("CS-PW40", "p" * 40), subprotocols=V201) as ws:
        assert await boot(ws) == "Accepted"


async def test_profile_2_basic_auth_over_tls_and_no_downgrade(env: Env) -> None:
    await env.server.add_charge_point("CS-2", profile=2)
    async with connect(f"{env.wss_url}/CS-2", headers=basic_auth("CS-2"), tls=env.ssl(), subprotocols=V201) as ws:
        assert await boot(ws) == "Accepted"
    assert await refused(f"{env.ws_url}/CS-2", headers=basic_auth("CS-2"), subprotocols=V201) == 403
    assert await refused(f"{env.wss_url}/CS-2", headers=basic_auth("CS-2", "wrong-password-but-long"),
                         tls=env.ssl(), subprotocols=V201) == 401
    kinds = await env.kinds("CS-2")
    assert "security_profile_downgrade" in kinds and "auth_failed" in kinds


async def test_profile_3_client_certificate_bound_to_the_station(env: Env) -> None:
    await env.server.add_charge_point("CS-3", profile=3)
    async with connect(f"{env.wss_url}/CS-3", tls=env.ssl("CS-3"), subprotocols=V201) as ws:
        assert await boot(ws) == "Accepted"
    url = f"{env.wss_url}/CS-3"
    assert await refused(url, tls=env.ssl(), headers=basic_auth("CS-3"), subprotocols=V201) == 403  # no certificate
    assert await refused(url, tls=env.ssl("CS-9"), subprotocols=V201) == 401  # another station's certificate
    assert await refused(f"{env.ws_url}/CS-3", subprotocols=V201) == 403
    kinds = await env.kinds("CS-3")
    assert kinds.count("security_profile_downgrade") == 2 and kinds.count("certificate_mismatch") == 1


async def test_the_registered_profile_is_not_lowered_without_allow_downgrade(env: Env) -> None:
    await env.server.add_charge_point("CS-D", profile=2)
    response = await env.api("POST", "/api/v1/charge-points/CS-D/security-profile", json={"security_profile": 1})
    assert response.status_code == 409
    assert await refused(f"{env.ws_url}/CS-D", headers=basic_auth("CS-D"), subprotocols=V201) == 403
