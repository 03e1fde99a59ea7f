"""Migration 0003 goes up and down on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from voltlib.store.db import Store
from voltlib.store.migrate import alembic_config, upgrade

SECURITY_TABLES = {"audit_log", "security_alerts", "security_incidents", "work_orders", "quarantines"}


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade(store.engine)
        assert set(inspect(store.engine).get_table_names()) >= SECURITY_TABLES
        command.downgrade(alembic_config(store.engine), "0001")
        assert not SECURITY_TABLES & set(inspect(store.engine).get_table_names())
        upgrade(store.engine)
        assert set(inspect(store.engine).get_table_names()) >= SECURITY_TABLES
    finally:
        store.close()
