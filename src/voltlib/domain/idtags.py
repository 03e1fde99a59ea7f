"""Deciding an id tag's authorization status (OCPP 1.6 IdTagInfo), without I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class IdTagRecord:
    id_tag: str
    status: str  # Accepted | Blocked | Expired | Invalid
    expiry_date: datetime | None
    parent_id_tag: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    status: str
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None


def decide(record: IdTagRecord | None, now: datetime, *, in_transaction: bool) -> Decision:
    """Unknown tags are Invalid; a lapsed expiry makes an Accepted tag Expired; a tag already
    charging elsewhere is ConcurrentTx (voltlib allows one transaction per tag)."""
    if record is None:
        return Decision("Invalid")
    status = record.status
    if status == "Accepted" and record.expiry_date is not None and record.expiry_date <= now:
        status = "Expired"
    if status == "Accepted" and in_transaction:
        status = "ConcurrentTx"
    return Decision(status, record.expiry_date, record.parent_id_tag)
