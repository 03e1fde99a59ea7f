"""OCPP 2.0.1 tokens are up to 36 characters (IdTokenType.idToken): one is stored through the API
and the CLI, accepted with its 36-character group, blocked and refused over real 2.0.1 WebSockets,
on SQLite and PostgreSQL; 1.6's idTag stays at 20 on the wire (its schema), and migration 0018
goes down and up (issue 17)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import Connection, inspect, select
from typer.testing import CliRunner

from tests.conformance.conftest import connect
from tests.conformance.station201 import Station201
from tests.conftest import RunningServer
from tests.integration.test_ocpp201_gateway import BOOT_16
from tests.integration.test_ocpp201_gateway import connect as connect_raw
from voltlib.cli.main import app
from voltlib.domain import commands as c
from voltlib.ocpp.v16.commands import to_call
from voltlib.store.db import Store
from voltlib.store.migrate import alembic_config, upgrade
from voltlib.store.tables import id_tags

LONG = "8f14e45f-ceea-467a-9af4-1f2d7e3c9b10"  # a Central token, a UUID: 36 characters
GROUP = "FLEET-" + "G" * 30  # 36
assert len(LONG) == len(GROUP) == 36


async def _tag(server: RunningServer, tag: str) -> dict[str, Any] | None:
    def op(conn: Connection) -> dict[str, Any] | None:
        row = conn.execute(select(id_tags).where(id_tags.c.id_tag == tag)).mappings().first()
        return None if row is None else dict(row)

    return await server.store.read(op)


@pytest.mark.parametrize("ocpp_version", ["2.0.1"], indirect=True)
async def test_a_36_character_token_is_stored_accepted_and_blocked_over_2_0_1(server: RunningServer) -> None:
    headers = server.api_headers()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
        stored = await api.put(f"/api/v1/id-tags/{LONG}", json={"parent_id_tag": GROUP}, headers=headers)
        too_long = await api.put(f"/api/v1/id-tags/{LONG}0", json={}, headers=headers)
        long_parent = await api.put("/api/v1/id-tags/OTHER", json={"parent_id_tag": GROUP + "G"}, headers=headers)
        await server.add_charge_point("CP-T36")
        async with connect(server, "CP-T36") as cp:
            assert isinstance(cp, Station201)
            await cp.boot()
            accepted = await cp.authorize(LONG, "Central")
            blocked = await api.post(f"/api/v1/badges/{LONG}/block", json={"reason": "lost"}, headers=headers)
            block_too_long = await api.post(f"/api/v1/badges/{LONG}0/block", json={"reason": "x"}, headers=headers)
            refused = await cp.authorize(LONG, "Central")
            started = await cp.start_tx(1, LONG, token_type="Central")
    assert stored.status_code == 200, stored.text
    assert (too_long.status_code, too_long.json()["title"]) == (422, "invalid-id-tag")
    assert long_parent.status_code == 422 and await _tag(server, "OTHER") is None
    assert accepted["status"] == "Accepted"
    assert accepted["group_id_token"] == {"id_token": GROUP, "type": "Central"}
    assert blocked.status_code == 200 and blocked.json()["previous_status"] == "Accepted"
    assert (block_too_long.status_code, block_too_long.json()["title"]) == (422, "invalid-id-tag")
    assert refused["status"] == "Blocked" and started.id_tag_info["status"] == "Blocked"
    row = await _tag(server, LONG)
    assert row is not None and (row["status"], row["parent_id_tag"]) == ("Blocked", GROUP)


async def test_a_1_6_charge_point_still_sends_20_characters_at_most(server: RunningServer) -> None:
    """The store takes 36, 1.6's schema does not: a longer idTag is a CallError, never a decision;
    and a 36-character blocked badge is left out of a 1.6 local list, whose reader cannot send it."""
    await server.add_id_tag(LONG)
    await server.add_charge_point("CP-T16")
    async with connect_raw(server, "CP-T16", ["ocpp1.6"]) as station:
        assert (await station.call("BootNotification", BOOT_16))[0] == 3
        long = await station.call("Authorize", {"idTag": LONG})
        short = await station.call("Authorize", {"idTag": LONG[:20]})
    assert long[0] == 4 and long[2] == "PropertyConstraintViolation"
    assert short[0] == 3 and short[2]["idTagInfo"]["status"] == "Invalid"  # not the long one cut short
    action, payload = to_call(c.PushLocalList(7, True, ["SHORT-BADGE", LONG]))
    assert action == "SendLocalList"
    assert payload["localAuthorizationList"] == [{"idTag": "SHORT-BADGE", "idTagInfo": {"status": "Blocked"}}]


def test_the_cli_stores_36_characters_and_refuses_37(database_url: str) -> None:
    store = Store(database_url)
    upgrade(store.engine)
    runner = CliRunner()
    db = ["--database-url", database_url]
    try:
        ok = runner.invoke(app, ["idtag", "set", LONG, "--parent", GROUP, *db])
        assert ok.exit_code == 0, ok.output
        assert runner.invoke(app, ["idtag", "set", LONG + "0", *db]).exit_code == 2
        assert runner.invoke(app, ["idtag", "set", "SHORT", "--parent", GROUP + "G", *db]).exit_code == 2
        with store.engine.connect() as conn:
            rows = conn.execute(select(id_tags.c.id_tag, id_tags.c.parent_id_tag)).all()
        assert [tuple(r) for r in rows] == [(LONG, GROUP)]
    finally:
        store.close()


def test_migration_0018_widens_the_token_columns_and_goes_back(database_url: str) -> None:
    store = Store(database_url)

    def widths() -> dict[str, int]:
        found = {}
        for table, column in (("id_tags", "id_tag"), ("id_tags", "parent_id_tag"), ("badges", "id_tag"),
                              ("vehicles", "id_tag")):
            (col,) = [col for col in inspect(store.engine).get_columns(table) if col["name"] == column]
            found[f"{table}.{column}"] = col["type"].length
        return found

    try:
        upgrade(store.engine)
        assert set(widths().values()) == {36}
        command.downgrade(alembic_config(store.engine), "0017")
        assert set(widths().values()) == {20}
        upgrade(store.engine)
        assert set(widths().values()) == {36}
    finally:
        store.close()
