"""An operator closes an abandoned open transaction: the charge point never sent its
StopTransaction (it broke, was replaced, lost its memory) and the session would stay open forever,
keeping its id tag busy (ConcurrentTx) and its energy unbilled. Nothing is deleted: the row is
closed with the meter value to bill and who closed it, and the audit log says why, in the same
database transaction (docs/operations.md, "Closing an abandoned transaction")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, select, update

from voltlib.domain import meter
from voltlib.security import audit
from voltlib.store.tables import meter_values, transactions

AUDIT_ACTION = "transaction.close"


def get_transaction(conn: Connection, tx_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(transactions).where(transactions.c.id == tx_id)).mappings().first()
    return None if row is None else dict(row)


def last_register(conn: Connection, cp_id: str, tx_id: int) -> tuple[int, datetime] | None:
    """The transaction's latest energy import register reading (Wh) and when it was sampled."""
    rows = conn.execute(select(meter_values.c.samples, meter_values.c.sampled_at).where(
        meter_values.c.charge_point_id == cp_id, meter_values.c.transaction_id == tx_id)
        .order_by(meter_values.c.sampled_at.desc(), meter_values.c.id.desc()))
    for samples, at in rows:
        wh = meter.import_register_wh(meter.unpack(samples))
        if wh is not None:
            return round(wh), at
    return None


@dataclass(frozen=True)
class CloseOutcome:
    result: Literal["closed", "unknown", "already_closed", "invalid"]
    transaction: dict[str, Any] | None = None
    detail: str = ""
    changed: bool = False  # closed now (publish TransactionStopped), not found closed by a retry


def close_transaction(conn: Connection, tx_id: int, *, meter_stop: int | None, stopped_at: datetime | None,
                      reason: str, by: str, now: datetime) -> CloseOutcome:
    """Close ``tx_id`` if it is still open. ``meter_stop`` None: the latest register reading of the
    transaction (else its start: nothing billed); ``stopped_at`` None: that reading's time (else
    now). A retry of a close that succeeded finds it closed by ``by`` and returns it unchanged."""
    row = get_transaction(conn, tx_id)
    if row is None:
        return CloseOutcome("unknown")
    if row["stopped_at"] is not None:
        same = row["closed_by"] == by and (meter_stop is None or meter_stop == row["meter_stop"])
        return CloseOutcome("closed" if same else "already_closed", row,
                            "" if same else "the transaction is already closed")
    reading = last_register(conn, row["charge_point_id"], tx_id)
    if meter_stop is None:
        meter_stop = reading[0] if reading is not None and reading[0] >= row["meter_start"] else row["meter_start"]
    if stopped_at is None:
        stopped_at = reading[1] if reading is not None and reading[1] <= now else now
        stopped_at = max(stopped_at, row["started_at"])
    if meter_stop < row["meter_start"]:
        return CloseOutcome("invalid", row, f"meter_stop {meter_stop} Wh is below meter_start {row['meter_start']} Wh")
    if not row["started_at"] <= stopped_at <= now:
        return CloseOutcome("invalid", row, "stopped_at must be between the transaction's start and now")
    values = {"meter_stop": meter_stop, "stopped_at": stopped_at, "closed_by": by[:64]}
    closed = conn.execute(update(transactions).where(transactions.c.id == tx_id, transactions.c.stopped_at.is_(None))
                          .values(**values)).rowcount
    if closed == 0:  # the charge point's own StopTransaction came first (PostgreSQL, a writer beside us)
        return CloseOutcome("already_closed", get_transaction(conn, tx_id), "the charge point stopped it first")
    audit.append(conn, actor=by, action=AUDIT_ACTION, target=str(tx_id),
                 detail={"charge_point_id": row["charge_point_id"], "connector_id": row["connector_id"],
                         "id_tag": row["id_tag"], "meter_start": row["meter_start"], "meter_stop": meter_stop,
                         "stopped_at": stopped_at, "reason": reason,
                         "last_register": None if reading is None else {"wh": reading[0], "at": reading[1]}},
                 now=now)
    return CloseOutcome("closed", {**row, **values}, changed=True)
