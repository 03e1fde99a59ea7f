"""What a 2.0.1 station's screen holds (block O; issue 17).

NotifyDisplayMessages (the answer to GetDisplayMessages, in parts) is stored before it is
answered: each message replaces the stored one of its id (``display_messages``, source ``report``).
Messages voltlib sets or clears are kept in step from the station's answers
(:class:`voltlib.gateway.monitoring_v201.MonitoringFollower`). Joins
:mod:`voltlib.gateway.handlers_v201`'s table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.v201 import messages as m
from voltlib.store import diagnostics as dg


def message_row(info: m.MessageInfo) -> dict[str, Any]:
    display = info.display
    return {"message_id": info.id, "priority": info.priority, "state": info.state,
            "format": info.message.format, "language": info.message.language, "content": info.message.content,
            "evse_id": None if display is None or display.evse is None else display.evse.id,
            "start_at": info.start_date_time, "end_at": info.end_date_time, "transaction_id": info.transaction_id}


async def notify_display_messages(ctx: ChargePointContext, req: m.NotifyDisplayMessages) -> m.Reply:
    """O04: one part of the station's list of messages, committed before it is answered."""
    s = ctx.services
    rows = [message_row(info) for info in req.message_info or []]
    if rows:
        await s.store.write(partial(dg.store_display_messages, cp_id=ctx.cp_id, rows=rows, source="report",
                                    now=s.clock.now()))
    return m.NotifyDisplayMessagesReply()


HANDLERS: dict[str, Callable[[ChargePointContext, Any], Awaitable[m.Reply]]] = {
    m.NotifyDisplayMessages.ACTION: notify_display_messages,
}
