"""Blocked badges in the charge points' local authorisation lists, including the charge points
that were offline when the badge was blocked.

Each block gets a list version (increasing, never below the Unix time, so it is above the
time-based versions of earlier voltlib releases); the charge point's row remembers the version it
accepted. When a charge point connects or boots, every badge blocked after its version is sent as
one Differential update; a charge point answering VersionMismatch (its list was changed by
someone else) gets a Full list of every blocked member badge instead. An offline charge point thus
refuses a stolen badge from the moment it is back, without waiting for an operator.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, func, or_, select, update

from voltlib import events as ev
from voltlib.domain.commands import CommandRefused, PushLocalList
from voltlib.sharing.store import CONTRACT
from voltlib.store.tables import badges, charge_points, id_tags

if TYPE_CHECKING:
    from voltlib.gateway.gateway import Gateway

log = logging.getLogger(__name__)
# per push (1.6 SendLocalListMaxLength, 2.0.1 ItemsPerMessageSendLocalList); more go in several updates
MAX_ENTRIES = 1_000


def next_version(conn: Connection, now: datetime) -> int:
    latest = conn.execute(select(func.max(id_tags.c.list_version))).scalar() or 0
    return max(int(latest) + 1, int(now.timestamp()))


def mark_pushed(conn: Connection, id_tag: str, version: int) -> None:
    conn.execute(update(id_tags).where(id_tags.c.id_tag == id_tag).values(list_version=version))


def owed(conn: Connection, cp_id: str) -> tuple[int | None, list[tuple[str, int]]]:
    """The version a charge point holds and the blocked member badges newer than it."""
    held = conn.execute(select(charge_points.c.local_list_version).where(charge_points.c.id == cp_id)).scalar()
    query = (select(id_tags.c.id_tag, id_tags.c.list_version).join(badges, badges.c.id_tag == id_tags.c.id_tag)
             .where(and_(id_tags.c.status == "Blocked", id_tags.c.list_version.is_not(None)))
             .order_by(id_tags.c.list_version))
    if held is not None:
        query = query.where(id_tags.c.list_version > held)
    return held, [(r.id_tag, int(r.list_version)) for r in conn.execute(query)]


def all_blocked(conn: Connection) -> list[str]:
    return list(conn.execute(select(id_tags.c.id_tag).join(badges, badges.c.id_tag == id_tags.c.id_tag)
                             .where(id_tags.c.status == "Blocked").order_by(id_tags.c.id_tag)).scalars())


def contracts_among(conn: Connection, tags: list[str]) -> frozenset[str]:
    """Which of ``tags`` are members' Plug & Charge contracts (typed eMAID in a 2.0.1 list)."""
    found: set[str] = set()
    for start in range(0, len(tags), MAX_ENTRIES):
        found.update(conn.execute(select(badges.c.id_tag).where(and_(
            badges.c.id_tag.in_(tags[start:start + MAX_ENTRIES]), badges.c.kind == CONTRACT))).scalars())
    return frozenset(found)


def record_version(conn: Connection, cp_id: str, version: int) -> None:
    conn.execute(update(charge_points).where(and_(
        charge_points.c.id == cp_id,
        or_(charge_points.c.local_list_version.is_(None), charge_points.c.local_list_version < version)))
        .values(local_list_version=version))


class LocalLists:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.services = gateway.services
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(64)
        # one catch-up at a time per charge point: its connection and its boot both ask for one, and
        # the second must see the version the first got accepted, not send the same list again
        self._catching: dict[str, tuple[asyncio.Lock, int]] = {}

    def install(self) -> None:
        # node scope: the charge point that (re)connected or booted here is caught up by this node, once
        self.services.bus.watch(self._on_event, ev.ChargePointConnected, ev.BootNotified, name="local-lists",
                                scope="node")

    def _on_event(self, event: ev.Event) -> None:
        task = asyncio.get_running_loop().create_task(self.catch_up(event.charge_point_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def blocked(self, id_tag: str, version: int, by: str) -> tuple[int, int]:
        """Push one newly blocked badge to every connected charge point: (accepted, connected)."""
        pushes = [self._push(cp_id, "Differential", version, [id_tag], by) for cp_id in list(self.gateway.connections)]
        results = await asyncio.gather(*pushes)
        return sum(results), len(results)

    async def catch_up(self, cp_id: str) -> None:
        """Send a (re)connected charge point the badges blocked since the version it holds."""
        lock, users = self._catching.get(cp_id, (asyncio.Lock(), 0))
        self._catching[cp_id] = (lock, users + 1)
        try:
            async with lock:
                await self._catch_up(cp_id)
        finally:
            lock, users = self._catching[cp_id]
            if users == 1:
                del self._catching[cp_id]
            else:
                self._catching[cp_id] = (lock, users - 1)

    async def _catch_up(self, cp_id: str) -> None:
        connection = self.gateway.connections.get(cp_id)
        if connection is None or connection.ctx.registration != "Accepted":
            return  # not yet: its BootNotification Accepted triggers this again
        held, missing = await self.services.store.read(partial(owed, cp_id=cp_id))
        if not missing:
            return
        if held is None:  # never synchronised: one Full list of every blocked badge
            tags = await self.services.store.read(all_blocked)
            await self._push(cp_id, "Full", missing[-1][1], tags, "voltlib:local-lists")
            return
        for start in range(0, len(missing), MAX_ENTRIES):
            chunk = missing[start:start + MAX_ENTRIES]
            if not await self._push(cp_id, "Differential", chunk[-1][1], [t for t, _ in chunk], "voltlib:local-lists"):
                return

    async def _push(self, cp_id: str, kind: str, version: int, tags: list[str], by: str) -> bool:
        contracts = await self.services.store.read(partial(contracts_among, tags=tags))
        push = PushLocalList(version, full=kind == "Full", blocked=tuple(tags), contracts=contracts)
        async with self._limit:
            try:
                outcome = await self.gateway.commands.send(cp_id, push, requested_by=by)
            except CommandRefused as exc:  # retried at the charge point's next connection
                log.warning("local list push to %s refused: %s", cp_id, exc.detail)
                return False
            except Exception:  # our fault; retried at the charge point's next connection
                log.exception("local list push to %s failed", cp_id)
                return False
        if outcome.state == "answered" and outcome.status == "VersionMismatch" and kind == "Differential":
            all_tags = await self.services.store.read(all_blocked)
            return await self._push(cp_id, "Full", version, all_tags, by)
        if outcome.accepted:
            await self.services.store.write(partial(record_version, cp_id=cp_id, version=version))
            return True
        return False
