"""Database access: one engine, a group-commit writer thread, and reads on a thread pool.

Group commit: writes from many charge-point connections are queued; a single writer thread
drains the queue, runs everything it found in *one* database transaction, commits, and only
then resolves each caller's future. So an acknowledgement sent after ``await store.write(...)``
always refers to committed data, while one fsync serves many messages.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

log = logging.getLogger(__name__)
T = TypeVar("T")
Op = Callable[[Connection], Any]


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite:///`` URLs; pick our drivers."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")  # durable at commit, even on power loss
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)


@dataclass(slots=True)
class _Job:
    op: Op | None
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None
    table: Table | None = None
    rows: list[dict[str, Any]] | None = None
    ignore_duplicates: bool = False


_STOP = object()


class Store:
    """The only way the rest of voltlib touches the database."""

    def __init__(self, url: str, *, max_batch: int = 2000) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="voltlib-read")
        self._writer = threading.Thread(target=self._write_loop, name="voltlib-writer", daemon=True)
        self._writer.start()
        self.batches = 0
        self.ops = 0

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def write(self, op: Callable[[Connection], T]) -> T:
        """Run ``op`` in the next group commit; return its result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(op, future, loop))
        return await future

    def write_later(self, op: Op) -> None:
        """Queue ``op`` without waiting (logs and history that nobody is waiting to see acknowledged)."""
        self._queue.put(_Job(op, None, None))

    async def insert(self, table: Table, rows: list[dict[str, Any]], *, ignore_duplicates: bool = False) -> None:
        """Insert rows in the next group commit; rows for one table from all callers go in one executemany."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Job(None, future, loop, table, rows, ignore_duplicates))
        await future

    def insert_later(self, table: Table, rows: list[dict[str, Any]]) -> None:
        self._queue.put(_Job(None, None, None, table, rows))

    async def read(self, op: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read, op)

    def _read(self, op: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return op(conn)

    def run_sync(self, op: Callable[[Connection], T]) -> T:
        """For the CLI and tests outside an event loop: one op in its own transaction."""
        with self.engine.begin() as conn:
            return op(conn)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._writer.join(timeout=30)
        self._readers.shutdown(wait=True)
        self.engine.dispose()

    # -- the writer thread --

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Job] = [first]  # type: ignore[list-item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Job]) -> None:
        results: list[tuple[_Job, bool, Any]] = []
        try:
            with self.engine.begin() as conn:
                for job in batch:
                    if job.op is not None:
                        results.append((job, True, job.op(conn)))
                self._insert_grouped(conn, [job for job in batch if job.op is None])
            results.extend((job, True, None) for job in batch if job.op is None)
        except Exception:  # one bad op: fall back to one transaction per op so the others commit
            log.debug("group commit of %d ops failed; retrying them one by one", len(batch), exc_info=True)
            results = [self._run_alone(job) for job in batch]
        self.batches += 1
        self.ops += len(batch)
        self._resolve_all(results)

    @staticmethod
    def _insert_grouped(conn: Connection, jobs: list[_Job]) -> None:
        groups: dict[tuple[str, bool], tuple[Table, list[dict[str, Any]]]] = {}
        for job in jobs:
            assert job.table is not None and job.rows is not None
            key = (job.table.name, job.ignore_duplicates)
            groups.setdefault(key, (job.table, []))[1].extend(job.rows)
        for (_, ignore), (table, rows) in groups.items():
            if not rows:
                continue
            if ignore:
                dialect_insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
                conn.execute(dialect_insert(table).on_conflict_do_nothing(), rows)
            else:
                conn.execute(table.insert(), rows)

    def _run_alone(self, job: _Job) -> tuple[_Job, bool, Any]:
        try:
            with self.engine.begin() as conn:
                if job.op is None:
                    self._insert_grouped(conn, [job])
                    return job, True, None
                return job, True, job.op(conn)
        except Exception as exc:
            if job.future is None:
                log.exception("background write failed")
            return job, False, exc

    @staticmethod
    def _resolve_all(results: list[tuple[_Job, bool, Any]]) -> None:
        """Wake each event loop once per batch, not once per future (the self-pipe write is costly)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, ok, value in results:
            if job.future is not None and job.loop is not None:
                by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # loop closed: the callers are gone
                pass


def _settle(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
