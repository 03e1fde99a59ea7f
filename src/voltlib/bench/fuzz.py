"""`voltlib bench fuzz`: hostile frames over real WebSockets to a voltlib server on loopback.

Starts ``voltlib serve`` on a fresh SQLite file (or ``--database-url``), sends ``frames`` generated
hostile frames from a few charge points at once (mutated calls of every 1.6 action, or with
``--ocpp 2.0.1`` of every 2.0.1 action a station sends, wrong types,
deep nesting, huge numbers, unicode, duplicate keys, cut frames, answers to nothing, oversize
frames), reconnecting whenever the server hangs up, and stops by itself. Every ``SYNC_EVERY``
frames a Heartbeat must come back: if it does not within ``SYNC_TIMEOUT_S``, that is a hang.
At the end a well-behaved charge point must still boot and be served, and the server's log must
hold no traceback. Deterministic for a given ``seed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from voltlib.bench.compare import free_port, stop_process_group, wait_port
from voltlib.bench.gateway import _register
from voltlib.store.db import Store
from voltlib.store.tables import ocpp_messages, transaction_events, transactions

SYNC_EVERY = 25
SYNC_TIMEOUT_S = 10.0
TS = "2026-12-06T17:00:00Z"
SAMPLE = {"value": "1.5", "measurand": "Voltage", "unit": "V", "context": "Sample.Periodic"}
EXAMPLES: dict[str, dict[str, Any]] = {
    "Authorize": {"idTag": "BADGE1"},
    "BootNotification": {"chargePointVendor": "Acme", "chargePointModel": "AC22"},
    "DataTransfer": {"vendorId": "com.example", "data": "x"},
    "DiagnosticsStatusNotification": {"status": "Uploaded"},
    "FirmwareStatusNotification": {"status": "Installed"},
    "Heartbeat": {},
    "MeterValues": {"connectorId": 1, "meterValue": [{"timestamp": TS, "sampledValue": [SAMPLE]}]},
    "StartTransaction": {"connectorId": 1, "idTag": "BADGE1", "meterStart": 100, "timestamp": TS},
    "StatusNotification": {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    "StopTransaction": {"meterStop": 200, "timestamp": TS, "transactionId": 7},
    "SecurityEventNotification": {"type": "TamperDetectionActivated", "timestamp": TS},
    "LogStatusNotification": {"status": "Uploaded", "requestId": 4},
    "SignedFirmwareStatusNotification": {"status": "SignatureVerified", "requestId": 5},
    "SignCertificate": {"csr": "-----BEGIN CERTIFICATE REQUEST-----"},
    "Reset": {"type": "Hard"}, "MakeCoffee": {},
}
SAMPLE_V201 = {"value": 1.5, "measurand": "Voltage", "unitOfMeasure": {"unit": "V"}, "context": "Sample.Periodic"}
TX_INFO = {"transactionId": "fz-1"}
EXAMPLES_V201: dict[str, dict[str, Any]] = {
    "Authorize": {"idToken": {"idToken": "BADGE1", "type": "ISO14443"}},
    "BootNotification": {"chargingStation": {"model": "AC22", "vendorName": "Acme"}, "reason": "PowerUp"},
    "DataTransfer": {"vendorId": "com.example", "data": {"x": [1]}},
    "FirmwareStatusNotification": {"status": "Installed", "requestId": 3},
    "Heartbeat": {},
    "MeterValues": {"evseId": 1, "meterValue": [{"timestamp": TS, "sampledValue": [SAMPLE_V201]}]},
    "NotifyReport": {"requestId": 1, "generatedAt": TS, "seqNo": 0, "reportData": [
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "SecurityProfile"},
         "variableAttribute": [{"value": "1"}]}]},
    "ReservationStatusUpdate": {"reservationId": 4, "reservationUpdateStatus": "Expired"},
    "SecurityEventNotification": {"type": "TamperDetectionActivated", "timestamp": TS},
    "StatusNotification": {"timestamp": TS, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
    "LogStatusNotification": {"status": "Uploading", "requestId": 4},
    "NotifyEvent": {"generatedAt": TS, "seqNo": 0, "eventData": [{
        "eventId": 1, "timestamp": TS, "trigger": "Delta", "actualValue": "true",
        "eventNotificationType": "HardWiredNotification", "component": {"name": "AccessBarrier"},
        "variable": {"name": "Active"}}]},
    "NotifyMonitoringReport": {"requestId": 2, "seqNo": 0, "generatedAt": TS, "monitor": [{
        "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"},
        "variableMonitoring": [{"id": 3, "transaction": False, "value": 22000, "type": "UpperThreshold",
                                "severity": 4}]}]},
    "NotifyCustomerInformation": {"data": "badge", "seqNo": 0, "generatedAt": TS, "requestId": 5},
    "NotifyDisplayMessages": {"requestId": 6, "messageInfo": [{
        "id": 7, "priority": "InFront", "message": {"format": "UTF8", "content": "Réservé"}}]},
    "TransactionEvent": {"eventType": "Started", "timestamp": TS, "triggerReason": "Authorized", "seqNo": 0,
                         "transactionInfo": TX_INFO, "evse": {"id": 1, "connectorId": 1},
                         "idToken": {"idToken": "BADGE1", "type": "ISO14443"},
                         "meterValue": [{"timestamp": TS, "sampledValue": [SAMPLE_V201]}]},
    "Reset": {"type": "Immediate"}, "MakeCoffee": {},
}
BY_VERSION = {"1.6": EXAMPLES, "2.0.1": EXAMPLES_V201}
ODD_VALUES: list[Any] = [None, True, -1, 0.5, 2**31, 2**63, 10**40, -(10**40), 1e308, "", "x" * 600, "\u0000",
                         "é✓🚗\u202e", "2026-13-45T99:00:00Z", "0001-01-01T00:00:00+14:00", [], {}, [{}], {"a": [1]}]


def _nested(rng: random.Random, depth: int) -> str:
    return ("[" * depth + "1" + "]" * depth) if rng.random() < 0.5 else ('{"a":' * depth + "1" + "}" * depth)


def _payload(rng: random.Random, action: str, examples: dict[str, dict[str, Any]]) -> str:
    payload = dict(examples[action])
    keys = sorted(payload) or ["x"]
    how = rng.choice(["replace", "drop", "add", "deep", "duplicate", "keep"])
    if how == "replace":
        payload[rng.choice(keys)] = rng.choice(ODD_VALUES)
    elif how == "drop":
        payload.pop(rng.choice(keys), None)
    elif how == "add":
        payload["".join(rng.choice("abcé✓") for _ in range(rng.randint(0, 8)))] = rng.choice(ODD_VALUES)
    text = json.dumps(payload)
    if how == "deep":
        return "{" + json.dumps(rng.choice(keys)) + ":" + _nested(rng, rng.choice([40, 300, 3000, 12000])) + "}"
    if how == "duplicate":
        return "{" + json.dumps(rng.choice(keys)) + ":" + json.dumps(rng.choice(ODD_VALUES)) + "," + text[1:] \
            if len(text) > 2 else text
    return text


def frames(count: int, seed: int, version: str = "1.6") -> Iterator[str]:
    """``count`` hostile frames of ``version``'s actions, the same for the same seed."""
    rng = random.Random(seed)
    examples = BY_VERSION[version]
    for n in range(count):
        message_id = rng.choice([f"f{n}", "", "x" * 37, "same", "é✓"])
        call = f"[2,{json.dumps(message_id)},{json.dumps(action := rng.choice(sorted(examples)))}," \
               f"{_payload(rng, action, examples)}]"
        kind = rng.random()
        if kind < 0.6:
            yield call
        elif kind < 0.7:
            yield call[: rng.randint(0, len(call) - 1)]
        elif kind < 0.8:
            yield json.dumps([rng.choice(ODD_VALUES) for _ in range(rng.randint(0, 6))])
        elif kind < 0.87:
            yield rng.choice([f'[3,"{message_id}",', f'[4,"{message_id}","GenericError","x",']) \
                + _nested(rng, rng.choice([1, 50, 5000])) + "]"
        elif kind < 0.97:
            yield _nested(rng, rng.choice([33, 1000, 20000]))
        else:
            yield "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(0, 300)))


