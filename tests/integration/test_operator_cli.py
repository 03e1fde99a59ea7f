"""``voltlib tx …`` and ``voltlib idtag delete|export|import`` against a real server (issue 20), on
SQLite and PostgreSQL: the CLI runs in a thread, the server in the test's event loop."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from typer.testing import CliRunner, Result

from tests.conftest import RunningServer
from tests.integration.test_protocol import BOOT, Client, connect
from tests.integration.test_transactions_api import start, stop
from voltlib.cli.main import app
from voltlib.security import audit


async def cli(server: RunningServer, *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, [*args, "--url", server.url, "--token", server.token],
                                   env={"COLUMNS": "200"})  # rich tables: no wrapped cells


def counts(output: str) -> list[str]:
    """The cells of the last row of the table printed last (rows, created, updated, unchanged)."""
    rows = [line for line in output.splitlines() if line.startswith("│")]
    return [cell.strip() for cell in rows[-1].strip("│").split("│")]


async def test_an_operator_lists_shows_and_closes_transactions(server: RunningServer) -> None:
    await server.add_charge_point("CP-CLI", profile=0)
    for tag in ("C1", "C2", "C3"):
        await server.add_id_tag(tag)
    async with connect(server, "CP-CLI") as cp:
        await cp.call("BootNotification", BOOT)
        ids = [await start(cp, f"C{i}", minute=i, connector=i) for i in (1, 2, 3)]
        await stop(cp, ids[0], 10, "Remote")
    every = await cli(server, "tx", "list", "--limit", "2", "--json")  # two pages of... one
    assert every.exit_code == 0, every.output
    assert [r["id"] for r in json.loads(every.output)] == [ids[2], ids[1]]
    open_ones = await cli(server, "tx", "list", "--open", "--cp", "CP-CLI", "--json")
    assert sorted(r["id"] for r in json.loads(open_ones.output)) == sorted(ids[1:])
    table = await cli(server, "tx", "list", "--closed")
    assert table.exit_code == 0 and "1 transaction(s)" in table.output and str(ids[0]) in table.output
    assert "Remote" in table.output
    shown = await cli(server, "tx", "show", str(ids[1]), "--json")
    assert json.loads(shown.output)["id_tag"] == "C2"
    missing = await cli(server, "tx", "show", "42")
    assert missing.exit_code == 1 and "404 not-found" in missing.output

    closed = await cli(server, "tx", "close", str(ids[1]), "--reason", "cable cut, ticket 12", "--json")
    assert closed.exit_code == 0, closed.output
    row = json.loads(closed.output)
    assert row["stopped_at"] is not None and row["meter_stop"] == row["meter_start"] and row["closed_by"]
    twice = await cli(server, "tx", "close", str(ids[1]), "--reason", "again", "--meter-stop", "5000")
    assert twice.exit_code == 1 and "409 already-closed" in twice.output
    rows = await server.store.read(audit.read_chain)
    assert [(r["action"], r["target"]) for r in rows] == [("transaction.close", str(ids[1]))]


async def test_an_operator_exports_imports_and_deletes_id_tags(server: RunningServer, tmp_path: Path) -> None:
    source = tmp_path / "tags.csv"
    source.write_text("id_tag,status,note\n" + "".join(f"T-{i:04},Accepted,batch\n" for i in range(2500)),
                      encoding="utf-8")
    imported = await cli(server, "idtag", "import", str(source))
    assert imported.exit_code == 0, imported.output
    assert counts(imported.output) == ["2500", "2500", "0", "0"]  # three requests of at most 1,000 rows
    again = await cli(server, "idtag", "import", str(source))
    assert again.exit_code == 0 and counts(again.output) == ["2500", "0", "0", "2500"]

    exported = tmp_path / "out.csv"
    result = await cli(server, "idtag", "export", str(exported))
    assert result.exit_code == 0, result.output
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id_tag,status,expiry_date,parent_id_tag,note" and len(lines) == 2501
    assert lines[1] == "T-0000,Accepted,,,batch"

    broken = tmp_path / "broken.csv"
    broken.write_text("id_tag,status\nOK,Accepted\nBAD,Perhaps\n", encoding="utf-8")
    refused = await cli(server, "idtag", "import", str(broken))
    assert refused.exit_code == 1 and "Perhaps" not in refused.output and "1 error(s)" in refused.output
    assert re.search(r"│ 3\s+│ status\s+│", refused.output)

    deleted = await cli(server, "idtag", "delete", "T-0001")
    assert deleted.exit_code == 0 and "T-0001: deleted" in deleted.output
    gone = await cli(server, "idtag", "delete", "T-0001")
    assert gone.exit_code == 1 and "404" in gone.output


async def accept_every_call(cp: Client, seen: list[str]) -> None:
    """A charge point that answers Accepted to whatever voltlib sends it, noting the actions."""
    while True:
        frame = await cp.recv()
        if frame[0] == 2:
            seen.append(frame[2])
            await cp.send_raw(json.dumps([3, frame[1], {"status": "Accepted"}]))


async def test_an_operator_sends_commands_without_waiting_and_follows_them(server: RunningServer) -> None:
    for cp_id in ("CP-ASYNC", "CP-AWAY"):
        await server.add_charge_point(cp_id, profile=0)
    async with connect(server, "CP-AWAY") as away:
        await away.call("BootNotification", BOOT)  # known, then gone
    seen: list[str] = []
    async with connect(server, "CP-ASYNC") as cp:
        await cp.call("BootNotification", BOOT)
        queued = await cli(server, "cp", "command", "CP-ASYNC", "Reset", "--payload", '{"type": "Soft"}', "--no-wait")
        assert queued.exit_code == 0, queued.output
        row = json.loads(queued.stdout)
        assert row["state"] == "queued" and f"voltlib cp follow CP-ASYNC {row['id']}" in queued.stderr
        answering = asyncio.create_task(accept_every_call(cp, seen))  # the Reset waits on the socket until now
        try:
            followed = await cli(server, "cp", "follow", "CP-ASYNC", str(row["id"]), "--json")
            assert followed.exit_code == 0, followed.output
            assert (json.loads(followed.stdout)["state"], json.loads(followed.stdout)["response"]) == (
                "answered", {"status": "Accepted"})
            at_once = await cli(server, "cp", "command", "CP-ASYNC", "ChangeAvailability", "--payload",
                                '{"connectorId": 0, "type": "Operative"}', "--no-wait", "--follow")
            assert at_once.exit_code == 0 and json.loads(at_once.stdout)["state"] == "answered", at_once.output
        finally:
            answering.cancel()
        silent = await cli(server, "cp", "command", "CP-ASYNC", "TriggerMessage", "--payload",
                           '{"requestedMessage": "Heartbeat"}', "--no-wait", "--follow", "--timeout", "0.5")
        assert silent.exit_code == 1 and json.loads(silent.stdout)["state"] == "timeout", silent.output
    assert seen == ["Reset", "ChangeAvailability"]
    offline = await cli(server, "cp", "command", "CP-AWAY", "Reset", "--payload", '{"type": "Hard"}', "--no-wait",
                        "--follow")
    assert offline.exit_code == 1 and json.loads(offline.stdout)["state"] == "offline", offline.output

    table = await cli(server, "cp", "commands", "CP-ASYNC")
    assert table.exit_code == 0 and "3 command(s) of CP-ASYNC" in table.output, table.output
    assert [line.split("│")[2].strip() for line in table.output.splitlines() if line.startswith("│")] == [
        "TriggerMessage", "ChangeAvailability", "Reset"]  # newest first
    assert "timeout" in table.output and "Accepted" in table.output
    newest = await cli(server, "cp", "commands", "CP-ASYNC", "--limit", "2", "--json")
    assert [r["action"] for r in json.loads(newest.stdout)] == ["TriggerMessage", "ChangeAvailability"]
    shown = await cli(server, "cp", "follow", "CP-AWAY", str(json.loads(offline.stdout)["id"]))
    assert shown.exit_code == 1 and "offline" in shown.output  # ended, but not answered
    missing = await cli(server, "cp", "follow", "CP-ASYNC", "999999")
    assert missing.exit_code == 1 and "404 unknown-command" in missing.output
