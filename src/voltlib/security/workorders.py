"""Work orders: a technician's planned intervention (pure rules).

Physical signals at a charge point covered by an open work order (its charge point, inside its
window, not cancelled) are *expected*: recorded, no incident. Anywhere else they raise alerts. A
technician's badge presented at a charge point checks in on the matching order; the same badge
at a charge point or a time no order of theirs covers is itself an alert.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from voltlib.domain.idtags import MAX_ID_TOKEN, valid_id_token

MAX_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class WorkOrder:
    id: int
    technician: str
    badge: str
    charge_points: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    purpose: str
    cancelled: bool = False

    def covers(self, cp_id: str, at: datetime) -> bool:
        return not self.cancelled and cp_id in self.charge_points and self.starts_at <= at <= self.ends_at


class InvalidWorkOrder(ValueError):
    pass


def check(charge_points: list[str], starts_at: datetime, ends_at: datetime, purpose: str, badge: str) -> None:
    if not charge_points:
        raise InvalidWorkOrder("a work order names at least one charge point")
    if ends_at <= starts_at:
        raise InvalidWorkOrder("the window must end after it starts")
    if ends_at - starts_at > MAX_WINDOW:
        raise InvalidWorkOrder("a work order lasts at most 7 days")
    if not purpose.strip():
        raise InvalidWorkOrder("say what the intervention is for")
    if not valid_id_token(badge):  # a 2.0.1 station's technician may carry a 36-character token
        raise InvalidWorkOrder(f"the technician's badge is an OCPP id token of 1 to {MAX_ID_TOKEN} printable "
                               "characters, no outer spaces")


def covering(orders: Iterable[WorkOrder], cp_id: str, at: datetime) -> WorkOrder | None:
    return next((o for o in orders if o.covers(cp_id, at)), None)


def badge_orders(orders: Iterable[WorkOrder], badge: str) -> list[WorkOrder]:
    return [o for o in orders if o.badge == badge and not o.cancelled]
