"""How far a charge point's own timestamp is believed (docs/car-sharing.md, "Clock policy").

A charge point stamps its messages with its own clock: the departure (StatusNotification), the
return (StartTransaction), the end of a charging session (StopTransaction) and meter readings.
Those stamps price rentals, so a clock that runs wrong must not bill a member for days they never
drove, nor leave a rental that cannot end. The rule, applied where a stamp enters voltlib
(the OCPP 1.6 handlers, and the start-up reconciliation of returns), compares the stamp with the
time voltlib received the message:

* **Ahead of the receipt time**: nothing can have happened after voltlib heard of it, so the
  receipt time is used. Ahead by more than ``ahead`` it is a wrong clock: a ``clock_skew``
  security event. Within ``ahead`` it is the ordinary disagreement of two clocks, silently.
* **Behind the receipt time**: a charge point that was offline sends what it queued on
  reconnection, stamped when it happened, so an old stamp is believed, up to ``behind``. Older
  than that it is a clock that lost its time (a reset to 1970, a dead RTC battery): the receipt time
  is used and a ``clock_skew`` event recorded.

Pure: the receipt time is passed in, no clock is read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    """``ahead``: how far ahead of voltlib a stamp may be before it is reported as a wrong clock.
    ``behind``: the oldest stamp believed (how long a charge point may hold messages offline)."""

    ahead: timedelta = timedelta(minutes=2)
    behind: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if self.ahead < timedelta(0) or self.behind <= timedelta(0):
            raise ValueError("ahead must not be negative and behind must be positive")


@dataclass(frozen=True, slots=True)
class Stamp:
    """What voltlib makes of a charge point's stamp: ``at``, the time to use; ``skew``, how far the
    stamp was from the receipt time when it was not believed (a ``clock_skew`` event), else None."""

    at: datetime
    skew: timedelta | None = None


def judge(stamp: datetime | None, received: datetime, policy: ClockPolicy) -> Stamp:
    """The time to use for an event a charge point stamped ``stamp`` (None: it sent none) and voltlib
    received at ``received``: never after ``received``, never older than ``policy.behind``."""
    if stamp is None:
        return Stamp(received)
    offset = stamp - received
    if offset > timedelta(0):
        return Stamp(received, offset if offset > policy.ahead else None)
    if -offset > policy.behind:
        return Stamp(received, offset)
    return Stamp(stamp)


@dataclass(frozen=True, slots=True)
class Departure:
    """What voltlib makes of a departure time a car announces (ISO 15118, relayed by its station):
    ``at``, the departure to plan for (None: not believed); ``skew``, how far the claim was from the
    receipt time when it was not believed (a ``clock_skew`` event), else None."""

    at: datetime | None
    skew: timedelta | None = None


def judge_departure(departure: datetime, received: datetime, policy: ClockPolicy) -> Departure:
    """A departure is a claim about voltlib's future, so the policy's bounds apply the other way
    round: up to ``ahead`` before the receipt time it means "leaving now" (two clocks disagreeing);
    earlier, the station's clock is wrong and the time is not used; later than ``behind`` after the
    receipt time (nobody plans a week ahead: a clock that lost its time) it is not used either."""
    offset = departure - received
    if offset < -policy.ahead or offset > policy.behind:
        return Departure(None, offset)
    return Departure(max(departure, received))
