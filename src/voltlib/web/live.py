"""Fan-out of bus events to the dashboards' Server-Sent Event streams.

One bus watcher for all browsers (it runs inside ``publish``, so it only encodes and enqueues);
each browser has a small queue of its own. A browser too slow to keep up loses events rather than
slowing the bus, and is told to reload its data ("resync"). Meter values and heartbeats are too
chatty for a browser and never reach it: pages poll meter values when they show them.
Security events reach only the roles allowed to read them through the API.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from voltlib import events
from voltlib.bus import Bus
from voltlib.events import ChargePointSecurityEvent, Event, QuarantineChanged, SecurityIncident, encode

SECURITY_ROLES = frozenset({"admin", "security"})
RESYNC = b"resync"
SHOWN: tuple[type[Event], ...] = tuple(
    t for t in events.Event.__subclasses__() if t not in (events.MeterValuesReceived, events.HeartbeatReceived))


@dataclass(eq=False)
class Client:
    role: str
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(256))
    overflowed: bool = False


class Broadcaster:
    def __init__(self, bus: Bus) -> None:
        self.clients: set[Client] = set()
        bus.watch(self._on_event, *SHOWN, name="dashboard-live", scope="network")  # the whole network's view

    def join(self, role: str) -> Client:
        client = Client(role)
        self.clients.add(client)
        return client

    def leave(self, client: Client) -> None:
        self.clients.discard(client)

    def _on_event(self, event: Event) -> None:
        if not self.clients:
            return
        restricted = isinstance(event, SecurityIncident | ChargePointSecurityEvent | QuarantineChanged)
        data = encode(event)
        for client in self.clients:
            if restricted and client.role not in SECURITY_ROLES:
                continue
            try:
                client.queue.put_nowait(data)
            except asyncio.QueueFull:
                client.overflowed = True
