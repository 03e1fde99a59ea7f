"""Security profiles 1-3 for charging stations speaking OCPP 2.0.1 (part 2, A00-A02), over real
sockets (ws and wss) on SQLite and PostgreSQL. The rules are 1.6's (tests/integration/
test_security_profiles.py): Basic username equal to the station's identity (A00.FR.203),
a password of 16 to 40 characters (A00.FR.205), TLS for profiles 2 and 3 and a client certificate
whose CN is the identity for 3 (A00.FR.302/403), never a weaker connection than registered
(A00.FR.005). The same gateway code checks both versions, before the subprotocol matters."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest_asyncio

from tests.conftest import basic_auth
from tests.integration.test_command_port import AnsweringPost
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


# -- raising the profile over OCPP 2.0.1 (A05) ----------------------------------------------------


@asynccontextmanager
async def answering(url: str, **kwargs: Any) -> AsyncIterator[AnsweringPost]:
    """A 2.0.1 station, booted, that answers each call with the reply its test set."""
    async with connect(url, subprotocols=V201, **kwargs) as ws:
        assert await boot(ws) == "Accepted"
        station = AnsweringPost(ws, "2.0.1")
        reader = asyncio.get_running_loop().create_task(station.run())
        try:
            yield station
        finally:
            reader.cancel()


def accepted(component: str, variable: str) -> dict[str, Any]:
    return {"setVariableResult": [{"attributeStatus": "Accepted", "component": {"name": component},
                                   "variable": {"name": variable}}]}


def network_profile(env: Env, security_profile: int) -> dict[str, Any]:
    return {"configurationSlot": 1, "connectionData": {
        "ocppCsmsUrl": env.wss_url, "ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppInterface": "Wired0",
        "messageTimeout": 30, "securityProfile": security_profile}}


async def test_TC_A_19_upgrade_to_profile_2_with_a_network_profile_and_a_reset(env: Env) -> None:
    """A05 as 2.0.1 specifies it (TC_A_19_CSMS): SetNetworkProfile with the higher profile in a new
    slot, SetVariables NetworkConfigurationPriority putting that slot first, the operator raises the
    stored profile, Reset; the station comes back over TLS and the weaker connection is refused."""
    await env.server.add_charge_point("CS-UP", profile=1)
    base = "/api/v1/charge-points/CS-UP"
    async with answering(f"{env.ws_url}/CS-UP", headers=basic_auth("CS-UP")) as station:
        lower = await env.api("POST", f"{base}/commands/SetNetworkProfile", json=network_profile(env, 0))
        assert lower.status_code == 422 and lower.json()["title"] == "security-profile-downgrade"
        slot = await env.api("POST", f"{base}/commands/SetNetworkProfile", json=network_profile(env, 2))
        assert slot.status_code == 200 and slot.json()["response"] == {"status": "Accepted"}
        station.replies["SetVariables"] = accepted("OCPPCommCtrlr", "NetworkConfigurationPriority")
        priority = await env.api("POST", f"{base}/commands/SetVariables", json={"setVariableData": [{
            "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "NetworkConfigurationPriority"},
            "attributeValue": "1,0"}]})
        assert priority.json()["response"]["setVariableResult"][0]["attributeStatus"] == "Accepted"
        raised = await env.api("POST", f"{base}/security-profile", json={"security_profile": 2})
        assert raised.status_code == 200 and raised.json()["security_profile"] == 2
        reset = await env.api("POST", f"{base}/commands/Reset", json={"type": "OnIdle"})
        assert reset.json()["response"] == {"status": "Accepted"}
    assert [action for action, _ in station.received] == ["SetNetworkProfile", "SetVariables", "Reset"]
    async with connect(f"{env.wss_url}/CS-UP", headers=basic_auth("CS-UP"), tls=env.ssl(), subprotocols=V201) as ws:
        assert await boot(ws) == "Accepted"
    assert await refused(f"{env.ws_url}/CS-UP", headers=basic_auth("CS-UP"), subprotocols=V201) == 403
    await env.server.settled()
    model = (await env.api("GET", f"{base}/device-model", params={"variable": "NetworkConfigurationPriority"})).json()
    assert [row["value"] for row in model] == ["1,0"]  # the device model followed the answer
    kinds = await env.kinds("CS-UP")
    assert "security_profile_changed" in kinds and "security_profile_downgrade" in kinds


async def test_upgrade_to_profile_3_with_security_ctrlr_security_profile_and_a_reset(env: Env) -> None:
    """Stations that let SecurityCtrlr.SecurityProfile be written: SetVariables with the higher
    profile (a lower or equal one is refused before anything is sent), Reset, and the station comes
    back with its client certificate; Basic auth alone no longer does."""
    await env.server.add_charge_point("CS-UP3", profile=2)
    certificate = env.pki.charge_point("CS-UP3")
    base = "/api/v1/charge-points/CS-UP3"

    def security_profile(value: str) -> dict[str, Any]:
        return {"setVariableData": [{"component": {"name": "SecurityCtrlr"}, "variable": {"name": "SecurityProfile"},
                                     "attributeValue": value}]}

    async with answering(f"{env.wss_url}/CS-UP3", headers=basic_auth("CS-UP3"), tls=env.ssl()) as station:
        same = await env.api("POST", f"{base}/commands/SetVariables", json=security_profile("2"))
        assert same.status_code == 422 and same.json()["title"] == "security-profile-downgrade"
        station.replies["SetVariables"] = accepted("SecurityCtrlr", "SecurityProfile")
        up = await env.api("POST", f"{base}/commands/SetVariables", json=security_profile("3"))
        assert up.json()["response"]["setVariableResult"][0]["attributeStatus"] == "Accepted"
        raised = await env.api("POST", f"{base}/security-profile",
                               json={"security_profile": 3, "certificate_fingerprint": certificate.fingerprint})
        assert raised.status_code == 200
        assert (await env.api("POST", f"{base}/commands/Reset", json={"type": "Immediate"})).json()["state"] == \
            "answered"
    assert [action for action, _ in station.received] == ["SetVariables", "Reset"]
    async with connect(f"{env.wss_url}/CS-UP3", tls=env.pki.client_context(certificate), subprotocols=V201) as ws:
        assert await boot(ws) == "Accepted"
    assert await refused(f"{env.wss_url}/CS-UP3", headers=basic_auth("CS-UP3"), tls=env.ssl(),
                         subprotocols=V201) == 403
