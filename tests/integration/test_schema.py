"""The migrations build exactly the tables the code declares, on SQLite and PostgreSQL, and the
newest one goes down and up again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from voltlib.store.db import Store
from voltlib.store.migrate import alembic_config, upgrade
from voltlib.store.tables import metadata


def test_the_migrated_database_is_the_declared_schema(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade(store.engine)
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        store.close()


def test_the_pending_password_columns_go_down_and_up(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade(store.engine)
        command.downgrade(alembic_config(store.engine), "0008")
        columns = {c["name"] for c in inspect(store.engine).get_columns("charge_points")}
        assert "pending_password_hash" not in columns and "password_hash" in columns
        upgrade(store.engine)
        columns = {c["name"] for c in inspect(store.engine).get_columns("charge_points")}
        assert {"pending_password_hash", "pending_password_until"} <= columns
    finally:
        store.close()


def test_the_2_0_1_transaction_columns_go_down_and_up(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade(store.engine)
        command.downgrade(alembic_config(store.engine), "0014")
        columns = {c["name"] for c in inspect(store.engine).get_columns("transactions")}
        assert "station_tx_id" not in columns and "id_tag" in columns
        assert "transaction_events" not in inspect(store.engine).get_table_names()
        upgrade(store.engine)
        columns = {c["name"] for c in inspect(store.engine).get_columns("transactions")}
        assert {"station_tx_id", "id_token_type"} <= columns
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        store.close()
