"""``voltlib security scenario``: normal simulated traffic, then injected attacks; what was alerted.

voltlib runs in-process on a fresh SQLite file. Simulated charge points (sim/chargepoint.py,
profile 1) serve members charging, and a technician opens a cabinet inside a work order: that is
the *normal* phase, and every unexpected alert raised during it is a false alert. Then each attack
of the issue is injected by a raw OCPP client, and the runner waits (up to ``alert_timeout``) for
the alert kinds that should name it. Time to alert = from the first attack frame to the alert row
being committed, measured on voltlib's clock (the simulation runs at wall-clock speed).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from voltlib.config import Settings
from voltlib.security import records
from voltlib.security.credentials import hash_api_token, hash_password, new_api_token, new_charge_point_password
from voltlib.security.service import service_of
from voltlib.server import GATEWAY_KEY, build_app
from voltlib.sim.chargepoint import Car, SimOptions, SimulatedChargePoint
from voltlib.store import repo

BOOT = {"chargePointVendor": "Bollore", "chargePointModel": "Autolib Borne", "firmwareVersion": "1.0.0"}
MEMBERS = [f"MEMBER-{n:03d}" for n in range(1, 9)]
NORMAL = [f"AL-NORMAL-{n}" for n in range(1, 5)]
OPTIONS = SimOptions(vendor="Bollore", model="Autolib Borne", meter_interval=2, call_timeout=10.0,
                     connect_timeout=5.0, reconnect_min=0.5, reconnect_max=5.0, step_delay=0.3, reboot_delay=0.5,
                     tick=0.5)


@dataclass
class AttackResult:
    name: str
    expected: tuple[str, ...]
    alerted: list[str] = field(default_factory=list)
    seconds_to_alert: float | None = None

    @property
    def detected(self) -> bool:
        return self.seconds_to_alert is not None


@dataclass
class Report:
    normal_seconds: float
    normal_sessions: int
    attacks: list[AttackResult]
    false_alerts: list[str]

    def meets_target(self, within: float = 60.0) -> bool:
        return not self.false_alerts and all(a.detected and (a.seconds_to_alert or 0) <= within
                                             for a in self.attacks)

    def markdown(self) -> str:
        lines = [f"Normal traffic: {len(NORMAL)} simulated charge points, {self.normal_sessions} charging sessions "
                 f"and one cabinet opening inside a work order over {self.normal_seconds:.0f} s. "
                 f"False alerts: **{len(self.false_alerts)}**" + (f" ({', '.join(self.false_alerts)})"
                                                                  if self.false_alerts else "") + ".", "",
                 "| attack | alert kinds expected | alerts raised | time to alert |", "|---|---|---|---|"]
        for a in self.attacks:
            seconds = f"{a.seconds_to_alert:.2f} s" if a.seconds_to_alert is not None else "**not alerted**"
            lines.append(f"| {a.name} | {', '.join(a.expected)} | {', '.join(sorted(set(a.alerted))) or '-'} "
                         f"| {seconds} |")
        lines += ["", f"Target (every attack alerted within 60 s, no false alert): "
                      f"**{'met' if self.meets_target() else 'NOT met'}**"]
        return "\n".join(lines)


class RawChargePoint:
    """An OCPP client that sends exactly what it is told and accepts every call it receives."""

    def __init__(self, http: aiohttp.ClientSession, url: str, cp_id: str, password: str | None) -> None:
        self.http, self.url, self.cp_id, self.password = http, url, cp_id, password
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._waiting: dict[str, asyncio.Future[list[Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> int:
        headers = {"Authorization": aiohttp.encode_basic_auth(self.cp_id, self.password)} if self.password else {}
        try:
            self.ws = await self.http.ws_connect(f"{self.url}/{self.cp_id}", protocols=("ocpp1.6",), headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        self._reader = asyncio.create_task(self._read())
        return 101

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            frame = json.loads(msg.data)
            if frame[0] == 2:  # the central system calls us: say yes
                answer = {"status": "Accepted"} if frame[2] != "GetDiagnostics" else {"fileName": "d.zip"}
                await self.ws.send_str(json.dumps([3, frame[1], answer]))
            elif frame[1] in self._waiting:
                self._waiting.pop(frame[1]).set_result(frame)

    async def call(self, action: str, payload: dict[str, Any], message_id: str | None = None) -> list[Any]:
        assert self.ws is not None
        message_id = message_id or uuid.uuid4().hex[:12]
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        await self.ws.send_str(json.dumps([2, message_id, action, payload]))
        return await asyncio.wait_for(future, 10)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def run(normal_seconds: float = 20.0, alert_timeout: float = 60.0, seed: int = 1) -> Report:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'scenario.db'}", port=port, command_timeout=5.0,
                            duplicate_probe_timeout=1.0, security_upload_allow=["https://diag.voltlib.example/"])
        app = build_app(settings)
        gateway = app[GATEWAY_KEY]
        store, clock = gateway.services.store, gateway.services.clock
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await runner.setup()
        await web.TCPSite(runner, settings.host, port).start()
        ws_url = f"ws://{settings.host}:{port}/ocpp"
        passwords: dict[str, str] = {}

        async def register(cp_id: str, profile: int = 1) -> str:
            password = new_charge_point_password()
            await store.write(partial(repo.add_charge_point, cp_id=cp_id, registration="Accepted",
                                      security_profile=profile,
                                      password_hash=hash_password(password) if profile in (1, 2) else None,
                                      certificate_fingerprint=None, now=clock.now()))
            passwords[cp_id] = password
            return password

        for cp_id in NORMAL:
            await register(cp_id)
        for member in [*MEMBERS, "TECH-01"]:
            await store.write(partial(repo.upsert_id_tag, id_tag=member, status="Accepted", expiry_date=None,
                                      parent_id_tag=None, now=clock.now()))
        await store.write(partial(repo.add_api_token, name="scenario", role="admin",
                                  token_hash=hash_api_token(new_api_token()), now=clock.now()))
        now = clock.now()
        await store.write(partial(records.add_work_order, technician="tech-1", badge="TECH-01",
                                  charge_points=[NORMAL[3]], starts_at=now, ends_at=now + timedelta(hours=2),
                                  purpose="replace the door switch", created_by="scenario", now=now))
        http = aiohttp.ClientSession()
        sims = [SimulatedChargePoint(cp_id, ws_url, password=passwords[cp_id], options=OPTIONS, http=http)
                for cp_id in NORMAL]
        try:
            for sim in sims:
                await sim.start()
            for sim in sims:
                await sim.wait_accepted(10)
            started = time.monotonic()
            sessions = await _normal_traffic(sims, rng, normal_seconds)
            normal_elapsed = time.monotonic() - started
            await _settle(gateway)
            false_alerts = [a["kind"] + "@" + str(a["charge_point_id"])
                            for a in await store.read(partial(records.list_alerts, expected=False, limit=1000))]
            attacks = [await _attack(gateway, http, ws_url, passwords, register, name, expected, action,
                                     alert_timeout) for name, expected, action in ATTACKS]
        finally:
            for sim in sims:
                await sim.stop()
            await http.close()
            await runner.cleanup()
        return Report(normal_elapsed, sessions, attacks, false_alerts)


async def _normal_traffic(sims: list[SimulatedChargePoint], rng: random.Random, seconds: float) -> int:
    """Members badge, charge, badge again; the technician badges then opens the cabinet of the last one."""
    deadline = time.monotonic() + seconds
    sessions = 0
    tech = sims[-1]
    await tech.authorize("TECH-01")
    # the simulator has no door switch: its own call path sends the vendor error code
    await tech._call("StatusNotification", {"connectorId": 0, "errorCode": "OtherError", "status": "Faulted",
                                            "vendorErrorCode": "CABINET_DOOR_OPEN", "timestamp": _now_iso()})
    await tech._call("StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available",
                                            "timestamp": _now_iso()})
    tasks: list[asyncio.Task[None]] = []

    async def session(sim: SimulatedChargePoint, connector_id: int, member: str) -> None:
        try:
            sim.plug_in(connector_id, Car(soc=rng.uniform(10, 70)))
            if await sim.badge(connector_id, member) != "Accepted":
                sim.unplug(connector_id)
                return
            await asyncio.sleep(rng.uniform(3, 8))
            if sim.connectors[connector_id].transaction is not None:
                await sim.badge(connector_id, member)
            await asyncio.sleep(0.5)
            sim.unplug(connector_id)
        finally:
            members.append(member)

    members = list(MEMBERS)
    while time.monotonic() < deadline:
        idle = [(s, c.connector_id) for s in sims[:-1] for c in s.connectors.values()
                if c.transaction is None and c.car is None and c.status == "Available"]
        if idle and members:
            sim, connector_id = rng.choice(idle)
            member = members.pop(rng.randrange(len(members)))
            tasks.append(asyncio.create_task(session(sim, connector_id, member)))
            sessions += 1
        await asyncio.sleep(rng.uniform(0.3, 1.0))
    await asyncio.gather(*tasks, return_exceptions=True)
    return sessions


async def _settle(gateway: Any) -> None:
    bus = gateway.services.bus
    await bus.drain()
    await service_of(gateway).settle()
    await bus.drain()


Register = Callable[..., Awaitable[str]]
Attack = Callable[[aiohttp.ClientSession, str, dict[str, str], Register], Awaitable[None]]


async def _attack(gateway: Any, http: aiohttp.ClientSession, ws_url: str, passwords: dict[str, str],
                  register: Register, name: str, expected: tuple[str, ...], action: Attack,
                  timeout: float) -> AttackResult:
    store, clock = gateway.services.store, gateway.services.clock
    before = {a["id"] for a in await store.read(partial(records.list_alerts, expected=False, limit=5000))}
    t0 = clock.now()
    await action(http, ws_url, passwords, register)
    result = AttackResult(name, expected)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [a for a in await store.read(partial(records.list_alerts, expected=False, limit=5000))
               if a["id"] not in before]
        result.alerted = [a["kind"] for a in new]
        hits = [a for a in new if a["kind"] in expected]
        if hits:
            result.seconds_to_alert = max(0.0, (clock.now() - t0).total_seconds())
            break
        await asyncio.sleep(0.05)
    await _settle(gateway)
    new = [a for a in await store.read(partial(records.list_alerts, expected=False, limit=5000))
           if a["id"] not in before]
    result.alerted = [a["kind"] for a in new]
    return result


async def _booted(http: aiohttp.ClientSession, url: str, cp_id: str, password: str,
                  boot: dict[str, Any] | None = None) -> RawChargePoint:
    cp = RawChargePoint(http, url, cp_id, password)
    assert await cp.connect() == 101
    await cp.call("BootNotification", boot or BOOT)
    return cp


async def cabinet_forced(http: aiohttp.ClientSession, url: str, pw: dict[str, str], register: Register) -> None:
    password = await register("AL-SEED-1")
    cp = await _booted(http, url, "AL-SEED-1", password)
    await cp.call("StatusNotification", {"connectorId": 0, "errorCode": "OtherError", "status": "Faulted",
                                         "vendorErrorCode": "CABINET_DOOR_OPEN", "timestamp": _now_iso()})
    await asyncio.sleep(0.5)
    await cp.close()


async def laptop_requests(http: aiohttp.ClientSession, url: str, pw: dict[str, str], register: Register) -> None:
    password = await register("AL-SEED-2")
    cp = await _booted(http, url, "AL-SEED-2", password)
    await cp.call("GetConfiguration", {})
    await cp.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": "x"})
    for n in range(4):
        await cp.call("Heartbeat", {"probe": n})
    await cp.close()


async def duplicate_identity(http: aiohttp.ClientSession, url: str, pw: dict[str, str], register: Register) -> None:
    await RawChargePoint(http, url, NORMAL[0], pw[NORMAL[0]]).connect()  # stolen credentials, live original


async def brute_force(http: aiohttp.ClientSession, url: str, pw: dict[str, str], register: Register) -> None:
    for n in range(6):
        await RawChargePoint(http, url, NORMAL[1], f"guess-{n:04d}-password!").connect()


async def replayed_start(http: aiohttp.ClientSession, url: str, pw: dict[str, str], register: Register) -> None:
    password = await register("AL-REPLAY")
    cp = await _booted(http, url, "AL-REPLAY", password)
    start = {"connectorId": 1, "idTag": MEMBERS[0], "meterStart": 1000, "timestamp": _now_iso()}
    tx = (await cp.call("StartTransaction", start))[2]["transactionId"]
    await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 4000, "timestamp": _now_iso()})
    await cp.call("StartTransaction", start)  # captured frame, replayed with a new message id
    await cp.close()


async def exfiltration(http: aiohttp.ClientSession, url: str, pw: dict[str, str], register: Register) -> None:
    password = await register("AL-EXFIL")
    cp = await _booted(http, url, "AL-EXFIL", password)
    dump = base64.b64encode(random.Random(5).randbytes(12_000)).decode()
    await cp.call("DataTransfer", {"vendorId": "com.contractor.lab", "messageId": "battery", "data": dump})
    await cp.close()


async def unrequested_diagnostics(http: aiohttp.ClientSession, url: str, pw: dict[str, str],
                                  register: Register) -> None:
    password = await register("AL-DIAG")
    cp = await _booted(http, url, "AL-DIAG", password)
    await cp.call("DiagnosticsStatusNotification", {"status": "Uploading"})
    await cp.close()


async def firmware_tampering(http: aiohttp.ClientSession, url: str, pw: dict[str, str], register: Register) -> None:
    password = await register("AL-FW")
    cp = await _booted(http, url, "AL-FW", password)
    await cp.close()
    cp = await _booted(http, url, "AL-FW", password, {**BOOT, "firmwareVersion": "1.0.0-patched"})
    await cp.close()


async def profile_downgrade(http: aiohttp.ClientSession, url: str, pw: dict[str, str], register: Register) -> None:
    password = await register("AL-TLS", profile=2)
    await RawChargePoint(http, url, "AL-TLS", password).connect()  # plain ws for a profile-2 (TLS) charge point


ATTACKS: list[tuple[str, tuple[str, ...], Attack]] = [
    ("seed 1: cabinet forced open", ("cabinet_opened", "tamper_detected"), cabinet_forced),
    ("seed 2: laptop issuing requests through the charge point", ("protocol_violation", "violation_burst"),
     laptop_requests),
    ("duplicate-identity hijack", ("duplicate_identity",), duplicate_identity),
    ("credential brute force", ("brute_force_identity", "brute_force_source"), brute_force),
    ("replayed StartTransaction", ("replayed_start_transaction",), replayed_start),
    ("exfiltration through DataTransfer", ("data_transfer_unknown_vendor", "data_transfer_large"), exfiltration),
    ("unrequested diagnostics upload", ("diagnostics_unrequested",), unrequested_diagnostics),
    ("firmware tampering", ("firmware_changed_unordered", "firmware_unrequested"), firmware_tampering),
    ("security-profile downgrade", ("profile_downgrade",), profile_downgrade),
]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
