"""The admin CLI against a real database, `voltlib cp command` against a running server, and `voltlib conformance`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets
from typer.testing import CliRunner

from tests.conftest import RunningServer
from voltlib.cli.main import app

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_admin_commands_manage_charge_points_tags_and_tokens(database_url: str) -> None:
    db = ["--database-url", database_url]
    added = json.loads(invoke("cp", "add", "CP-CLI", "--profile", "1", *db))
    assert added["id"] == "CP-CLI" and 16 <= len(added["password"]) <= 40
    invoke("cp", "add", "CP-LAB", "--profile", "0", "--pending", *db)
    listed = json.loads(invoke("cp", "list", *db))
    assert [(c["id"], c["registration"]) for c in listed] == [("CP-CLI", "Accepted"), ("CP-LAB", "Pending")]
    assert all("password_hash" not in c for c in listed)
    invoke("cp", "registration", "CP-LAB", "Accepted", *db)
    assert json.loads(invoke("cp", "show", "CP-LAB", *db))["registration"] == "Accepted"

    invoke("idtag", "set", "BADGE-9", "--status", "Blocked", "--parent", "FAMILY", *db)
    tags = json.loads(invoke("idtag", "list", *db))
    assert tags[0]["id_tag"] == "BADGE-9" and tags[0]["status"] == "Blocked" and tags[0]["parent_id_tag"] == "FAMILY"

    token = invoke("token", "create", "ops", "--role", "operator", *db).strip()
    assert token.startswith("vlt_")
    assert "revoked ops" in invoke("token", "revoke", "ops", *db)


def test_bad_input_is_refused_with_a_message(database_url: str) -> None:
    db = ["--database-url", database_url]
    weak = runner.invoke(app, ["cp", "add", "CP-W", "--password", "short", *db])
    assert weak.exit_code != 0 and "16 to 40 bytes" in weak.output
    missing = runner.invoke(app, ["cp", "show", "NOPE", *db])
    assert missing.exit_code == 1


async def test_cp_command_goes_through_the_running_server(server: RunningServer) -> None:
    await server.add_charge_point("CP-CMD", profile=0)
    async with websockets.connect(f"{server.ws_url}/CP-CMD", subprotocols=["ocpp1.6"]) as ws:
        async def answer_reset() -> list[object]:
            frame = json.loads(await ws.recv())
            await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
            return list(frame)

        answering = asyncio.create_task(answer_reset())
        result = await asyncio.to_thread(
            runner.invoke, app, ["cp", "command", "CP-CMD", "Reset", "--payload", '{"type": "Soft"}',
                                 "--url", server.url, "--token", server.token])
        received = await answering
    assert result.exit_code == 0, result.output
    assert received[2] == "Reset" and received[3] == {"type": "Soft"}
    stored = json.loads(result.output)
    assert stored["state"] == "answered" and stored["response"] == {"status": "Accepted"}


def test_conformance_reads_the_packaged_cases_from_any_directory(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no checkout here, nothing beside it: the list ships with the package
    table = invoke("conformance")
    assert "| TC_001 | ColdBootChargePoint | `tests/conformance/test_core_profile.py::" in table
    totals = [line for line in table.splitlines() if " cases: " in line]
    assert len(totals) == 2 and totals[0].startswith("77 cases:") and "missing" not in totals[0], totals
    assert totals[1].startswith("135 cases:"), totals  # 2.0.1: blocks A-P of issue 16, the rest later
    assert "| TC_B_06 | Get Variables - single value |" in table
    only = invoke("conformance", "--ocpp", "2.0.1")
    assert "## OCPP 1.6" not in only and "| TC_L_01 |" in only and "| TC_N_25 |" in only
    assert runner.invoke(app, ["conformance", "--ocpp", "1.5"]).exit_code == 2


def test_conformance_reads_another_case_list_and_writes_markdown(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("cases.txt").write_text("# two cases\nTC_001 ColdBootChargePoint\nTC_999 NoSuchCase\n", encoding="utf-8")
    table = invoke("conformance", "--ocpp", "1.6", "--cases", "cases.txt", "--markdown", "table.md")
    assert table.strip().splitlines()[-1] == "2 cases: 1 missing, 1 not run"
    written = Path("table.md").read_text(encoding="utf-8")
    assert "voltlib conformance --ocpp 1.6 --cases cases.txt --markdown table.md" in written
    assert runner.invoke(app, ["conformance", "--cases", "nothing.txt"]).exit_code == 2
    assert runner.invoke(app, ["conformance", "--cases", "cases.txt"]).exit_code == 2  # which version?
