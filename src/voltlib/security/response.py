"""Responses: quarantine (and release) a charge point, rotate its credentials, block a badge.

Each action is committed, audited, then carried out over OCPP; its outcome is returned and
audited too. ``Policy`` says which alerts trigger which action automatically; the others are
offered on the incident ("one action away": ``POST …/respond``).
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from voltlib.domain.commands import ChangeAvailability, CommandRefused
from voltlib.domain.idtags import MAX_ID_TOKEN, valid_id_token
from voltlib.events import QuarantineChanged
from voltlib.security import audit, records
from voltlib.security.detectors import Signal

if TYPE_CHECKING:
    from voltlib.gateway.gateway import Gateway

QUARANTINE, RELEASE, ROTATE, BLOCK_BADGE = "quarantine", "release", "rotate_credentials", "block_badge"
ACTIONS = (QUARANTINE, RELEASE, ROTATE, BLOCK_BADGE)


@dataclass(frozen=True)
class Policy:
    """Automatic: quarantine on these alert kinds (outside any work order). Suggested: the rest."""

    auto_quarantine: frozenset[str] = frozenset({"tamper_detected", "cabinet_opened"})
    suggest: dict[str, tuple[str, ...]] = field(default_factory=lambda: {
        "duplicate_identity": (QUARANTINE, ROTATE),
        "brute_force_identity": (ROTATE,),
        "firmware_changed_unordered": (QUARANTINE,),
        "firmware_unrequested": (QUARANTINE,),
        "boot_fields_changed": (QUARANTINE,),
        "certificate_mismatch": (QUARANTINE,),
        "replayed_start_transaction": (BLOCK_BADGE,),
        "replayed_transaction_event": (QUARANTINE,),
        "diagnostics_unrequested": (QUARANTINE,),
        "data_transfer_large": (QUARANTINE,),
        "violation_burst": (QUARANTINE,),
        "badge_outside_work_order": (BLOCK_BADGE,),
    })

    def automatic(self, signal: Signal, expected: bool) -> tuple[str, ...]:
        if expected or signal.charge_point_id is None:
            return ()
        return (QUARANTINE,) if signal.kind in self.auto_quarantine else ()

    def suggested(self, kind: str) -> tuple[str, ...]:
        return self.suggest.get(kind, (QUARANTINE,) if kind in self.auto_quarantine else ())


# Another component that also blocks badges (car sharing: members' badges, local-list push) plugs in here.
BadgeBlocker = Callable[[str, str, str], Awaitable[object]]  # (id_tag, reason, by)
_badge_blockers: weakref.WeakKeyDictionary[Any, BadgeBlocker] = weakref.WeakKeyDictionary()


def set_badge_blocker(gateway: Gateway, blocker: BadgeBlocker) -> None:
    """Make every "block badge" response also call ``blocker`` (e.g. SharingService.block_badge)."""
    _badge_blockers[gateway] = blocker


class ResponseError(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class Responder:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        # charge points this node knows to be in quarantine: checked on every connection, so kept in
        # memory (a database read per connection stalled the bus during reconnection storms); the
        # other nodes' changes arrive as QuarantineChanged events (SecurityService.learn_remote).
        # The gateway's own set: it logs a quarantined charge point's every frame.
        self.quarantined: set[str] = gateway.services.quarantined

    async def _audit(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        s = self.gateway.services
        await s.store.write(partial(audit.append, actor=actor, action=action, target=target, detail=detail,
                                    now=s.clock.now()))

    async def _availability(self, cp_id: str, operative: bool, by: str) -> str:
        """The whole charge point in or out of service: its answer (Accepted, Scheduled...) or what
        became of the command (offline, timeout...)."""
        try:
            outcome = await self.gateway.commands.send(cp_id, ChangeAvailability(0, operative), requested_by=by)
        except CommandRefused as exc:
            return exc.title
        return outcome.status or outcome.state

    async def quarantine(self, cp_id: str, *, by: str, reason: str, incident_id: int | None = None) -> dict[str, Any]:
        s = self.gateway.services
        started = await s.store.write(partial(records.start_quarantine, cp_id=cp_id, reason=reason, by=by,
                                              incident_id=incident_id, now=s.clock.now()))
        self.quarantined.add(cp_id)
        await s.bus.publish(QuarantineChanged(charge_point_id=cp_id, at=s.clock.now(), active=True, by=by))
        await self._audit(by, "response.quarantine", cp_id, {"reason": reason, "incident_id": incident_id,
                                                              "new": started})
        outcome = await self._availability(cp_id, False, by)
        await self._audit(by, "response.quarantine.outcome", cp_id, {"change_availability": outcome})
        return {"charge_point_id": cp_id, "quarantined": True, "new": started, "change_availability": outcome}

    async def release(self, cp_id: str, *, by: str) -> dict[str, Any]:
        s = self.gateway.services
        released = await s.store.write(partial(records.release_quarantine, cp_id=cp_id, by=by, now=s.clock.now()))
        self.quarantined.discard(cp_id)
        if not released:
            raise ResponseError(409, "not-quarantined", f"{cp_id} is not in quarantine")
        await s.bus.publish(QuarantineChanged(charge_point_id=cp_id, at=s.clock.now(), active=False, by=by))
        await self._audit(by, "response.release", cp_id, {})
        outcome = await self._availability(cp_id, True, by)
        await self._audit(by, "response.release.outcome", cp_id, {"change_availability": outcome})
        return {"charge_point_id": cp_id, "quarantined": False, "change_availability": outcome}

    async def rotate(self, cp_id: str, *, by: str) -> dict[str, Any]:
        from voltlib.gateway.gateway import CommandError

        await self._audit(by, "response.rotate_credentials", cp_id, {})
        try:
            row = await self.gateway.rotate_password(cp_id, requested_by=by)
        except CommandError as exc:
            await self._audit(by, "response.rotate_credentials.outcome", cp_id, {"error": exc.title})
            raise ResponseError(exc.status, exc.title, exc.detail) from None
        status = (row.get("response") or {}).get("status", row["state"])
        await self._audit(by, "response.rotate_credentials.outcome", cp_id, {"status": status})
        return {"charge_point_id": cp_id, "status": status}

    async def block_badge(self, id_tag: str, *, by: str, reason: str = "security response") -> dict[str, Any]:
        """Blocked in voltlib's id_tags: every later Authorize/StartTransaction is refused. The server
        wires car sharing's ``block_badge`` as the hook, which also pushes it to the charge points'
        local lists (now, or when an offline one is back); its answer is merged into this one."""
        s = self.gateway.services
        if not valid_id_token(id_tag):
            raise ResponseError(422, "invalid-id-tag", f"an id token has 1 to {MAX_ID_TOKEN} printable characters "
                                "(OCPP 2.0.1; 1.6's idTag: 20), no outer spaces")
        previous = await s.store.write(partial(records.block_badge, id_tag=id_tag, now=s.clock.now()))
        await self._audit(by, "response.block_badge", id_tag, {"previous_status": previous})
        blocker = _badge_blockers.get(self.gateway)
        pushed: dict[str, Any] = {}
        if blocker is not None:
            outcome = await blocker(id_tag, reason, by)
            pushed = dict(outcome) if isinstance(outcome, dict) else {}
            await self._audit(by, "response.block_badge.outcome", id_tag,
                              {"also": "badge blocker hook", "reason": reason,
                               **{k: v for k, v in pushed.items() if k in ("pushed_to", "connected", "list_version")}})
        return {**pushed, "id_tag": id_tag, "status": "Blocked", "previous_status": previous, "reason": reason}
