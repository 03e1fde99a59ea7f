"""Prebuilt statements run straight on the driver's cursor, for the few queries every rental runs.

Profiling ``voltlib bench sharing`` showed SQLAlchemy's execution path (compiled-cache lookup,
execution context, result metadata) costing several times what SQLite takes for a primary-key
lookup, and most of what a car-sharing operation spends. A :class:`Prepared` statement is a Core
statement compiled once per dialect: its SQL, its parameter order, and SQLAlchemy's own type
processors (JSON, the UTC datetimes of ``tables.UtcDateTime``) are kept, and each execution is one
DBAPI ``execute``. It runs in the Connection's transaction (the same DBAPI connection), and driver
errors are raised as SQLAlchemy's (``IntegrityError`` ...), as ``Connection.execute`` raises them.

Only for statements with plain bind parameters (no ``expanding``), given every parameter.

Deferred writes (:meth:`Prepared.write` on a connection where :func:`defer_writes` is on): on
PostgreSQL, a write nobody reads the answer of is sent in pipeline mode and not waited for; the
next read on the connection, any SQLAlchemy statement, or the commit waits for all of them at once,
so an operation's writes cost no round trip of their own. An error of a deferred write surfaces
at that later point, possibly in the next operation: the group-commit writer turns deferring on for
a batch's first attempt only, and runs a failed batch again without it (``voltlib.store.db``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.elements import ClauseElement

from voltlib.store.tables import UtcDateTime

Processor = Callable[[Any], Any] | None
_DEFER = "voltlib_defer_writes"
_PIPELINE = "voltlib_pipeline"
_CURSOR = "voltlib_cursor"
_WRITE_CURSOR = "voltlib_write_cursor"


@dataclass(slots=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # parameter names in order (qmark drivers), None: named parameters
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # parameters that need converting, and how
    keys: tuple[str, ...]  # result columns
    types: tuple[Any, ...]  # their SQLAlchemy types
    results: tuple[Processor, ...] | None = None  # from the driver's column types, at the first result
    convert_results: bool = True
    order: tuple[tuple[str, Processor], ...] = ()  # positional: each parameter and its converter

    def __post_init__(self) -> None:
        if self.positional is not None:
            converters = dict(self.binds)
            self.order = tuple((name, converters.get(name)) for name in self.positional)

    def processors(self, dialect: Dialect, description: Any) -> tuple[Processor, ...]:
        if self.results is None:
            self.results = tuple(kind._cached_result_processor(dialect, column[1])
                                 for kind, column in zip(self.types, description, strict=True))
            self.convert_results = any(p is not None for p in self.results)
        return self.results


class Prepared:
    """A Core statement, compiled on first use for each dialect."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = self._by_dialect[dialect.name] = _compile(self.statement, dialect)
        return found

    def _execute(self, conn: Connection, params: Mapping[str, Any], key: str = _CURSOR) -> tuple[Any, _Compiled]:
        dialect = conn.dialect
        c = self._compiled(dialect)
        args: Any
        if c.positional is not None:
            args = tuple(params[name] if process is None else process(params[name]) for name, process in c.order)
        else:
            args = dict(params)
            for name, process in c.binds:
                args[name] = process(args[name])
        cursor = _cursor(conn, key)
        try:
            cursor.execute(c.sql, args)
        except dialect.loaded_dbapi.Error as exc:
            raise _error(dialect, c.sql, exc) from exc
        return cursor, c

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        cursor, c = self._execute(conn, params)
        return self._fetch(conn, cursor, c)

    def _fetch(self, conn: Connection, cursor: Any, c: _Compiled) -> list[dict[str, Any]]:
        try:
            fetched = cursor.fetchall()
        except conn.dialect.loaded_dbapi.Error as exc:  # in pipeline mode, the deferred writes' errors come here
            raise _error(conn.dialect, c.sql, exc) from exc
        results = c.results if c.results is not None else c.processors(conn.dialect, cursor.description)
        if not c.convert_results:
            return [dict(zip(c.keys, row, strict=True)) for row in fetched]
        return [{key: value if process is None else process(value)
                 for key, process, value in zip(c.keys, results, row, strict=True)} for row in fetched]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self.rows(conn, params)
        return found[0] if found else None

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute a statement returning no rows, now; the number of rows it changed."""
        sync(conn)
        cursor, _ = self._execute(conn, params)
        return int(cursor.rowcount)

    def write(self, conn: Connection, params: Mapping[str, Any]) -> None:
        """Execute a statement returning no rows, deferred if the connection allows it (see above)."""
        if conn.info.get(_DEFER):
            _pipeline(conn)
        self._execute(conn, params, _WRITE_CURSOR)


def pipelining(conn: Connection) -> bool:
    """Whether reads on ``conn`` can be sent together (:func:`rows_together` in one round trip)."""
    return bool(conn.info.get(_DEFER))


def rows_together(conn: Connection, *queries: tuple[Prepared, Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows of several reads whose parameters do not depend on each other's answers, run in
    order. Where writes may be deferred (PostgreSQL), they are sent together and answered in one
    round trip; elsewhere they run one after the other."""
    if not conn.info.get(_DEFER):
        return [prepared.rows(conn, params) for prepared, params in queries]
    _pipeline(conn)
    sent = [prepared._execute(conn, params, f"{_CURSOR}-{i}") for i, (prepared, params) in enumerate(queries)]
    return [prepared._fetch(conn, cursor, c) for (prepared, _), (cursor, c) in zip(queries, sent, strict=True)]


