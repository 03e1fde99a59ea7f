"""Several gateway nodes starting together on one empty PostgreSQL database each run the
migrations and seed the built-in cities: they must take turns, and every one of them must come up."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.conftest import PG_ADMIN_URL

MIGRATE = "import sys; from voltlib.store.db import Store; from voltlib.store.migrate import upgrade; " \
          "from voltlib.sharing.store import seed_cities; " \
          "s = Store(sys.argv[1]); upgrade(s.engine); s.run_sync(seed_cities); s.close()"  # as serve starts


@pytest.fixture
def empty_pg(pg_database: str) -> Iterator[str]:  # pg_database: PostgreSQL is there (or CI fails)
    name = f"voltlib_migrate_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


async def test_nodes_migrating_one_empty_database_at_once_all_succeed(empty_pg: str) -> None:
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", MIGRATE, empty_pg,
                                                  stderr=asyncio.subprocess.PIPE) for _ in range(4)]
    outcomes = [(await p.wait(), (await p.stderr.read()).decode()[-500:]) for p in procs if p.stderr]
    assert [err for code, err in outcomes if code != 0] == []
    engine = create_engine(empty_pg)
    try:
        assert "rentals" in inspect(engine).get_table_names()
        with engine.connect() as conn:
            codes = list(conn.execute(text("SELECT code FROM cities ORDER BY code")).scalars())
        assert codes == ["bordeaux", "lyon", "paris"]
    finally:
        engine.dispose()
