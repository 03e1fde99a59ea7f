"""The signed-firmware gate: a signing certificate must be valid now and issued by a trusted root."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from voltlib.security.firmware import FirmwareSignerRejected, check_signing_certificate

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _cert(name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None, *,
          start: datetime = NOW - timedelta(days=30), days: int = 365
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))
    return cert, key


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


ROOT, OTHER_ROOT = _cert("Maker Root"), _cert("Other Maker Root")


def test_a_signer_issued_by_a_trusted_root_passes() -> None:
    signer, _ = _cert("Firmware Signer", ROOT)
    assert check_signing_certificate(_pem(signer), [OTHER_ROOT[0], ROOT[0]], NOW) == signer


@pytest.mark.parametrize(("signer", "code"), [
    (_cert("Firmware Signer", OTHER_ROOT)[0], "untrusted-firmware-signer"),
    (_cert("Firmware Signer", ROOT, start=NOW - timedelta(days=400))[0], "expired-signing-certificate"),
    (_cert("Firmware Signer", ROOT, start=NOW + timedelta(days=1))[0], "expired-signing-certificate"),
])
def test_signers_that_are_refused(signer: x509.Certificate, code: str) -> None:
    with pytest.raises(FirmwareSignerRejected) as refused:
        check_signing_certificate(_pem(signer), [ROOT[0]], NOW)
    assert refused.value.code == code


def test_a_root_with_the_same_name_but_another_key_is_not_trusted() -> None:
    twin = _cert("Maker Root")
    signer, _ = _cert("Firmware Signer", twin)
    with pytest.raises(FirmwareSignerRejected, match="not issued by a trusted"):
        check_signing_certificate(_pem(signer), [ROOT[0]], NOW)


def _update(signer: x509.Certificate, signature: str | None) -> dict[str, object]:
    firmware: dict[str, object] = {"location": "https://fw.example/x.bin", "signingCertificate": _pem(signer)}
    if signature is not None:
        firmware["signature"] = signature
    return {"requestId": 1, "firmware": firmware}


def test_the_signature_must_be_one_the_signers_key_can_have_made() -> None:
    import base64

    from voltlib.security.firmware import check_update

    signer, key = _cert("Signer", ROOT)
    good = base64.b64encode(key.sign(b"firmware", ec.ECDSA(hashes.SHA256()))).decode()
    check_update("UpdateFirmware", _update(signer, good), [ROOT[0]], NOW)  # 2.0.1's action, same payload keys
    for signature, code in ((None, "missing-firmware-signature"), ("%%%", "invalid-firmware-signature"),
                            (base64.b64encode(b"\x00" * 64).decode(), "invalid-firmware-signature")):
        with pytest.raises(FirmwareSignerRejected) as info:
            check_update("UpdateFirmware", _update(signer, signature), [ROOT[0]], NOW)
        assert info.value.code == code
    check_update("UpdateFirmware", _update(signer, None), [], NOW)  # no roots configured: relayed as given
    check_update("Reset", {}, [ROOT[0]], NOW)  # no firmware in it