@dataclass
class FuzzResult:
    frames: int = 0
    unsent: int = 0  # found the socket closed by the server
    replies: Counter[str] = field(default_factory=Counter)  # CallResult, or the CallError code
    closes: Counter[str] = field(default_factory=Counter)  # close codes of the server
    server_calls: Counter[str] = field(default_factory=Counter)
    hangs: int = 0
    tracebacks: int = 0
    served_after: bool = False
    rows_from_refused: int = 0  # transactions stored beyond the StartTransactions voltlib accepted
    seconds: float = 0.0
    log_path: str = ""


async def _connect(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    """A new connection (in the version the URL's fragment names); retried while the server still
    holds the one it just closed (409)."""
    url, _, version = url.partition("#")
    for _ in range(50):
        try:
            return await session.ws_connect(url, protocols=(f"ocpp{version or '1.6'}",), max_msg_size=0,
                                            autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status != 409:
                raise
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url}: still refused as a duplicate after 5 s")


async def _synced(ws: aiohttp.ClientWebSocketResponse, sync_id: str, result: FuzzResult) -> bool:
    """Read until our Heartbeat's answer; False when the socket closed first."""
    await ws.send_str(f'[2,"{sync_id}","Heartbeat",{{}}]')
    while True:
        msg = await asyncio.wait_for(ws.receive(), SYNC_TIMEOUT_S)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            result.closes[str(ws.close_code)] += 1
            return False
        reply = json.loads(msg.data)
        if reply[1] == sync_id:
            return True
        if reply[0] == 2:  # a call of the server's (a security response, say): left unanswered
            result.server_calls[reply[2]] += 1
        else:
            result.replies["CallResult" if reply[0] == 3 else str(reply[2])] += 1


async def _fuzz_one(url: str, texts: list[str], result: FuzzResult) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await _connect(session, url)
        for n, text in enumerate(texts):
            try:
                await ws.send_str(text)
            except (ConnectionError, aiohttp.ClientError):  # the server closed it on an earlier frame
                result.unsent += 1
                ws = await _reopen(session, url, ws, result)
                continue
            result.frames += 1
            if n % SYNC_EVERY != SYNC_EVERY - 1:
                continue
            try:
                if not await _synced(ws, f"sync-{n}", result):
                    ws = await _connect(session, url)
            except TimeoutError:
                result.hangs += 1
                await ws.close()
                ws = await _connect(session, url)
            except (ConnectionError, aiohttp.ClientError):
                ws = await _reopen(session, url, ws, result)
        await ws.close()


async def _reopen(session: aiohttp.ClientSession, url: str, ws: aiohttp.ClientWebSocketResponse,
                  result: FuzzResult) -> aiohttp.ClientWebSocketResponse:
    """Read why the server closed the connection, and open another."""
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        while (await asyncio.wait_for(ws.receive(), 1.0)).type not in _CLOSED:
            pass
    result.closes[str(ws.close_code)] += 1
    return await _connect(session, url)


_CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def _well_behaved(url: str, version: str) -> bool:
    examples = BY_VERSION[version]
    async with aiohttp.ClientSession() as session, await _connect(session, f"{url}#{version}") as ws:
        for n, (action, payload) in enumerate([("BootNotification", examples["BootNotification"]),
                                               ("Heartbeat", {}), ("Authorize", examples["Authorize"])]):
            await ws.send_str(json.dumps([2, f"ok{n}", action, payload]))
            reply = json.loads((await asyncio.wait_for(ws.receive(), SYNC_TIMEOUT_S)).data)
            if reply[:2] != [3, f"ok{n}"]:
                return False
    return True


async def run(count: int, *, connections: int = 4, seed: int = 1, database_url: str | None = None,
              ocpp: str = "1.6") -> FuzzResult:
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="voltlib-fuzz-"))
    url = database_url or f"sqlite:///{folder / 'fuzz.db'}"
    result = FuzzResult(log_path=str(folder / "server.log"))
    cp_ids = [f"FUZZ-{i}" for i in range(connections)] + ["FUZZ-GOOD"]
    env = {**os.environ, "VOLTLIB_DATABASE_URL": url, "VOLTLIB_LOG_LEVEL": "WARNING",  # errors still logged
           "VOLTLIB_RATE_PER_SECOND": "1000000", "VOLTLIB_RATE_BURST": "1000000"}  # the fuzzer is not paced
    with open(result.log_path, "wb") as log:  # noqa: ASYNC230  # before anything runs: nothing to block
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voltlib", "serve", "--port", str(port), stdin=asyncio.subprocess.DEVNULL,
            stdout=log, stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
        try:
            await wait_port("127.0.0.1", port, 60.0, proc)
            await asyncio.to_thread(_register, url, cp_ids, None)
            texts = list(frames(count, seed, ocpp))
            started = time.monotonic()
            base = f"ws://127.0.0.1:{port}/ocpp"
            await asyncio.gather(*(_fuzz_one(f"{base}/{cp_ids[i]}#{ocpp}", texts[i::connections], result)
                                   for i in range(connections)))
            result.seconds = time.monotonic() - started
            result.served_after = await _well_behaved(f"{base}/FUZZ-GOOD", ocpp)
        finally:
            await stop_process_group(proc)
    result.rows_from_refused = await asyncio.to_thread(_rows_from_refused, url)
    text = await asyncio.to_thread(Path(result.log_path).read_text, encoding="utf-8", errors="replace")
    result.tracebacks = text.count("Traceback")
    return result


