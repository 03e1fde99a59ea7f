"""Database access: one engine, a group-commit writer thread, and reads on a thread pool.

Group commit: writes from many charge-point connections are queued; a single writer thread
drains the queue, runs everything it found in *one* database transaction, commits, and only
then resolves each caller's future. So an acknowledgement sent after ``await store.write(...)``
always refers to committed data, while one fsync serves many messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.exc import IntegrityError

from voltlib.store import fast
from voltlib.telemetry.counters import WriterStats

log = logging.getLogger(__name__)
T = TypeVar("T")
Op = Callable[[Connection], Any]


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite:///`` URLs; pick our drivers."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


_json_encoder = msgspec.json.Encoder()


def json_dumps(value: Any) -> str:
    """JSON columns are written with msgspec: the standard library's encoder was 4 % of a PostgreSQL
    rental's CPU."""
    return _json_encoder.encode(value).decode()


def json_loads(text: str | bytes | memoryview) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:  # NaN and other literals only the standard library reads
        return json.loads(text if isinstance(text, (str, bytes)) else bytes(text))


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               json_serializer=json_dumps, json_deserializer=json_loads)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")  # durable at commit, even on power loss
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True,
                           json_serializer=json_dumps, json_deserializer=json_loads)
    fast.install(engine)
    return engine


@dataclass(slots=True)
class _Job:
    op: Op | None
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None
    table: Table | None = None
    rows: list[dict[str, Any]] | None = None
    ignore_duplicates: bool = False
    then: Op | None = None


_STOP = object()
DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE for "deadlock detected"


