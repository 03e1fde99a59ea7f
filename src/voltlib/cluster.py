"""Several gateway nodes behind one address: events, commands and liveness probes over NATS.

One node holds each charge point's WebSocket. The others must still (1) see its events, (2) send
it commands that the API received on their side, and (3) refuse a second connection for its
identity while it is alive (the duplicate-identity rule of ``Gateway._make_room``, across nodes).

- **Events** are handed at once to this node's consumers (:class:`~voltlib.bus.LocalBus`: ``node``
  and ``network`` scope, no NATS round trip) and published to ``voltlib.<cluster name>.events.<topic>``
  for the others, if some node wants that topic. A node listens only to the topics its ``network``
  and ``remote`` consumers want, and tells the others on ``voltlib.<cluster name>.wants`` (again
  whenever a node it had not heard of announces itself), so that nobody encodes and sends what no
  node listens to: MeterValues and Heartbeat, most of the traffic, stay on their node. A node also
  publishes what it wants itself, so nodes of one version lose nothing before they have heard of
  each other. Nodes announce again every ``ANNOUNCE_EVERY`` seconds (a lost announcement is made
  good) and say goodbye when they close; a node not heard for three periods is forgotten, and the
  topics only it wanted are no longer sent. It never hears its own events back (NATS ``no_echo``):
  the per-charge-point work (rentals, detectors, state of charge, certificates, local lists) is
  done once, by the node holding the charge point. Core NATS delivers at most once: consumers of
  other nodes' events that must not miss anything rebuild from the database, where every event's
  data was committed before it was published.
- **Commands and probes** are NATS requests to a subject of the charge point
  (``voltlib.<cluster name>.cp.<hex id>``) that only the holding node subscribes to, so
  "nobody holds it" is known at once (no responders) instead of after a timeout.

Without ``bus_url`` a node is alone: :class:`SingleNode` answers "nobody else holds it".
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import date, datetime
from typing import Any, Protocol, get_args

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from voltlib.bus import Handler, LocalBus, Scope, SubscriberStats, Watcher
from voltlib.events import AnyEvent, Event, decode, encode

log = logging.getLogger(__name__)
PREFIX = "voltlib"
ANNOUNCE_EVERY = 30.0  # seconds between a node's announcements of what it listens to
FORGET_AFTER = 3  # announcements missed before a node's wants are forgotten
CommandHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
ProbeHandler = Callable[[bool], Awaitable[bool]]  # takeover? → alive


class ClusterUnavailable(Exception):
    """The other nodes cannot be reached now (no connection to NATS): whether one of them holds a
    charge point is unknown."""


class Cluster(Protocol):
    async def hold(self, cp_id: str, on_command: CommandHandler, on_probe: ProbeHandler) -> None: ...

    async def release(self, cp_id: str) -> None: ...

    async def probe_elsewhere(self, cp_id: str, timeout: float, *, takeover: bool = False) -> bool | None: ...

    async def command_elsewhere(self, cp_id: str, request: dict[str, Any], timeout: float) -> dict[str, Any] | None: ...


class SingleNode:
    """The default: this node is the only one."""

    async def hold(self, cp_id: str, on_command: CommandHandler, on_probe: ProbeHandler) -> None:
        return None

    async def release(self, cp_id: str) -> None:
        return None

    async def probe_elsewhere(self, cp_id: str, timeout: float, *, takeover: bool = False) -> bool | None:
        return None

    async def command_elsewhere(self, cp_id: str, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        return None


def _subject(prefix: str, cp_id: str) -> str:
    # identities may hold "." and "*", which NATS subjects reserve: hex keeps every id distinct and legal
    return f"{prefix}.cp.{cp_id.encode().hex()}"


def _topics(wanted: tuple[type[Event], ...]) -> list[str]:
    """The topics of every concrete event type that is (a subclass of) one of ``wanted``."""
    if not wanted:
        return []
    return sorted(t.__struct_config__.tag for t in get_args(AnyEvent) if issubclass(t, wanted))


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


class NatsCluster:
    """A node of a NATS-connected cluster; also the event bus (:class:`voltlib.bus.Bus`)."""

    def __init__(self, url: str, name: str = "main", *, announce_every: float = ANNOUNCE_EVERY) -> None:
        """``name`` keeps deployments sharing one NATS server apart: subjects are ``voltlib.<name>.…``."""
        if not name or any(c in name for c in ".*> \t"):
            raise ValueError(f"cluster name {name!r}: no dots, wildcards or blanks")
        self.url = url
        self.prefix = f"{PREFIX}.{name}"
        self.local = LocalBus()
        self._nc: Client | None = None
        self._held: dict[str, Subscription] = {}
        self._listening: set[str] = set()  # event topics subscribed to on NATS
        self._publishing: set[str] = set()  # event topics some node listens to (this one included)
        self._node = uuid.uuid4().hex  # names this node in announcements only
        self._peers: dict[str, tuple[frozenset[str], float]] = {}  # node → its topics, when last heard
        self._announce_every = announce_every
        self._announcer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # short ones (drain waits for them)

    # -- life --

    async def connect(self) -> None:
        # no_echo: this node's events reach its consumers directly (publish), not back through NATS
        self._nc = await nats.connect(self.url, name="voltlib", max_reconnect_attempts=-1, no_echo=True)
        await self.nc.subscribe(f"{self.prefix}.wants", cb=self._on_wants)
        await self._listen(announce=True)  # even wanting nothing: the others then tell this node their wants
        self._announcer = asyncio.get_running_loop().create_task(self._keep_announcing())

    async def _keep_announcing(self) -> None:
        """Announce again now and then, and forget the nodes no longer heard (gone without a goodbye)."""
        while True:
            await asyncio.sleep(self._announce_every)
            try:
                await self._announce()
            except NatsError as exc:
                log.warning("announcement not sent: %s", exc)
            silent = asyncio.get_running_loop().time() - FORGET_AFTER * self._announce_every
            gone = [node for node, (_, heard) in self._peers.items() if heard < silent]
            for node in gone:
                del self._peers[node]
            if gone:
                self._recount()

    def _recount(self) -> None:
        self._publishing = set(self._listening).union(*(topics for topics, _ in self._peers.values()))

    async def _listen(self, announce: bool = False) -> None:
        """Subscribe to the topics the ``network`` and ``remote`` consumers want and nobody asked for
        yet, and tell the other nodes."""
        new = [topic for topic in _topics(self.local.remote_types()) if topic not in self._listening]
        for topic in new:
            self._listening.add(topic)
            await self.nc.subscribe(f"{self.prefix}.events.{topic}", cb=self._on_event)
        self._publishing.update(new)
        if new or announce:
            await self._announce()

    async def _announce(self, goodbye: bool = False) -> None:
        body = {"node": self._node, "topics": sorted(self._listening), "goodbye": goodbye}
        await self.nc.publish(f"{self.prefix}.wants", json.dumps(body).encode())

    async def _on_wants(self, msg: Msg) -> None:
        """Another node's topics: publish them from now on; a node not heard of before hears ours."""
        try:
            body = json.loads(msg.data)
            node, topics = str(body["node"]), frozenset(str(topic) for topic in body["topics"])
            goodbye = body.get("goodbye") is True  # older nodes say nothing of it
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable announcement on %s", msg.subject)
            return
        known = node in self._peers
        if goodbye:
            self._peers.pop(node, None)
            self._recount()
            return
        self._peers[node] = (topics, asyncio.get_running_loop().time())
        self._recount()
        if not known:
            await self._announce()

    async def close(self) -> None:
        if self._announcer is not None:
            self._announcer.cancel()
            self._announcer = None
        if self._nc is not None:
            try:
                await self._announce(goodbye=True)
            except NatsError as exc:
                log.warning("goodbye not sent: %s", exc)
            try:
                await self._nc.drain()
            except NatsError as exc:  # closed already (NATS gone for good): nothing left to drain
                log.warning("NATS connection not drained: %s", exc)
            self._nc = None
        await self.local.close()

    @property
    def peers(self) -> int:
        """The other nodes heard from lately (metrics)."""
        return len(self._peers)

    @property
    def connected(self) -> bool:
        """Connected to NATS now (readiness)."""
        return self._nc is not None and self._nc.is_connected

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise RuntimeError("the cluster is not connected yet")
        return self._nc

    # -- the bus --

    async def publish(self, event: Event) -> None:
        """This node's consumers get the event directly, then it goes on NATS if some node wants its
        topic. NATS failing (a long outage fills the reconnect buffer) costs the
        other nodes' views this event, never this node's own work on it."""
        await self.local.publish(event)
        topic = type(event).__struct_config__.tag
        if topic not in self._publishing:  # no node listens to it
            return
        try:
            await self.nc.publish(f"{self.prefix}.events.{topic}", encode(event))
        except NatsError as exc:
            log.warning("event %s not sent to the other nodes: %s", topic, exc)

    def subscribe(self, handler: Handler, *types: type[Event], name: str = "", scope: Scope = "node") -> None:
        self.local.subscribe(handler, *types, name=name, scope=scope)
        self._listen_later(scope)

    def watch(self, watcher: Watcher, *types: type[Event], name: str = "", scope: Scope = "node") -> None:
        self.local.watch(watcher, *types, name=name, scope=scope)
        self._listen_later(scope)

    def _listen_later(self, scope: Scope) -> None:
        """A consumer of other nodes' events added after ``connect``: listen to its topics too."""
        if scope == "node" or self._nc is None:
            return
        self._spawn(self._listen())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stats(self) -> list[SubscriberStats]:
        return self.local.stats()

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        await self.nc.flush()
        await self.local.drain()

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):  # another version, or garbage on our subjects
            log.warning("undecodable event on %s", msg.subject)
            return
        await self.local.publish_remote(event)

    # -- charge points held here --

    async def hold(self, cp_id: str, on_command: CommandHandler, on_probe: ProbeHandler) -> None:
        """One subscription per charge point held (commands and probes share it: each subscription
        costs nats-py a task and a queue, ~0.4 KiB at 10,000 charge points a node)."""

        async def answer(msg: Msg) -> None:
            request = json.loads(msg.data)
            if request.get("kind") == "probe":
                # From a task of its own: a probe that finds the connection closed, or closes it,
                # releases this subscription, and that cancels the subscription's callback - the
                # asking node would hear nothing until its timeout.
                self._spawn(self._answer(msg, request, cp_id, on_command, on_probe))
            else:
                await self._answer(msg, request, cp_id, on_command, on_probe)

        await self.release(cp_id)
        self._held[cp_id] = await self.nc.subscribe(_subject(self.prefix, cp_id), cb=answer)
        await self.nc.flush()

    @staticmethod
    async def _answer(msg: Msg, request: dict[str, Any], cp_id: str, on_command: CommandHandler,
                      on_probe: ProbeHandler) -> None:
        try:
            if request.get("kind") == "probe":
                body: dict[str, Any] = {"alive": await on_probe(request.get("takeover") is True)}
            else:
                body = await on_command(request)
        except Exception:
            log.exception("remote %s for %s failed", request.get("kind"), cp_id)
            body = {"error": {"status": 500, "title": "internal-error", "detail": "the holding node failed"}}
        try:
            await msg.respond(json.dumps(body, default=_json_default).encode())
        except NatsError as exc:
            log.warning("no answer to a remote %s for %s: %s", request.get("kind"), cp_id, exc)

    async def release(self, cp_id: str) -> None:
        subscription = self._held.pop(cp_id, None)
        if subscription is not None:
            await subscription.unsubscribe()

    # -- charge points held elsewhere --

    async def probe_elsewhere(self, cp_id: str, timeout: float, *, takeover: bool = False) -> bool | None:
        """True: another node holds it and it answered a ping; False: held but gone or dead (now
        closed), known as soon as the holding node sees it close; None: nobody. ``takeover``: the
        holding node closes it without a probe (a newcomer won, ``Gateway._taken_over``); a node of
        an older version ignores that and probes."""
        if not self.nc.is_connected:  # NATS is down: nobody can be asked; the newcomer is let in at once
            log.warning("%s: no connection to NATS, a connection held by another node cannot be probed", cp_id)
            return None
        body = json.dumps({"kind": "probe", "takeover": takeover}).encode()
        try:
            reply = await self.nc.request(_subject(self.prefix, cp_id), body, timeout=timeout + 1.0)
        except (NoRespondersError, NatsTimeout):
            return None
        return bool(json.loads(reply.data).get("alive"))

    async def command_elsewhere(self, cp_id: str, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The holding node's answer; None: no node holds it. :class:`ClusterUnavailable` while NATS is
        down (before, a command waited its whole timeout and was recorded "offline")."""
        if not self.nc.is_connected:
            raise ClusterUnavailable("the other gateway nodes cannot be reached (no connection to NATS)")
        try:
            body = json.dumps({"kind": "command", **request}).encode()
            reply = await self.nc.request(_subject(self.prefix, cp_id), body, timeout=timeout + 2.0)
        except (NoRespondersError, NatsTimeout):
            if not self.nc.is_connected:
                raise ClusterUnavailable("the connection to NATS was lost while waiting for another node") from None
            return None
        answer: dict[str, Any] = json.loads(reply.data)
        return answer
