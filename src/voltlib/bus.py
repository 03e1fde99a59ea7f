"""The internal event bus: gateway publishes, rentals / energy / security subscribe.

In one process it is an asyncio fan-out. Subscribers get events in publication order through
their own bounded queue, so a slow subscriber delays only itself; when its queue is full the
publisher waits (back-pressure) rather than dropping a security-relevant event. The
:class:`Bus` protocol is what a NATS- or Redis-backed bus implements for multi-node set-ups:
events are serialisable (voltlib.events.encode/decode) and topics are their tags.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from voltlib.events import Event

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Event)
Handler = Callable[[Event], Awaitable[None]]


class Bus(Protocol):
    async def publish(self, event: Event) -> None: ...

    def subscribe(self, handler: Handler, *types: type[Event], name: str = "") -> None: ...


class _Subscriber:
    def __init__(self, handler: Handler, types: tuple[type[Event], ...], name: str, size: int) -> None:
        self.handler, self.types, self.name = handler, types, name
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.task: asyncio.Task[None] | None = None
        self.failures = 0

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                await self.handler(event)
            except Exception:  # a subscriber's bug must not stop the others
                self.failures += 1
                log.exception("event subscriber %s failed on %s", self.name, type(event).__name__)
            finally:
                self.queue.task_done()


class LocalBus:
    """In-process bus. Start it inside the event loop; ``drain`` waits until all events are handled."""

    def __init__(self, queue_size: int = 10_000) -> None:
        self._subscribers: list[_Subscriber] = []
        self._queue_size = queue_size
        self.published = 0

    def subscribe(self, handler: Handler, *types: type[Event], name: str = "") -> None:
        subscriber = _Subscriber(handler, types or (Event,), name or getattr(handler, "__qualname__", "?"),
                                 self._queue_size)
        self._subscribers.append(subscriber)
        self._ensure_running(subscriber)

    async def publish(self, event: Event) -> None:
        self.published += 1
        for subscriber in self._subscribers:
            if isinstance(event, subscriber.types):
                self._ensure_running(subscriber)
                await subscriber.queue.put(event)

    async def drain(self) -> None:
        for subscriber in self._subscribers:
            await subscriber.queue.join()

    async def close(self) -> None:
        for subscriber in self._subscribers:
            if subscriber.task is not None:
                subscriber.task.cancel()

    @staticmethod
    def _ensure_running(subscriber: _Subscriber) -> None:
        if subscriber.task is None:
            try:
                subscriber.task = asyncio.get_running_loop().create_task(subscriber.run())
            except RuntimeError:  # not in a loop yet: started on first publish
                pass
