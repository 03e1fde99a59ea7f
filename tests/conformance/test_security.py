"""OCA OCPP 1.6 conformance, central system under test: the security whitepaper (edition 3) and
the OCPP-J connection itself. TLS cases (TC_083, TC_086, TC_087) are covered in
tests/integration/test_security_profiles.py, which runs voltlib's TLS listener with its own PKI."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from ocpp.v16 import call, call_result

from tests.conformance.conftest import Api, Station, bring_online, connect, now_iso, parse_ts, wait_until
from tests.conftest import PASSWORD, RunningServer, basic_auth, free_port, start_server
from voltlib.config import Settings
from voltlib.store import repo

CP = "OCTT-CP"


def _certificate(common_name: str, *, issuer: tuple[x509.Certificate, Any] | None = None,
                 ca: bool = False) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1()) if issuer or not ca else rsa.generate_private_key(65537, 2048)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OCTT"),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    start = parse_ts(now_iso(timedelta(days=-1)))
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))
    return cert, key


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _hash_data(root: x509.Certificate) -> dict[str, str]:
    """CertificateHashDataType of the whitepaper for a self-signed RSA root: SHA-256 of the issuer's
    DER-encoded name and of its public key bits, and the serial number in hexadecimal."""
    key_bits = root.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return {"hashAlgorithm": "SHA256", "issuerNameHash": hashlib.sha256(root.issuer.public_bytes()).hexdigest(),
            "issuerKeyHash": hashlib.sha256(key_bits).hexdigest(), "serialNumber": format(root.serial_number, "x")}


async def _install(server: RunningServer, api: Api, certificate_type: str) -> None:
    await server.add_charge_point(CP)
    root, _ = _certificate(f"OCTT {certificate_type}", ca=True)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        row = await api.command(CP, "InstallCertificate", {"certificateType": certificate_type,
                                                           "certificate": _pem(root)})
    got = cp.got("InstallCertificate")[0]
    assert got["certificate_type"] == certificate_type
    assert x509.load_pem_x509_certificate(got["certificate"].encode()) == root
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})


async def test_TC_075_1_InstallManufacturerRootCertificate(server: RunningServer, api: Api) -> None:
    await _install(server, api, "ManufacturerRootCertificate")


async def test_TC_075_2_InstallCentralSystemRootCertificate(server: RunningServer, api: Api) -> None:
    await _install(server, api, "CentralSystemRootCertificate")


async def test_TC_076_DeleteSpecificInstalledCertificate(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    installed = [_certificate(f"OCTT CSMS root {i}", ca=True)[0] for i in (1, 2)]
    async with connect(server, CP) as cp:
        await bring_online(cp)
        hashes_ = [_hash_data(c) for c in installed]

        def list_ids(certificate_type: str) -> call_result.GetInstalledCertificateIds:
            return call_result.GetInstalledCertificateIds(status="Accepted", certificate_hash_data=list(hashes_))

        def delete(certificate_hash_data: dict[str, str]) -> call_result.DeleteCertificate:
            wire = {"hashAlgorithm": certificate_hash_data["hash_algorithm"],
                    "issuerNameHash": certificate_hash_data["issuer_name_hash"],
                    "issuerKeyHash": certificate_hash_data["issuer_key_hash"],
                    "serialNumber": certificate_hash_data["serial_number"]}
            if wire not in hashes_:
                return call_result.DeleteCertificate(status="NotFound")
            hashes_.remove(wire)
            return call_result.DeleteCertificate(status="Accepted")

        cp.replies["GetInstalledCertificateIds"] = list_ids
        cp.replies["DeleteCertificate"] = delete
        listed = await api.command(CP, "GetInstalledCertificateIds",
                                   {"certificateType": "CentralSystemRootCertificate"})
        target = listed["response"]["certificateHashData"][1]
        deleted = await api.command(CP, "DeleteCertificate", {"certificateHashData": target})
        again = await api.command(CP, "GetInstalledCertificateIds",
                                  {"certificateType": "CentralSystemRootCertificate"})
    assert listed["response"]["status"] == "Accepted" and len(listed["response"]["certificateHashData"]) == 2
    assert cp.got("DeleteCertificate")[0]["certificate_hash_data"]["serial_number"] == target["serialNumber"]
    assert (deleted["state"], deleted["response"]) == ("answered", {"status": "Accepted"})
    assert again["response"]["certificateHashData"] == [_hash_data(installed[0])]


async def test_TC_079_GetSecurityLog(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    location = "https://logs.example.com/octt/upload"
    async with connect(server, CP) as cp:
        await bring_online(cp)

        async def upload(request_id: int, **_: object) -> None:
            await cp.send(call.LogStatusNotification(status="Uploading", request_id=request_id))
            await cp.send(call.LogStatusNotification(status="Uploaded", request_id=request_id))

        cp.replies["GetLog"] = call_result.GetLog(status="Accepted", filename="security-octt.log")
        cp.follow_ups["GetLog"] = upload
        row = await api.command(CP, "GetLog", {"logType": "SecurityLog", "requestId": 79, "retries": 1,
                                               "log": {"remoteLocation": location,
                                                       "oldestTimestamp": now_iso(timedelta(days=-7))}})
        await cp.settle()
    got = cp.got("GetLog")[0]
    assert (got["log_type"], got["request_id"], got["log"]["remote_location"]) == ("SecurityLog", 79, location)
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted", "filename": "security-octt.log"})
    assert (await api.charge_point(CP))["log_status"] == "Uploaded"


FIRMWARE = b"\x7fELF voltlib OCTT firmware 2.1 " * 64


MANUFACTURER_ROOT = _certificate("OCTT Manufacturer Root", ca=True)


@pytest_asyncio.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The conformance server, trusting MANUFACTURER_ROOT for signed firmware (firmware_signer_roots)."""
    roots = tmp_path / "manufacturer-roots.pem"
    roots.write_text(_pem(MANUFACTURER_ROOT[0]))
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        duplicate_probe_timeout=1.0, firmware_signer_roots=roots)
    runner, running = await start_server(settings)
    try:
        yield running
    finally:
        await runner.cleanup()