class Store:
    """The only way the rest of voltlib touches the database."""

    def __init__(self, url: str, *, max_batch: int = 2000, concurrent_writers: int = 3,
                 concurrent_batch: int = 16) -> None:
        """``concurrent_writers``: on PostgreSQL, threads (each with its own connection and group
        commit) for the writes queued with ``concurrent=True``; SQLite has one writer at a time, so
        there they share the single writer thread."""
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self.max_batch = max_batch
        self._local = threading.local()  # each writer thread's connection
        # For the metrics: jobs handed to the writers (event-loop thread), and each writer thread's batches.
        self.handed = 0
        self.writer_stats: dict[str, WriterStats] = {}
        self._queue: queue.SimpleQueue[_Job | list[_Job] | object] = queue.SimpleQueue()
        self._outboxes: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="voltlib-read")
        self._prober = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voltlib-probe")  # see probe()
        self._writer = threading.Thread(target=self._write_loop, args=(self._queue, max_batch),
                                        name="voltlib-writer", daemon=True)
        self._writer.start()
        self._concurrent_queue: queue.SimpleQueue[_Job | list[_Job] | object] = (
            queue.SimpleQueue() if self.dialect == "postgresql" and concurrent_writers > 0 else self._queue)
        self._concurrent = [threading.Thread(target=self._write_loop, args=(self._concurrent_queue, concurrent_batch),
                                             daemon=True, name=f"voltlib-writer-{n}")
                            for n in range(concurrent_writers if self._concurrent_queue is not self._queue else 0)]
        for thread in self._concurrent:
            thread.start()
        self.batches = 0
        self.ops = 0
        self.deadlocks = 0  # transactions PostgreSQL failed to break a deadlock (each cost deadlock_timeout)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def write(self, op: Callable[[Connection], T], *, concurrent: bool = False) -> T:
        """Run ``op`` in the next group commit; return its result once committed.

        ``concurrent=True``: on PostgreSQL, ``op`` may run at the same time as other writes, in another
        transaction (READ COMMITTED). Only for ops that lock the rows they read before changing them
        (``SELECT ... FOR UPDATE``) and whose inserts a unique key guards: an op that loses a race for
        a key is run once more, after the winner committed, so it refuses as it would have in turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if concurrent and self._concurrent_queue is not self._queue:
            self.handed += 1
            self._concurrent_queue.put(_Job(op, future, loop))
        else:
            self._submit(_Job(op, future, loop))
        return await future

    def write_later(self, op: Op) -> None:
        """Queue ``op`` without waiting (logs and history that nobody is waiting to see acknowledged)."""
        self._submit(_Job(op, None, None))

    async def insert(self, table: Table, rows: list[dict[str, Any]], *, ignore_duplicates: bool = False,
                     then: Op | None = None) -> None:
        """Insert rows in the next group commit; rows for one table from all callers go in one executemany.
        ``then``: an op run in the same transaction once the batch's rows are in (its result is dropped;
        cheaper than a write of its own next to the insert)."""
        await self.insert_soon(table, rows, ignore_duplicates=ignore_duplicates, then=then)

    def insert_soon(self, table: Table, rows: list[dict[str, Any]], *, ignore_duplicates: bool = False,
                    then: Op | None = None) -> asyncio.Future[None]:
        """:meth:`insert`, queued now: inserts queued in one turn of the event loop share a group
        commit, so a caller awaiting several of them together waits for one commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._submit(_Job(None, future, loop, table, rows, ignore_duplicates, then))
        return future

    def insert_later(self, table: Table, rows: list[dict[str, Any]]) -> None:
        self._submit(_Job(None, None, None, table, rows))

    def _submit(self, job: _Job) -> None:
        """Hand the writer everything one turn of the event loop queued, at once, at the end of the
        turn: waking the idle writer thread for each job cost the event loop a thread switch per
        message, and woke it to commit a batch of one while the rest of the turn's jobs were coming."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: nothing to gather with
            self.handed += 1
            self._queue.put(job)
            return
        outbox = self._outboxes.get(loop)
        if outbox is None:
            outbox = self._outboxes[loop] = []
            loop.call_soon(self._hand_over, loop)
        outbox.append(job)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._outboxes.pop(loop, None)
        if jobs:
            self.handed += len(jobs)
            self._queue.put(jobs)

    async def read(self, op: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read, op)

    async def probe(self, op: Callable[[Connection], T]) -> T:
        """A read on a thread of its own, for health checks: through :meth:`read` a check waited behind
        every read queued on the node (a reconnection storm queues thousands), so a balancer took a
        busy node with a healthy database for a dead one and, with every node busy, refused them all."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._prober, self._read, op)

    def _read(self, op: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return op(conn)

    def run_sync(self, op: Callable[[Connection], T]) -> T:
        """For the CLI and tests outside an event loop: one op in its own transaction."""
        with self.engine.begin() as conn:
            return op(conn)

    def close(self) -> None:
        for loop in list(self._outboxes):  # a turn's jobs not handed over yet
            self._hand_over(loop)
        for _ in self._concurrent:
            self._concurrent_queue.put(_STOP)
        for thread in self._concurrent:
            thread.join(timeout=30)
        self._queue.put(_STOP)
        self._writer.join(timeout=30)
        self._readers.shutdown(wait=True)
        self._prober.shutdown(wait=True)
        self.engine.dispose()

    # -- the writer thread --

    @property
    def queued(self) -> int:
        """Writes handed to the writer threads and not committed (or failed) yet."""
        return self.handed - sum(stats.ops for stats in list(self.writer_stats.values()))

    def _write_loop(self, jobs: queue.SimpleQueue[_Job | list[_Job] | object], max_batch: int) -> None:
        self._local.stats = self.writer_stats[threading.current_thread().name] = WriterStats()
        try:
            self._drain(jobs, max_batch)
        finally:
            self._drop_connection()

    def _drain(self, jobs: queue.SimpleQueue[_Job | list[_Job] | object], max_batch: int) -> None:
        while True:
            item = jobs.get()
            if item is _STOP:
                return
            batch: list[_Job] = []
            stop = False
            while True:
                if isinstance(item, list):
                    batch.extend(item)
                else:
                    batch.append(item)  # type: ignore[arg-type]
                if len(batch) >= max_batch:
                    break
                try:
                    item = jobs.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Job]) -> None:
        results: list[tuple[_Job, bool, Any]] = []
        started = time.perf_counter()
        try:
            self._run_jobs([job for job in batch if job.op is not None], [job for job in batch if job.op is None],
                           results)
        except Exception as exc:  # noqa: BLE001 (e.g. no connection: the database is down)
            # The writer thread must outlive it, or its callers would wait for ever: what was not
            # committed fails, and the next batch connects afresh.
            log.error("group commit of %d writes failed: %s", len(batch), exc)
            self._drop_connection()
            settled = {id(job) for job, _, _ in results}
            results.extend((job, False, exc) for job in batch if id(job) not in settled)
        self.batches += 1
        self.ops += len(batch)
        self._resolve_all(results)
        self._local.stats.batch(len(batch), time.perf_counter() - started)

    def _run_jobs(self, ops: list[_Job], inserts: list[_Job], results: list[tuple[_Job, bool, Any]],
                  defer: bool = True) -> None:
        """Commit ``ops`` then ``inserts`` in one transaction. When an op fails, the ops before it are
        committed without it, then it runs first in its own transaction (where its error is its own,
        not caused by an uncommitted neighbour), then the rest carry on together: a refusal costs one
        extra transaction instead of turning the whole batch into one transaction per op.

        ``defer``: the first attempt lets writes be deferred (``voltlib.store.fast``); an error of a
        deferred write may surface in a later op, so after any failure the batch runs again without."""
        while ops or inserts:
            failed, error, values = self._attempt(ops, inserts, defer)
            if failed is None:
                results.extend((job, True, value) for job, value in zip(ops, values, strict=True))
                results.extend((job, True, None) for job in inserts)
                return
            if defer and self.dialect == "postgresql":
                defer = False
                continue
            if failed == len(ops):
                if inserts:  # the grouped inserts failed: the ops without them, then each insert alone
                    self._run_jobs(ops, [], results, False)
                    results.extend(self._run_alone(job) for job in inserts)
                else:  # the commit itself failed
                    results.extend(self._run_alone(job) for job in ops)
                return
            if failed > 0:
                self._run_jobs(ops[:failed], [], results, False)
                ops = ops[failed:]
            else:
                results.append(self._run_alone(ops[0]) if _retryable(error) else (ops[0], False, error))
                ops = ops[1:]

    def _attempt(self, ops: list[_Job], inserts: list[_Job],
                 defer: bool = False) -> tuple[int | None, BaseException | None, list[Any]]:
        """One transaction: ``(None, None, results)`` once committed, else the index of what failed
        (``len(ops)``: the inserts, or the commit) and its error, everything rolled back."""
        values: list[Any] = []
        index = 0
        conn = self._connection()
        try:
            with conn.begin():
                fast.defer_writes(conn, defer)
                fast.hold_others(conn, len(ops) + len(inserts) > 1)
                try:
                    for index, job in enumerate(ops):  # noqa: B007 (index names the failed op)
                        assert job.op is not None
                        values.append(job.op(conn))
                    index = len(ops)
                    self._insert_grouped(conn, inserts)
                finally:  # the connection goes back to the pool: nobody else defers on it unasked
                    conn.info.pop("voltlib_defer_writes", None)
                    fast.hold_others(conn, False)
        except Exception as exc:
            log.debug("group commit of %d ops failed at %d", len(ops) + len(inserts), index, exc_info=True)
            self._count_deadlock(exc)
            if conn.invalidated:  # the database went away: the next batch connects afresh
                self._drop_connection()
            return index, exc, []
        return None, None, values

    def _connection(self) -> Connection:
        """The writer thread's own connection, kept between batches: checking one out of the pool
        and resetting it cost a fifth of the writer's time at thousands of small batches a second."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self.engine.connect()
        return conn

    def _drop_connection(self) -> None:
        conn: Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: nothing to give back
                log.debug("closing the writer's connection failed", exc_info=True)

    @staticmethod
    def _insert_grouped(conn: Connection, jobs: list[_Job]) -> None:
        groups: dict[tuple[str, bool], tuple[Table, list[dict[str, Any]]]] = {}
        for job in jobs:
            assert job.table is not None and job.rows is not None
            key = (job.table.name, job.ignore_duplicates)
            groups.setdefault(key, (job.table, []))[1].extend(job.rows)
        for (_, ignore), (table, rows) in groups.items():
            fast.insert_rows(conn, table, rows, ignore_duplicates=ignore)
        for job in jobs:
            if job.then is not None:
                job.then(conn)

    def _run_alone(self, job: _Job) -> tuple[_Job, bool, Any]:
        """``job`` in its own transaction; run once more if it lost a race (a unique key taken or
        a deadlock with a concurrent writer), so that it sees the winner and refuses as usual."""
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    if job.op is None:
                        self._insert_grouped(conn, [job])
                        return job, True, None
                    return job, True, job.op(conn)
            except Exception as exc:
                self._count_deadlock(exc)
                if attempt == 0 and _retryable(exc):
                    continue
                if job.future is None:
                    log.exception("background write failed")
                return job, False, exc
        raise AssertionError("unreachable")

    def _count_deadlock(self, error: BaseException) -> None:
        if getattr(getattr(error, "orig", None), "sqlstate", None) == DEADLOCK:
            self.deadlocks += 1  # from writer threads: a lost increment only undercounts a diagnostic
            log.info("a write transaction was chosen to break a deadlock (%d so far)", self.deadlocks)

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


def _retryable(error: BaseException | None) -> bool:
    """A failure another transaction caused, which a second run may not meet (or meets as a clear refusal)."""
    if isinstance(error, IntegrityError):
        return True
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    # serialization failure, deadlock detected, a row lock not waited for (``fast.holds_others``)
    return code in ("40001", DEADLOCK, "55P03")


def _settle(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
