"""The group-commit writer and the prepared statements, on SQLite and PostgreSQL: a refused op costs
its batch one extra transaction (not one per op), concurrent writes run side by side on PostgreSQL,
and statements run on the driver's cursor keep SQLAlchemy's types and errors."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, bindparam, event, func, insert, select
from sqlalchemy.exc import IntegrityError

from voltlib.store import fast
from voltlib.store.db import Store
from voltlib.store.fast import Prepared
from voltlib.store.migrate import upgrade
from voltlib.store.tables import id_tags, invoices

NOW = datetime(2026, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)


def _tag(name: str) -> Any:
    def op(conn: Connection) -> str:
        conn.execute(insert(id_tags).values(id_tag=name, status="Accepted", created_at=NOW))
        return name
    return op


def _refuse(conn: Connection) -> None:
    conn.execute(insert(id_tags).values(id_tag="REFUSED", status="Accepted", created_at=NOW))
    raise ValueError("refused")


async def _in_one_batch(store: Store, ops: list[Any]) -> list[Any]:
    """Run ``ops`` as one group commit: the writer is held in a blocker's batch while they queue up.
    Their outcomes (results or exceptions), in order."""
    gate = threading.Event()
    blocker = asyncio.ensure_future(store.write(lambda conn: gate.wait(10)))
    await asyncio.sleep(0.2)  # the writer is now held in the blocker's batch; the next ones queue up
    pending = [asyncio.ensure_future(store.write(op)) for op in ops]
    await asyncio.sleep(0.05)
    gate.set()
    assert await blocker is True
    return list(await asyncio.gather(*pending, return_exceptions=True))


async def test_a_refused_op_leaves_its_batch_two_transactions(database_url: str) -> None:
    store = Store(database_url)
    upgrade(store.engine)
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda conn: commits.append(1))
    try:
        outcomes = await _in_one_batch(store, [_tag("A1"), _tag("A2"), _refuse, _tag("C1"), _tag("C2")])
        assert outcomes[:2] == ["A1", "A2"] and outcomes[3:] == ["C1", "C2"]
        assert isinstance(outcomes[2], ValueError)
        assert len(commits) == 3  # the blocker's batch; A1+A2; C1+C2 (the refused op rolled back alone)
        names = store.run_sync(lambda conn: set(conn.execute(select(id_tags.c.id_tag)).scalars()))
        assert names == {"A1", "A2", "C1", "C2"}
    finally:
        store.close()


async def test_an_op_that_loses_a_unique_key_in_its_batch_fails_alone(database_url: str) -> None:
    store = Store(database_url)
    upgrade(store.engine)
    try:
        outcomes = await _in_one_batch(store, [_tag(name) for name in ("K", "K", "L")])
        assert outcomes[0] == "K" and outcomes[2] == "L"
        assert isinstance(outcomes[1], IntegrityError)
    finally:
        store.close()


async def test_what_one_turn_of_the_loop_queues_is_one_group_commit(database_url: str) -> None:
    store = Store(database_url)
    upgrade(store.engine)
    try:
        before = store.batches
        for n in range(40):  # one turn of the loop, which gives the GIL away between the jobs
            store.write_later(_tag(f"T{n}"))
            time.sleep(0.001)  # noqa: ASYNC251 (blocking on purpose: the writer thread gets the GIL)
        assert await store.write(_tag("LAST")) == "LAST"  # still the same turn until it waits
        assert store.batches - before == 1  # the writer was handed the 41 at once, not woken for the first
        store.write_later(_tag("LATE"))  # queued, and close() comes before the loop's next turn
    finally:
        store.close()
    again = Store(database_url)
    try:
        assert again.run_sync(lambda conn: conn.execute(select(func.count()).select_from(id_tags)).scalar_one()) == 42
    finally:
        again.close()


async def test_concurrent_writes_run_side_by_side_on_postgresql(database_url: str) -> None:
    store = Store(database_url, concurrent_writers=2)
    try:
        if store.dialect != "postgresql":
            pytest.skip("SQLite has one writer")
        met = threading.Event()
        first = asyncio.ensure_future(store.write(lambda conn: met.wait(10), concurrent=True))
        await asyncio.sleep(0.2)  # one writer thread is now waiting inside the first op
        second = asyncio.ensure_future(store.write(lambda conn: met.set(), concurrent=True))
        assert await asyncio.wait_for(first, 15) is True  # the second ran while the first was open
        await second
    finally:
        store.close()


def test_prepared_statements_keep_types_and_errors(database_url: str) -> None:
    store = Store(database_url)
    upgrade(store.engine)
    add = Prepared(insert(invoices).values(
        member_id=bindparam("member_id"), rental_id=bindparam("rental_id"), kind=bindparam("kind"),
        currency=bindparam("currency"), total_minor=bindparam("total_minor"),
        lines=bindparam("lines", type_=invoices.c.lines.type),
        issued_at=bindparam("issued_at", type_=invoices.c.issued_at.type)))
    read = Prepared(select(invoices.c.lines, invoices.c.issued_at, invoices.c.total_minor)
                    .where(invoices.c.rental_id == bindparam("rental_id")))
    row = {"member_id": "m", "rental_id": "r-1", "kind": "rental", "currency": "EUR", "total_minor": 1234,
           "lines": [{"label": "Driving", "amount_minor": 1234}], "issued_at": NOW + timedelta(hours=2)}
    try:
        assert store.run_sync(lambda conn: add.run(conn, row)) == 1
        found = store.run_sync(lambda conn: read.first(conn, {"rental_id": "r-1"}))
        assert found == {"lines": row["lines"], "issued_at": NOW + timedelta(hours=2), "total_minor": 1234}
        assert found["issued_at"].tzinfo is not None
        assert store.run_sync(lambda conn: read.first(conn, {"rental_id": "r-2"})) is None
        with pytest.raises(IntegrityError):  # unique rental_id: SQLAlchemy's error, as Connection.execute raises
            store.run_sync(lambda conn: add.run(conn, row))
        assert store.run_sync(lambda conn: conn.execute(select(func.count()).select_from(invoices)).scalar()) == 1
    finally:
        store.close()


_ADD_TAG = Prepared(insert(id_tags).values(id_tag=bindparam("id_tag"), status=bindparam("status"),
                                           created_at=bindparam("created_at", type_=id_tags.c.created_at.type)))
_READ_TAG = Prepared(select(id_tags.c.status).where(id_tags.c.id_tag == bindparam("id_tag")))


def _deferred_tag(name: str) -> Any:
    def op(conn: Connection) -> str:
        _ADD_TAG.write(conn, {"id_tag": name, "status": "Accepted", "created_at": NOW})
        return name
    return op


def _read_tag(name: str) -> Any:
    def op(conn: Connection) -> dict[str, Any] | None:
        return _READ_TAG.first(conn, {"id_tag": name})
    return op


async def test_a_deferred_write_that_fails_is_pinned_on_its_op(database_url: str) -> None:
    """On PostgreSQL the duplicate's error surfaces only in the next op's read (pipeline mode); the
    batch runs again without deferring, and the error goes to the op that caused it."""
    store = Store(database_url)
    upgrade(store.engine)
    try:
        outcomes = await _in_one_batch(store, [_deferred_tag("K"), _deferred_tag("K"), _read_tag("K"),
                                               _deferred_tag("L")])
        assert outcomes[0] == "K" and outcomes[2] == {"status": "Accepted"} and outcomes[3] == "L"
        assert isinstance(outcomes[1], IntegrityError)
        names = store.run_sync(lambda conn: set(conn.execute(select(id_tags.c.id_tag)).scalars()))
        assert names == {"K", "L"}
    finally:
        store.close()


async def test_a_deferred_write_that_fails_at_the_commit_leaves_the_batch_s_other_ops_committed(
        database_url: str) -> None:
    """On PostgreSQL an error of the last deferred write surfaces only at the COMMIT, which the server
    then skips with the rest of the failed pipeline: the transaction must still be ended, or the batch's
    next run meets "current transaction is aborted" and fails an op that did nothing wrong."""
    store = Store(database_url)
    upgrade(store.engine)
    try:
        outcomes = await _in_one_batch(store, [_deferred_tag("M"), _deferred_tag("M")])
        assert outcomes[0] == "M" and isinstance(outcomes[1], IntegrityError)
        assert await store.write(_deferred_tag("N")) == "N"
        names = store.run_sync(lambda conn: set(conn.execute(select(id_tags.c.id_tag)).scalars()))
        assert names == {"M", "N"}
    finally:
        store.close()


def test_writes_are_deferred_only_where_allowed(database_url: str) -> None:
    store = Store(database_url)
    upgrade(store.engine)
    try:
        with store.engine.begin() as conn:
            _ADD_TAG.write(conn, {"id_tag": "NOW", "status": "Accepted", "created_at": NOW})
            assert "voltlib_pipeline" not in conn.info  # not asked for: run at once
            fast.defer_writes(conn, True)
            _ADD_TAG.write(conn, {"id_tag": "LATER", "status": "Accepted", "created_at": NOW})
            assert ("voltlib_pipeline" in conn.info) == (store.dialect == "postgresql")
            assert _READ_TAG.first(conn, {"id_tag": "LATER"}) == {"status": "Accepted"}  # reads see them
            fast.defer_writes(conn, False)
        assert store.run_sync(lambda conn: _READ_TAG.first(conn, {"id_tag": "LATER"})) == {"status": "Accepted"}
    finally:
        store.close()


async def test_grouped_inserts_keep_every_row_once_with_its_values(database_url: str) -> None:
    """The hot tables are written with multi-row statements (256, 64, 16, 4, 1 rows): 341 rows cross
    every size; rows already stored and rows repeated in the batch are skipped once, not refused;
    timestamps in other zones are stored as the same instants."""
    from voltlib.store.tables import meter_values

    store = Store(database_url)
    upgrade(store.engine)
    paris = timezone(timedelta(hours=1))

    def row(n: int) -> dict[str, Any]:
        return {"charge_point_id": f"CP{n % 7}", "connector_id": 1, "transaction_id": n,
                "sampled_at": (NOW + timedelta(seconds=n)).astimezone(paris), "samples": bytes([n % 256]) * 3,
                "received_at": NOW}
    try:
        await store.insert(meter_values, [row(n) for n in range(5)], ignore_duplicates=True)
        batch = [row(n) for n in range(341)] + [row(3), row(300)]  # 5 stored already, 2 repeated
        await asyncio.gather(*(store.insert(meter_values, batch[i:i + 50], ignore_duplicates=True)
                               for i in range(0, len(batch), 50)))
        stored = store.run_sync(lambda conn: conn.execute(
            select(meter_values.c.transaction_id, meter_values.c.sampled_at, meter_values.c.samples)
            .order_by(meter_values.c.transaction_id)).all())
        assert [r.transaction_id for r in stored] == list(range(341))
        assert all(r.sampled_at == NOW + timedelta(seconds=r.transaction_id) for r in stored)
        assert all(bytes(r.samples) == bytes([r.transaction_id % 256]) * 3 for r in stored)
    finally:
        store.close()


async def test_an_insert_s_follow_up_op_commits_with_its_rows_or_not_at_all(database_url: str) -> None:
    """``insert(then=op)``: the op runs in the rows' transaction (a MeterValues' state of charge goes on
    its car with its rows); when it fails, its rows are not stored and the insert raises, while the
    other inserts of the batch are stored."""
    from voltlib.store.tables import meter_values

    store = Store(database_url)
    upgrade(store.engine)

    def row(n: int) -> dict[str, Any]:
        return {"charge_point_id": "CP", "connector_id": 1, "transaction_id": n, "sampled_at": NOW,
                "samples": b"x", "received_at": NOW}
    try:
        outcomes = await asyncio.gather(
            store.insert(meter_values, [row(1)], ignore_duplicates=True, then=_tag("WITH-ROW-1")),
            store.insert(meter_values, [row(2)], ignore_duplicates=True, then=_refuse),
            store.insert(meter_values, [row(3)], ignore_duplicates=True), return_exceptions=True)
        assert outcomes[0] is None and isinstance(outcomes[1], ValueError) and outcomes[2] is None
        stored = store.run_sync(lambda conn: conn.execute(select(meter_values.c.transaction_id)).scalars().all())
        tags = store.run_sync(lambda conn: conn.execute(select(id_tags.c.id_tag)).scalars().all())
        assert sorted(stored) == [1, 3] and tags == ["WITH-ROW-1"]
    finally:
        store.close()


def test_sqlite_timestamps_of_grouped_inserts_match_sqlalchemys() -> None:
    """Grouped inserts format SQLite timestamps themselves: exactly as the ORM types do, so that
    rows from both paths compare and sort alike."""
    from sqlalchemy.dialects import sqlite

    from voltlib.store.tables import TS

    reference = TS._cached_bind_processor(sqlite.dialect())
    assert reference is not None
    nine_hours_behind = datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=-9)))
    last = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    for value in (NOW, datetime(1, 1, 2, tzinfo=UTC), nine_hours_behind, last):
        assert fast._sqlite_utc_text(value) == reference(value)
    with pytest.raises(ValueError, match="naive"):
        fast._sqlite_utc_text(datetime(2026, 1, 1))


async def test_json_columns_round_trip_what_either_encoder_takes(database_url: str) -> None:
    """JSON columns go through msgspec (the standard library reads what only it wrote, such as NaN):
    values read back as they were written, large integers and non-ASCII text included, on both stores."""
    import math

    from voltlib.store.db import json_dumps, json_loads
    from voltlib.store.tables import commands

    assert json_loads(json_dumps({"big": 2**70, "é": [1.5, None, True]})) == {"big": 2**70, "é": [1.5, None, True]}
    assert math.isnan(json_loads("[NaN]")[0])
    store = Store(database_url)
    upgrade(store.engine)
    payload = {"key": "HeartbeatInterval", "value": "60", "nested": {"n": 2**63 - 1, "list": ["ü", 0.1]},
               "huge": 2**80}
    try:
        await store.write(lambda conn: conn.execute(insert(commands).values(
            charge_point_id="CP1", action="ChangeConfiguration", request=payload, state="queued", created_at=NOW)))
        stored = store.run_sync(lambda conn: conn.execute(select(commands.c.request)).scalar_one())
        assert stored == payload
    finally:
        store.close()


def _postgresql_store(database_url: str) -> Store:
    if not database_url.startswith("postgresql"):
        pytest.skip("statements are deferred (sent down libpq's pipeline) on PostgreSQL only")
    store = Store(database_url)
    upgrade(store.engine)
    return store


def test_a_deferred_write_that_opens_the_transaction_is_rolled_back_with_it(database_url: str) -> None:
    """The pipeline begins the transaction itself when it sends the first statement (psycopg would
    have): without that BEGIN the write would have committed on its own."""
    store = _postgresql_store(database_url)
    try:
        with pytest.raises(ValueError, match="changed my mind"), store.engine.begin() as conn:
            fast.defer_writes(conn, True)
            _ADD_TAG.write(conn, {"id_tag": "GONE", "status": "Accepted", "created_at": NOW})
            assert _READ_TAG.first(conn, {"id_tag": "GONE"}) == {"status": "Accepted"}
            raise ValueError("changed my mind")
        assert store.run_sync(lambda conn: _READ_TAG.first(conn, {"id_tag": "GONE"})) is None
    finally:
        store.close()


def test_a_deferred_error_is_sqlalchemys_and_skips_the_statements_after_it(database_url: str) -> None:
    """A duplicate key in the pipeline surfaces at the next read as SQLAlchemy's IntegrityError with
    the server's SQLSTATE (what the writer's retry looks at); a statement first prepared after it was
    skipped by the server, so it is prepared again when next used."""
    store = _postgresql_store(database_url)
    fresh = Prepared(select(id_tags.c.id_tag, id_tags.c.note).where(id_tags.c.id_tag == bindparam("id_tag")))
    try:
        store.run_sync(lambda conn: _ADD_TAG.run(conn, {"id_tag": "TAKEN", "status": "Accepted", "created_at": NOW}))
        with pytest.raises(IntegrityError) as raised, store.engine.begin() as conn:
            fast.defer_writes(conn, True)
            _ADD_TAG.write(conn, {"id_tag": "TAKEN", "status": "Blocked", "created_at": NOW})
            fresh.rows(conn, {"id_tag": "TAKEN"})
        assert raised.value.orig is not None and getattr(raised.value.orig, "sqlstate", None) == "23505"
        with store.engine.begin() as conn:
            fast.defer_writes(conn, True)
            assert fresh.rows(conn, {"id_tag": "TAKEN"}) == [{"id_tag": "TAKEN", "note": None}]
    finally:
        store.close()


def test_a_connection_lost_under_the_pipeline_is_sqlalchemys_error(database_url: str) -> None:
    """The server going away mid-pipeline is raised as SQLAlchemy's DBAPIError (as a statement run
    by SQLAlchemy raises it), not as the driver's own, and the next transaction connects afresh."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    store = _postgresql_store(database_url)
    raised: list[BaseException] = []
    try:
        with pytest.raises(DBAPIError), store.engine.begin() as conn:
            fast.defer_writes(conn, True)
            _ADD_TAG.write(conn, {"id_tag": "LOST", "status": "Accepted", "created_at": NOW})
            pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
            with store.engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            try:
                _READ_TAG.first(conn, {"id_tag": "LOST"})
            except BaseException as exc:  # what the op sees (the rollback after it fails too)
                raised.append(exc)
                raise
        assert isinstance(raised[0], DBAPIError)
        with store.engine.begin() as conn:
            fast.defer_writes(conn, True)
            _ADD_TAG.write(conn, {"id_tag": "BACK", "status": "Accepted", "created_at": NOW})
        assert store.run_sync(lambda conn: _READ_TAG.first(conn, {"id_tag": "LOST"})) is None
        assert store.run_sync(lambda conn: _READ_TAG.first(conn, {"id_tag": "BACK"})) == {"status": "Accepted"}
    finally:
        store.close()


