"""Fan-out of bus events to the dashboards' Server-Sent Event streams.

One bus subscriber for all browsers; each browser has a small queue of its own. A browser too slow
to keep up loses events rather than slowing the bus, and is told to reload its data ("resync").
Security events reach only the roles allowed to read them through the API.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from voltlib.bus import Bus
from voltlib.events import ChargePointSecurityEvent, Event, MeterValuesReceived, SecurityIncident, encode

SECURITY_ROLES = frozenset({"admin", "security"})
RESYNC = b"resync"


@dataclass(eq=False)
class Client:
    role: str
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(256))
    overflowed: bool = False


class Broadcaster:
    def __init__(self, bus: Bus) -> None:
        self.clients: set[Client] = set()
        bus.subscribe(self._on_event, name="dashboard-live")

    def join(self, role: str) -> Client:
        client = Client(role)
        self.clients.add(client)
        return client

    def leave(self, client: Client) -> None:
        self.clients.discard(client)

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, MeterValuesReceived):
            return  # too chatty for a browser; pages poll meter values when they show them
        restricted = isinstance(event, SecurityIncident | ChargePointSecurityEvent)
        data = encode(event)
        for client in self.clients:
            if restricted and client.role not in SECURITY_ROLES:
                continue
            try:
                client.queue.put_nowait(data)
            except asyncio.QueueFull:
                client.overflowed = True
