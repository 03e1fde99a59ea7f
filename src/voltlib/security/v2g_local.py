"""A local V2G / contract back end built with ``cryptography``: a stand-in for the e-mobility PKI,
for tests and demonstrations (``v2g_backend = "voltlib.security.v2g_local:local_backend"``).

It holds a small V2G root, signs station V2G certificates under it, knows one test car (its
provisioning certificate from an OEM root, and the eMAID of its contract) and issues that car's
contract certificate, and answers OCSP queries about what it issued with real, signed OCSP
responses. Real EXI is out of its reach: its ``exiRequest`` is the car's provisioning certificate
(DER, base64) and its ``exiResponse`` the contract chain (PEM, base64), which is all the station
and voltlib see of either (they relay them). Keys live in memory and die with the process.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from voltlib.config import Settings
from voltlib.security.ca import signature_verifies
from voltlib.security.v2g import EvCertificateAnswer, OcspAnswer, OcspQuery, V2GRefused

TEST_CAR_PCID = "VOLTLIBTESTCAR0001"  # the provisioning certificate identifier of the test car
TEST_CAR_EMAID = "FRVLTC000000017"  # the eMAID of its contract
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384,
                                                  "SHA512": hashes.SHA512}


def _name(common_name: str, organization: str = "voltlib test PKI") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: x509.Name, key: ec.EllipticCurvePublicKey, issuer: x509.Name,
                 issuer_key: ec.EllipticCurvePrivateKey, now: datetime, days: int, *, ca: bool) -> x509.Certificate:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Authority:
    """A self-signed root and its key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def new(cls, common_name: str, now: datetime) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name)
        return cls(_certificate(name, key.public_key(), name, key, now, 3650, ca=True), key)

    def issue(self, subject: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime,
              days: int = 365) -> x509.Certificate:
        return _certificate(subject, key, self.certificate.subject, self.key, now, days, ca=False)


@dataclass
class LocalV2GBackend:
    """:class:`voltlib.security.v2g.V2GBackend` in memory."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    root: Authority = field(init=False)
    oem_root: Authority = field(init=False)
    car_key: ec.EllipticCurvePrivateKey = field(init=False)
    car_certificate: x509.Certificate = field(init=False)  # the test car's provisioning certificate
    contracts: dict[str, str] = field(default_factory=lambda: {TEST_CAR_PCID: TEST_CAR_EMAID})  # PCID → eMAID
    issued: list[x509.Certificate] = field(default_factory=list)
    revoked: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.root = Authority.new("voltlib test V2G Root", self.now)
        self.oem_root = Authority.new("voltlib test OEM Root", self.now)
        self.car_key = ec.generate_private_key(ec.SECP256R1())
        self.car_certificate = self.oem_root.issue(_name(TEST_CAR_PCID, "voltlib test OEM"),
                                                   self.car_key.public_key(), self.now)

    def car_request(self, certificate: x509.Certificate | None = None) -> str:
        """The stand-in ``exiRequest`` a car sends: its provisioning certificate, DER, base64."""
        der = (certificate or self.car_certificate).public_bytes(serialization.Encoding.DER)
        return base64.b64encode(der).decode()

    async def sign_v2g_csr(self, cp_id: str, csr_pem: str) -> str:
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            raise V2GRefused("not a PEM certificate signing request") from None
        try:
            key = csr.public_key()
        except ValueError:
            raise V2GRefused("the CSR's key cannot be read") from None
        if not signature_verifies(csr) or not isinstance(key, ec.EllipticCurvePublicKey):
            raise V2GRefused("ISO 15118 wants an ECDSA key whose CSR signature verifies")
        leaf = self.root.issue(csr.subject, key, datetime.now(UTC))
        self.issued.append(leaf)
        return pem(leaf) + pem(self.root.certificate)

    async def ev_certificate(self, cp_id: str, schema_version: str, action: str,
                             exi_request: str) -> EvCertificateAnswer:
        try:
            provisioning = x509.load_der_x509_certificate(base64.b64decode(exi_request, validate=True))
            provisioning.verify_directly_issued_by(self.oem_root.certificate)
        except (binascii.Error, ValueError, TypeError, InvalidSignature):
            return EvCertificateAnswer("Failed", "", "unknown provisioning certificate")
        pcid = provisioning.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        emaid = self.contracts.get(str(pcid))
        if emaid is None:
            return EvCertificateAnswer("Failed", "", "no contract for this car")
        contract_key = ec.generate_private_key(ec.SECP256R1())  # delivered to the car inside the EXI, encrypted
        contract = self.root.issue(_name(emaid, "voltlib test MO"), contract_key.public_key(), datetime.now(UTC))
        self.issued.append(contract)
        return EvCertificateAnswer("Accepted", base64.b64encode((pem(contract) + pem(self.root.certificate))
                                                                .encode()).decode())

    def issue_contract(self, emaid: str, days: int = 365) -> x509.Certificate:
        """A contract certificate for ``emaid`` under the V2G root, as a mobility operator issues one
        for a member's contract (tests and demonstrations: its key is thrown away). Known to OCSP."""
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        contract = self.root.issue(_name(emaid, "voltlib test MO"), key, datetime.now(UTC), days)
        self.issued.append(contract)
        return contract

    def contract_of(self, exi_response: str) -> x509.Certificate:
        """The contract certificate in one of this back end's exiResponses (for tests)."""
        return x509.load_pem_x509_certificates(base64.b64decode(exi_response))[0]

    async def certificate_status(self, cp_id: str, query: OcspQuery) -> OcspAnswer:
        algorithm = _HASHES.get(query.hash_algorithm)
        if algorithm is None:
            return OcspAnswer("Failed", reason="unknown hash algorithm")
        for certificate in self.issued:
            request = ocsp.OCSPRequestBuilder().add_certificate(certificate, self.root.certificate,
                                                                algorithm()).build()
            if (request.issuer_name_hash.hex(), request.issuer_key_hash.hex()) == \
                    (query.issuer_name_hash.lower(), query.issuer_key_hash.lower()) \
                    and certificate.serial_number == _serial(query.serial_number):
                return OcspAnswer("Accepted", self._response(certificate, algorithm()))
        return OcspAnswer("Failed", reason="not issued by this back end")

    def _response(self, certificate: x509.Certificate, algorithm: hashes.HashAlgorithm) -> str:
        now = datetime.now(UTC)
        revoked = certificate.serial_number in self.revoked
        response = (ocsp.OCSPResponseBuilder()
                    .add_response(cert=certificate, issuer=self.root.certificate, algorithm=algorithm,
                                  cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
                                  this_update=now, next_update=now + timedelta(days=1),
                                  revocation_time=now if revoked else None, revocation_reason=None)
                    .responder_id(ocsp.OCSPResponderEncoding.HASH, self.root.certificate)
                    .sign(self.root.key, hashes.SHA256()))
        return base64.b64encode(response.public_bytes(serialization.Encoding.DER)).decode()


def _serial(text: str) -> int | None:
    try:
        return int(text, 16)
    except ValueError:
        return None


def local_backend(settings: Settings) -> LocalV2GBackend:
    """The ``v2g_backend`` factory: a fresh PKI for this process."""
    return LocalV2GBackend()
