"""Append-only, hash-chained audit log.

Each entry commits to the previous one: ``hash = SHA-256(canonical JSON of (seq, at, actor, action,
target, detail, prev_hash))``. Editing an entry breaks its own hash; deleting or reordering entries
breaks the ``prev_hash`` link or the gap-free ``seq``. The chain logic (``entry_hash``, ``verify``) is
pure; ``append`` and ``read_chain`` are the store functions (run through ``Store.write``/``read``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from voltlib.store.tables import audit_log

GENESIS = "0" * 64

# Actions recorded; reads of battery telemetry and raw OCPP logs are audited too.
READ_METER_VALUES = "read.meter_values"
READ_OCPP_MESSAGES = "read.ocpp_messages"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in the audit log")


def canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8 — the same bytes on every backend."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_plain).encode()


def entry_hash(seq: int, at: datetime, actor: str, action: str, target: str, detail: Mapping[str, Any],
               prev_hash: str) -> str:
    body = {"seq": seq, "at": at.astimezone(UTC).isoformat(), "actor": actor, "action": action,
            "target": target, "detail": dict(detail), "prev_hash": prev_hash}
    return hashlib.sha256(canonical(body)).hexdigest()


@dataclass(frozen=True, slots=True)
class Break:
    """One place where the chain does not verify."""

    seq: int
    problem: str  # edited | broken-link | gap | bad-start


def verify(rows: Iterable[Mapping[str, Any]]) -> list[Break]:
    """Check rows (in ``seq`` order). Empty list = the chain is intact.

    A deletion at the very end (truncation) cannot be seen from the rows alone: compare the
    reported head hash with one kept elsewhere (``voltlib audit verify`` prints it).
    """
    breaks: list[Break] = []
    prev_hash, prev_seq = GENESIS, 0
    for row in rows:
        seq = int(row["seq"])
        if seq != prev_seq + 1:
            breaks.append(Break(seq, "gap" if seq > prev_seq + 1 else "reordered"))
        if row["prev_hash"] != prev_hash:
            breaks.append(Break(seq, "broken-link"))
        if entry_hash(seq, row["at"], row["actor"], row["action"], row["target"], row["detail"],
                      row["prev_hash"]) != row["hash"]:
            breaks.append(Break(seq, "edited"))
        prev_hash, prev_seq = str(row["hash"]), seq
    return breaks


# -- store functions --

def append(conn: Connection, *, actor: str, action: str, target: str, detail: Mapping[str, Any],
           now: datetime) -> dict[str, Any]:
    """Add one entry after the current head. The unique ``seq`` makes a concurrent append fail
    rather than fork the chain."""
    head = conn.execute(select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc())
                        .limit(1)).first()
    seq, prev = (1, GENESIS) if head is None else (int(head[0]) + 1, str(head[1]))
    clean = json.loads(canonical(dict(detail)))
    row = {"seq": seq, "at": now, "actor": actor[:64], "action": action[:64], "target": target[:128],
           "detail": clean, "prev_hash": prev}
    row["hash"] = entry_hash(seq, now, row["actor"], row["action"], row["target"], clean, prev)
    conn.execute(audit_log.insert().values(**row))
    return row


def read_chain(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).mappings()
    return [dict(r) for r in rows]


def list_entries(conn: Connection, limit: int = 200, action: str | None = None) -> list[dict[str, Any]]:
    query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if action:
        query = query.where(audit_log.c.action == action)
    return [dict(r) for r in conn.execute(query).mappings()]


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())
