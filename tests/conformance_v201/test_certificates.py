"""OCA OCPP 2.0.1 conformance, CSMS under test: block M, ISO 15118 certificate management (part 6,
3.13), and the ISO 15118 requests voltlib hands to its V2G back end.

Each conformance test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt. The
operator installs, lists and deletes the station's CA certificates through the API's commands; the
server has a charge-point CA and the local V2G back end (``ca_server``), whose V2G root, test car
and OCSP responder answer Get15118EVCertificate and GetCertificateStatus end to end.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from ocpp.v201 import call

from tests.conformance.conftest import Api
from tests.conformance_v201.conftest import Station, connect
from tests.conformance_v201.external_ca import ExternalCa
from tests.conftest import RunningServer
from voltlib.security.v2g_local import TEST_CAR_EMAID, LocalV2GBackend, pem

CS = "OCTT-CS-201"


@pytest_asyncio.fixture
async def server(ca_server: RunningServer) -> RunningServer:
    """Every test of this module runs against the server with a CA and the local V2G back end."""
    return ca_server


def backend(server: RunningServer) -> LocalV2GBackend:
    v2g = server.gateway.services.v2g_backend
    assert isinstance(v2g, LocalV2GBackend)
    return v2g


def root_pem(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return pem(cert)


def hash_data(certificate_pem: str) -> dict[str, str]:
    """CertificateHashDataType of a self-signed root (2.0.1 part 2, 2.6): SHA-256 of the issuer's DER
    name and of its public key, the serial number in hexadecimal."""
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    key = cert.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"hashAlgorithm": "SHA256", "issuerNameHash": hashlib.sha256(cert.issuer.public_bytes()).hexdigest(),
            "issuerKeyHash": hashlib.sha256(key).hexdigest(), "serialNumber": format(cert.serial_number, "x")}


class Store:
    """The station's certificate store: InstallCertificate adds, GetInstalledCertificateIds lists,
    DeleteCertificate removes, as a station would."""

    def __init__(self, cs: Station, *, install_answer: str = "Accepted", delete_answer: str | None = None) -> None:
        self.installed: list[tuple[str, str]] = []  # (certificateType, PEM)
        self.install_answer, self.delete_answer = install_answer, delete_answer
        cs.replies["InstallCertificate"] = self.install
        cs.replies["GetInstalledCertificateIds"] = self.list
        cs.replies["DeleteCertificate"] = self.delete

    def install(self, certificate_type: str, certificate: str, **_: Any) -> dict[str, Any]:
        if self.install_answer == "Accepted":
            self.installed.append((certificate_type, certificate))
        return {"status": self.install_answer}

    def list(self, certificate_type: list[str] | None = None, **_: Any) -> dict[str, Any]:
        chains = [{"certificateType": kind, "certificateHashData": hash_data(cert)} for kind, cert in self.installed
                  if certificate_type is None or kind in certificate_type]
        return {"status": "Accepted", "certificateHashDataChain": chains} if chains else {"status": "NotFound"}

    def delete(self, certificate_hash_data: dict[str, str], **_: Any) -> dict[str, Any]:
        if self.delete_answer is not None:
            return {"status": self.delete_answer}
        before = len(self.installed)
        self.installed = [(k, c) for k, c in self.installed
                          if hash_data(c)["serialNumber"] != certificate_hash_data["serial_number"]]
        return {"status": "Accepted" if len(self.installed) < before else "NotFound"}


async def _install(server: RunningServer, api: Api, kind: str,
                   answer: str = "Accepted") -> tuple[Store, dict[str, Any]]:
    await server.add_charge_point(CS)
    certificate = root_pem(f"OCTT {kind}")
    async with connect(server, CS) as cs:
        await cs.booted()
        store = Store(cs, install_answer=answer)
        row = await api.command(CS, "InstallCertificate", {"certificateType": kind, "certificate": certificate})
    [got] = cs.got("InstallCertificate")
    assert (got["certificate_type"], got["certificate"]) == (kind, certificate)
    assert (row["state"], row["response"]) == ("answered", {"status": answer})
    return store, row


async def test_TC_M_01_Install_CA_certificate_CSMSRootCertificate(server: RunningServer, api: Api) -> None:
    store, _ = await _install(server, api, "CSMSRootCertificate")
    assert [kind for kind, _ in store.installed] == ["CSMSRootCertificate"]


async def test_TC_M_02_Install_CA_certificate_ManufacturerRootCertificate(server: RunningServer, api: Api) -> None:
    store, _ = await _install(server, api, "ManufacturerRootCertificate")
    assert [kind for kind, _ in store.installed] == ["ManufacturerRootCertificate"]


async def test_TC_M_05_Install_CA_certificate_Failed(server: RunningServer, api: Api) -> None:
    store, row = await _install(server, api, "CSMSRootCertificate", answer="Failed")
    assert store.installed == [] and row["response"]["status"] == "Failed"


async def _listed(server: RunningServer, api: Api, request: dict[str, Any], kinds: list[str]) -> dict[str, Any]:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        store = Store(cs)
        store.installed = [(kind, root_pem(f"OCTT {kind}")) for kind in kinds]
        row = await api.command(CS, "GetInstalledCertificateIds", request)
    assert cs.got("GetInstalledCertificateIds")[0].get("certificate_type") == request.get("certificateType")
    assert row["state"] == "answered"
    response: dict[str, Any] = row["response"]
    return response


async def test_TC_M_13_Retrieve_certificates_from_Charging_Station_ManufacturerRootCertificate(
        server: RunningServer, api: Api) -> None:
    response = await _listed(server, api, {"certificateType": ["ManufacturerRootCertificate"]},
                             ["CSMSRootCertificate", "ManufacturerRootCertificate"])
    assert response["status"] == "Accepted"
    assert [c["certificateType"] for c in response["certificateHashDataChain"]] == ["ManufacturerRootCertificate"]


async def test_TC_M_18_Retrieve_certificates_from_Charging_Station_All_certificateTypes(
        server: RunningServer, api: Api) -> None:
    kinds = ["V2GRootCertificate", "MORootCertificate", "CSMSRootCertificate", "ManufacturerRootCertificate"]
    response = await _listed(server, api, {}, kinds)
    assert response["status"] == "Accepted"
    assert [c["certificateType"] for c in response["certificateHashDataChain"]] == kinds
    assert all(len(c["certificateHashData"]["issuerNameHash"]) == 64 for c in response["certificateHashDataChain"])


async def test_TC_M_19_Retrieve_certificates_from_Charging_Station_No_matching_certificate_found(
        server: RunningServer, api: Api) -> None:
    response = await _listed(server, api, {"certificateType": ["V2GRootCertificate"]}, ["CSMSRootCertificate"])
    assert response == {"status": "NotFound"}


async def _delete(server: RunningServer, api: Api, delete_answer: str | None) -> tuple[Store, dict[str, Any]]:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        store = Store(cs, delete_answer=delete_answer)
        store.installed = [("CSMSRootCertificate", root_pem("OCTT CSMS root 1")),
                           ("CSMSRootCertificate", root_pem("OCTT CSMS root 2"))]
        listed = await api.command(CS, "GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]})
        target = listed["response"]["certificateHashDataChain"][1]["certificateHashData"]
        deleted = await api.command(CS, "DeleteCertificate", {"certificateHashData": target})
    assert cs.got("DeleteCertificate")[0]["certificate_hash_data"]["serial_number"] == target["serialNumber"]
    return store, deleted


async def test_TC_M_20_Delete_a_certificate_from_a_Charging_Station_Success(server: RunningServer, api: Api) -> None:
    store, deleted = await _delete(server, api, None)
    assert (deleted["state"], deleted["response"]) == ("answered", {"status": "Accepted"})
    assert len(store.installed) == 1


async def test_TC_M_21_Delete_a_certificate_from_a_Charging_Station_Failed(server: RunningServer, api: Api) -> None:
    store, deleted = await _delete(server, api, "Failed")
    assert (deleted["state"], deleted["response"]) == ("answered", {"status": "Failed"})
    assert len(store.installed) == 2


async def test_an_install_certificate_the_schema_refuses_is_a_422_and_never_sent(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        response = await api.http.post(f"/api/v1/charge-points/{CS}/commands/InstallCertificate",
                                       json={"certificateType": "ChargingStationCertificate", "certificate": "x"})
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    assert cs.got("InstallCertificate") == []


# -- ISO 15118: the V2G back end (local test double) --------------------------------------------


def _v2g_csr(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "voltlib"),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


async def test_a_V2G_certificate_is_signed_under_the_V2G_root_by_the_back_end(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        reply = await cs.send(call.SignCertificate(csr=_v2g_csr("FRVLTE0001"), certificate_type="V2GCertificate"))
        await server.settled()
        await cs.settle()
    assert reply.status == "Accepted"
    [signed] = cs.got("CertificateSigned")
    assert signed["certificate_type"] == "V2GCertificate"
    leaf, root = x509.load_pem_x509_certificates(signed["certificate_chain"].encode())
    leaf.verify_directly_issued_by(backend(server).root.certificate)
    assert root == backend(server).root.certificate
    events = {e["kind"]: e for e in await api.security_events() if e["charge_point_id"] == CS}
    assert events["certificate_installed"]["detail"]["certificate_type"] == "V2GCertificate"


async def test_a_V2G_csr_whose_signature_fails_is_rejected(server: RunningServer, api: Api) -> None:
    csr = _v2g_csr("FRVLTE0002")
    body = csr.splitlines()
    body[3] = body[3][:10] + ("A" if body[3][10] != "A" else "B") + body[3][11:]  # one bit of the request
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        reply = await cs.send(call.SignCertificate(csr="\n".join(body) + "\n", certificate_type="V2GCertificate"))
    assert reply.status == "Rejected"
    assert cs.got("CertificateSigned") == []
    assert "csr_rejected" in [e["kind"] for e in await api.security_events() if e["charge_point_id"] == CS]


async def test_Get15118EVCertificate_installs_the_test_cars_contract(server: RunningServer, api: Api) -> None:
    v2g = backend(server)
    stranger = ec.generate_private_key(ec.SECP256R1())  # a car nobody has a contract for
    unknown = v2g.oem_root.issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "UNKNOWNCAR")]),
                                 stranger.public_key(), v2g.now)
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        known = await cs.send(call.Get15118EVCertificate(iso15118_schema_version="urn:iso:15118:2:2013:MsgDef",
                                                         action="Install", exi_request=v2g.car_request()))
        other = await cs.send(call.Get15118EVCertificate(iso15118_schema_version="urn:iso:15118:2:2013:MsgDef",
                                                         action="Install", exi_request=v2g.car_request(unknown)))
    assert known.status == "Accepted"
    contract = v2g.contract_of(known.exi_response)
    contract.verify_directly_issued_by(v2g.root.certificate)
    assert contract.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == TEST_CAR_EMAID
    assert (other.status, other.exi_response) == ("Failed", "")
    events = [(e["kind"], e["detail"]["status"]) for e in await api.security_events()
              if e["charge_point_id"] == CS and e["kind"] == "v2g_ev_certificate"]
    assert sorted(events) == [("v2g_ev_certificate", "Accepted"), ("v2g_ev_certificate", "Failed")]  # newest first


def _ocsp_data(certificate: x509.Certificate, issuer: x509.Certificate) -> dict[str, str]:
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256()).build()
    return {"hashAlgorithm": "SHA256", "issuerNameHash": request.issuer_name_hash.hex(),
            "issuerKeyHash": request.issuer_key_hash.hex(), "serialNumber": format(certificate.serial_number, "x"),
            "responderURL": "http://ocsp.v2g.example"}


async def test_GetCertificateStatus_relays_the_back_ends_OCSP_answer(server: RunningServer, api: Api) -> None:
    v2g = backend(server)
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        installed = await cs.send(call.Get15118EVCertificate(iso15118_schema_version="urn:iso:15118:2:2013:MsgDef",
                                                             action="Install", exi_request=v2g.car_request()))
        contract = v2g.contract_of(installed.exi_response)
        data = _ocsp_data(contract, v2g.root.certificate)
        good = await cs.send(call.GetCertificateStatus(ocsp_request_data=data))
        v2g.revoked.add(contract.serial_number)
        revoked = await cs.send(call.GetCertificateStatus(ocsp_request_data=data))
        unknown = await cs.send(call.GetCertificateStatus(ocsp_request_data={**data, "serialNumber": "1234"}))
    statuses = []
    for reply in (good, revoked):
        assert reply.status == "Accepted"
        response = ocsp.load_der_ocsp_response(base64.b64decode(reply.ocsp_result))
        assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert response.serial_number == contract.serial_number
        v2g.root.certificate.public_key().verify(response.signature, response.tbs_response_bytes,
                                                 ec.ECDSA(hashes.SHA256()))
        statuses.append(response.certificate_status)
    assert statuses == [ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED]
    assert (unknown.status, unknown.ocsp_result) == ("Failed", None)


async def test_without_a_V2G_back_end_the_station_is_told_Failed_or_Rejected(server: RunningServer, api: Api) -> None:
    server.gateway.services.v2g_backend = None  # as configured without v2g_backend
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        ev = await cs.send(call.Get15118EVCertificate(iso15118_schema_version="urn:iso:15118:2:2013:MsgDef",
                                                      action="Update", exi_request="gAQ="))
        status = await cs.send(call.GetCertificateStatus(ocsp_request_data={
            "hashAlgorithm": "SHA256", "issuerNameHash": "aa", "issuerKeyHash": "bb", "serialNumber": "1",
            "responderURL": "http://ocsp.example"}))
        signed = await cs.send(call.SignCertificate(csr=_v2g_csr("FRVLTE0003"), certificate_type="V2GCertificate"))
    assert (ev.status, status.status, signed.status) == ("Failed", "Failed", "Rejected")
    assert signed.status_info["reason_code"] == "NotConfigured"


async def test_a_SignCertificate_without_a_type_is_signed_by_the_charge_point_CA(
        server: RunningServer, api: Api) -> None:
    """A SignCertificate without certificateType is a ChargingStationCertificate (A02.FR.20): the CPO's
    CA signs it, never the V2G back end."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CS)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        reply = await cs.send(call.SignCertificate(csr=csr.public_bytes(serialization.Encoding.PEM).decode()))
        await server.settled()
        await cs.settle()
    assert reply.status == "Accepted"
    [signed] = cs.got("CertificateSigned")
    assert signed["certificate_type"] == "ChargingStationCertificate"
    leaf = x509.load_pem_x509_certificates(signed["certificate_chain"].encode())[0]
    assert leaf.issuer != backend(server).root.certificate.subject


# -- an external CA behind the adapter interface -----------------------------------------------


async def test_an_external_CA_plugged_by_configuration_signs_station_certificates(database_url: str) -> None:
    from tests.conftest import free_port, start_server
    from voltlib.config import Settings

    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        ocpp_versions=["2.0.1"],
                        certificate_authority_factory="tests.conformance_v201.external_ca:external_ca")
    runner, running = await start_server(settings)
    try:
        ca = running.gateway.services.certificate_authority
        assert isinstance(ca, ExternalCa)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CS)])).sign(key, hashes.SHA256())
        await running.add_charge_point(CS)
        async with connect(running, CS) as cs:
            await cs.booted()
            reply = await cs.send(call.SignCertificate(csr=csr.public_bytes(serialization.Encoding.PEM).decode()))
            await running.settled()
            await cs.settle()
        assert reply.status == "Accepted" and ca.asked == [CS]
        [signed] = cs.got("CertificateSigned")
        leaf = x509.load_pem_x509_certificates(signed["certificate_chain"].encode())[0]
        leaf.verify_directly_issued_by(ca.authority.certificate)
    finally:
        await runner.cleanup()
