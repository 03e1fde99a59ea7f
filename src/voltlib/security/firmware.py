"""Gate on signed firmware updates (whitepaper L01, OCTT TC_080/TC_081): before voltlib relays a
SignedUpdateFirmware, the signing certificate must be valid now and issued by one of the
manufacturer roots the operator trusts. The charge point still checks the signature over the
firmware itself (voltlib never holds the binary); this check stops an operator account, stolen or
careless, from pushing firmware signed by anyone else to the whole network."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature


class FirmwareSignerRejected(ValueError):
    """The operator's request is at fault: ``code`` is the problem type the API returns."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def load_roots(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; an unreadable or empty bundle is a configuration error."""
    roots = x509.load_pem_x509_certificates(path.read_bytes())
    if not roots:
        raise ValueError(f"{path}: no certificate")
    return roots


def check_signing_certificate(pem: str, roots: list[x509.Certificate], now: datetime) -> x509.Certificate:
    try:
        signer = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise FirmwareSignerRejected("invalid-signing-certificate", "signingCertificate is not a PEM X.509 "
                                     "certificate") from None
    if not signer.not_valid_before_utc <= now <= signer.not_valid_after_utc:
        raise FirmwareSignerRejected("expired-signing-certificate",
                                     f"the signing certificate is valid from {signer.not_valid_before_utc} to "
                                     f"{signer.not_valid_after_utc}")
    for root in roots:
        if root.subject != signer.issuer:
            continue
        try:
            signer.verify_directly_issued_by(root)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return signer
    raise FirmwareSignerRejected("untrusted-firmware-signer",
                                 f"the signing certificate ({signer.subject.rfc4514_string()}) is not issued by a "
                                 "trusted manufacturer root (firmware_signer_roots)")
