"""The V2G / contract back end behind ISO 15118 Plug & Charge (OCPP 2.0.1 blocks A and M).

voltlib holds no contract keys and no V2G root: what only the e-mobility PKI can answer is handed
to a :class:`V2GBackend`, named by the ``v2g_backend`` setting (a "package.module:factory",
:mod:`voltlib.security.adapters`). Three questions reach it:

- a station's SignCertificate with certificateType V2GCertificate (its ISO 15118 TLS certificate,
  signed under the V2G root, not by the CPO's charge-point CA);
- Get15118EVCertificate: a car asks, through the station, for its contract certificate to be
  installed or updated; the request and answer are EXI, which voltlib relays untouched (base64);
- GetCertificateStatus: the station asks for the OCSP status of a certificate in a car's chain.

Without a back end the first is Rejected and the others Failed. :mod:`voltlib.security.v2g_local`
is a local stand-in, for tests and demonstrations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class OcspQuery:
    """2.0.1 OCSPRequestDataType: the certificate asked about, as an OCSP CertID, and its responder."""

    hash_algorithm: str  # SHA256 | SHA384 | SHA512
    issuer_name_hash: str  # hex
    issuer_key_hash: str  # hex
    serial_number: str  # hex
    responder_url: str


@dataclass(frozen=True, slots=True)
class EvCertificateAnswer:
    status: Literal["Accepted", "Failed"]
    exi_response: str  # base64; empty when Failed
    reason: str | None = None  # why it failed (logged and stored, never sent beyond 20 characters)


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    status: Literal["Accepted", "Failed"]
    ocsp_result: str | None = None  # base64 DER OCSPResponse
    reason: str | None = None


class V2GRefused(Exception):
    """The back end refused a V2G CSR (its reason is the message)."""


class V2GBackend(Protocol):
    async def sign_v2g_csr(self, cp_id: str, csr_pem: str) -> str:
        """The station's V2G certificate chain in PEM, leaf first; raises :class:`V2GRefused`."""
        ...

    async def ev_certificate(self, cp_id: str, schema_version: str, action: str,
                             exi_request: str) -> EvCertificateAnswer:
        """Get15118EVCertificate: ``action`` Install or Update, ``exi_request`` base64 EXI."""
        ...

    async def certificate_status(self, cp_id: str, query: OcspQuery) -> OcspAnswer: ...