def _pipeline(conn: Connection) -> None:
    info = conn.info
    if _PIPELINE not in info:
        pipeline = conn.connection.dbapi_connection.pipeline()  # type: ignore[union-attr]
        pipeline.__enter__()
        info[_PIPELINE] = pipeline


def defer_writes(conn: Connection, on: bool) -> None:
    """Let :meth:`Prepared.write` defer on this connection (PostgreSQL only; SQLite runs in-process)."""
    if on and conn.dialect.name == "postgresql":
        conn.info[_DEFER] = True
    else:
        sync(conn)
        conn.info.pop(_DEFER, None)


def sync(conn: Connection) -> None:
    """Wait for the deferred writes on ``conn``; raise the first error among them."""
    pipeline = conn.info.pop(_PIPELINE, None)
    if pipeline is not None:
        try:
            pipeline.__exit__(None, None, None)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _error(conn.dialect, "(deferred writes)", exc) from exc


def _discard(conn: Connection) -> None:
    pipeline = conn.info.pop(_PIPELINE, None)
    if pipeline is not None:
        try:
            pipeline.__exit__(None, None, None)
        except conn.dialect.loaded_dbapi.Error:
            pass  # being rolled back: the error was raised where it happened, or is moot


def install(engine: Engine) -> None:
    """Deferred writes are waited for before any other statement and before commit, and dropped on
    rollback, so SQLAlchemy never runs a statement on a connection in pipeline mode."""
    event.listen(engine, "before_cursor_execute", lambda conn, *args: sync(conn))
    event.listen(engine, "commit", sync)
    event.listen(engine, "rollback", _discard)


def _error(dialect: Dialect, sql: str, exc: Exception) -> StatementError:
    """A driver error as SQLAlchemy's (IntegrityError, OperationalError ...), as ``Connection.execute``
    raises them."""
    return DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect)


