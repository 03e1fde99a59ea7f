"""What a charge point's message means, whatever the OCPP version that carried it: each version's
handler reads its own message, calls these, and writes its own reply (boot, heartbeat, security
event, DataTransfer, a badge, a transaction's start and stop, meter values).

Meter values travel here in 1.6's shape (:class:`voltlib.ocpp.v16.messages.MeterValue`), the one
:mod:`voltlib.domain.meter` stores; the 2.0.1 handler converts its own first."""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Table

from voltlib import events as ev
from voltlib.domain import meter
from voltlib.domain.idtags import Decision
from voltlib.gateway.clock import stamp
from voltlib.gateway.context import ChargePointContext
from voltlib.gateway.datatransfer import DataTransferAnswer
from voltlib.ocpp.v16.messages import MeterValue
from voltlib.store import repo
from voltlib.store.tables import meter_values as meter_values_table
from voltlib.store.transaction_events import insert_merging


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


async def authorize(ctx: ChargePointContext, id_tag: str, *, proven: bool = False) -> Decision:
    """A badge presented at the charge point: car sharing decides first (a member's badge), then the
    id-tag table. Published for the detectors (brute force, a badge in two places). ``proven``: an
    eMAID whose contract certificate was checked (:mod:`voltlib.gateway.contracts_v201`)."""
    s = ctx.services
    now = s.clock.now()
    decision = None if s.authorizer is None else await s.authorizer.authorize(ctx.cp_id, id_tag, now, proven=proven)
    if decision is None:
        decision = await s.store.read(partial(repo.authorize, id_tag=id_tag, now=now))
    await s.bus.publish(ev.IdTagAuthorized(charge_point_id=ctx.cp_id, at=now, id_tag=id_tag, status=decision.status))
    return decision


async def transaction_started(ctx: ChargePointContext, *, transaction_id: int, connector_id: int, id_tag: str,
                              id_tag_status: str, meter_start: int, started_at: datetime,
                              reservation_id: int | None) -> None:
    """A transaction (committed) is known with its id token: car sharing sees a car returned when
    the token is a car's, energy a new session, the detectors a badge in use. ``started_at``: the
    start as the clock policy believes it (:func:`voltlib.gateway.clock.stamp`)."""
    s = ctx.services
    now = s.clock.now()
    await s.bus.publish(ev.TransactionStarted(
        charge_point_id=ctx.cp_id, at=now, transaction_id=transaction_id, connector_id=connector_id, id_tag=id_tag,
        id_tag_status=id_tag_status, meter_start=meter_start, started_at=started_at, reservation_id=reservation_id))


async def transaction_repeated(ctx: ChargePointContext, *, transaction_id: int, connector_id: int, id_tag: str,
                               stamped: datetime) -> None:
    """The start of a transaction voltlib already has came again (issue 5): a retry or a replay;
    the security detectors tell them apart."""
    s = ctx.services
    await s.bus.publish(ev.TransactionStartRepeated(
        charge_point_id=ctx.cp_id, at=s.clock.now(), transaction_id=transaction_id, connector_id=connector_id,
        id_tag=id_tag, started_at=stamped))


async def transaction_stopped(ctx: ChargePointContext, *, transaction_id: int, meter_stop: int,
                              stopped_at: datetime, reason: str | None, known: bool) -> None:
    """A transaction ended (committed), or a stop for one voltlib never saw (``known`` False);
    ``stopped_at`` as the clock policy believes it."""
    s = ctx.services
    now = s.clock.now()
    await s.bus.publish(ev.TransactionStopped(
        charge_point_id=ctx.cp_id, at=now, transaction_id=transaction_id, meter_stop=meter_stop,
        stopped_at=stopped_at, reason=reason, known=known))


async def metered(ctx: ChargePointContext, action: str, connector_id: int, transaction_id: int | None,
                  values: list[MeterValue], *, merge: bool = False, sampled: list[datetime] | None = None,
                  beside: tuple[Table, list[dict[str, Any]]] | None = None) -> None:
    """Readings of a connector (and of a transaction): stored once by their natural key, a state of
    charge written on the car there before the answer, each reading published. ``merge`` (2.0.1):
    a reading of an instant already stored adds its samples to it
    (:func:`voltlib.store.transaction_events.insert_merging`) instead of being dropped. ``sampled``:
    the readings' stamps judged already, with the rest of their message (one skew event a message).
    ``beside``: rows of another table committed in the same group commit as the readings."""
    s = ctx.services
    now = s.clock.now()
    rows = repo.meter_rows(ctx.cp_id, connector_id, transaction_id, values, now)
    if sampled is None:
        sampled = await stamp(ctx, action, [value.timestamp for value in values], now)
    # a state of charge goes on the car there before the answer (docs/energy.md); a charge point that is
    # no bay has no fleet car docked: its readings go to the estimator only, through the event
    reading = repo.latest_soc(values) if ctx.is_bay else None
    if reading is not None:  # at the time the clock policy believes, not a stamp from the future
        reading = reading[0], dict(zip([v.timestamp for v in values], sampled, strict=True))[reading[1]]
    soc = None if reading is None else partial(repo.record_soc, cp_id=ctx.cp_id, connector_id=connector_id,
                                               tx_id=transaction_id, reading=reading)
    if merge:
        await s.store.write(partial(insert_merging, rows=rows, then=soc))
    elif beside is not None:  # both queued in this turn of the loop: one group commit
        await asyncio.gather(s.store.insert_soon(beside[0], beside[1], ignore_duplicates=True),
                             s.store.insert_soon(meter_values_table, rows, ignore_duplicates=True, then=soc))
    else:
        await s.store.insert(meter_values_table, rows, ignore_duplicates=True, then=soc)  # own stamps: natural key
    for value, sampled_at in zip(values, sampled, strict=True):
        samples = value.sampled_value
        await s.bus.publish(ev.MeterValuesReceived(
            charge_point_id=ctx.cp_id, at=now, connector_id=connector_id, transaction_id=transaction_id,
            sampled_at=sampled_at, energy_wh=meter.find(samples, "Energy.Active.Import.Register"),
            power_w=meter.find(samples, "Power.Active.Import"), soc_percent=meter.find(samples, "SoC")))
