"""OCA OCPP 2.0.1 conformance, CSMS under test: block A, security (part 6, 3.2).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt. The TLS cases
run voltlib's TLS listener with the test PKI of tests/integration/test_security_profiles.py (its
``launch`` and ``pki`` fixtures).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import warnings

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.v201 import call
from websockets.exceptions import InvalidStatus

from tests.conformance.conftest import Api
from tests.conformance_v201.conftest import Station, connect
from tests.conftest import PASSWORD, RunningServer, basic_auth
from tests.integration.test_security_profiles import Env, Launch, launch, pki, refused, tls_event

__all__ = ["launch", "pki"]  # fixtures

CS = "OCTT-CS-201"
V201 = ["ocpp2.0.1"]


async def _refused(server: RunningServer, headers: dict[str, str]) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(f"{server.ws_url}/{CS}", subprotocols=V201,  # type: ignore[list-item]
                                      additional_headers=headers, open_timeout=5):
            pass
    return info.value.response.status_code


async def _kinds(api: Api) -> list[str]:
    return [e["kind"] for e in await api.security_events() if e["charge_point_id"] == CS]


async def test_TC_A_01_Basic_Authentication_Valid_username_password_combination(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS, profile=1)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        detail = await api.charge_point(CS)
    assert (detail["registration"], detail["connected"], detail["connection_ocpp_version"]) == \
        ("Accepted", True, "2.0.1")
    assert [(c["connector_id"], c["status"]) for c in detail["connectors"]] == [(1, "Available"), (2, "Available")]
    assert await _kinds(api) == []


async def test_TC_A_02_Basic_Authentication_Username_does_not_equal_ChargingStationId(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS, profile=1)
    await server.add_charge_point(f"{CS}Invalid", profile=1)  # even an existing station's name is refused
    credentials = base64.b64encode(f"{CS}Invalid:{PASSWORD}".encode()).decode()
    assert await _refused(server, {"Authorization": f"Basic {credentials}"}) == 401
    assert "auth_failed" in await _kinds(api)
    assert (await api.charge_point(CS))["last_boot_at"] is None


async def test_TC_A_03_Basic_Authentication_Invalid_password(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS, profile=1)
    assert await _refused(server, basic_auth(CS, "Zq8rT2xVb6NmK4pLw9Yc")) == 401  # 20 characters, high entropy
    assert await _kinds(api) == ["auth_failed"]
    assert (await api.charge_point(CS))["connected"] is False


async def _boots_over_tls(env: Env, cp_id: str, context: ssl.SSLContext, headers: dict[str, str] | None) -> str:
    async with websockets.connect(f"{env.wss_url}/{cp_id}", subprotocols=V201,  # type: ignore[list-item]
                                  additional_headers=headers, ssl=context, open_timeout=10) as ws:
        station = Station(cp_id, ws)
        reader = asyncio.create_task(station.start())
        try:
            boot = await station.boot()
            if boot.status == "Accepted":
                await station.status(1, "Available")
            return str(boot.status)
        finally:
            reader.cancel()


async def test_TC_A_04_TLS_server_side_certificate_Valid_certificate(launch: Launch) -> None:
    env = await launch(ocpp_versions=["1.6", "2.0.1"])
    await env.server.add_charge_point(CS, profile=2)
    context = env.ssl()  # trusts the CA that issued voltlib's server certificate, and checks its name
    assert await _boots_over_tls(env, CS, context, basic_auth(CS)) == "Accepted"
    assert await env.kinds(CS) == []


async def test_TC_A_06_TLS_server_side_certificate_TLS_version_too_low(launch: Launch) -> None:
    env = await launch(ocpp_versions=["1.6", "2.0.1"])
    await env.server.add_charge_point(CS, profile=2)
    old = env.ssl()
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated: that is the point
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(OSError):  # ssl.SSLError or a reset: the server ends the handshake
        await _boots_over_tls(env, CS, old, basic_auth(CS))
    event = await tls_event(env, "tls_handshake_failed")
    assert (event["source"], event["detail"]["reason"]) == ("127.0.0.1", "UNSUPPORTED_PROTOCOL")
    assert await _boots_over_tls(env, CS, env.ssl(), basic_auth(CS)) == "Accepted"  # TLS 1.2 or higher: served


async def test_TC_A_07_TLS_Client_side_certificate_valid_certificate(launch: Launch) -> None:
    env = await launch(ocpp_versions=["1.6", "2.0.1"])
    await env.server.add_charge_point(CS, profile=3)
    assert await _boots_over_tls(env, CS, env.ssl(CS), None) == "Accepted"
    assert await env.kinds(CS) == []


async def test_TC_A_08_TLS_Client_side_certificate_Invalid_certificate(launch: Launch, pki: object) -> None:
    env = await launch(ocpp_versions=["1.6", "2.0.1"])
    await env.server.add_charge_point(CS, profile=3)
    url = f"{env.wss_url}/{CS}"
    # a certificate from an unknown CA: the handshake fails
    with pytest.raises((ssl.SSLError, OSError, websockets.exceptions.InvalidHandshake,
                        websockets.exceptions.ConnectionClosed)) as info:
        await _boots_over_tls(env, CS, env.ssl(CS, trusted=False), None)
    assert not isinstance(info.value, InvalidStatus)
    # a valid certificate whose commonName is another station's: refused at the upgrade
    assert await refused(url, tls=env.ssl("OCTT-OTHER"), subprotocols=V201) == 401
    assert "certificate_mismatch" in await env.kinds(CS)
    # then the configured certificate: connected and booted
    assert await _boots_over_tls(env, CS, env.ssl(CS), None) == "Accepted"


async def _rotate(server: RunningServer, api: Api, answer: str) -> tuple[dict[str, object], str]:
    """The operator has voltlib send a new BasicAuthPassword; the station answers ``answer``."""
    await server.add_charge_point(CS, profile=1)
    async with connect(server, CS) as cs:
        await cs.booted()
        cs.variables[("SecurityCtrlr", "BasicAuthPassword")] = PASSWORD
        if answer != "Accepted":
            cs.replies["SetVariables"] = lambda set_variable_data, **_: {"setVariableResult": [{
                "attributeStatus": answer, "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"}}]}
        response = await api.http.post(f"/api/v1/charge-points/{CS}/rotate-password")
        assert response.status_code == 200, response.text
    [request] = cs.got("SetVariables")
    [data] = request["set_variable_data"]
    assert (data["component"]["name"], data["variable"]["name"]) == ("SecurityCtrlr", "BasicAuthPassword")
    return response.json(), data["attribute_value"]


async def test_TC_A_09_Update_Charging_Station_Password_for_HTTP_Basic_Authentication_Accepted(
        server: RunningServer, api: Api) -> None:
    result, new_password = await _rotate(server, api, "Accepted")
    assert result["rotated"] is True and 16 <= len(new_password) <= 40
    await server.settled()
    async with connect(server, CS, password=new_password) as cs:
        await cs.booted()
    assert await _refused(server, basic_auth(CS)) == 401  # only the new credentials now
    commands = await api.commands(CS)
    assert new_password not in str(commands)  # the password is stored redacted


async def test_TC_A_10_Update_Charging_Station_Password_for_HTTP_Basic_Authentication_Rejected(
        server: RunningServer, api: Api) -> None:
    result, new_password = await _rotate(server, api, "Rejected")
    assert result["rotated"] is False
    await server.settled()
    async with connect(server, CS) as cs:  # the old password keeps working
        await cs.booted()
    assert await _refused(server, basic_auth(CS, new_password)) == 401
    assert (await api.charge_point(CS))["registration"] == "Accepted"


def _csr(cp_id: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "voltlib"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cp_id)])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


async def _renew(server: RunningServer, api: Api, answer: str) -> Station:
    """Memory state RenewChargingStationCertificate, the station answering CertificateSigned ``answer``."""
    await server.add_charge_point(CS, profile=1)
    async with connect(server, CS) as cs:
        await cs.booted()
        signed: list[str] = []

        async def sign(**_: object) -> None:
            reply = await cs.send(call.SignCertificate(csr=_csr(CS), certificate_type="ChargingStationCertificate"))
            signed.append(reply.status)

        cs.follow_ups["TriggerMessage"] = sign
        cs.replies["CertificateSigned"] = {"status": answer}
        row = await api.command(CS, "TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"})
        await cs.settle()
        await server.settled()
    assert row["response"] == {"status": "Accepted"} and signed == ["Accepted"]
    [chain] = cs.got("CertificateSigned")
    assert chain["certificate_type"] == "ChargingStationCertificate"
    leaf = x509.load_pem_x509_certificate(chain["certificate_chain"].encode())
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CS
    return cs


async def test_TC_A_11_Update_Charging_Station_Certificate_by_request_of_CSMS_Success_Charging_Station_Certificate(
        ca_server: RunningServer, ca_api: Api) -> None:
    await _renew(ca_server, ca_api, "Accepted")
    await ca_server.settled()
    events = {e["kind"]: e for e in await ca_api.security_events() if e["charge_point_id"] == CS}
    assert events["certificate_installed"]["detail"]["certificate_type"] == "ChargingStationCertificate"


async def test_TC_A_14_Update_Charging_Station_Certificate_by_request_of_CSMS_Invalid_certificate(
        ca_server: RunningServer, ca_api: Api) -> None:
    await _renew(ca_server, ca_api, "Rejected")
    await ca_server.settled()
    assert (await ca_api.charge_point(CS))["connected"] is False  # the session ended; nothing else changed
    kinds = [e["kind"] for e in await ca_api.security_events() if e["charge_point_id"] == CS]
    assert "certificate_not_installed" in kinds and "certificate_installed" not in kinds
