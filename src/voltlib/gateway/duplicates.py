"""Two connections for one identity (docs/security.md, "Duplicate connections"): whose turn it is
to upgrade, and when a newcomer wins over a live connection that answers its probes."""

from __future__ import annotations

import asyncio

from voltlib.gateway.auth import FailureLimiter

MAX_WAITING = 4  # upgrades of one identity that may wait for their turn; more get 409 at once
TURN_SLACK = 2.0  # seconds beyond the probe timeout an upgrade waits for its turn before 409


class Turns:
    """One upgrade per identity at a time, from its duplicate check until it is registered as the
    live connection (or refused). The others wait for their turn - a few of them, for a bounded
    time - rather than get 409 at once: a charge point that gave up on an attempt whose probe was
    under way, and tried again, gets in when that probe finds the old socket dead."""

    def __init__(self) -> None:
        self._current: dict[str, asyncio.Future[None]] = {}
        self._waiting: dict[str, int] = {}

    def busy(self, cp_id: str) -> bool:
        return cp_id in self._current

    async def take(self, cp_id: str, patience: float) -> bool:
        """Wait (at most ``patience`` seconds) until no other upgrade of ``cp_id`` is under way, and
        start one; False when it is not this one's turn in time, or too many wait already."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while (current := self._current.get(cp_id)) is not None:
            waiting = self._waiting.get(cp_id, 0)
            remaining = deadline - loop.time()
            if waiting >= MAX_WAITING or remaining <= 0:
                return False
            self._waiting[cp_id] = waiting + 1
            try:
                await asyncio.wait_for(asyncio.shield(current), remaining)
            except TimeoutError:
                return False
            finally:
                self._left(cp_id)
        self._current[cp_id] = loop.create_future()
        return True

    def give_back(self, cp_id: str) -> None:
        """The upgrade under way is over (registered, refused or failed): the next one's turn."""
        current = self._current.pop(cp_id, None)
        if current is not None and not current.done():
            current.set_result(None)

    def _left(self, cp_id: str) -> None:
        waiting = self._waiting.get(cp_id, 1) - 1
        if waiting > 0:
            self._waiting[cp_id] = waiting
        else:
            self._waiting.pop(cp_id, None)


class Takeovers:
    """Duplicates refused because the live connection answered its probe, counted per identity
    and address: after ``after`` of them within ``window`` seconds from the address the charge
    point last connected from, the next one from there replaces the live connection. From any
    other address a newcomer never does: a stale socket may hold a charge point out for a while,
    never for good, and someone elsewhere with its credentials cannot push it off."""

    def __init__(self, after: int, window: float) -> None:
        self._refused = FailureLimiter(after, window)

    def due(self, cp_id: str, address: str, last_address: str | None) -> bool:
        return address == last_address and self._refused.blocked(_pair(cp_id, address))

    def refused(self, cp_id: str, address: str, last_address: str | None) -> None:
        if address == last_address:
            self._refused.failed(_pair(cp_id, address))

    def taken(self, cp_id: str, address: str) -> None:
        self._refused.forget(_pair(cp_id, address))


def _pair(cp_id: str, address: str) -> str:
    return f"{cp_id}@{address}"
