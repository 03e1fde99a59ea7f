"""Where a charge point's time enters voltlib, whatever its OCPP version: its stamps judged by the
clock policy (:mod:`voltlib.domain.clock_policy`) before anything is billed by them."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any

from voltlib import events as ev
from voltlib.config import Settings
from voltlib.domain import clock_policy
from voltlib.gateway.context import ChargePointContext
from voltlib.store import repo

log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _clock_policy(ahead_seconds: float, behind_hours: float) -> clock_policy.ClockPolicy:
    return clock_policy.ClockPolicy(timedelta(seconds=ahead_seconds), timedelta(hours=behind_hours))


def policy_of(settings: Settings) -> clock_policy.ClockPolicy:
    """The clock policy the settings describe (``clock_ahead_seconds``, ``clock_behind_hours``)."""
    return _clock_policy(settings.clock_ahead_seconds, settings.clock_behind_hours)


async def stamp(ctx: ChargePointContext, message: str, stamps: list[datetime | None], now: datetime) -> list[datetime]:
    """The charge point's stamps as voltlib uses them (:func:`voltlib.domain.clock_policy.judge`): this
    is where a charge point's time enters voltlib. Stamps not believed make one ``clock_skew`` security
    event per message, naming the charge point and the skew (the detector alerts once per period)."""
    policy = policy_of(ctx.services.settings)
    judged = [clock_policy.judge(stamp, now, policy) for stamp in stamps]
    worst = max((j for j in judged if j.skew is not None), key=lambda j: abs(j.skew or timedelta(0)), default=None)
    if worst is not None and worst.skew is not None:
        await _clock_skew(ctx, message, worst.skew, now)
    return [j.at for j in judged]


async def _clock_skew(ctx: ChargePointContext, message: str, skew: timedelta, now: datetime) -> None:
    s = ctx.services
    detail: dict[str, Any] = {"message": message, "skew_seconds": round(skew.total_seconds(), 3),
                              "stamp": (now + skew).isoformat(), "received_at": now.isoformat(),
                              "used": now.isoformat()}
    log.info("clock skew of %s: %s stamped %+.0f s from voltlib's time; voltlib's time used", ctx.cp_id, message,
             skew.total_seconds())
    s.store.write_later(partial(repo.record_security_event, kind="clock_skew", severity="warning",
                                charge_point_id=ctx.cp_id, source=ctx.address, detail=detail, now=now))
    await s.bus.publish(ev.SecurityIncident(charge_point_id=ctx.cp_id, at=now, kind="clock_skew", severity="warning",
                                            source=ctx.address, detail=detail))


async def departure(ctx: ChargePointContext, message: str, claimed: datetime, now: datetime) -> datetime | None:
    """A departure time a car announces through its station, as voltlib plans for it
    (:func:`voltlib.domain.clock_policy.judge_departure`): None when not believed, with a
    ``clock_skew`` security event naming the skew."""
    judged = clock_policy.judge_departure(claimed, now, policy_of(ctx.services.settings))
    if judged.skew is not None:
        await _clock_skew(ctx, message, judged.skew, now)
    return judged.at
