"""The audit chain's pure logic: any edit, reorder or deletion is found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from voltlib.security import audit

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def chain(n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    prev = audit.GENESIS
    for i in range(1, n + 1):
        row = {"seq": i, "at": T0 + timedelta(seconds=i), "actor": "alice", "action": "quarantine",
               "target": f"CP-{i}", "detail": {"n": i, "why": "test"}, "prev_hash": prev}
        row["hash"] = audit.entry_hash(i, row["at"], "alice", "quarantine", row["target"], row["detail"], prev)
        rows.append(row)
        prev = row["hash"]
    return rows


def test_intact_chain_verifies() -> None:
    assert audit.verify(chain(5)) == []
    assert audit.verify([]) == []


def test_edited_detail_is_found() -> None:
    rows = chain(5)
    rows[2]["detail"] = {"n": 3, "why": "nothing to see"}
    assert audit.verify(rows) == [audit.Break(3, "edited")]


def test_rehashed_edit_breaks_the_next_link() -> None:
    rows = chain(5)
    r = rows[1]
    r["actor"] = "mallory"
    r["hash"] = audit.entry_hash(r["seq"], r["at"], r["actor"], r["action"], r["target"], r["detail"], r["prev_hash"])
    assert audit.verify(rows) == [audit.Break(3, "broken-link")]


def test_deleted_entry_is_found() -> None:
    rows = chain(5)
    del rows[2]
    problems = {(b.seq, b.problem) for b in audit.verify(rows)}
    assert problems == {(4, "gap"), (4, "broken-link")}


def test_reordered_entries_are_found() -> None:
    rows = chain(4)
    rows[1], rows[2] = rows[2], rows[1]
    assert audit.verify(rows)


def test_canonical_json_is_key_order_independent() -> None:
    assert audit.canonical({"b": 1, "a": [1, "é"]}) == audit.canonical({"a": [1, "é"], "b": 1})
