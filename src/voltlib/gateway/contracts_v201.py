"""Plug & Charge authorization (OCPP 2.0.1 C07; issue 17): an Authorize whose idToken is an eMAID
and which carries the car's contract certificate, as its chain (``certificate``, PEM) or as OCSP
request data (``iso15118CertificateHashData``).

The certificate is judged first, the eMAID second (C07.FR.13-17): each certificate of the chain is
asked about through the V2G back end's OCSP (GetCertificateStatus's path); a chain sent whole is
also checked for its eMAID, its validity dates and each link's signature. A revoked certificate is
CertificateRevoked (Invalid), an expired one CertificateExpired (Expired), anything that cannot be
verified (unknown to the responder, a broken chain, no back end, a back end that failed) is
CertChainError (Invalid): voltlib fails closed. Only a good chain lets the eMAID be decided, as
``proven`` (car sharing opens a car to a member's contract only so): Accepted, or ContractCancelled
with the refusal (blocked, expired, unknown). Every check is a security event before the answer.
An eMAID without any certificate data is decided as any token, unproven
(:mod:`voltlib.gateway.handlers_v201`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import pairwise

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from voltlib import events as ev
from voltlib.domain.idtags import Decision
from voltlib.gateway import neutral
from voltlib.gateway.certificates_v201 import ask
from voltlib.gateway.context import ChargePointContext
from voltlib.gateway.transactions_v201 import token_info
from voltlib.ocpp.v201 import messages as m
from voltlib.security.v2g import OcspAnswer, OcspQuery
from voltlib.store import repo

EMAID = "eMAID"
ACCEPTED, EXPIRED, REVOKED, CHAIN_ERROR = "Accepted", "CertificateExpired", "CertificateRevoked", "CertChainError"
CANCELLED = frozenset({"Blocked", "Expired", "Invalid", "Unknown"})  # C07.FR.13: a good certificate, a refused eMAID
MAX_CHAIN = 5  # leaf, up to two sub-CAs and a root, with room for one more (ISO 15118-2: 4 at most)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What voltlib found of a contract certificate chain: its ``certificateStatus`` and why."""

    status: str
    reason: str | None = None


async def authorize(ctx: ChargePointContext, req: m.Authorize) -> m.AuthorizeReply:
    emaid = req.id_token.id_token
    verdict = await judge(ctx, emaid, req.certificate, req.iso15118_certificate_hash_data or [])
    if verdict.status == ACCEPTED:
        decision = await neutral.authorize(ctx, emaid, proven=True)
        status = "ContractCancelled" if decision.status in CANCELLED else ACCEPTED
    else:
        decision = Decision("Expired" if verdict.status == EXPIRED else "Invalid")
        await ctx.services.bus.publish(ev.IdTagAuthorized(charge_point_id=ctx.cp_id, at=ctx.services.clock.now(),
                                                          id_tag=emaid, status=decision.status))
        status = verdict.status
    source = "certificate" if req.certificate else "hash_data"
    await _record(ctx, emaid, status, decision.status, verdict.reason, source)
    return m.AuthorizeReply(id_token_info=token_info(decision), certificate_status=status)


async def judge(ctx: ChargePointContext, emaid: str, certificate: str | None,
                hash_data: list[m.OCSPRequestData]) -> Verdict:
    """The contract chain's status: from the chain itself when sent whole, then from OCSP."""
    now = ctx.services.clock.now()
    if certificate:
        chain, problem = _chain(certificate, emaid, now)
        if problem is not None:
            return problem
        queries = [_query(cert, issuer) for cert, issuer in pairwise(chain)]
    else:
        queries = [OcspQuery(d.hash_algorithm, d.issuer_name_hash, d.issuer_key_hash, d.serial_number, d.responder_url)
                   for d in hash_data]
    backend = ctx.services.v2g_backend
    if backend is None:
        return Verdict(CHAIN_ERROR, "no V2G back end is configured: the contract cannot be checked")
    for query in queries:
        answer = await ask(ctx, backend.certificate_status(ctx.cp_id, query),
                           OcspAnswer("Failed", reason="the V2G back end failed"))
        verdict = _ocsp_verdict(query, answer, now)
        if verdict.status != ACCEPTED:
            return verdict
    return Verdict(ACCEPTED)


