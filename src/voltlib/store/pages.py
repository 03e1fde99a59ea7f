"""Keyset (cursor) pages: a list in a stable order that ends in a unique column, continued after
the key of the last row shown. Unlike OFFSET, a page does not shift when rows are added meanwhile,
and the hundredth page costs what the first does (docs/operations.md, "Lists and pages")."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Column, Connection, Select, literal, tuple_

from voltlib.store.tables import UtcDateTime

Key = tuple[Any, ...]
MAX_CURSOR_CHARS = 512  # a key is a few short values; anything longer is not a cursor we gave


class CursorError(ValueError):
    """The text is not a cursor of this list."""


def _kind(column: Column[Any]) -> type:
    if isinstance(column.type, UtcDateTime):
        return datetime
    kind = column.type.python_type
    if kind not in (int, str):
        raise TypeError(f"no cursor for a {kind.__name__} column ({column.name})")
    return kind


@dataclass(frozen=True)
class Order:
    """Rows ordered by ``columns`` (all ascending or all descending); the last column is unique."""

    columns: tuple[Column[Any], ...]
    descending: bool = True

    def __post_init__(self) -> None:
        for column in self.columns:
            _kind(column)  # refused at import time, not at the first request

    def apply(self, query: Select[Any], after: Key | None) -> Select[Any]:
        if after is not None:
            bound = tuple_(*(literal(value, type_=c.type) for c, value in zip(self.columns, after, strict=True)))
            row = tuple_(*self.columns)
            query = query.where(row < bound if self.descending else row > bound)
        return query.order_by(*(c.desc() if self.descending else c.asc() for c in self.columns))

    def key_of(self, row: Mapping[str, Any]) -> Key:
        return tuple(row[c.name] for c in self.columns)

    def encode(self, key: Key) -> str:
        values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
        return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")

    def decode(self, text: str) -> Key:
        """The key a cursor of :meth:`encode` holds; :class:`CursorError` for anything else."""
        if len(text) > MAX_CURSOR_CHARS:
            raise CursorError("too long")
        try:
            values = msgspec.json.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise CursorError("not a cursor") from None
        if not isinstance(values, list) or len(values) != len(self.columns):
            raise CursorError("not a cursor of this list")
        return tuple(_value(_kind(c), v) for c, v in zip(self.columns, values, strict=True))


def _value(kind: type, value: Any) -> Any:
    if kind is datetime and isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise CursorError("not a time") from None
        if at.tzinfo is None:
            raise CursorError("a time without its offset")
        return at
    if kind is int and isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    if kind is str and isinstance(value, str) and "\x00" not in value:
        return value
    raise CursorError("a value of the wrong kind")


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next: Key | None  # the key to continue after; None on the last page


def fetch(conn: Connection, query: Select[Any], order: Order, after: Key | None, limit: int) -> Page:
    """Up to ``limit`` rows of ``query`` (which selects the order's columns) after ``after``."""
    rows = [dict(r) for r in conn.execute(order.apply(query, after).limit(limit + 1)).mappings()]
    if len(rows) <= limit:
        return Page(rows, None)
    del rows[limit:]
    return Page(rows, order.key_of(rows[-1]))


def cut(rows: list[dict[str, Any]], order: Order, after: Key | None, limit: int) -> Page:
    """:func:`fetch` for a list computed in Python (already sorted in ``order``): the same cursors,
    for a list whose sort key (a distance) is not a column."""
    if after is not None:
        rows = [r for r in rows if (order.key_of(r) < after if order.descending else order.key_of(r) > after)]
    if len(rows) <= limit:
        return Page(rows, None)
    return Page(rows[:limit], order.key_of(rows[limit - 1]))
