"""Gate on signed firmware updates (1.6 whitepaper L01, OCTT TC_080/TC_081; 2.0.1 L01/L02): before
voltlib relays a 1.6 SignedUpdateFirmware or a 2.0.1 UpdateFirmware, the signing certificate must
be valid now and issued by one of the manufacturer roots the operator trusts, and the signature
must be one that key can have made (well-formed base64, an ECDSA DER signature for an EC key, the
key's length for RSA). The charge point still verifies the signature over the firmware itself
(voltlib never holds the binary); this check stops an operator account, stolen or careless, from
pushing firmware signed by anyone else, or unsigned, to the whole network."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# The actions that carry a firmware signature: 1.6's SignedUpdateFirmware (whitepaper) and 2.0.1's
# UpdateFirmware (1.6's plain UpdateFirmware carries none and is never relayed while roots are set).
SIGNED_UPDATES = frozenset({"SignedUpdateFirmware", "UpdateFirmware"})


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


def check_signature(signature: str | None, signer: x509.Certificate) -> None:
    """The signature must be one ``signer``'s key can have made; whether it matches the firmware is
    for the charge point to find (InvalidSignature, reported in its status notification)."""
    if not signature:
        raise FirmwareSignerRejected("missing-firmware-signature", "a signed firmware update needs its signature")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise FirmwareSignerRejected("invalid-firmware-signature", "signature is not base64") from None
    key = signer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        try:
            decode_dss_signature(raw)
        except ValueError:
            raise FirmwareSignerRejected("invalid-firmware-signature",
                                         "signature is not an ECDSA signature (DER)") from None
    elif isinstance(key, rsa.RSAPublicKey) and len(raw) != (key.key_size + 7) // 8:
        raise FirmwareSignerRejected("invalid-firmware-signature",
                                     f"signature is {len(raw)} bytes; the signer's RSA key makes "
                                     f"{(key.key_size + 7) // 8}")


def check_update(action: str, payload: dict[str, Any], roots: list[x509.Certificate], now: datetime) -> None:
    """The gate for one command: nothing to check without roots, or for an action that carries no
    firmware; otherwise the signing certificate, then the signature (``FirmwareSignerRejected``)."""
    if not roots or action not in SIGNED_UPDATES:
        return
    firmware = payload.get("firmware") or {}
    signer = check_signing_certificate(str(firmware.get("signingCertificate", "")), roots, now)
    check_signature(firmware.get("signature"), signer)
