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

On such a connection the statements do not go through psycopg's cursors but straight to libpq's
pipeline (:class:`_Pipe`): each statement is prepared once per connection under a name of ours,
its parameters are sent as text (every placeholder carries its type cast), and all that is queued
is flushed once when an answer is needed. psycopg's per-statement cursor and pipeline machinery
was two thirds of a PostgreSQL writer thread's time, under the GIL; the rows are still loaded by
psycopg's own loaders (its Transformer, with the connection's JSON and time-zone settings).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import select
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import JSON, TypeDecorator

from voltlib.store.tables import UtcDateTime

Processor = Callable[[Any], Any] | None
_DEFER = "voltlib_defer_writes"
_PIPELINE = "voltlib_pipeline"
_CURSOR = "voltlib_cursor"
_OTHERS = "voltlib_holds_others"
_LINK = "voltlib_pipeline_link"


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
    name: bytes = b""  # PostgreSQL: the name it is prepared under on each connection (see _Pipe)
    pg_sql: bytes = b""  # PostgreSQL: the SQL with $1, $2 ... placeholders
    texts: tuple[tuple[str, Callable[[Any], bytes | None]], ...] = ()  # PostgreSQL: each parameter as text

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

    def _execute(self, conn: Connection, params: Mapping[str, Any], key: str = _CURSOR,
                 info: dict[Any, Any] | None = None) -> tuple[Any, _Compiled]:
        """``info``: ``conn.info``, where the caller has it (reading it again costs a tenth of a
        SQLite lookup)."""
        if info is None:
            info = conn.info
        if _PIPELINE in info:
            sync(conn)  # what a pipeline of ours holds goes first
        dialect = conn.dialect
        c = self._compiled(dialect)
        args: Any
        if c.positional is not None:
            args = tuple(params[name] if process is None else process(params[name]) for name, process in c.order)
        else:
            args = dict(params)
            for name, process in c.binds:
                args[name] = process(args[name])
        cursor = info.get(key)
        if cursor is None:
            cursor = _cursor(conn, key)
        try:
            cursor.execute(c.sql, args)
        except dialect.loaded_dbapi.Error as exc:
            raise _error(dialect, c.sql, exc) from exc
        return cursor, c

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        info = conn.info
        if info.get(_DEFER):
            return rows_together(conn, (self, params))[0]
        cursor, c = self._execute(conn, params, _CURSOR, info)
        try:
            fetched = cursor.fetchall()
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _error(conn.dialect, c.sql, exc) from exc
        return _dicts(conn.dialect, c, fetched, cursor.description)

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self.rows(conn, params)
        return found[0] if found else None

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute a statement returning no rows, now; the number of rows it changed."""
        cursor, _ = self._execute(conn, params)
        return int(cursor.rowcount)

    def write(self, conn: Connection, params: Mapping[str, Any]) -> None:
        """Execute a statement returning no rows, deferred if the connection allows it (see above)."""
        info = conn.info
        if info.get(_DEFER):
            try:
                _pipe(conn).send(self._compiled(conn.dialect), params, False)
            except _Psycopg.error_type as exc:
                raise _error(conn.dialect, "(pipeline)", exc) from exc
        else:
            self._execute(conn, params, _CURSOR, info)


def _dicts(dialect: Dialect, c: _Compiled, fetched: list[Any], description: Any) -> list[dict[str, Any]]:
    """Rows as dicts keyed by the statement's columns, through SQLAlchemy's result processors."""
    results = c.results if c.results is not None else c.processors(dialect, description)
    if not c.convert_results:
        return [dict(zip(c.keys, row, strict=True)) for row in fetched]
    return [{key: value if process is None else process(value)
             for key, process, value in zip(c.keys, results, row, strict=True)} for row in fetched]


def pipelining(conn: Connection) -> bool:
    """Whether reads on ``conn`` can be sent together (:func:`rows_together` in one round trip)."""
    return bool(conn.info.get(_DEFER))


def rows_together(conn: Connection, *queries: tuple[Prepared, Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows of several reads whose parameters do not depend on each other's answers, run in
    order. Where writes may be deferred (PostgreSQL), they are sent together, behind the deferred
    writes, and answered in one round trip; elsewhere they run one after the other."""
    if not conn.info.get(_DEFER):
        return [prepared.rows(conn, params) for prepared, params in queries]
    try:
        pipe = _pipe(conn)
        sent = [pipe.send(prepared._compiled(conn.dialect), params, True) for prepared, params in queries]
        return pipe.answers(sent)
    except _Psycopg.error_type as exc:  # the connection failed (a statement's error comes wrapped already)
        raise _error(conn.dialect, "(pipeline)", exc) from exc


