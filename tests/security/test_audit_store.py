"""The audit chain in a real database (SQLite file and PostgreSQL): rows tampered with by SQL are
found by ``voltlib audit verify``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import text
from typer.testing import CliRunner

from voltlib.cli.main import app
from voltlib.security import audit
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade

runner = CliRunner()
T0 = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)


def fill(url: str, n: int = 5) -> None:
    store = Store(url)
    upgrade(store.engine)
    for i in range(n):
        store.run_sync(partial(audit.append, actor="sec-1", action="quarantine", target=f"CP-{i}",
                               detail={"reason": "tamper", "i": i, "ratio": 0.5, "nested": {"b": [1, 2]}},
                               now=T0 + timedelta(seconds=i)))
    store.close()


def tamper(url: str, sql: str) -> None:
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text(sql))
    store.close()


def verify(url: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--database-url", url])
    return result.exit_code, result.output


def test_an_untouched_chain_verifies(database_url: str) -> None:
    fill(database_url)
    code, out = verify(database_url)
    assert code == 0 and "5 entries" in out


def test_an_edited_entry_is_found(database_url: str) -> None:
    fill(database_url)
    tamper(database_url, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    code, out = verify(database_url)
    assert code == 1 and "entry 3: edited" in out


def test_a_deleted_entry_is_found(database_url: str) -> None:
    fill(database_url)
    tamper(database_url, "DELETE FROM audit_log WHERE seq = 2")
    code, out = verify(database_url)
    assert code == 1 and "entry 3: gap" in out and "entry 3: broken-link" in out


def test_reordered_entries_are_found(database_url: str) -> None:
    fill(database_url)
    tamper(database_url, "UPDATE audit_log SET seq = 100 WHERE seq = 2")
    tamper(database_url, "UPDATE audit_log SET seq = 2 WHERE seq = 4")
    tamper(database_url, "UPDATE audit_log SET seq = 4 WHERE seq = 100")
    code, out = verify(database_url)
    assert code == 1 and "entry 2: edited" in out and "entry 4: edited" in out


def test_appends_chain_on_the_previous_head(database_url: str) -> None:
    fill(database_url, 3)
    store = Store(database_url)
    rows = store.run_sync(audit.read_chain)
    store.close()
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["prev_hash"] == audit.GENESIS
    assert rows[1]["prev_hash"] == rows[0]["hash"] and rows[2]["prev_hash"] == rows[1]["hash"]
    assert rows[0]["at"] == T0
