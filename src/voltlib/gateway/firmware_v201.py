"""What a 2.0.1 station tells voltlib about a firmware update (block L; issue 17).

Every FirmwareStatusNotification status (Downloading ... Installed, and each failure:
DownloadFailed, InvalidSignature, InstallVerificationFailed, InstallationFailed...) is stored as the
charge point's ``firmware_status``, then published as the same ``FirmwareStatusChanged`` as 1.6's,
so the unexpected-firmware detector (:mod:`voltlib.security.detectors`) judges both versions alike.
2.0.1's update is the secure one whether or not the operator signed it: ``signed`` is true. The
UpdateFirmware itself goes out through the gateway's command path, where the signing certificate
and signature are checked first (:mod:`voltlib.security.firmware`). Joins
:mod:`voltlib.gateway.handlers_v201`'s table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from voltlib import events as ev
from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.v201 import messages as m
from voltlib.store import repo


async def firmware_status(ctx: ChargePointContext, req: m.FirmwareStatusNotification) -> m.Reply:
    """Committed, published, then answered (L01.FR.01...: the CSMS only acknowledges)."""
    s = ctx.services
    await s.store.write(partial(repo.update_charge_point, cp_id=ctx.cp_id, firmware_status=req.status))
    await s.bus.publish(ev.FirmwareStatusChanged(charge_point_id=ctx.cp_id, at=s.clock.now(), status=req.status,
                                                 signed=True))
    return m.FirmwareStatusNotificationReply()


HANDLERS: dict[str, Callable[[ChargePointContext, Any], Awaitable[m.Reply]]] = {
    m.FirmwareStatusNotification.ACTION: firmware_status,
}
