"""Deciding an id tag's authorization status (OCPP 1.6 IdTagInfo), without I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The longest token voltlib stores: OCPP 2.0.1's IdTokenType.idToken. A 1.6 idTag is at most 20
# (CiString20Type), which the 1.6 schemas hold on the wire; the stores take 2.0.1's.
MAX_ID_TOKEN = 36


def valid_id_token(value: str) -> bool:
    """1 to 36 printable characters without outer spaces: what any OCPP version may carry."""
    return 1 <= len(value) <= MAX_ID_TOKEN and value.isprintable() and value == value.strip()


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
