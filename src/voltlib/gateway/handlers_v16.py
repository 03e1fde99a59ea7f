"""What voltlib does with each OCPP 1.6 request, and what it answers.

One function per action, in an explicit table keyed by message class. Each handler commits its
data (``store.write`` returns after the group commit) before returning the reply, then publishes
the domain event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from voltlib import events as ev
from voltlib.domain.idtags import Decision
from voltlib.gateway import neutral
from voltlib.gateway.clock import policy_of, stamp
from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.v16 import messages as m
from voltlib.security.ca import CsrRejected, check_csr
from voltlib.store import repo

Handler = Callable[[ChargePointContext, Any], Awaitable[m.Reply]]
__all__ = ["HANDLERS", "Handler", "policy_of"]  # policy_of: where car sharing has always found it


def _info(decision: Decision | None) -> m.IdTagInfo:
    if decision is None:
        return m.IdTagInfo(status="Accepted")
    return m.IdTagInfo(status=decision.status, expiry_date=decision.expiry_date, parent_id_tag=decision.parent_id_tag)


_stamp = stamp  # where a charge point's time enters voltlib (gateway/clock.py)


async def boot_notification(ctx: ChargePointContext, req: m.BootNotification) -> m.Reply:
    s = ctx.services
    now = s.clock.now()
    status = await s.store.write(partial(repo.record_boot, cp_id=ctx.cp_id, boot=req, now=now))
    interval = await neutral.booted(ctx, status, now, vendor=req.charge_point_vendor,
                                         model=req.charge_point_model, serial_number=req.charge_point_serial_number,
                                         firmware_version=req.firmware_version)
    return m.BootNotificationReply(status=status, current_time=now, interval=interval)


async def heartbeat(ctx: ChargePointContext, req: m.Heartbeat) -> m.Reply:
    return m.HeartbeatReply(current_time=await neutral.heartbeat(ctx))


async def status_notification(ctx: ChargePointContext, req: m.StatusNotification) -> m.Reply:
    s = ctx.services
    now = s.clock.now()
    previous, expected = await s.store.write(partial(repo.record_status, cp_id=ctx.cp_id, note=req, now=now))
    [at] = await _stamp(ctx, m.StatusNotification.ACTION, [req.timestamp], now)
    await s.bus.publish(ev.ConnectorStatusChanged(
        charge_point_id=ctx.cp_id, at=at, connector_id=req.connector_id, previous=previous,
        status=req.status, error_code=req.error_code, vendor_error_code=req.vendor_error_code, info=req.info,
        expected=expected))
    return m.EmptyReply()


async def authorize(ctx: ChargePointContext, req: m.Authorize) -> m.Reply:
    return m.AuthorizeReply(id_tag_info=_info(await neutral.authorize(ctx, req.id_tag)))


async def start_transaction(ctx: ChargePointContext, req: m.StartTransaction) -> m.Reply:
    s = ctx.services
    now = s.clock.now()
    # stored with its own stamp (a retransmission is recognised by it) and the receipt time
    outcome = await s.store.write(partial(repo.start_transaction, cp_id=ctx.cp_id, req=req, now=now))
    if outcome.created:
        [started_at] = await stamp(ctx, m.StartTransaction.ACTION, [req.timestamp], now)
        await neutral.transaction_started(
            ctx, transaction_id=outcome.transaction_id, connector_id=req.connector_id, id_tag=req.id_tag,
            id_tag_status=outcome.decision.status, meter_start=req.meter_start, started_at=started_at,
            reservation_id=req.reservation_id)
    else:  # issue 5: a retry or a replay; the security detectors tell them apart
        await neutral.transaction_repeated(ctx, transaction_id=outcome.transaction_id, connector_id=req.connector_id,
                                           id_tag=req.id_tag, stamped=req.timestamp)
    return m.StartTransactionReply(id_tag_info=_info(outcome.decision), transaction_id=outcome.transaction_id)


async def stop_transaction(ctx: ChargePointContext, req: m.StopTransaction) -> m.Reply:
    s = ctx.services
    now = s.clock.now()
    outcome = await s.store.write(partial(repo.stop_transaction, cp_id=ctx.cp_id, req=req, now=now))  # own stamp
    [stopped_at] = await stamp(ctx, m.StopTransaction.ACTION, [req.timestamp], now)
    if outcome.changed or not outcome.known:
        await neutral.transaction_stopped(ctx, transaction_id=req.transaction_id, meter_stop=req.meter_stop,
                                          stopped_at=stopped_at, reason=req.reason, known=outcome.known)
    if req.id_tag is None:
        return m.StopTransactionReply()
    return m.StopTransactionReply(id_tag_info=_info(outcome.decision))


async def meter_values(ctx: ChargePointContext, req: m.MeterValues) -> m.Reply:
    await neutral.metered(ctx, m.MeterValues.ACTION, req.connector_id, req.transaction_id, req.meter_value)
    return m.EmptyReply()


async def data_transfer(ctx: ChargePointContext, req: m.DataTransfer) -> m.Reply:
    answer = await neutral.data_transfer(ctx, req.vendor_id, req.message_id, req.data)
    return m.DataTransferReply(status=answer.status, data=answer.data)


async def _set_status_column(ctx: ChargePointContext, column: str, status: str) -> None:
    s = ctx.services
    values: dict[str, str] = {column: status}
    await s.store.write(lambda conn: repo.update_charge_point(conn, ctx.cp_id, **values))


async def diagnostics_status(ctx: ChargePointContext, req: m.DiagnosticsStatusNotification) -> m.Reply:
    await _set_status_column(ctx, "diagnostics_status", req.status)
    await ctx.services.bus.publish(ev.DiagnosticsStatusChanged(
        charge_point_id=ctx.cp_id, at=ctx.services.clock.now(), status=req.status))
    return m.EmptyReply()


async def firmware_status(ctx: ChargePointContext, req: m.FirmwareStatusNotification) -> m.Reply:
    await _set_status_column(ctx, "firmware_status", req.status)
    await ctx.services.bus.publish(ev.FirmwareStatusChanged(
        charge_point_id=ctx.cp_id, at=ctx.services.clock.now(), status=req.status, signed=False))
    return m.EmptyReply()


async def signed_firmware_status(ctx: ChargePointContext, req: m.SignedFirmwareStatusNotification) -> m.Reply:
    await _set_status_column(ctx, "firmware_status", req.status)
    await ctx.services.bus.publish(ev.FirmwareStatusChanged(
        charge_point_id=ctx.cp_id, at=ctx.services.clock.now(), status=req.status, signed=True))
    return m.EmptyReply()


async def log_status(ctx: ChargePointContext, req: m.LogStatusNotification) -> m.Reply:
    await _set_status_column(ctx, "log_status", req.status)
    await ctx.services.bus.publish(ev.LogStatusChanged(
        charge_point_id=ctx.cp_id, at=ctx.services.clock.now(), status=req.status, request_id=req.request_id))
    return m.EmptyReply()


async def security_event(ctx: ChargePointContext, req: m.SecurityEventNotification) -> m.Reply:
    await neutral.security_event(ctx, req.type, req.tech_info, req.timestamp)
    return m.EmptyReply()


async def sign_certificate(ctx: ChargePointContext, req: m.SignCertificate) -> m.Reply:
    """Accepted only when a CA is configured and the CSR passes its checks (A02.FR.11/12); the
    certificate itself follows in CertificateSigned.req, sent once this answer is on the wire."""
    s = ctx.services
    ca, now = s.certificate_authority, s.clock.now()
    reason = "no certificate authority is configured" if ca is None else None
    if reason is None:
        try:
            check_csr(req.csr, ctx.cp_id, s.settings.cpo_name)
        except CsrRejected as exc:
            reason = str(exc)
    state = "rejected" if reason else "accepted"
    request_id = await s.store.write(partial(repo.record_csr, cp_id=ctx.cp_id, csr=req.csr, state=state, now=now))
    if reason is not None:
        await s.store.write(partial(repo.record_security_event, kind="csr_rejected", severity="warning",
                                    charge_point_id=ctx.cp_id, source=ctx.address,
                                    detail={"request_id": request_id, "reason": reason}, now=now))
        return m.SignCertificateReply(status="Rejected")
    event = ev.CertificateSigningRequested(charge_point_id=ctx.cp_id, at=now, request_id=request_id, csr=req.csr)
    ctx.after_reply.append(partial(s.bus.publish, event))
    return m.SignCertificateReply(status="Accepted")


# Keyed by wire action: the session hands over the strict subclass compiled from the schema
# (voltlib.ocpp.compiled) or the class itself, both carry ACTION.
HANDLERS: dict[str, Handler] = {
    m.BootNotification.ACTION: boot_notification,
    m.Heartbeat.ACTION: heartbeat,
    m.StatusNotification.ACTION: status_notification,
    m.Authorize.ACTION: authorize,
    m.StartTransaction.ACTION: start_transaction,
    m.StopTransaction.ACTION: stop_transaction,
    m.MeterValues.ACTION: meter_values,
    m.DataTransfer.ACTION: data_transfer,
    m.DiagnosticsStatusNotification.ACTION: diagnostics_status,
    m.FirmwareStatusNotification.ACTION: firmware_status,
    m.SignedFirmwareStatusNotification.ACTION: signed_firmware_status,
    m.LogStatusNotification.ACTION: log_status,
    m.SecurityEventNotification.ACTION: security_event,
    m.SignCertificate.ACTION: sign_certificate,
}
