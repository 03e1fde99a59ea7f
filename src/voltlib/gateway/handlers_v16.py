"""What voltlib does with each OCPP 1.6 request, and what it answers.

One function per action, in an explicit table keyed by message class. Each handler commits its
data (``store.write`` returns after the group commit) before returning the reply, then publishes
the domain event.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any

from voltlib import events as ev
from voltlib.config import Settings
from voltlib.domain import clock_policy, meter
from voltlib.domain.idtags import Decision
from voltlib.gateway import neutral
from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.v16 import messages as m
from voltlib.security.ca import CsrRejected, check_csr
from voltlib.store import repo
from voltlib.store.tables import meter_values as meter_values_table

Handler = Callable[[ChargePointContext, Any], Awaitable[m.Reply]]
log = logging.getLogger(__name__)



def _info(decision: Decision | None) -> m.IdTagInfo:
    if decision is None:
        return m.IdTagInfo(status="Accepted")
    return m.IdTagInfo(status=decision.status, expiry_date=decision.expiry_date, parent_id_tag=decision.parent_id_tag)


@lru_cache(maxsize=8)
def _clock_policy(ahead_seconds: float, behind_hours: float) -> clock_policy.ClockPolicy:
    return clock_policy.ClockPolicy(timedelta(seconds=ahead_seconds), timedelta(hours=behind_hours))


def policy_of(settings: Settings) -> clock_policy.ClockPolicy:
    """The clock policy the settings describe (``clock_ahead_seconds``, ``clock_behind_hours``)."""
    return _clock_policy(settings.clock_ahead_seconds, settings.clock_behind_hours)


async def _stamp(ctx: ChargePointContext, message: str, stamps: list[datetime | None], now: datetime) -> list[datetime]:
    """The charge point's stamps as voltlib uses them (:func:`voltlib.domain.clock_policy.judge`): this
    is where a charge point's time enters voltlib. Stamps not believed make one ``clock_skew`` security
    event per message, naming the charge point and the skew (the detector alerts once per period)."""
    policy = policy_of(ctx.services.settings)
    judged = [clock_policy.judge(stamp, now, policy) for stamp in stamps]
    worst = max((j for j in judged if j.skew is not None), key=lambda j: abs(j.skew or timedelta(0)), default=None)
    if worst is not None and worst.skew is not None:
        await _clock_skew(ctx, message, worst.skew, now)
    return [j.at for j in judged]


async def _clock_skew(ctx: ChargePointContext, message: str, skew: timedelta, now: datetime) -> None:
    s = ctx.services
    detail: dict[str, Any] = {"message": message, "skew_seconds": round(skew.total_seconds(), 3),
                              "stamp": (now + skew).isoformat(), "received_at": now.isoformat(),
                              "used": now.isoformat()}
    log.info("clock skew of %s: %s stamped %+.0f s from voltlib's time; voltlib's time used", ctx.cp_id, message,
             skew.total_seconds())
    s.store.write_later(partial(repo.record_security_event, kind="clock_skew", severity="warning",
                                charge_point_id=ctx.cp_id, source=ctx.address, detail=detail, now=now))
    await s.bus.publish(ev.SecurityIncident(charge_point_id=ctx.cp_id, at=now, kind="clock_skew", severity="warning",
                                            source=ctx.address, detail=detail))


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
    s = ctx.services
    now = s.clock.now()
    decision = None if s.authorizer is None else await s.authorizer.authorize(ctx.cp_id, req.id_tag, now)
    if decision is None:
        decision = await s.store.read(partial(repo.authorize, id_tag=req.id_tag, now=now))
    await s.bus.publish(ev.IdTagAuthorized(charge_point_id=ctx.cp_id, at=now, id_tag=req.id_tag,
                                           status=decision.status))
    return m.AuthorizeReply(id_tag_info=_info(decision))


async def start_transaction(ctx: ChargePointContext, req: m.StartTransaction) -> m.Reply:
    s = ctx.services
    now = s.clock.now()
    # stored with its own stamp (a retransmission is recognised by it) and the receipt time
    outcome = await s.store.write(partial(repo.start_transaction, cp_id=ctx.cp_id, req=req, now=now))
    if outcome.created:
        [started_at] = await _stamp(ctx, m.StartTransaction.ACTION, [req.timestamp], now)
        await s.bus.publish(ev.TransactionStarted(
            charge_point_id=ctx.cp_id, at=now, transaction_id=outcome.transaction_id, connector_id=req.connector_id,
            id_tag=req.id_tag, id_tag_status=outcome.decision.status, meter_start=req.meter_start,
            started_at=started_at, reservation_id=req.reservation_id))
    else:  # issue 5: a retry or a replay; the security detectors tell them apart
        await s.bus.publish(ev.TransactionStartRepeated(
            charge_point_id=ctx.cp_id, at=now, transaction_id=outcome.transaction_id, connector_id=req.connector_id,
            id_tag=req.id_tag, started_at=req.timestamp))
    return m.StartTransactionReply(id_tag_info=_info(outcome.decision), transaction_id=outcome.transaction_id)


async def stop_transaction(ctx: ChargePointContext, req: m.StopTransaction) -> m.Reply:
    s = ctx.services
    now = s.clock.now()
    outcome = await s.store.write(partial(repo.stop_transaction, cp_id=ctx.cp_id, req=req, now=now))  # own stamp
    [stopped_at] = await _stamp(ctx, m.StopTransaction.ACTION, [req.timestamp], now)
    if outcome.changed or not outcome.known:
        await s.bus.publish(ev.TransactionStopped(
            charge_point_id=ctx.cp_id, at=now, transaction_id=req.transaction_id, meter_stop=req.meter_stop,
            stopped_at=stopped_at, reason=req.reason, known=outcome.known))
    if req.id_tag is None:
        return m.StopTransactionReply()
    return m.StopTransactionReply(id_tag_info=_info(outcome.decision))


async def meter_values(ctx: ChargePointContext, req: m.MeterValues) -> m.Reply:
    s = ctx.services
    now = s.clock.now()
    rows = repo.meter_rows(ctx.cp_id, req.connector_id, req.transaction_id, req.meter_value, now)
    sampled = await _stamp(ctx, m.MeterValues.ACTION, [value.timestamp for value in req.meter_value], now)
    # a state of charge goes on the car there before the answer (docs/energy.md); a charge point that is
    # no bay has no fleet car docked: its readings go to the estimator only, through the event
    reading = repo.latest_soc(req.meter_value) if ctx.is_bay else None
    if reading is not None:  # at the time the clock policy believes, not a stamp from the future
        reading = reading[0], dict(zip([v.timestamp for v in req.meter_value], sampled, strict=True))[reading[1]]
    soc = None if reading is None else partial(repo.record_soc, cp_id=ctx.cp_id, connector_id=req.connector_id,
                                               tx_id=req.transaction_id, reading=reading)
    await s.store.insert(meter_values_table, rows, ignore_duplicates=True, then=soc)  # own stamps: the natural key
    for value, sampled_at in zip(req.meter_value, sampled, strict=True):
        samples = value.sampled_value
        await s.bus.publish(ev.MeterValuesReceived(
            charge_point_id=ctx.cp_id, at=now, connector_id=req.connector_id, transaction_id=req.transaction_id,
            sampled_at=sampled_at, energy_wh=meter.find(samples, "Energy.Active.Import.Register"),
            power_w=meter.find(samples, "Power.Active.Import"), soc_percent=meter.find(samples, "SoC")))
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
