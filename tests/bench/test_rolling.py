"""`voltlib bench rolling-restart` end to end on a tiny load: two real nodes behind HAProxy on
PostgreSQL and NATS, both restarted while transactions start and stop; the tool reports every
charge point moved, nothing lost, no transaction stored twice, and transactions started while the
nodes restarted, without which "no duplicate" would hold by construction (no timing asserted: the
figures are in docs/benchmarks.md); with one HAProxy and with an active pair of them, the charge
points split between the two as DNS round-robin does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import _truncate_all
from tests.integration.test_cluster import _require_nats
from tests.integration.test_haproxy import _haproxy
from voltlib.bench import rolling
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade


@pytest.mark.parametrize("balancers", [1, 2])
async def test_rolling_restart_bench_moves_everyone_and_loses_nothing(pg_database: str, balancers: int) -> None:
    _require_nats()
    binary = _haproxy()
    store = Store(pg_database)
    upgrade(store.engine)  # the tables, emptied: other tests of the session share this database
    store.close()
    _truncate_all(pg_database)
    # every second meter interval (0.5 s) each charge point stops its transaction and starts another
    plan = rolling.RollingPlan(database_url=pg_database, charge_points=12, meter_s=0.5, settle_s=1.0,
                               haproxy=binary, balancers=balancers, tx_every=2)
    result = await rolling.run(plan, progress=lambda _line: None)
    assert result.lost == 0 and result.duplicate_transactions == 0
    assert result.starts_lost == 0 and result.stops_lost == 0 and not rolling.failed(result)
    assert result.acknowledged > 12 * 2
    # the checks above had something to check: transactions began and ended all through, restarts too
    assert result.transactions_started > 12 and result.transactions_stopped > 0
    assert result.started_during_restarts > 0 and result.stopped_during_restarts > 0
    assert len(result.back_s) == 2 and sum(result.moved) >= 12  # each node held some; all moved at the second
    assert result.moved[1] == 12  # after the first restart every charge point was on the second node
    text = rolling.render(result)
    assert "acknowledged, missing from the db  0" in text and "duplicate transactions             0" in text
    assert f"HAProxy instances                  {balancers}" in text
    figures = json.loads(rolling.as_json(result))
    assert figures["started_during_restarts"] == result.started_during_restarts > 0
    assert figures["duplicate_transactions"] == 0 and figures["stops_lost"] == 0


def test_the_audit_reads_duplicates_and_losses_from_the_database(pg_database: str) -> None:
    """The bench's zeros are counts of rows, so they can fail: a row for a start the charge point
    never sent (what a StartTransaction sent again would leave, were it not recognised), an
    acknowledged start whose id has no row, an acknowledged stop whose transaction is still open,
    and an acknowledged MeterValues with no reading are each counted."""
    store = Store(pg_database)
    upgrade(store.engine)
    store.close()
    _truncate_all(pg_database)
    plan = rolling.RollingPlan(database_url=pg_database, charge_points=1)
    rolling._prepare(plan, "ROLLAUDIT")
    now = datetime.now(UTC)

    def transaction(seconds: int) -> Any:
        return lambda conn: repo.insert_transaction(conn, {
            "charge_point_id": "ROLL-00000", "connector_id": 1, "id_tag": "ROLLAUDIT", "id_tag_status": "Accepted",
            "reservation_id": None, "meter_start": 0, "started_at": rolling.START + timedelta(seconds=seconds),
            "received_at": now})

    store = Store(pg_database)
    try:
        first = store.run_sync(transaction(5))
        store.run_sync(transaction(6))  # a start the charge point did not send: one too many
    finally:
        store.close()
    cp = rolling._ChargePoint(0)
    cp.sent_starts = {5, 7}
    cp.starts = [(5, first, 0.0), (7, 0, 0.0)]  # the second answered with an id no row has (ids start at 1)
    cp.stops = [(first, 0.0)]  # acknowledged, but the row is still open
    cp.acked = [5]  # no reading stored
    audit = rolling._audit(plan, [cp], "ROLLAUDIT")
    assert (audit.duplicates, audit.starts_lost, audit.stops_lost, audit.lost) == (1, 1, 1, 1)
    assert audit.acknowledged == 1