class _Slot:
    """A statement sent down a pipeline, waiting for its answer."""

    __slots__ = ("c", "done", "kind", "name", "rows")

    def __init__(self, kind: int, c: _Compiled | None, name: bytes = b"") -> None:
        self.kind, self.c, self.name = kind, c, name
        self.rows: list[dict[str, Any]] = []
        self.done = False


_WRITE, _READ, _PREPARE, _BEGIN = range(4)


class _Psycopg:
    """psycopg's parts the pipeline uses, imported with the first pipeline, so that a SQLite process
    never loads psycopg."""

    error_type: type[Exception] = Exception  # psycopg.Error once loaded (only a pipeline catches it)
    loaded = False
    error_from_result: Any
    transformer: Any
    idle: Any
    failed: Any
    skipped: Any
    synced: Any

    @classmethod
    def load(cls) -> None:
        if cls.loaded:
            return
        import psycopg
        from psycopg import errors, pq
        from psycopg.adapt import Transformer

        cls.error_type, cls.error_from_result, cls.transformer = psycopg.Error, errors.error_from_result, Transformer
        cls.idle, cls.failed = pq.TransactionStatus.IDLE, pq.ExecStatus.FATAL_ERROR
        cls.skipped, cls.synced = pq.ExecStatus.PIPELINE_ABORTED, pq.ExecStatus.PIPELINE_SYNC
        cls.loaded = True


_names = itertools.count(1)


class _Link:
    """What a PostgreSQL connection keeps for its pipelines (in ``Connection.info``, which lives and
    dies with the database connection): the statements prepared on it, psycopg's row loaders."""

    __slots__ = ("encoding", "fd", "poller", "prepared", "transformer")

    def __init__(self, dbapi: Any) -> None:
        self.encoding: str = dbapi.info.encoding
        self.prepared: set[bytes] = set()
        self.transformer = _Psycopg.transformer(dbapi)
        self.fd = dbapi.pgconn.socket
        self.poller = select.poll()  # not select(): a gateway's descriptors go past FD_SETSIZE


