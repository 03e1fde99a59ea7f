"""What a 2.0.1 station asks about certificates (blocks A and M; issue 17).

SignCertificate: a ChargingStationCertificate (or no type: A02.FR.20's default) goes to the CPO's
CA, after the same checks as 1.6's (:func:`voltlib.security.ca.check_csr`); a V2GCertificate to the
V2G back end, after its CSR's own signature is checked. Accepted is answered only when the CSR can
be processed; the signing and CertificateSigned follow once the answer is on the wire
(:mod:`voltlib.gateway.certificates`). Get15118EVCertificate and GetCertificateStatus are handed to
the V2G back end (:mod:`voltlib.security.v2g`) and its answer relayed; without one, or when it fails
or is too slow, the station gets Failed. Each is recorded as a security event before it is answered.
Joins :mod:`voltlib.gateway.handlers_v201`'s table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from cryptography import x509

from voltlib import events as ev
from voltlib.gateway.certificate_alerts import renewal_failed
from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.v201 import messages as m
from voltlib.security.ca import CsrRejected, check_csr, signature_verifies
from voltlib.security.v2g import EvCertificateAnswer, OcspAnswer, OcspQuery
from voltlib.store import repo

log = logging.getLogger(__name__)

STATION, V2G = "ChargingStationCertificate", "V2GCertificate"
MAX_EXI_RESPONSE, MAX_OCSP_RESULT = 7500, 5500  # the schemas' maxLength
T = TypeVar("T")


async def sign_certificate(ctx: ChargePointContext, req: m.SignCertificate) -> m.Reply:
    s = ctx.services
    now, kind = s.clock.now(), req.certificate_type or STATION
    refusal = _v2g_refusal(ctx, req.csr) if kind == V2G else _station_refusal(ctx, req.csr)
    request_id = await s.store.write(partial(repo.record_csr, cp_id=ctx.cp_id, csr=req.csr, now=now,
                                             state="rejected" if refusal else "accepted", certificate_type=kind))
    if refusal is not None:
        code, reason = refusal
        await s.store.write(partial(repo.record_security_event, kind="csr_rejected", severity="warning",
                                    charge_point_id=ctx.cp_id, source=ctx.address,
                                    detail={"request_id": request_id, "reason": reason, "certificate_type": kind},
                                    now=now))
        if kind == STATION:
            ctx.after_reply.append(partial(renewal_failed, s, ctx.cp_id,
                                           {"request_id": request_id, "step": "csr", "reason": reason}))
        return m.SignCertificateReply(status="Rejected", status_info=m.StatusInfo(reason_code=code,
                                                                                  additional_info=reason[:512]))
    event = ev.CertificateSigningRequested(charge_point_id=ctx.cp_id, at=now, request_id=request_id, csr=req.csr,
                                           certificate_type=kind)
    ctx.after_reply.append(partial(s.bus.publish, event))
    return m.SignCertificateReply(status="Accepted")


Refusal = tuple[str, str]  # statusInfo reasonCode (at most 20 characters), and why


def _station_refusal(ctx: ChargePointContext, csr: str) -> Refusal | None:
    s = ctx.services
    if s.certificate_authority is None:
        return "NotConfigured", "no certificate authority is configured"
    try:
        check_csr(csr, ctx.cp_id, s.settings.cpo_name)
    except CsrRejected as exc:
        return "InvalidCSR", str(exc)
    return None


def _v2g_refusal(ctx: ChargePointContext, csr: str) -> Refusal | None:
    """The back end judges the subject (ISO 15118's rules, not the CPO's); voltlib only makes sure
    the CSR is one, made with the key it carries."""
    if ctx.services.v2g_backend is None:
        return "NotConfigured", "no V2G back end is configured"
    try:
        request = x509.load_pem_x509_csr(csr.encode())
    except ValueError:
        return "InvalidCSR", "not a PEM certificate signing request"
    if not signature_verifies(request):
        return "InvalidCSR", "the CSR's signature does not verify with the key it carries"
    return None


async def get_15118_ev_certificate(ctx: ChargePointContext, req: m.Get15118EVCertificate) -> m.Reply:
    s = ctx.services
    backend = s.v2g_backend
    answer = EvCertificateAnswer("Failed", "", "no V2G back end is configured")
    if backend is not None:
        answer = await ask(ctx, backend.ev_certificate(ctx.cp_id, req.iso15118_schema_version, req.action,
                                                        req.exi_request), EvCertificateAnswer("Failed", ""))
    if len(answer.exi_response) > MAX_EXI_RESPONSE:
        answer = EvCertificateAnswer("Failed", "", f"exiResponse of {len(answer.exi_response)} characters")
    await _record(ctx, "v2g_ev_certificate", answer.status, answer.reason,
                  {"action": req.action, "schema": req.iso15118_schema_version[:50]})
    return m.Get15118EVCertificateReply(status=answer.status, exi_response=answer.exi_response,
                                        status_info=_info(answer.reason))


async def get_certificate_status(ctx: ChargePointContext, req: m.GetCertificateStatus) -> m.Reply:
    s = ctx.services
    backend, data = s.v2g_backend, req.ocsp_request_data
    answer = OcspAnswer("Failed", reason="no V2G back end is configured")
    if backend is not None:
        query = OcspQuery(data.hash_algorithm, data.issuer_name_hash, data.issuer_key_hash, data.serial_number,
                          data.responder_url)
        answer = await ask(ctx, backend.certificate_status(ctx.cp_id, query), OcspAnswer("Failed"))
    if answer.ocsp_result is not None and len(answer.ocsp_result) > MAX_OCSP_RESULT:
        answer = OcspAnswer("Failed", reason=f"ocspResult of {len(answer.ocsp_result)} characters")
    await _record(ctx, "v2g_certificate_status", answer.status, answer.reason,
                  {"serial_number": data.serial_number, "responder_url": data.responder_url[:200]})
    result = answer.ocsp_result if answer.status == "Accepted" else None
    return m.GetCertificateStatusReply(status=answer.status, ocsp_result=result, status_info=_info(answer.reason))


async def ask(ctx: ChargePointContext, question: Awaitable[T], failed: T) -> T:
    """The back end's answer, or ``failed`` when it raises or takes longer than a command may."""
    try:
        return await asyncio.wait_for(question, ctx.services.settings.command_timeout)
    except Exception:  # its fault, not the station's: logged, and the station told Failed
        log.exception("V2G back end failed for %s", ctx.cp_id)
        return failed


async def _record(ctx: ChargePointContext, kind: str, status: str, reason: str | None,
                  detail: dict[str, object]) -> None:
    s = ctx.services
    await s.store.write(partial(repo.record_security_event, kind=kind, severity="info" if status == "Accepted"
                                else "warning", charge_point_id=ctx.cp_id, source=ctx.address,
                                detail={"status": status, "reason": reason, **detail}, now=s.clock.now()))


def _info(reason: str | None) -> m.StatusInfo | None:
    return None if reason is None else m.StatusInfo(reason_code="BackendFailed", additional_info=reason[:512])


HANDLERS: dict[str, Callable[[ChargePointContext, Any], Awaitable[m.Reply]]] = {
    m.SignCertificate.ACTION: sign_certificate,
    m.Get15118EVCertificate.ACTION: get_15118_ev_certificate,
    m.GetCertificateStatus.ACTION: get_certificate_status,
}
