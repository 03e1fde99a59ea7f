"""Checking charge-point CSRs and signing them (security whitepaper A02/A03, OCTT TC_074).

A charge point that renews its key sends a PEM CSR in SignCertificate.req; voltlib answers
Accepted only when it can process it (A02.FR.11/12), then returns the signed certificate and the
CA chain in CertificateSigned.req. The whitepaper prefers a dedicated CA (A02.FR.04, "MAY be
operated by the CPO"): :class:`CertificateAuthority` is that CA in its simplest form, a key and
certificate on disk given by configuration, kept apart from the gateway behind two functions.

A CSR is refused when its signature does not verify (it was not made with the key it carries),
its subject CN is not the charge point's identity (voltlib binds profile 3 connections by CN),
its O is not the configured CPO name (A02.FR.13), or its key is weaker than A00.FR.502/503 allow.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MIN_RSA_BITS = 2048  # A00.FR.502
MIN_EC_BITS = 224  # A00.FR.503
MAX_CHAIN_CHARS = 10_000  # CertificateSigned.req certificateChain is string[0..10000]
CLOCK_SKEW = timedelta(minutes=5)  # notBefore is back-dated this much for charge points whose clock runs late


class CsrRejected(ValueError):
    """The CSR cannot be signed; the message says why (the charge point's fault)."""


@dataclass(frozen=True)
class CheckedCsr:
    csr: x509.CertificateSigningRequest
    common_name: str
    key_description: str  # e.g. "RSA 2048" or "EC secp256r1"


def check_csr(pem: str, cp_id: str, cpo_name: str | None) -> CheckedCsr:
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError as exc:
        raise CsrRejected(f"not a PEM certificate signing request: {exc}") from None
    if not signature_verifies(csr):
        raise CsrRejected("the CSR's signature does not verify with the key it carries")
    common_name = _single(csr.subject, NameOID.COMMON_NAME)
    if common_name != cp_id:
        raise CsrRejected(f"subject CN is {common_name!r}, expected the charge point identity {cp_id!r}")
    if cpo_name is not None and _single(csr.subject, NameOID.ORGANIZATION_NAME) != cpo_name:
        raise CsrRejected(f"subject O must be the CPO name {cpo_name!r} (A02.FR.13)")
    return CheckedCsr(csr, common_name, _key_description(csr.public_key()))


def signature_verifies(csr: x509.CertificateSigningRequest) -> bool:
    """The CSR was made with the key it carries. A key the library cannot even load (a point off
    its curve, a garbled modulus) raises ValueError there: that CSR does not verify either."""
    try:
        return csr.is_signature_valid
    except ValueError:
        return False


def _single(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode(errors="replace")


def _key_description(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrRejected(f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are required")
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < MIN_EC_BITS:
            raise CsrRejected(f"EC key of {key.curve.key_size} bits; at least {MIN_EC_BITS} are required")
        return f"EC {key.curve.name}"
    raise CsrRejected(f"unsupported key type {type(key).__name__}; use RSA or ECDSA")


@dataclass(frozen=True)
class Issued:
    chain_pem: str  # the new certificate first, then the CA certificate
    fingerprint: str  # SHA-256 of the new certificate's DER, lower-case hex (what voltlib pins)
    serial_number: int
    not_after: datetime


class StationCertificateSigner(Protocol):
    """Where a checked charge-point CSR is signed: :class:`CertificateAuthority` (files on disk) or an
    external CA behind an adapter (``certificate_authority_factory``). Called in a worker thread, so
    an adapter may block on its CA's API; it raises :class:`CsrRejected` when the CA refuses."""

    def sign(self, checked: CheckedCsr, now: datetime) -> Issued: ...


def issued(certificate: x509.Certificate, chain_pem: str) -> Issued:
    """The :class:`Issued` of a certificate an adapter got back (fingerprint, serial, expiry)."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return Issued(chain_pem, hashlib.sha256(der).hexdigest(), certificate.serial_number,
                  certificate.not_valid_after_utc)


class CertificateAuthority:
    """Signs charge-point certificates with a CA key and certificate read from PEM files (the
    built-in :class:`StationCertificateSigner`)."""

    def __init__(self, certificate: x509.Certificate, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                 validity: timedelta) -> None:
        self.certificate, self._key, self.validity = certificate, key, validity

    @classmethod
    def from_files(cls, cert_path: Path, key_path: Path, validity_days: int) -> CertificateAuthority:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise ValueError(f"{key_path}: the CA key must be RSA or EC")
        return cls(certificate, key, timedelta(days=validity_days))

    def sign(self, checked: CheckedCsr, now: datetime) -> Issued:
        """A client certificate for ``checked``: SHA-256 (A00.FR.506), a random 159-bit serial
        (A00.FR.508), the CSR's subject, and usage limited to TLS client authentication."""
        serial = secrets.randbits(159) | 1
        not_after = now + self.validity
        certificate = (
            x509.CertificateBuilder()
            .subject_name(checked.csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(checked.csr.public_key())
            .serial_number(serial)
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_agreement=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        der = certificate.public_bytes(serialization.Encoding.DER)
        chain = (certificate.public_bytes(serialization.Encoding.PEM)
                 + self.certificate.public_bytes(serialization.Encoding.PEM)).decode()
        if len(chain) > MAX_CHAIN_CHARS:
            raise CsrRejected(f"the signed chain is {len(chain)} characters; OCPP allows {MAX_CHAIN_CHARS}")
        return Issued(chain, hashlib.sha256(der).hexdigest(), serial, not_after)