def _signed_firmware(tamper: bool, root: tuple[x509.Certificate, Any] = MANUFACTURER_ROOT) -> dict[str, Any]:
    """The manufacturer signs the firmware; the operator hands voltlib location, certificate and signature."""
    signer, signer_key = _certificate("OCTT Firmware Signer", issuer=root)
    signature = signer_key.sign(FIRMWARE + (b"tampered" if tamper else b""), ec.ECDSA(hashes.SHA256()))
    return {"location": "https://firmware.example.com/octt/cp-2.1.bin", "retrieveDateTime": now_iso(),
            "signingCertificate": _pem(signer), "signature": base64.b64encode(signature).decode()}


def _firmware_station(cp: Station) -> None:
    """A station that downloads FIRMWARE and checks its signature before installing (whitepaper L01/L02)."""

    async def update(request_id: int, firmware: dict[str, Any], **_: object) -> None:
        async def status(value: str) -> None:
            await cp.send(call.SignedFirmwareStatusNotification(status=value, request_id=request_id))

        await status("Downloading")
        await status("Downloaded")
        signer = x509.load_pem_x509_certificate(firmware["signing_certificate"].encode())
        try:
            signer.public_key().verify(base64.b64decode(firmware["signature"]), FIRMWARE, ec.ECDSA(hashes.SHA256()))
        except Exception:  # noqa: BLE001 - cryptography raises InvalidSignature
            await status("InvalidSignature")
            await cp.send(call.SecurityEventNotification(type="InvalidFirmwareSignature", timestamp=now_iso(),
                                                         tech_info=f"requestId {request_id}"))
            return
        await status("SignatureVerified")
        await status("Installing")
        await status("Installed")
        await cp.send(call.SecurityEventNotification(type="FirmwareUpdated", timestamp=now_iso(),
                                                     tech_info="firmware 2.1 installed"))

    cp.follow_ups["SignedUpdateFirmware"] = update


async def _secure_update(server: RunningServer, api: Api, tamper: bool) -> tuple[Station, dict[str, Any]]:
    await server.add_charge_point(CP)
    firmware = _signed_firmware(tamper)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        _firmware_station(cp)
        row = await api.command(CP, "SignedUpdateFirmware", {"requestId": 80, "retries": 1, "retryInterval": 60,
                                                             "firmware": firmware})
        await cp.settle()
    got = cp.got("SignedUpdateFirmware")[0]
    assert got["firmware"]["signature"] == firmware["signature"]
    assert got["firmware"]["signing_certificate"] == firmware["signingCertificate"]
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})
    return cp, row


async def test_TC_080_SecureFirmwareUpdate(server: RunningServer, api: Api) -> None:
    await _secure_update(server, api, tamper=False)
    assert (await api.charge_point(CP))["firmware_status"] == "Installed"
    events = [e for e in await api.security_events() if e["charge_point_id"] == CP]
    assert ("charge_point:FirmwareUpdated", "info") in [(e["kind"], e["severity"]) for e in events]


