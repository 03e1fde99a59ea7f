"""A command under way when voltlib is killed (SIGKILL: nothing runs after) was left ``queued`` for
ever. The next start-up marks it ``lost`` before anything is served, with why; an answered one is
left alone; on a cluster a node only marks its own (the others may be waiting for theirs). A real
``voltlib serve`` killed and started again, a raw charge point; SQLite and PostgreSQL (issue 20)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import websockets

from tests.integration.test_durability import running_server, wait_until_up
from voltlib.security.credentials import hash_api_token
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade

CP = "CP-KILLED"


async def test_a_command_under_way_at_a_kill_is_lost_after_the_restart(database_url: str, tmp_path: Path) -> None:
    token = "vlt_test_" + uuid.uuid4().hex
    setup = Store(database_url)
    try:
        upgrade(setup.engine)
        now = datetime.now(UTC)
        setup.run_sync(partial(repo.add_charge_point, cp_id=CP, registration="Accepted", security_profile=0,
                               password_hash=None, certificate_fingerprint=None, now=now))
        setup.run_sync(partial(repo.add_api_token, name="lost-test", role="admin", token_hash=hash_api_token(token),
                               now=now))
    finally:
        setup.close()
    headers = {"Authorization": f"Bearer {token}"}
    log = tmp_path / "serve.log"
    with running_server(database_url, log) as (proc, port):
        await wait_until_up(proc, port, log)
        async with websockets.connect(f"ws://127.0.0.1:{port}/ocpp/{CP}", subprotocols=["ocpp1.6"],
                                      open_timeout=10) as ws, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as api:
            await ws.send(json.dumps([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]))
            assert json.loads(await ws.recv())[2]["status"] == "Accepted"
            answered = await api.post(f"/api/v1/charge-points/{CP}/commands/ClearCache", params={"wait": "false"},
                                      json={})
            call = json.loads(await ws.recv())
            await ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
            under_way = await api.post(f"/api/v1/charge-points/{CP}/commands/UnlockConnector",
                                       params={"wait": "false", "timeout": "300"}, json={"connectorId": 1})
            assert under_way.status_code == 202, under_way.text
            assert json.loads(await ws.recv())[2] == "UnlockConnector"  # sent; never answered
            first = (await api.get(answered.headers["Location"])).json()
            assert first["state"] == "answered"
            left = (await api.get(under_way.headers["Location"])).json()
            assert left["state"] == "queued" and left["node"]
            proc.kill()  # SIGKILL: nothing of voltlib runs after this
            proc.wait(timeout=30)
    with running_server(database_url, log) as (proc, port):
        await wait_until_up(proc, port, log)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as api:
            lost = (await api.get(under_way.headers["Location"])).json()
            assert (lost["state"], lost["error_code"]) == ("lost", "node-restarted"), lost
            assert "stopped before the answer" in lost["error_description"] and lost["finished_at"]
            assert (await api.get(answered.headers["Location"])).json() == first  # answered: untouched


def test_on_a_cluster_a_node_marks_only_its_own(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade(store.engine)
        now = datetime.now(UTC)
        mine, theirs, unnamed = (store.run_sync(partial(repo.create_command, cp_id=CP, action="Reset", request={},
                                                        requested_by="t", now=now, node=node))
                                 for node in ("node-a", "node-b", None))
        assert store.run_sync(partial(repo.lose_commands, node="node-a", alone=False, now=now)) == 1
        states = {i: store.run_sync(partial(repo.get_command, command_id=i))["state"] for i in (mine, theirs, unnamed)}
        assert states == {mine: "lost", theirs: "queued", unnamed: "queued"}
        assert store.run_sync(partial(repo.lose_commands, node="node-a", alone=True, now=now)) == 2  # alone: all
    finally:
        store.close()
