"""Prebuilt statements run straight on the driver's cursor, for the few queries every rental runs.

Profiling ``voltlib bench sharing`` showed SQLAlchemy's execution path (compiled-cache lookup,
execution context, result metadata) costing several times what SQLite takes for a primary-key
lookup, and most of what a car-sharing operation spends. A :class:`Prepared` statement is a Core
statement compiled once per dialect: its SQL, its parameter order, and SQLAlchemy's own type
processors (JSON, the UTC datetimes of ``tables.UtcDateTime``) are kept, and each execution is one
DBAPI ``execute``. It runs in the Connection's transaction (the same DBAPI connection), and driver
errors are raised as SQLAlchemy's (``IntegrityError`` ...), as ``Connection.execute`` raises them.

Only for statements with plain bind parameters (no ``expanding``), given every parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ClauseElement

Processor = Callable[[Any], Any] | None


@dataclass(slots=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # parameter names in order (qmark drivers), None: named parameters
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # parameters that need converting, and how
    keys: tuple[str, ...]  # result columns
    types: tuple[Any, ...]  # their SQLAlchemy types
    results: tuple[Processor, ...] | None = None  # from the driver's column types, at the first result
    convert_results: bool = True

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

    def _execute(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, _Compiled]:
        dialect = conn.dialect
        c = self._compiled(dialect)
        values = dict(params)
        for name, process in c.binds:
            values[name] = process(values[name])
        args: Any = values if c.positional is None else tuple(values[name] for name in c.positional)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(c.sql, args)
        except dialect.loaded_dbapi.Error as exc:
            cursor.close()
            raise DBAPIError.instance(c.sql, args, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
        return cursor, c

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        cursor, c = self._execute(conn, params)
        try:
            results = c.processors(conn.dialect, cursor.description)
            fetched = cursor.fetchall()
        finally:
            cursor.close()
        if not c.convert_results:
            return [dict(zip(c.keys, row, strict=True)) for row in fetched]
        return [{key: value if process is None else process(value)
                 for key, process, value in zip(c.keys, results, row, strict=True)} for row in fetched]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self.rows(conn, params)
        return found[0] if found else None

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute a statement returning no rows; the number of rows it changed."""
        cursor, _ = self._execute(conn, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled: Any = statement.compile(dialect=dialect)
    binds = []
    for name, bind in compiled.binds.items():
        process = bind.type._cached_bind_processor(dialect)
        if process is not None:
            binds.append((name, process))
    keys = tuple(column.keyname for column in compiled._result_columns)
    types = tuple(column.type for column in compiled._result_columns)
    positional = tuple(compiled.positiontup) if compiled.positional else None
    return _Compiled(compiled.string, positional, tuple(binds), keys, types)
