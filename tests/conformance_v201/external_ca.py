"""An external CA behind voltlib's adapter interface, for tests (``certificate_authority_factory``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from voltlib.security.ca import CheckedCsr, Issued, issued
from voltlib.security.v2g_local import LocalV2GBackend, pem


class ExternalCa:
    """What an operator's adapter to its CA's API looks like (voltlib.security.ca.StationCertificateSigner):
    here the "remote" CA is in memory, and it records what it was asked."""

    def __init__(self) -> None:
        self.authority = LocalV2GBackend().root  # any EC CA will do
        self.asked: list[str] = []

    def sign(self, checked: CheckedCsr, now: datetime) -> Issued:
        self.asked.append(checked.common_name)
        leaf = self.authority.issue(checked.csr.subject, checked.csr.public_key(), now)
        return issued(leaf, pem(leaf) + pem(self.authority.certificate))


def external_ca(settings: Any) -> ExternalCa:
    """The ``certificate_authority_factory`` of test_certificates.py."""
    return ExternalCa()
