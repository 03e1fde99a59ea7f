"""What a charge point's message means, whatever the OCPP version that carried it: each version's
handler reads its own message, calls these, and writes its own reply (boot, heartbeat, security
event, DataTransfer so far; the rest of issue 16's version-neutral core grows here)."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from voltlib import events as ev
from voltlib.gateway.context import ChargePointContext
from voltlib.gateway.datatransfer import DataTransferAnswer
from voltlib.store import repo


async def booted(ctx: ChargePointContext, status: str, now: datetime, *, vendor: str, model: str,
                 serial_number: str | None, firmware_version: str | None) -> int:
    """A boot recorded as ``status``: the connection takes it and the bus hears it. Returns the
    interval to answer: the heartbeat's when Accepted, else the retry's."""
    s = ctx.services
    ctx.registration = status
    await s.bus.publish(ev.BootNotified(
        charge_point_id=ctx.cp_id, at=now, vendor=vendor, model=model, serial_number=serial_number,
        firmware_version=firmware_version, registration=status))
    return s.settings.heartbeat_interval if status == "Accepted" else s.settings.pending_retry_interval


async def heartbeat(ctx: ChargePointContext) -> datetime:
    """The charge point is alive: its last-seen time moves (written later, never awaited). Returns
    voltlib's time, which every version's answer carries."""
    s = ctx.services
    now = s.clock.now()
    s.store.write_later(partial(repo.touch, cp_id=ctx.cp_id, now=now))
    await s.bus.publish(ev.HeartbeatReceived(charge_point_id=ctx.cp_id, at=now))
    return now


# SecurityEventNotification types (OCPP 1.6 security whitepaper, appendix 1; 2.0.1 names them alike)
# that mean someone is physically or logically attacking the charge point.
CRITICAL_SECURITY_EVENTS = frozenset({"TamperDetectionActivated", "InvalidFirmwareSignature",
                                      "InvalidCentralSystemCertificate", "InvalidChargePointCertificate",
                                      "InvalidTLSVersion", "InvalidTLSCipherSuite", "MemoryExhaustion",
                                      "SecurityLogWasCleared", "ReconfigurationOfSecurityParameters",
                                      "AttemptedReplayAttacks"})


async def security_event(ctx: ChargePointContext, kind: str, tech_info: str | None, stamped: datetime) -> None:
    """The charge point reports a security event: stored, then published for the detectors."""
    s = ctx.services
    severity = "critical" if kind in CRITICAL_SECURITY_EVENTS else "info"
    await s.store.write(partial(
        repo.record_security_event, kind=f"charge_point:{kind}", severity=severity, charge_point_id=ctx.cp_id,
        source=ctx.address, detail={"techInfo": tech_info, "timestamp": stamped.isoformat()}, now=s.clock.now()))
    await s.bus.publish(ev.ChargePointSecurityEvent(charge_point_id=ctx.cp_id, at=stamped, type=kind,
                                                    tech_info=tech_info))


async def data_transfer(ctx: ChargePointContext, vendor_id: str, message_id: str | None,
                        data: str | None) -> DataTransferAnswer:
    """Vendor data, routed by vendor and message id (gateway/datatransfer.py) and published."""
    s = ctx.services
    answer = await s.data_transfer.route(ctx.cp_id, vendor_id, message_id, data)
    await s.bus.publish(ev.DataTransferReceived(
        charge_point_id=ctx.cp_id, at=s.clock.now(), vendor_id=vendor_id, message_id=message_id,
        size=len(data or ""), handled=answer.status not in ("UnknownVendorId", "UnknownMessageId")))
    return answer
