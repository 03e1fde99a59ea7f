"""What a 2.0.1 station tells voltlib about a log upload (block N, LogStatusNotification).

The status is stored as the charge point's ``log_status``, then published as the same
``LogStatusChanged`` as 1.6's extended LogStatusNotification, so the unrequested-upload detector
(:mod:`voltlib.security.detectors`, ``log_unrequested``) judges both versions alike: an upload under
way that no GetLog of voltlib's ordered is exfiltration. Joins :mod:`voltlib.gateway.handlers_v201`'s
table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from voltlib import events as ev
from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.v201 import messages as m
from voltlib.store import repo


async def log_status(ctx: ChargePointContext, req: m.LogStatusNotification) -> m.Reply:
    """Committed, published, then answered (N01.FR.07...: the CSMS only acknowledges)."""
    s = ctx.services
    await s.store.write(partial(repo.update_charge_point, cp_id=ctx.cp_id, log_status=req.status))
    await s.bus.publish(ev.LogStatusChanged(charge_point_id=ctx.cp_id, at=s.clock.now(), status=req.status,
                                            request_id=req.request_id))
    return m.LogStatusNotificationReply()


HANDLERS: dict[str, Callable[[ChargePointContext, Any], Awaitable[m.Reply]]] = {
    m.LogStatusNotification.ACTION: log_status,
}