def _rows_from_refused(url: str) -> int:
    """Transactions stored beyond the StartTransaction calls the raw log shows answered with a
    CallResult, and 2.0.1 transactions without any stored (accepted) TransactionEvent: a row
    written from a refused (invalid) frame would show here."""
    def count(conn: Any) -> int:
        v16 = int(conn.execute(select(func.count()).select_from(transactions)
                               .where(transactions.c.station_tx_id.is_(None))).scalar_one())
        accepted = int(conn.execute(select(func.count()).select_from(ocpp_messages).where(
            ocpp_messages.c.action == "StartTransaction", ocpp_messages.c.outcome == "result")).scalar_one())
        orphans = int(conn.execute(select(func.count()).select_from(transactions).where(
            transactions.c.station_tx_id.is_not(None),
            ~select(transaction_events.c.id).where(transaction_events.c.transaction_id == transactions.c.id)
            .exists())).scalar_one())
        return max(0, v16 - accepted) + orphans

    store = Store(url)
    try:
        return store.run_sync(count)
    finally:
        store.close()


def render(result: FuzzResult) -> str:
    codes = ", ".join(f"{code} {n:,}" for code, n in result.replies.most_common()) or "none"
    closes = ", ".join(f"{code} ×{n:,}" for code, n in result.closes.most_common()) or "none"
    calls = ", ".join(f"{action} {n:,}" for action, n in result.server_calls.most_common()) or "none"
    rate = result.frames / result.seconds if result.seconds else 0.0
    return "\n".join([
        f"frames sent           {result.frames:,} in {result.seconds:.1f} s ({rate:,.0f}/s); "
        f"{result.unsent:,} found the socket closed",
        f"answers               {codes}",
        f"closed by the server  {closes}  (1006: no close frame reached us)",
        f"calls of the server   {calls}",
        f"hangs                 {result.hangs}",
        f"tracebacks in the log {result.tracebacks}  ({result.log_path})",
        f"well-behaved served   {'yes' if result.served_after else 'NO'}",
        f"rows from refused     {max(0, result.rows_from_refused)}  (transactions beyond accepted StartTransactions)",
    ])


def passed(result: FuzzResult) -> bool:
    return result.hangs == 0 and result.tracebacks == 0 and result.served_after and result.rows_from_refused <= 0