async def test_TC_080_a_signer_outside_the_manufacturer_roots_never_reaches_the_charge_point(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    impostor = _signed_firmware(False, root=_certificate("OCTT Manufacturer Root", ca=True))  # same name, other key
    garbage = {**_signed_firmware(False), "signingCertificate": "-----BEGIN CERTIFICATE-----\nnot one"}
    async with connect(server, CP) as cp:
        await bring_online(cp)
        _firmware_station(cp)
        for firmware, code in ((impostor, "untrusted-firmware-signer"), (garbage, "invalid-signing-certificate")):
            response = await api.http.post(f"/api/v1/charge-points/{CP}/commands/SignedUpdateFirmware",
                                           json={"requestId": 80, "retries": 1, "firmware": firmware})
            assert response.status_code == 422 and response.json()["title"] == code, response.text
        await cp.settle()
    assert cp.got("SignedUpdateFirmware") == []
    assert await api.commands(CP) == []  # refused before anything was sent or recorded


async def test_TC_081_SecureFirmwareUpdateInvalidSignature(server: RunningServer, api: Api) -> None:
    await _secure_update(server, api, tamper=True)
    assert (await api.charge_point(CP))["firmware_status"] == "InvalidSignature"
    events = [e for e in await api.security_events() if e["charge_point_id"] == CP]
    assert ("charge_point:InvalidFirmwareSignature", "critical") in [(e["kind"], e["severity"]) for e in events]


async def test_TC_073_UpdateChargePointPasswordForHttpBasicAuth(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP, profile=1)
    outcome: dict[str, Any] = {}
    async with connect(server, CP) as cp:
        await bring_online(cp)

        def change(key: str, value: str) -> call_result.ChangeConfiguration:
            outcome["key"] = value  # AuthorizationKey: 20 bytes as 40 hexadecimal digits
            return call_result.ChangeConfiguration(status="Accepted")

        async def reconnect(key: str, value: str) -> None:
            # whitepaper A01 steps 3-4: right after answering, disconnect and connect with the new password
            await cp._connection.close()
            try:
                async with connect(server, CP, password=value) as again:
                    await bring_online(again)
                    outcome["reconnected"] = True
            except websockets.InvalidStatus as exc:
                outcome["reconnected"] = exc.response.status_code

        cp.replies["ChangeConfiguration"] = change
        cp.follow_ups["ChangeConfiguration"] = reconnect
        response = await api.http.post(f"/api/v1/charge-points/{CP}/rotate-password")
        assert response.status_code == 200, response.text
        row = response.json()
        await cp.settle()
    key = outcome["key"]
    assert cp.got("ChangeConfiguration")[0]["key"] == "AuthorizationKey"
    assert len(key) == 40 and len(bytes.fromhex(key)) == 20
    assert row["state"] == "answered" and row["response"] == {"status": "Accepted"}
    assert outcome["reconnected"] is True
    # A01.FR.09: the new password appears in no stored command
    assert key not in str(await api.commands(CP))
    # the old password is refused from now on (A01.FR.03)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(server, CP, password=PASSWORD):
            pass
    assert refused.value.response.status_code == 401


@pytest_asyncio.fixture
async def ca_server(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[RunningServer, x509.Certificate]]:
    """voltlib with a charge-point CA configured, so SignCertificate can be Accepted."""
    ca_cert, ca_key = _certificate("voltlib test CA", ca=True)
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.key").write_bytes(ca_key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        ca_cert=tmp_path / "ca.pem", ca_key=tmp_path / "ca.key", cpo_name="OCTT")
    runner, running = await start_server(settings)
    try:
        yield running, ca_cert
    finally:
        await runner.cleanup()


def _csr(cp_id: str, key: Any, organization: str = "OCTT") -> str:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                                    x509.NameAttribute(NameOID.COMMON_NAME, cp_id)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def test_TC_074_SignCertificateRequestAccepted_RSA_and_ECDSA(
        ca_server: tuple[RunningServer, x509.Certificate]) -> None:
    server, ca_cert = ca_server
    await server.add_charge_point(CP)
    keys = [rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())]
    async with connect(server, CP) as cp:
        await bring_online(cp)
        for key in keys:
            answer = await cp.send(call.SignCertificate(csr=_csr(CP, key)))
            assert answer.status == "Accepted"

        async def installed() -> bool:  # the CertificateSigned answers are processed after they are sent
            rows = await server.store.read(partial(repo.list_csrs, cp_id=CP))
            return [row["state"] for row in rows] == ["installed", "installed"]

        await wait_until(installed)
    for key, payload in zip(keys, cp.got("CertificateSigned"), strict=True):
        chain = x509.load_pem_x509_certificates(payload["certificate_chain"].encode())
        leaf = chain[0]
        assert chain[1] == ca_cert
        leaf.verify_directly_issued_by(ca_cert)  # raises unless the CA's key signed it
        assert leaf.public_key() == key.public_key()
        assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CP
        assert leaf.signature_hash_algorithm is not None and leaf.signature_hash_algorithm.name == "sha256"