def _chain(text: str, emaid: str, now: datetime) -> tuple[list[x509.Certificate], Verdict | None]:
    """The chain, leaf first, or why it fails: its leaf must name the eMAID, every certificate be
    valid now, and each be signed by the next (the last one's own trust is the PKI's: OCSP)."""
    try:
        chain = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        return [], Verdict(CHAIN_ERROR, "the certificate is not a PEM chain")
    if not 2 <= len(chain) <= MAX_CHAIN:
        return [], Verdict(CHAIN_ERROR, f"a chain of {len(chain)} certificates (2 to {MAX_CHAIN} expected)")
    names = chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or str(names[0].value).replace("-", "").upper() != emaid.replace("-", "").upper():
        return [], Verdict(CHAIN_ERROR, "the contract certificate is not the eMAID's")
    for cert in chain:
        if cert.not_valid_after_utc < now:
            return [], Verdict(EXPIRED, f"certificate {cert.serial_number:x} expired")
        if cert.not_valid_before_utc > now:
            return [], Verdict(CHAIN_ERROR, f"certificate {cert.serial_number:x} is not valid yet")
    for cert, issuer in pairwise(chain):
        try:
            cert.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            return [], Verdict(CHAIN_ERROR, f"certificate {cert.serial_number:x} is not signed by the next one")
    return chain, None


def _query(cert: x509.Certificate, issuer: x509.Certificate) -> OcspQuery:
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    responders = [d.access_location.value for d in _access(cert)
                  if d.access_method == AuthorityInformationAccessOID.OCSP]
    return OcspQuery("SHA256", request.issuer_name_hash.hex(), request.issuer_key_hash.hex(),
                     format(cert.serial_number, "x"), str(responders[0]) if responders else "")


def _access(cert: x509.Certificate) -> list[x509.AccessDescription]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value)
    except x509.ExtensionNotFound:
        return []


def _ocsp_verdict(query: OcspQuery, answer: OcspAnswer, now: datetime) -> Verdict:
    """A certificate's status in the back end's OCSP answer, which must be about that certificate
    and current. voltlib trusts its configured back end for the responder's signature."""
    if answer.status != "Accepted" or answer.ocsp_result is None:
        return Verdict(CHAIN_ERROR, answer.reason or "no OCSP answer")
    try:
        response = ocsp.load_der_ocsp_response(base64.b64decode(answer.ocsp_result, validate=True))
    except (binascii.Error, ValueError):
        return Verdict(CHAIN_ERROR, "the OCSP answer cannot be read")
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return Verdict(CHAIN_ERROR, f"OCSP {response.response_status.name}")
    for single in response.responses:
        if (format(single.serial_number, "x"), single.issuer_name_hash.hex(), single.issuer_key_hash.hex()) != \
                (query.serial_number.lower().lstrip("0") or "0", query.issuer_name_hash.lower(),
                 query.issuer_key_hash.lower()):
            continue
        if single.next_update_utc is not None and single.next_update_utc < now:
            return Verdict(CHAIN_ERROR, "a stale OCSP answer")
        if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            return Verdict(REVOKED, f"certificate {query.serial_number} revoked")
        if single.certificate_status == ocsp.OCSPCertStatus.UNKNOWN:
            return Verdict(CHAIN_ERROR, f"certificate {query.serial_number} unknown to its responder")
        return Verdict(ACCEPTED)
    return Verdict(CHAIN_ERROR, "the OCSP answer is about another certificate")


async def _record(ctx: ChargePointContext, emaid: str, certificate_status: str, status: str, reason: str | None,
                  source: str) -> None:
    s = ctx.services
    good = certificate_status == ACCEPTED and status == "Accepted"
    await s.store.write(partial(
        repo.record_security_event, kind="contract_authorization", severity="info" if good else "warning",
        charge_point_id=ctx.cp_id, source=ctx.address,
        detail={"emaid": emaid, "certificate_status": certificate_status, "status": status, "reason": reason,
                "from": source}, now=s.clock.now()))