def test_deferred_statements_keep_every_type(database_url: str) -> None:
    """Parameters go down the pipeline as text: bytes, big integers, instants in other zones, JSON
    (non-ASCII, nested, null) read back as they were written, through the pipeline and without it."""
    from voltlib.store.tables import commands, meter_values

    store = _postgresql_store(database_url)
    paris = timezone(timedelta(hours=1))
    add_value = Prepared(insert(meter_values).values(
        {c: bindparam(c, type_=meter_values.c[c].type) for c in ("charge_point_id", "connector_id", "transaction_id",
                                                                "sampled_at", "samples", "received_at")}))
    read_value = Prepared(select(meter_values.c.transaction_id, meter_values.c.sampled_at, meter_values.c.samples)
                          .where(meter_values.c.charge_point_id == bindparam("cp_id")))
    add_command = Prepared(insert(commands).values(
        {c: bindparam(c, type_=commands.c[c].type) for c in ("charge_point_id", "action", "request", "response",
                                                            "state", "created_at")}))
    read_command = Prepared(select(commands.c.request, commands.c.response, commands.c.created_at)
                            .where(commands.c.charge_point_id == bindparam("cp_id")))
    request = {"key": "Ünïcode ✓", "n": 2**63 - 1, "list": [0.1, None, True, "\\\"quoted\\\""]}
    sampled = (NOW + timedelta(minutes=5)).astimezone(paris)
    try:
        with store.engine.begin() as conn:
            fast.defer_writes(conn, True)
            add_value.write(conn, {"charge_point_id": "CP-é", "connector_id": 2, "transaction_id": 2**40,
                                   "sampled_at": sampled, "samples": b"\x00\\x\xff'", "received_at": NOW})
            add_command.write(conn, {"charge_point_id": "CP-é", "action": "DataTransfer", "request": request,
                                     "response": None, "state": "queued", "created_at": sampled})
            piped = (read_value.rows(conn, {"cp_id": "CP-é"}), read_command.rows(conn, {"cp_id": "CP-é"}))
        direct = store.run_sync(lambda conn: (read_value.rows(conn, {"cp_id": "CP-é"}),
                                              read_command.rows(conn, {"cp_id": "CP-é"})))
        for values, found in (piped, direct):
            assert [{**v, "samples": bytes(v["samples"])} for v in values] == [
                {"transaction_id": 2**40, "sampled_at": NOW + timedelta(minutes=5), "samples": b"\x00\\x\xff'"}]
            assert found == [{"request": request, "response": None, "created_at": NOW + timedelta(minutes=5)}]
            assert found[0]["created_at"].tzinfo == UTC
    finally:
        store.close()