@pytest.mark.parametrize("case", ["wrong-cn", "wrong-o", "weak-rsa", "garbage"])
async def test_TC_074_bad_csr_is_rejected_and_nothing_is_signed(
        ca_server: tuple[RunningServer, x509.Certificate], case: str) -> None:
    server, _ = ca_server
    await server.add_charge_point(CP)
    csr = {"wrong-cn": lambda: _csr("SOMEONE-ELSE", ec.generate_private_key(ec.SECP256R1())),
           "wrong-o": lambda: _csr(CP, ec.generate_private_key(ec.SECP256R1()), organization="Intruder"),
           "weak-rsa": lambda: _csr(CP, rsa.generate_private_key(65537, 1024)),
           "garbage": lambda: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}[case]()
    async with connect(server, CP) as cp:
        await bring_online(cp)
        answer = await cp.send(call.SignCertificate(csr=csr))
        assert answer.status == "Rejected"
        await cp.send(call.Heartbeat())
        assert cp.got("CertificateSigned") == []
    rows = await server.store.read(partial(repo.list_csrs, cp_id=CP))
    assert [row["state"] for row in rows] == ["rejected"]
    events = await server.store.read(repo.list_security_events)
    assert any(e["kind"] == "csr_rejected" and e["charge_point_id"] == CP for e in events)


async def test_TC_077_InvalidChargePointCertificateSecurityEvent(
        ca_server: tuple[RunningServer, x509.Certificate]) -> None:
    """The charge point finds the signed certificate invalid (A02.FR.07): it answers Rejected and
    reports InvalidChargePointCertificate; voltlib records both and does not move the pin."""
    server, _ = ca_server
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        cp.replies["CertificateSigned"] = call_result.CertificateSigned(status="Rejected")

        async def report(**_: Any) -> None:
            await cp.send(call.SecurityEventNotification(type="InvalidChargePointCertificate", timestamp=now_iso(),
                                                         tech_info="signature check failed"))

        cp.follow_ups["CertificateSigned"] = report
        answer = await cp.send(call.SignCertificate(csr=_csr(CP, ec.generate_private_key(ec.SECP256R1()))))
        assert answer.status == "Accepted"

        async def reported() -> bool:
            kinds = {e["kind"] for e in await server.store.read(repo.list_security_events)}
            return {"certificate_not_installed", "charge_point:InvalidChargePointCertificate"} <= kinds

        await wait_until(reported)
        await cp.settle()
    events = await server.store.read(repo.list_security_events)
    reported_event = next(e for e in events if e["kind"] == "charge_point:InvalidChargePointCertificate")
    assert reported_event["severity"] == "critical"
    assert [row["state"] for row in await server.store.read(partial(repo.list_csrs, cp_id=CP))] == ["not_installed"]


async def test_TC_078_InvalidCentralSystemCertificateSecurityEvent(server: RunningServer) -> None:
    """A charge point that refused voltlib's server certificate (A00.FR.309) reports it once it is
    connected again; voltlib answers and keeps it as a critical security event."""
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        await cp.send(call.SecurityEventNotification(type="InvalidCentralSystemCertificate", timestamp=now_iso(),
                                                     tech_info=None))
    events = await server.store.read(partial(repo.list_security_events, cp_id=CP))
    event = next(e for e in events if e["kind"] == "charge_point:InvalidCentralSystemCertificate")
    assert event["severity"] == "critical"


async def test_sign_certificate_without_a_ca_is_rejected(server: RunningServer) -> None:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        answer = await cp.send(call.SignCertificate(csr=_csr(CP, ec.generate_private_key(ec.SECP256R1()))))
        assert answer.status == "Rejected"  # A02.FR.12: not able to process it


async def test_TC_085_BasicAuthenticationValidCredentials(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP, profile=1)
    async with websockets.connect(f"{server.ws_url}/{CP}", subprotocols=["ocpp1.6"],
                                  additional_headers=basic_auth(CP)) as ws:
        assert ws.subprotocol == "ocpp1.6"
    async with connect(server, CP) as cp:
        await bring_online(cp)
        assert (await api.charge_point(CP))["connected"] is True
    for headers in (basic_auth(CP, "wrong-password-1234567"), {}):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"{server.ws_url}/{CP}", subprotocols=["ocpp1.6"],
                                          additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401


async def test_TC_088_WebSocketSubprotocolNegotiation(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    # OCPP-J 1.6 §4.1.2: the client lists what it speaks, in order of preference
    for offered in (("ocpp1.6",), ("ocpp1.6", "ocpp1.5"), ("ocpp2.0", "ocpp1.6")):  # 2.0 is not 2.0.1
        async with connect(server, CP, subprotocols=offered) as cp:
            assert cp._connection.subprotocol == "ocpp1.6"
            await bring_online(cp)
