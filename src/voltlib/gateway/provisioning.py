"""What a boot and a heartbeat mean, whatever the OCPP version that carried them: each version's
handler reads its own message, then calls these, and writes its own reply."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from voltlib import events as ev
from voltlib.gateway.context import ChargePointContext
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
