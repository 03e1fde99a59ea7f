"""`voltlib bench rolling-restart` end to end on a tiny load: two real nodes behind HAProxy on
PostgreSQL and NATS, both restarted; the tool reports every charge point moved and nothing lost
(no timing asserted: the figures are in docs/benchmarks.md); with one HAProxy and with an active
pair of them, the charge points split between the two as DNS round-robin does."""

from __future__ import annotations

import pytest

from tests.conftest import _truncate_all
from tests.integration.test_cluster import _require_nats
from tests.integration.test_haproxy import _haproxy
from voltlib.bench import rolling
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
    plan = rolling.RollingPlan(database_url=pg_database, charge_points=12, meter_s=0.5, settle_s=1.0,
                               haproxy=binary, balancers=balancers)
    result = await rolling.run(plan, progress=lambda _line: None)
    assert result.lost == 0 and result.duplicate_transactions == 0
    assert result.acknowledged > 12 * 2
    assert len(result.back_s) == 2 and sum(result.moved) >= 12  # each node held some; all moved at the second
    assert result.moved[1] == 12  # after the first restart every charge point was on the second node
    assert "acknowledged, missing from the db  0" in rolling.render(result)
    assert f"HAProxy instances                  {balancers}" in rolling.render(result)
