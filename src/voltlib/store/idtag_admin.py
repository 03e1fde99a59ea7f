"""Id tags in bulk and their deletion. A deleted tag is unknown to authorisation (Invalid) from the
next request on; the transactions it started keep its name. A member's badge and a car's token
belong to car sharing and are refused here (block a badge instead: docs/security.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, delete, insert, select, update

from voltlib.domain.idtag_csv import IdTagRow
from voltlib.security import audit
from voltlib.store.tables import badges, id_tags, vehicles

CHUNK = 500  # ids per IN (...) list


def delete_id_tag(conn: Connection, id_tag: str, *, by: str, now: datetime
                  ) -> Literal["deleted", "unknown", "member_badge", "car_tag"]:
    if conn.execute(select(badges.c.member_id).where(badges.c.id_tag == id_tag)).first() is not None:
        return "member_badge"
    if conn.execute(select(vehicles.c.id).where(vehicles.c.id_tag == id_tag)).first() is not None:
        return "car_tag"
    row = conn.execute(select(id_tags).where(id_tags.c.id_tag == id_tag)).mappings().first()
    if row is None:
        return "unknown"
    conn.execute(delete(id_tags).where(id_tags.c.id_tag == id_tag))
    audit.append(conn, actor=by, action="id_tag.delete", target=id_tag,
                 detail={k: row[k] for k in ("status", "expiry_date", "parent_id_tag", "note")}, now=now)
    return "deleted"


@dataclass(frozen=True)
class ImportCounts:
    created: int
    updated: int
    unchanged: int

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


def _values(row: IdTagRow) -> dict[str, Any]:
    return {"status": row.status, "expiry_date": row.expiry_date, "parent_id_tag": row.parent_id_tag,
            "note": row.note}


def import_id_tags(conn: Connection, rows: list[IdTagRow], *, by: str, now: datetime) -> ImportCounts:
    """Create or change every row's tag to what the row says: importing the same file again changes
    nothing (all unchanged). One audit entry with the counts."""
    existing: dict[str, dict[str, Any]] = {}
    names = [r.id_tag for r in rows]
    for first in range(0, len(names), CHUNK):
        for found in conn.execute(select(id_tags).where(id_tags.c.id_tag.in_(names[first:first + CHUNK]))).mappings():
            existing[found["id_tag"]] = dict(found)
    new = [{"id_tag": r.id_tag, "created_at": now, **_values(r)} for r in rows if r.id_tag not in existing]
    changed = [r for r in rows if r.id_tag in existing
               and any(existing[r.id_tag][k] != v for k, v in _values(r).items())]
    if new:
        conn.execute(insert(id_tags), new)
    for row in changed:
        conn.execute(update(id_tags).where(id_tags.c.id_tag == row.id_tag).values(**_values(row)))
    counts = ImportCounts(len(new), len(changed), len(rows) - len(new) - len(changed))
    if new or changed:
        audit.append(conn, actor=by, action="id_tag.import", target="id_tags",
                     detail={**counts.as_dict(), "id_tags": [r["id_tag"] for r in new] + [r.id_tag for r in changed]},
                     now=now)
    return counts


def export_id_tags(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(id_tags).order_by(id_tags.c.id_tag)).mappings()]
