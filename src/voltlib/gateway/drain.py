"""A node's graceful stop (SIGTERM): every charge point's socket is closed with 1001 (going away)
as soon as nothing is under way on it, so that no call a charge point sent before the stop goes
unanswered and no command of ours loses its answer; the charge points reconnect, through the load
balancer, to another node. Whatever a connection still does at ``timeout`` is cut short: its charge
point sends the call again after reconnecting (calls are idempotent), since it never got an answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from voltlib.gateway.connection import WS_GOING_AWAY

if TYPE_CHECKING:
    from voltlib.gateway.gateway import Gateway

log = logging.getLogger(__name__)
POLL = 0.01  # seconds between two looks at the connections still busy
REASON = "server shutting down"


async def close_when_idle(gateway: Gateway, timeout: float) -> tuple[int, int]:
    """Close every connection once idle, the rest at ``timeout``; returns (closed idle, cut short)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    closing: dict[int, asyncio.Task[None]] = {}
    cut = 0
    while True:
        late = loop.time() >= deadline
        waiting = [c for c in list(gateway.connections.values()) if id(c) not in closing and not c.ws.closed]
        for connection in waiting:
            if connection.idle or late:
                cut += not connection.idle
                closing[id(connection)] = loop.create_task(connection.close(WS_GOING_AWAY, REASON))
        if late or not waiting:
            break
        await asyncio.sleep(POLL)
    await asyncio.gather(*closing.values(), return_exceptions=True)
    if cut:
        log.warning("drain: %d connections were still busy after %g s and were closed all the same", cut, timeout)
    return len(closing) - cut, cut