def _cursor(conn: Connection, key: str) -> Any:
    """One cursor per database connection (and one for deferred writes), kept with it (``info`` lives
    as long as the DBAPI connection): opening a cursor per statement was a tenth of a statement's
    cost with psycopg."""
    info = conn.info  # cleared when the connection is invalidated and replaced
    cursor = info.get(key)
    if cursor is None:
        cursor = info[key] = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    return cursor


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled: Any = statement.compile(dialect=dialect)
    binds = []
    for name, bind in compiled.binds.items():
        process = bind.type._cached_bind_processor(dialect)
        if process is not None:
            binds.append((name, process))
    keys = tuple(column.keyname for column in compiled._result_columns)
    types = tuple(column.type for column in compiled._result_columns)
    if compiled.positional:
        return _Compiled(compiled.string, tuple(compiled.positiontup), tuple(binds), keys, types)
    if dialect.paramstyle == "pyformat":  # psycopg: %s runs in a third of the CPU of %(name)s
        names: list[str] = []

        def positional(match: re.Match[str]) -> str:
            if match.group(1) is None:
                return match.group(0)  # an escaped %
            names.append(match.group(1))
            return "%s"

        sql = re.sub(r"%%|%\(([^)]+)\)s", positional, compiled.string)
        return _Compiled(sql, tuple(names), tuple(binds), keys, types)
    return _Compiled(compiled.string, None, tuple(binds), keys, types)


# --- many rows into one table, in few statements ------------------------------------------------

_CHUNKS = (256, 64, 16, 4, 1)  # rows per statement: a batch runs as a few statements, each one reused


@dataclass(slots=True)
class _BulkInsert:
    converters: tuple[Processor, ...]  # one per column, in the order of the rows' keys
    sql: dict[int, str]  # rows per statement -> its SQL


_bulk_plans: dict[tuple[str, str, tuple[str, ...], bool], _BulkInsert] = {}


def insert_rows(conn: Connection, table: Any, rows: list[dict[str, Any]], *, ignore_duplicates: bool = False) -> None:
    """Insert ``rows`` (dicts with the same keys) with multi-row ``INSERT ... VALUES (...), (...)``
    statements on the driver's cursor.

    Why not ``Connection.execute(insert, rows)``: the group-commit writer inserts every frame's log
    row and every meter value this way, thousands a second. SQLAlchemy's executemany converted each
    row in Python, and the sqlite3 driver gives the GIL up and takes it back for each row, which
    made the writer thread and the event loop take turns row by row; one statement for 256 rows
    does that once. ``ignore_duplicates``: rows whose unique key exists already are skipped."""
    if not rows:
        return
    sync(conn)
    dialect = conn.dialect
    keys = tuple(rows[0])
    plan_key = (table.name, dialect.name, keys, ignore_duplicates)
    plan = _bulk_plans.get(plan_key)
    if plan is None:
        plan = _bulk_plans[plan_key] = _bulk_plan(table, dialect, keys, ignore_duplicates)
    cursor = _cursor(conn, _CURSOR)
    width = len(keys)
    values = [row[name] for row in rows for name in keys]
    for index, process in enumerate(plan.converters):
        if process is not None:
            values[index::width] = [process(value) for value in values[index::width]]
    start, left = 0, len(rows)
    try:
        for size in _CHUNKS:
            while left >= size:
                cursor.execute(plan.sql[size], values[start:start + size * width])
                start, left = start + size * width, left - size
    except dialect.loaded_dbapi.Error as exc:
        raise _error(dialect, plan.sql[_CHUNKS[-1]], exc) from exc


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """What ``UtcDateTime`` and SQLAlchemy's SQLite DATETIME store, in C: ``isoformat`` with the
    microseconds always written, without the offset (a third of the cost of formatting the fields)."""
    if value is None:
        return None
    zone = value.tzinfo
    if zone is not UTC:
        if zone is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _bulk_plan(table: Any, dialect: Dialect, keys: tuple[str, ...], ignore_duplicates: bool) -> _BulkInsert:
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(k) for k in keys)}) VALUES "
    row = "(" + ", ".join([mark] * len(keys)) + ")"
    tail = " ON CONFLICT DO NOTHING" if ignore_duplicates else ""
    converters = tuple(_sqlite_utc_text if dialect.name == "sqlite" and isinstance(table.c[k].type, UtcDateTime)
                       else table.c[k].type._cached_bind_processor(dialect) for k in keys)
    return _BulkInsert(converters, {n: head + ", ".join([row] * n) + tail for n in _CHUNKS})