def test_the_pipeline_sends_without_holding_the_gil() -> None:
    """libpq's flush is reached through ctypes (which releases the GIL) on this platform; without it
    the writers fall back to psycopg's flush, correct but holding the GIL while the server wakes up."""
    pytest.importorskip("psycopg")
    import psycopg  # noqa: F401 (loads the libpq that is looked for)

    assert fast._unlocked_flush() is not None


async def test_two_writers_that_deadlock_both_commit_once(database_url: str) -> None:
    """Two gateway nodes' group commits take the same locks in opposite orders (the record-once
    advisory lock of a security signal against rows another op holds, say). PostgreSQL breaks the
    deadlock by failing one transaction; its writer runs the op again and both writes land, once."""
    first, second = Store(database_url), Store(database_url)
    try:
        if first.dialect != "postgresql":
            pytest.skip("SQLite has one writer: its writes take turns, they cannot deadlock")
        upgrade(first.engine)
        await first.write(_tag("DL-A"))
        await first.write(_tag("DL-B"))
        both_hold_one = threading.Barrier(2, timeout=10)
        calls = {"ab": 0, "ba": 0}

        def locking(name: str, one: str, other: str) -> Any:
            def op(conn: Connection) -> str:
                calls[name] += 1
                conn.execute(id_tags.update().where(id_tags.c.id_tag == one).values(note=f"{name}-1"))
                if calls[name] == 1:  # the first time only: then each waits for the row the other holds
                    both_hold_one.wait()
                conn.execute(id_tags.update().where(id_tags.c.id_tag == other).values(note=f"{name}-2"))
                return name
            return op

        results = await asyncio.wait_for(asyncio.gather(first.write(locking("ab", "DL-A", "DL-B")),
                                                        second.write(locking("ba", "DL-B", "DL-A"))), 30)
        assert results == ["ab", "ba"]
        assert sorted(calls.values()) == [1, 2]  # the deadlock's loser ran once more, the winner once
        assert first.deadlocks + second.deadlocks == 1  # and its store counted it
        with first.engine.connect() as conn:
            notes = dict(conn.execute(select(id_tags.c.id_tag, id_tags.c.note)
                                      .where(id_tags.c.id_tag.in_(["DL-A", "DL-B"]))).all())
        loser = "ab" if calls["ab"] == 2 else "ba"
        assert set(notes.values()) == {f"{loser}-1", f"{loser}-2"}  # the op that ran last wrote both rows
    finally:
        first.close()
        second.close()