class _Pipe:
    """libpq's pipeline mode, driven directly: statements are queued without waiting, and flushed
    and answered in order when a read needs its rows, or at :func:`sync`. The first error is kept
    (the server skips the rest until the sync) and raised where it is read, and again at the sync."""

    def __init__(self, conn: Connection) -> None:
        _Psycopg.load()
        dbapi: Any = conn.connection.dbapi_connection
        self.dialect = conn.dialect
        self.pg: Any = dbapi.pgconn
        link = conn.info.get(_LINK)
        if link is None:
            link = conn.info[_LINK] = _Link(dbapi)
        self.link: _Link = link
        self.pending: deque[_Slot] = deque()
        self.preparing: set[bytes] = set()  # sent, not answered yet
        self.error: Exception | None = None
        self.pg.enter_pipeline_mode()
        if self.pg.transaction_status == _Psycopg.idle:  # psycopg would have begun one
            level = dbapi.isolation_level
            begin = b"BEGIN" if level is None else f"BEGIN ISOLATION LEVEL {level.name.replace('_', ' ')}".encode()
            self.pg.send_query_params(begin, None)
            self.pending.append(_Slot(_BEGIN, None))

    def send(self, c: _Compiled, params: Mapping[str, Any], read: bool) -> _Slot:
        link, pg = self.link, self.pg
        if c.name not in link.prepared and c.name not in self.preparing:
            pg.send_prepare(c.name, c.pg_sql)
            self.pending.append(_Slot(_PREPARE, None, c.name))
            self.preparing.add(c.name)
        pg.send_query_prepared(c.name, [text(params[name]) for name, text in c.texts])
        slot = _Slot(_READ if read else _WRITE, c)
        self.pending.append(slot)
        return slot

    def answers(self, slots: list[_Slot]) -> list[list[dict[str, Any]]]:
        """The rows of ``slots``, once everything sent before them is answered."""
        self.pg.send_flush_request()
        self._flush()
        while not slots[-1].done:
            self._answer()
            if self.error is not None:
                raise self._wrapped()
        return [slot.rows for slot in slots]

    def commit(self) -> Exception | None:
        """COMMIT sent down the pipeline, then :meth:`finish`: the commit costs no round trip of its own
        (psycopg then finds no transaction left to commit)."""
        self.pg.send_query_params(b"COMMIT", None)
        self.pending.append(_Slot(_WRITE, None))
        return self.finish()

    def finish(self) -> Exception | None:
        """Sync: everything answered, the connection out of pipeline mode; the first error, if any."""
        pg = self.pg
        pg.pipeline_sync()
        self._flush()
        while self.pending:
            self._answer()
        while True:
            self._wait_readable()
            result = pg.get_result()
            if result is not None and result.status == _Psycopg.synced:
                break
        pg.exit_pipeline_mode()
        return None if self.error is None else self._wrapped()

    def _wrapped(self) -> StatementError:
        assert self.error is not None
        return _error(self.dialect, "(pipeline)", self.error)

    def _flush(self) -> None:
        """Send what is queued. On a local socket, sending runs the server's receiving side and wakes
        its process: held under the GIL (as psycopg's own flush is), that was a third of the writers'
        GIL time, so libpq's PQflush is called through ctypes, which lets the GIL go."""
        flush, pg = _unlocked_flush(), self.pg
        while True:
            left = flush(pg.pgconn_ptr) if flush is not None else 0
            if left < 0 or flush is None:
                left = pg.flush()  # raises the connection's error, or flushes where ctypes could not
            if not left:
                return
            self._wait(select.POLLOUT)

    def _wait(self, events: int) -> None:
        poller, fd = self.link.poller, self.link.fd
        poller.register(fd, events)
        try:
            poller.poll()  # the GIL is released while waiting
        finally:
            poller.unregister(fd)

    def _wait_readable(self) -> None:
        pg = self.pg
        while pg.is_busy():
            self._wait(select.POLLIN)
            pg.consume_input()

    def _answer(self) -> None:
        """Read the answer of the oldest statement sent."""
        slot = self.pending.popleft()
        pg = self.pg
        while True:
            self._wait_readable()
            result = pg.get_result()
            if result is None:
                break
            status = result.status
            if status == _Psycopg.failed:
                if self.error is None:
                    self.error = _Psycopg.error_from_result(result, encoding=self.link.encoding)
            elif status == _Psycopg.skipped:
                pass  # an earlier error, kept already
            elif slot.kind == _READ:
                assert slot.c is not None
                tx = self.link.transformer
                tx.set_pgresult(result)
                fetched = tx.load_rows(0, result.ntuples, tuple)
                c = slot.c
                slot.rows = _dicts(self.dialect, c, fetched, [(None, result.ftype(i)) for i in range(result.nfields)]
                                   if c.results is None else None)
            elif slot.kind == _PREPARE:
                self.link.prepared.add(slot.name)
        self.preparing.discard(slot.name)
        slot.done = True


@functools.cache
def _unlocked_flush() -> Callable[[int], int] | None:
    """libpq's PQflush through ctypes (which releases the GIL around the call), from the libpq this
    process has loaded (psycopg's), or None where that cannot be found (psycopg's own flush then)."""
    try:
        import ctypes

        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libpq" in line}
        if len(paths) != 1:
            return None
        function = ctypes.CDLL(paths.pop()).PQflush
        function.argtypes, function.restype = [ctypes.c_void_p], ctypes.c_int
    except (OSError, AttributeError):
        return None
    flush: Callable[[int], int] = function
    return flush


def _pipe(conn: Connection) -> _Pipe:
    pipe: _Pipe | None = conn.info.get(_PIPELINE)
    if pipe is None:
        pipe = conn.info[_PIPELINE] = _Pipe(conn)
    return pipe


def hold_others(conn: Connection, on: bool) -> None:
    """Mark ``conn``'s transaction as one that runs other callers' ops too (a group commit of several):
    an op that would wait there for a row lock another writer thread may hold asks not to wait
    (:func:`holds_others`), since the rows its neighbours locked could close a deadlock."""
    if on:
        conn.info[_OTHERS] = True
    else:
        conn.info.pop(_OTHERS, None)


def holds_others(conn: Connection) -> bool:
    return bool(conn.info.get(_OTHERS))


