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

Every consumer also declares its **scope**, which only matters when several gateway nodes share
the events (voltlib.cluster):

- ``"node"`` (the default) — the events published on this node: those of the charge points it
  holds, and what its own API and timers did. For consumers that act on one charge point, keep
  state per charge point or send it commands; each event is then handled once in the cluster.
- ``"network"`` — this node's events and every other node's: views and feeds of the whole
  network (live dashboard, GBFS) and plans that span charge points held by several nodes.
- ``"remote"`` — only the other nodes' events: for a node-scoped consumer that also keeps a
  little memory of charge points held elsewhere (they may reconnect here), without acting on it.

On one node (:class:`LocalBus` alone) every event is this node's: ``node`` and ``network``
consumers get everything, ``remote`` ones nothing, and nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, TypeVar

from voltlib.events import Event

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Event)
Handler = Callable[[Event], Awaitable[None]]
Watcher = Callable[[Event], None]
Scope = Literal["node", "network", "remote"]
SCOPES: tuple[Scope, ...] = ("node", "network", "remote")

QUEUE_SIZE = 100_000  # events per subscriber (~0.2 KiB each): a reconnection storm of 20,000 charge points fits


class Bus(Protocol):
    async def publish(self, event: Event) -> None: ...

    def subscribe(self, handler: Handler, *types: type[Event], name: str = "", scope: Scope = "node") -> None: ...

    def watch(self, watcher: Watcher, *types: type[Event], name: str = "", scope: Scope = "node") -> None: ...

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
    scope: str = "node"
    current_at: datetime | None = None  # the time of the event taken last: with events queued, how far behind


class _Subscriber:
    def __init__(self, handler: Handler, types: tuple[type[Event], ...], name: str, size: int,
                 scope: Scope = "node") -> None:
        self.handler, self.types, self.name, self.scope = handler, types, name, scope
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.task: asyncio.Task[None] | None = None
        self.failures = self.handled = self.high_water = self.publisher_waits = 0
        self.current_at: datetime | None = None

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
            self.current_at = event.at
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
                               self.failures, self.publisher_waits, self.scope, self.current_at)


class _Watcher:
    def __init__(self, watcher: Watcher, types: tuple[type[Event], ...], name: str, scope: Scope = "node") -> None:
        self.watcher, self.types, self.name, self.scope = watcher, types, name, scope
        self.failures = self.handled = 0

    def notify(self, event: Event) -> None:
        try:
            self.watcher(event)
        except Exception:  # same rule as subscribers: one consumer's bug stays its own
            self.failures += 1
            log.exception("event watcher %s failed on %s", self.name, type(event).__name__)
        self.handled += 1

    def stats(self) -> SubscriberStats:
        return SubscriberStats(self.name, "watcher", 0, 0, self.handled, self.failures, 0, self.scope)


class LocalBus:
    """In-process bus. Start it inside the event loop; ``drain`` waits until all events are handled.

    ``publish`` delivers an event of this node (to ``node`` and ``network`` consumers, exactly as
    when there was no scope); ``publish_remote`` one that another node published (to ``network``
    and ``remote`` consumers). Each path walks only its own lists, so one node alone pays nothing
    for scopes."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self._subscribers: list[_Subscriber] = []  # this node's events: node + network scope
        self._watchers: list[_Watcher] = []
        self._remote_subscribers: list[_Subscriber] = []  # other nodes' events: network + remote scope
        self._remote_watchers: list[_Watcher] = []
        self._every: list[_Subscriber] = []
        self._every_watcher: list[_Watcher] = []
        self._queue_size = queue_size
        self.published = 0
        self.received = 0

    def subscribe(self, handler: Handler, *types: type[Event], name: str = "", scope: Scope = "node") -> None:
        subscriber = _Subscriber(handler, types or (Event,), name or getattr(handler, "__qualname__", "?"),
                                 self._queue_size, _checked(scope))
        self._every.append(subscriber)
        if scope != "remote":
            self._subscribers.append(subscriber)
        if scope != "node":
            self._remote_subscribers.append(subscriber)
        self._ensure_running(subscriber)

    def watch(self, watcher: Watcher, *types: type[Event], name: str = "", scope: Scope = "node") -> None:
        """``watcher`` runs inside ``publish``: it must be quick and must not block or await."""
        entry = _Watcher(watcher, types or (Event,), name or getattr(watcher, "__qualname__", "?"), _checked(scope))
        self._every_watcher.append(entry)
        if scope != "remote":
            self._watchers.append(entry)
        if scope != "node":
            self._remote_watchers.append(entry)

    def remote_types(self) -> tuple[type[Event], ...]:
        """The event types some consumer here wants from the other nodes (what to listen to)."""
        wanted = {t for s in self._remote_subscribers for t in s.types}
        return tuple(wanted.union(t for w in self._remote_watchers for t in w.types))

    async def publish(self, event: Event) -> None:
        self.published += 1
        await self._deliver(event, self._watchers, self._subscribers)

    async def publish_remote(self, event: Event) -> None:
        """An event another node published: only for the consumers that asked for other nodes' events."""
        self.received += 1
        await self._deliver(event, self._remote_watchers, self._remote_subscribers)

    async def _deliver(self, event: Event, watchers: list[_Watcher], subscribers: list[_Subscriber]) -> None:
        for watcher in watchers:
            if isinstance(event, watcher.types):
                watcher.notify(event)
        for subscriber in subscribers:
            if isinstance(event, subscriber.types):
                self._ensure_running(subscriber)
                await subscriber.put(event)

    async def drain(self) -> None:
        for subscriber in self._every:
            await subscriber.queue.join()

    async def close(self) -> None:
        for subscriber in self._every:
            if subscriber.task is not None:
                subscriber.task.cancel()

    def stats(self) -> list[SubscriberStats]:
        return [s.stats() for s in self._every] + [w.stats() for w in self._every_watcher]

    @staticmethod
    def _ensure_running(subscriber: _Subscriber) -> None:
        if subscriber.task is None:
            try:
                # a context of its own: started by whichever publisher came first, it must not log
                # as that charge point for ever (voltlib.telemetry.logs)
                subscriber.task = asyncio.get_running_loop().create_task(subscriber.run(),
                                                                         context=contextvars.Context())
            except RuntimeError:  # not in a loop yet: started on first publish
                pass


def _checked(scope: Scope) -> Scope:
    if scope not in SCOPES:  # a typo would silently make a consumer deaf to the other nodes
        raise ValueError(f"scope {scope!r}: one of {', '.join(SCOPES)}")
    return scope
