"""A throw-away PKI for the security-profile tests, made with ``cryptography`` at test time.

- a trusted CA (the one voltlib's ``tls_client_ca`` names) that signs the server certificate
  (CN/SAN 127.0.0.1 and localhost) and the charge-point client certificates (subject CN = the
  charge point id, as voltlib binds profile 3 connections by CN);
- a second, untrusted CA that signs a client certificate voltlib must refuse in the handshake.

Everything is written as PEM files under the directory given; nothing is reused across tests.
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORGANIZATION = "voltlib test CPO"


@dataclass(frozen=True)
class Issued:
    """A certificate and its key on disk."""

    cert: Path
    key: Path
    fingerprint: str  # SHA-256 of the DER certificate, lower-case hex (what voltlib pins)


@dataclass
class Pki:
    directory: Path
    ca: Issued
    untrusted_ca: Issued
    server: Issued
    _ca_key: ec.EllipticCurvePrivateKey = field(repr=False)
    _ca_cert: x509.Certificate = field(repr=False)
    _untrusted_key: ec.EllipticCurvePrivateKey = field(repr=False)
    _untrusted_cert: x509.Certificate = field(repr=False)

    def charge_point(self, cp_id: str, *, trusted: bool = True, name: str | None = None) -> Issued:
        """A client certificate with subject CN = ``cp_id``, signed by the trusted CA or the other one."""
        key, cert = (self._ca_key, self._ca_cert) if trusted else (self._untrusted_key, self._untrusted_cert)
        stem = name or f"cp-{cp_id}-{'trusted' if trusted else 'untrusted'}"
        return _issue(self.directory, stem, _name(cp_id), key, cert, client=True)

    def crl(self, revoked: list[Issued]) -> Path:
        """The trusted CA's revocation list naming ``revoked`` (written over the last one)."""
        now = datetime.now(UTC)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self._ca_cert.subject)
                   .last_update(now - timedelta(minutes=5)).next_update(now + timedelta(days=1)))
        for issued in revoked:
            serial = x509.load_pem_x509_certificate(issued.cert.read_bytes()).serial_number
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - timedelta(minutes=1))
                .build())
        path = self.directory / "ca.crl"
        path.write_bytes(builder.sign(self._ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return path

    def client_context(self, client: Issued | None = None) -> ssl.SSLContext:
        """What a charge point uses: trusts the test CA for the server, optionally presents ``client``."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca.cert))
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
        return context


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert, ca = _make_ca(directory, "ca", "voltlib test root CA")
    other_key, other_cert, other = _make_ca(directory, "untrusted-ca", "someone else's CA")
    server = _issue(directory, "server", _name("127.0.0.1"), ca_key, ca_cert, client=False,
                    san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    return Pki(directory, ca, other, server, ca_key, ca_cert, other_key, other_cert)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return builder.not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))


def _make_ca(directory: Path, stem: str, cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Issued]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = _validity(x509.CertificateBuilder().subject_name(name).issuer_name(name)
                        .public_key(key.public_key()).serial_number(x509.random_serial_number()))
    builder = (builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    cert = builder.sign(key, hashes.SHA256())
    return key, cert, _write(directory, stem, key, cert)


def _issue(directory: Path, stem: str, subject: x509.Name, ca_key: ec.EllipticCurvePrivateKey,
           ca_cert: x509.Certificate, *, client: bool, san: list[x509.GeneralName] | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _validity(x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
                        .public_key(key.public_key()).serial_number(x509.random_serial_number()))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=True, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return _write(directory, stem, key, cert)


def _write(directory: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> Issued:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    der = cert.public_bytes(serialization.Encoding.DER)
    return Issued(cert_path, key_path, hashlib.sha256(der).hexdigest())
