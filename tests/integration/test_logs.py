"""A real ``voltlib serve`` at DEBUG, in both log formats: charge points log in with right and wrong
passwords, the API is called with right and wrong tokens, a password is set over the API and one
rotated over OCPP, /metrics is scraped with its token; none of those secrets appears in the log. In
JSON, every line is one object with the fields a log pipeline indexes, and the lines of a
charge point's frame name it and the frame's message id."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import basic_auth, free_port
from voltlib.security.credentials import hash_api_token, hash_password
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade
from voltlib.telemetry.logs import RENTAL, JsonFormatter, TextFormatter, scrub

CP_PASSWORD = "cp-password-Secret-0001"
WRONG_PASSWORD = "wrong-password-Secret-0002"
API_TOKEN = "vlt_ApiTokenSecret0003abcdefghijklmnop"
WRONG_TOKEN = "vlt_WrongTokenSecret0004abcdefghijklm"
NEW_CP_PASSWORD = "new-cp-password-Secret-0005"
PROFILE_PASSWORD = "profile-password-Secret-0006"
METRICS_TOKEN = "metrics-token-Secret-0007"


def _prepare(url: str) -> None:
    store = Store(url)
    try:
        upgrade(store.engine)
        now = datetime.now(UTC)
        store.run_sync(partial(repo.add_charge_point, cp_id="CP-L1", registration="Accepted", security_profile=1,
                               password_hash=hash_password(CP_PASSWORD), certificate_fingerprint=None, now=now))
        store.run_sync(partial(repo.add_api_token, name="logs-test", role="admin",
                               token_hash=hash_api_token(API_TOKEN), now=now))
    finally:
        store.close()


async def _up(base: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base) as http:
        while True:
            try:
                if (await http.get("/api/v1/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert process.returncode is None, "voltlib serve exited"
            assert time.monotonic() < deadline, "voltlib serve did not come up"
            await asyncio.sleep(0.2)


async def _drive(port: int) -> str:
    """Everything that handles a secret; returns the AuthorizationKey the rotation sent."""
    base, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ocpp"
    api = {"Authorization": f"Bearer {API_TOKEN}"}
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(f"{ws_url}/CP-L1", subprotocols=["ocpp1.6"],
                                      additional_headers=basic_auth("CP-L1", WRONG_PASSWORD)):
            pass
    async with websockets.connect(f"{ws_url}/CP-L1", subprotocols=["ocpp1.6"],
                                  additional_headers=basic_auth("CP-L1", CP_PASSWORD)) as ws:
        await ws.send(json.dumps([2, "boot-1", "BootNotification", {"chargePointVendor": "V",
                                                                    "chargePointModel": "M"}]))
        assert json.loads(await ws.recv())[2]["status"] == "Accepted"
        await ws.send(json.dumps([2, "bad-frame-1", "StatusNotification", {"connectorId": 1}]))
        assert json.loads(await ws.recv())[0] == 4  # a protocol violation: logged with its message id

        async def answer_rotation() -> str:
            call = json.loads(await ws.recv())
            assert call[2] == "ChangeConfiguration" and call[3]["key"] == "AuthorizationKey"
            await ws.send(json.dumps([3, call[1], {"status": "Accepted"}]))
            return str(call[3]["value"])

        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            key_task = asyncio.create_task(answer_rotation())
            rotated = await http.post("/api/v1/charge-points/CP-L1/rotate-password", headers=api)
            key = await key_task
            assert rotated.status_code == 200 and rotated.json()["rotated"] is True
            assert (await http.get("/api/v1/charge-points", headers={"Authorization": f"Bearer {WRONG_TOKEN}"})
                    ).status_code == 401
            added = await http.post("/api/v1/charge-points", headers=api,
                                    json={"id": "CP-L2", "security_profile": 1, "password": NEW_CP_PASSWORD})
            assert added.status_code == 201
            changed = await http.post("/api/v1/charge-points/CP-L2/security-profile", headers=api,
                                      json={"security_profile": 2, "password": PROFILE_PASSWORD})
            assert changed.status_code == 200
            assert (await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
                    ).status_code == 200
            assert (await http.get("/metrics", headers={"Authorization": f"Bearer {WRONG_TOKEN}"})
                    ).status_code == 401
    with pytest.raises(websockets.InvalidStatus):  # the old password is refused now
        async with websockets.connect(f"{ws_url}/CP-L1", subprotocols=["ocpp1.6"],
                                      additional_headers=basic_auth("CP-L1", CP_PASSWORD)):
            pass
    async with websockets.connect(f"{ws_url}/CP-L1", subprotocols=["ocpp1.6"],
                                  additional_headers=basic_auth("CP-L1", key)):
        pass
    return key


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_no_secret_in_the_log_of_a_real_server(tmp_path: Path, log_format: str) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    await asyncio.to_thread(_prepare, url)
    port = free_port()
    log_file = tmp_path / "serve.log"
    env = {**os.environ, "VOLTLIB_METRICS_TOKEN": METRICS_TOKEN, "VOLTLIB_NODE_NAME": "node-logs"}
    with log_file.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voltlib", "serve", "--port", str(port), "--database-url", url,
            "--log-level", "DEBUG", "--log-format", log_format, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            await _up(f"http://127.0.0.1:{port}", process)
            key = await _drive(port)
        finally:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), 30)
    text = log_file.read_text()
    assert "refused CP-L1" in text  # the wrong password was logged, as a refusal
    for secret in (CP_PASSWORD, WRONG_PASSWORD, API_TOKEN, WRONG_TOKEN, NEW_CP_PASSWORD, PROFILE_PASSWORD,
                   METRICS_TOKEN, key):
        assert secret not in text, f"a secret reached the log: {secret[:6]}..."
    if log_format == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
        assert all(line["node"] == "node-logs" for line in lines)
        violation = [line for line in lines if line["message"].startswith("protocol violation from CP-L1")]
        assert violation and violation[0]["charge_point_id"] == "CP-L1"
        assert violation[0]["message_id"] == "bad-frame-1"
        refused = [line for line in lines if line["message"].startswith("refused CP-L1")]
        assert refused and refused[0]["charge_point_id"] == "CP-L1" and refused[0]["level"] == "WARNING"
        assert datetime.fromisoformat(lines[0]["time"]).tzinfo is not None


def test_formats_scrub_what_looks_like_a_credential() -> None:
    record = logging.LogRecord("voltlib.x", logging.WARNING, __file__, 1,
                               'sent %s with Authorization: Basic %s and token=%s',
                               ('{"key": "AuthorizationKey", "value": "00ff00ff"}', "Q1AtMTpzZWNyZXQ=", "abc123"),
                               None)
    for formatter in (TextFormatter(), JsonFormatter("n1")):
        line = formatter.format(record)
        assert "00ff00ff" not in line and "Q1AtMTpzZWNyZXQ=" not in line and "abc123" not in line
    assert scrub('{"password": "hunter22-hunter22"} vlt_abcdefghijk') == '{"password": "<redacted>"} <redacted>'
    token = RENTAL.set("R-42")
    try:
        assert json.loads(JsonFormatter("n1").format(record))["rental_id"] == "R-42"
    finally:
        RENTAL.reset(token)