def defer_writes(conn: Connection, on: bool) -> None:
    """Let :meth:`Prepared.write` defer on this connection (PostgreSQL only; SQLite runs in-process)."""
    if on and conn.dialect.name == "postgresql":
        conn.info[_DEFER] = True
    else:
        sync(conn)
        conn.info.pop(_DEFER, None)


def sync(conn: Connection, commit: bool = False) -> None:
    """Wait for the deferred writes on ``conn``; raise the first error among them. ``commit``: and
    commit, in the same round trip."""
    pipe: _Pipe | None = conn.info.pop(_PIPELINE, None)
    if pipe is not None:
        try:
            error = pipe.commit() if commit else pipe.finish()
        except _Psycopg.error_type as exc:  # the connection failed
            raise _error(conn.dialect, "(pipeline)", exc) from exc
        if error is not None:
            if commit:  # the server skipped the COMMIT with the rest of the failed pipeline, and SQLAlchemy,
                # whose commit this was, will not roll back: end the aborted transaction here
                conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
            raise error


def _commit(conn: Connection) -> None:
    sync(conn, commit=True)


def _discard(conn: Connection) -> None:
    pipe: _Pipe | None = conn.info.pop(_PIPELINE, None)
    if pipe is not None:
        try:
            pipe.finish()  # being rolled back: its error was raised where it happened, or is moot
        except conn.dialect.loaded_dbapi.Error:
            pass  # the connection broke: SQLAlchemy's rollback meets that too


def install(engine: Engine) -> None:
    """Deferred writes are waited for before any other statement and before commit, and dropped on
    rollback, so SQLAlchemy never runs a statement on a connection in pipeline mode."""
    event.listen(engine, "before_cursor_execute", lambda conn, *args: sync(conn))
    event.listen(engine, "commit", _commit)
    event.listen(engine, "rollback", _discard)


def _error(dialect: Dialect, sql: str, exc: Exception) -> StatementError:
    """A driver error as SQLAlchemy's (IntegrityError, OperationalError ...), as ``Connection.execute``
    raises them."""
    return DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect)


def _cursor(conn: Connection, key: str) -> Any:
    """One cursor per database connection, kept with it (``info`` lives as long as the DBAPI
    connection): opening a cursor per statement was a tenth of a statement's cost with psycopg."""
    info = conn.info  # cleared when the connection is invalidated and replaced
    cursor = info.get(key)
    if cursor is None:
        cursor = info[key] = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    return cursor


def _pg_text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format (each placeholder is cast to its column's type)."""
    kind = type(value)
    if kind is str:
        return value.encode()  # type: ignore[no-any-return]
    if value is None:
        return None
    if kind is bool:
        return b"true" if value else b"false"
    if kind is int or kind is float or kind is Decimal:
        return str(value).encode()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.isoformat().encode()
    if isinstance(value, date):
        return value.isoformat().encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"\\x" + bytes(value).hex().encode()
    return str(value).encode()


Texter = Callable[[Any], bytes | None]


def _pg_texts(compiled: Any, names: list[str], dialect: Dialect) -> tuple[tuple[str, Texter], ...]:
    """How each parameter goes out as text: JSON through the engine's serializer (None is JSON null,
    as SQLAlchemy writes it), a TypeDecorator's own conversion first, then :func:`_pg_text`."""
    return tuple((name, _texter(compiled.binds[name].type, dialect)) for name in names)


def _texter(kind: Any, dialect: Dialect) -> Texter:
    if isinstance(kind, JSON):
        dumps: Callable[[Any], str] = getattr(dialect, "_json_serializer", None) or json.dumps

        def json_text(value: Any) -> bytes:
            return dumps(value).encode()
        return json_text
    if isinstance(kind, TypeDecorator):
        def decorated_text(value: Any) -> bytes | None:
            return _pg_text(kind.process_bind_param(value, dialect))
        return decorated_text
    return _pg_text


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
        numbered = iter(range(1, len(names) + 1))
        pg_sql = re.sub(r"%%|%\(([^)]+)\)s",
                        lambda m: "%" if m.group(1) is None else f"${next(numbered)}", compiled.string)
        return _Compiled(sql, tuple(names), tuple(binds), keys, types, name=b"voltlib_%d" % next(_names),
                         pg_sql=pg_sql.encode(), texts=_pg_texts(compiled, names, dialect))
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
