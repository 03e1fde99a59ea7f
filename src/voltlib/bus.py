"""The internal event bus: gateway publishes, rentals / energy / security subscribe.

Two ways to listen, because consumers need two different things:

- :meth:`LocalBus.subscribe` — *every* event, in publication order, through the subscriber's own
  bounded queue, handled by a coroutine. For consumers that must not miss one (security
  detectors, rentals). A slow subscriber delays only itself; only when its queue is full does the
  publisher wait (back-pressure, the last resort — it stalls a charge point's read loop, so queues
  are large and each overflow is logged).
- :meth:`LocalBus.watch` — a plain function called inline by ``publish``, with no queue at all. For
  consumers that only need "something changed" (feed caches, live views): they mark themselves
  dirty and do the work later, coalesced. They can never fill up and never slow a publisher.

The :class:`Bus` protocol is what the NATS-backed cluster bus implements too: events are
serialisable (voltlib.events.encode/decode) and topics are their tags.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from voltlib.events import Event

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Event)
Handler = Callable[[Event], Awaitable[None]]
Watcher = Callable[[Event], None]

QUEUE_SIZE = 100_000  # events per subscriber (~0.2 KiB each): a reconnection storm of 20,000 charge points fits


class Bus(Protocol):
    async def publish(self, event: Event) -> None: ...

    def subscribe(self, handler: Handler, *types: type[Event], name: str = "") -> None: ...

    def watch(self, watcher: Watcher, *types: type[Event], name: str = "") -> None: ...

    def stats(self) -> list[SubscriberStats]: ...


@dataclass(frozen=True, slots=True)
class SubscriberStats:
    name: str
    kind: str  # "subscriber" or "watcher"
    queued: int
    high_water: int
    handled: int
    failures: int
    publisher_waits: int


class _Subscriber:
    def __init__(self, handler: Handler, types: tuple[type[Event], ...], name: str, size: int) -> None:
        self.handler, self.types, self.name = handler, types, name
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.task: asyncio.Task[None] | None = None
        self.failures = self.handled = self.high_water = self.publisher_waits = 0

    async def put(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.publisher_waits += 1
            if self.publisher_waits == 1 or self.publisher_waits % 1000 == 0:
                log.warning("event subscriber %s is %d events behind: publishers wait (%d times so far)",
                            self.name, self.queue.qsize(), self.publisher_waits)
            await self.queue.put(event)
        self.high_water = max(self.high_water, self.queue.qsize())

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                await self.handler(event)
            except Exception:  # a subscriber's bug must not stop the others
                self.failures += 1
                log.exception("event subscriber %s failed on %s", self.name, type(event).__name__)
            finally:
                self.handled += 1
                self.queue.task_done()

    def stats(self) -> SubscriberStats:
        return SubscriberStats(self.name, "subscriber", self.queue.qsize(), self.high_water, self.handled,
                               self.failures, self.publisher_waits)


class _Watcher:
    def __init__(self, watcher: Watcher, types: tuple[type[Event], ...], name: str) -> None:
        self.watcher, self.types, self.name = watcher, types, name
        self.failures = self.handled = 0

    def notify(self, event: Event) -> None:
        try:
            self.watcher(event)
        except Exception:  # same rule as subscribers: one consumer's bug stays its own
            self.failures += 1
            log.exception("event watcher %s failed on %s", self.name, type(event).__name__)
        self.handled += 1

    def stats(self) -> SubscriberStats:
        return SubscriberStats(self.name, "watcher", 0, 0, self.handled, self.failures, 0)


class LocalBus:
    """In-process bus. Start it inside the event loop; ``drain`` waits until all events are handled."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self._subscribers: list[_Subscriber] = []
        self._watchers: list[_Watcher] = []
        self._queue_size = queue_size
        self.published = 0

    def subscribe(self, handler: Handler, *types: type[Event], name: str = "") -> None:
        subscriber = _Subscriber(handler, types or (Event,), name or getattr(handler, "__qualname__", "?"),
                                 self._queue_size)
        self._subscribers.append(subscriber)
        self._ensure_running(subscriber)

    def watch(self, watcher: Watcher, *types: type[Event], name: str = "") -> None:
        """``watcher`` runs inside ``publish``: it must be quick and must not block or await."""
        self._watchers.append(_Watcher(watcher, types or (Event,), name or getattr(watcher, "__qualname__", "?")))

    async def publish(self, event: Event) -> None:
        self.published += 1
        for watcher in self._watchers:
            if isinstance(event, watcher.types):
                watcher.notify(event)
        for subscriber in self._subscribers:
            if isinstance(event, subscriber.types):
                self._ensure_running(subscriber)
                await subscriber.put(event)

    async def drain(self) -> None:
        for subscriber in self._subscribers:
            await subscriber.queue.join()

    async def close(self) -> None:
        for subscriber in self._subscribers:
            if subscriber.task is not None:
                subscriber.task.cancel()

    def stats(self) -> list[SubscriberStats]:
        return [s.stats() for s in self._subscribers] + [w.stats() for w in self._watchers]

    @staticmethod
    def _ensure_running(subscriber: _Subscriber) -> None:
        if subscriber.task is None:
            try:
                subscriber.task = asyncio.get_running_loop().create_task(subscriber.run())
            except RuntimeError:  # not in a loop yet: started on first publish
                pass
