"""Id tags as CSV, both ways, without I/O: what an operator exports, edits in a spreadsheet and
imports again. Every row is checked before anything is stored; each error names its row (the
header is row 1, as a spreadsheet shows it) and its column (docs/operations.md, "Id tags in bulk")."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from voltlib.domain.idtags import MAX_ID_TOKEN

COLUMNS = ("id_tag", "status", "expiry_date", "parent_id_tag", "note")
STATUSES = ("Accepted", "Blocked", "Expired", "Invalid")
MAX_ID_TAG = MAX_ID_TOKEN  # 2.0.1's IdToken (36); a 1.6 charge point never sends more than its 20
MAX_NOTE = 200  # the note column's width
MAX_ROWS = 5000  # per import: a larger list goes in several (the CLI splits it)
MAX_ERRORS = 100  # reported per import; the rest are counted


@dataclass(frozen=True, slots=True)
class IdTagRow:
    id_tag: str
    status: str
    expiry_date: datetime | None
    parent_id_tag: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 1 is the header
    column: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "detail": self.detail}


@dataclass(frozen=True)
class Parsed:
    rows: list[IdTagRow]
    errors: list[RowError]  # the first MAX_ERRORS
    error_count: int


def _tag(value: str, column: str, row: int, errors: list[RowError], *, required: bool) -> str | None:
    if value == "":
        if required:
            errors.append(RowError(row, column, "required"))
        return None
    if len(value) > MAX_ID_TAG or not value.isprintable() or value != value.strip():
        errors.append(RowError(row, column, f"an id tag is 1 to {MAX_ID_TAG} printable characters, no outer spaces"))
        return None
    return value


def _expiry(value: str, row: int, errors: list[RowError]) -> datetime | None:
    if value == "":
        return None
    try:
        at = datetime.fromisoformat(value) if value.isascii() and len(value) <= 40 else None
        if at is not None and at.tzinfo is not None:
            return at.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    errors.append(RowError(row, "expiry_date", "an ISO 8601 date-time with its offset, e.g. 2027-01-31T00:00:00Z"))
    return None


def parse(text: str) -> Parsed:
    """The rows of a CSV with a header naming some of :data:`COLUMNS` (``id_tag`` required, any order);
    an empty ``status`` is Accepted, other empty cells are none. A tag twice is an error."""
    errors: list[RowError] = []
    rows: list[IdTagRow] = []
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return Parsed([], [RowError(1, None, f"not CSV: {exc}")], 1)
    if header is None:
        return Parsed([], [RowError(1, None, "empty: the first row names the columns")], 1)
    names = [h.strip() for h in header]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown or "id_tag" not in names or len(set(names)) != len(names):
        detail = (f"unknown column {unknown[0]!r}" if unknown else "no id_tag column" if "id_tag" not in names
                  else "a column named twice")
        return Parsed([], [RowError(1, None, f"{detail}; the columns are {', '.join(COLUMNS)}")], 1)
    seen: dict[str, int] = {}
    number = 1
    try:
        for number, cells in enumerate(reader, start=2):
            if not cells:  # a blank line
                continue
            if number - 1 > MAX_ROWS:
                errors.append(RowError(number, None, f"more than {MAX_ROWS} rows: import them in several files"))
                break
            if len(cells) != len(names):
                errors.append(RowError(number, None, f"{len(cells)} cells for {len(names)} columns"))
                continue
            rows_errors = len(errors)
            cell = dict(zip(names, cells, strict=True))
            id_tag = _tag(cell["id_tag"], "id_tag", number, errors, required=True)
            status = cell.get("status", "") or "Accepted"
            if status not in STATUSES:
                errors.append(RowError(number, "status", f"one of {', '.join(STATUSES)}"))
            expiry = _expiry(cell.get("expiry_date", ""), number, errors)
            parent = _tag(cell.get("parent_id_tag", ""), "parent_id_tag", number, errors, required=False)
            note = cell.get("note", "") or None
            if note is not None and (len(note) > MAX_NOTE or "\x00" in note):
                errors.append(RowError(number, "note", f"at most {MAX_NOTE} characters, no NUL"))
            if id_tag is not None and id_tag in seen:
                errors.append(RowError(number, "id_tag", f"{id_tag} is also on row {seen[id_tag]}"))
            if id_tag is not None:
                seen.setdefault(id_tag, number)
            if len(errors) == rows_errors and id_tag is not None:
                rows.append(IdTagRow(id_tag, status, expiry, parent, note))
    except csv.Error as exc:
        errors.append(RowError(number + 1, None, f"not CSV: {exc}"))
    return Parsed(rows, errors[:MAX_ERRORS], len(errors))


def render(rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV of id tag rows (the table's columns) with the header; :func:`parse` reads it back as is."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        expiry = row.get("expiry_date")
        writer.writerow([row["id_tag"], row["status"],
                         "" if expiry is None else expiry.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                         row.get("parent_id_tag") or "", row.get("note") or ""])
    return out.getvalue()
