"""``voltlib security scenario``: normal simulated traffic, then injected attacks; what was alerted.

voltlib runs in-process on a fresh SQLite file, on simulated time (a :class:`ScaledClock` running
``speed`` times faster than the wall clock; voltlib, the simulated charge points and the runner share
it). Simulated charge points (sim/chargepoint.py, profile 1) serve members charging for simulated
minutes, and a technician opens a cabinet inside a work order: that is the *normal* phase, and
every unexpected alert raised during it is a false alert. Then each attack of the issue is injected
by a raw OCPP client, speaking 1.6 or, with ``ocpp="2.0.1"``, 2.0.1 (the same attacks in 2.0.1
terms: docs/security.md, "Detectors and OCPP versions"), and the runner waits (up to
``alert_timeout`` wall seconds) for the alert kinds that should name it.

Time to alert = from just before the first attack frame to the alert row being committed. Attack
traffic and voltlib's processing run at the machine's real speed whatever the clock says, so the
time that stands for a real deployment is the wall time; the same interval on voltlib's clock (wall
x speed) is reported beside it. At speed 1 the two are one.
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

from voltlib.clock import Clock, ScaledClock
from voltlib.config import Settings
from voltlib.security import records
from voltlib.security.credentials import hash_api_token, hash_password, new_api_token, new_charge_point_password
from voltlib.security.service import service_of
from voltlib.server import GATEWAY_KEY, build_app
from voltlib.sim.chargepoint import Car, SimOptions, SimulatedChargePoint
from voltlib.store import repo

BOOT = {"chargePointVendor": "Bollore", "chargePointModel": "Autolib Borne", "firmwareVersion": "1.0.0"}
STATION_201 = {"vendorName": "Bollore", "model": "Autolib Borne"}
VERSIONS = ("1.6", "2.0.1")
MEMBERS = [f"MEMBER-{n:03d}" for n in range(1, 9)]
NORMAL = [f"AL-NORMAL-{n}" for n in range(1, 5)]
# simulated seconds, except call_timeout and connect_timeout (wall: transport)
OPTIONS = SimOptions(vendor="Bollore", model="Autolib Borne", meter_interval=60, call_timeout=10.0,
                     connect_timeout=5.0, reconnect_min=10.0, reconnect_max=120.0, step_delay=5.0, reboot_delay=10.0,
                     tick=10.0)
# the attack phase's charge points, registered before any attack is timed (password hashing is slow)
ATTACKERS = {"AL-SEED-1": 1, "AL-SEED-2": 1, "AL-REPLAY": 1, "AL-EXFIL": 1, "AL-DIAG": 1, "AL-FW": 1, "AL-TLS": 2}
DEFAULT_SPEED = 60.0
POLL = 0.02  # wall seconds between two looks for the expected alert


@dataclass
class AttackResult:
    name: str
    expected: tuple[str, ...]
    alerted: list[str] = field(default_factory=list)
    seconds_to_alert: float | None = None  # wall seconds: what a real deployment would take
    simulated_seconds_to_alert: float | None = None  # the same interval on voltlib's clock

    @property
    def detected(self) -> bool:
        return self.seconds_to_alert is not None


@dataclass
class Report:
    normal_seconds: float  # simulated
    normal_sessions: int
    attacks: list[AttackResult]
    false_alerts: list[str]
    still_online: int = len(NORMAL)  # normal charge points connected after all the attacks
    speed: float = 1.0
    ocpp: str = "1.6"  # the version the attacking posts spoke

    def meets_target(self, within: float = 60.0) -> bool:
        in_time = all(a.detected and (a.seconds_to_alert or 0) <= within for a in self.attacks)
        return in_time and not self.false_alerts and self.still_online == len(NORMAL)

    def markdown(self) -> str:
        lines = [f"Normal traffic: {len(NORMAL)} simulated charge points, {self.normal_sessions} charging sessions "
                 f"and one cabinet opening inside a work order over {self.normal_seconds / 60:.0f} simulated "
                 f"minutes (speed x{self.speed:g}); attacks over OCPP {self.ocpp}. "
                 f"False alerts: **{len(self.false_alerts)}**" + (f" ({', '.join(self.false_alerts)})"
                                                                  if self.false_alerts else "") + ".", "",
                 "| attack | alert kinds expected | alerts raised | time to alert | on voltlib's clock |",
                 "|---|---|---|---|---|"]
        for a in self.attacks:
            seconds = f"{a.seconds_to_alert:.2f} s" if a.seconds_to_alert is not None else "**not alerted**"
            simulated = f"{a.simulated_seconds_to_alert:.1f} s" if a.simulated_seconds_to_alert is not None else "-"
            lines.append(f"| {a.name} | {', '.join(a.expected)} | {', '.join(sorted(set(a.alerted))) or '-'} "
                         f"| {seconds} | {simulated} |")
        lines += ["", f"Normal charge points still online after the attacks: {self.still_online}/{len(NORMAL)}."]
        lines += ["", f"Target (every attack alerted within 60 s, no false alert, normal charge points unharmed): "
                      f"**{'met' if self.meets_target() else 'NOT met'}**"]
        return "\n".join(lines)


class RawChargePoint:
    """An OCPP client that sends exactly what it is told and accepts every call it receives."""

    def __init__(self, http: aiohttp.ClientSession, url: str, cp_id: str, password: str | None,
                 ocpp: str = "1.6") -> None:
        self.http, self.url, self.cp_id, self.password, self.ocpp = http, url, cp_id, password, ocpp
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._waiting: dict[str, asyncio.Future[list[Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> int:
        headers = {"Authorization": aiohttp.encode_basic_auth(self.cp_id, self.password)} if self.password else {}
        try:
            self.ws = await self.http.ws_connect(f"{self.url}/{self.cp_id}", protocols=(f"ocpp{self.ocpp}",),
                                               headers=headers)
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


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Kit:
    """What an attack script is given: the attacker's HTTP session, the OCPP endpoint, the
    charge-point passwords (stolen or not), the simulation's clock for its timestamps, and the OCPP
    version the attacking posts speak."""

    http: aiohttp.ClientSession
    url: str
    passwords: dict[str, str]
    clock: Clock
    ocpp: str = "1.6"

    def stamp(self) -> str:
        return _iso(self.clock.now())

    def post(self, cp_id: str, password: str | None = None) -> RawChargePoint:
        """A raw charge point of this kit's version, with the identity's password unless told another."""
        return RawChargePoint(self.http, self.url, cp_id, password or self.passwords[cp_id], self.ocpp)

    @property
    def v201(self) -> bool:
        return self.ocpp == "2.0.1"


async def run(normal_seconds: float = 1800.0, alert_timeout: float = 60.0, seed: int = 1,
              speed: float = DEFAULT_SPEED, ocpp: str = "1.6") -> Report:
    """``normal_seconds``: simulated seconds of normal traffic; ``alert_timeout``: wall seconds to wait
    for each attack's alert; ``speed``: simulated seconds per wall second; ``ocpp``: the version the
    attacking posts speak (the normal traffic is the simulator's)."""
    if ocpp not in VERSIONS:
        raise ValueError(f"ocpp must be one of {', '.join(VERSIONS)}")
    rng = random.Random(seed)
    clock = ScaledClock.starting_now(speed)
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'scenario.db'}", port=port, command_timeout=5.0,
                            duplicate_probe_timeout=1.0, security_upload_allow=["https://diag.voltlib.example/"])
        app = build_app(settings, clock=clock)
        gateway = app[GATEWAY_KEY]
        store = gateway.services.store
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
        for cp_id, profile in ATTACKERS.items():
            await register(cp_id, profile)
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
        sims = [SimulatedChargePoint(cp_id, ws_url, password=passwords[cp_id], options=OPTIONS, http=http, clock=clock)
                for cp_id in NORMAL]
        kit = Kit(http, ws_url, passwords, clock, ocpp)
        try:
            for sim in sims:
                await sim.start()
            for sim in sims:
                await sim.wait_accepted(10)
            started = clock.monotonic()
            sessions = await _normal_traffic(sims, rng, normal_seconds, clock)
            normal_elapsed = clock.monotonic() - started
            await _settle(gateway)
            false_alerts = [a["kind"] + "@" + str(a["charge_point_id"])
                            for a in await store.read(partial(records.list_alerts, expected=False, limit=1000))]
            attacks = [await _attack(gateway, kit, name, expected, action, alert_timeout)
                       for name, expected, action in ATTACKS]
            still_online = sum(cp_id in gateway.connections for cp_id in NORMAL)
        finally:
            for sim in sims:
                await sim.stop()
            await http.close()
            await runner.cleanup()
        return Report(normal_elapsed, sessions, attacks, false_alerts, still_online, speed, ocpp)


async def _normal_traffic(sims: list[SimulatedChargePoint], rng: random.Random, seconds: float,
                          clock: Clock) -> int:
    """Members badge, charge for simulated minutes, badge again; the technician badges then opens the
    cabinet of the last one. Every wait is on the simulation's clock."""
    deadline = clock.monotonic() + seconds
    sessions = 0
    tech = sims[-1]
    await tech.authorize("TECH-01")
    # the simulator has no door switch: its own call path sends the vendor error code
    await tech._call("StatusNotification", {"connectorId": 0, "errorCode": "OtherError", "status": "Faulted",
                                            "vendorErrorCode": "CABINET_DOOR_OPEN", "timestamp": _iso(clock.now())})
    await tech._call("StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available",
                                            "timestamp": _iso(clock.now())})
    tasks: list[asyncio.Task[None]] = []

    async def session(sim: SimulatedChargePoint, connector_id: int, member: str) -> None:
        try:
            sim.plug_in(connector_id, Car(soc=rng.uniform(10, 70)))
            if await sim.badge(connector_id, member) != "Accepted":
                sim.unplug(connector_id)
                return
            await clock.sleep(rng.uniform(300, 1500))  # 5 to 25 minutes of charging
            if sim.connectors[connector_id].transaction is not None:
                await sim.badge(connector_id, member)
            await clock.sleep(30)
            sim.unplug(connector_id)
        finally:
            members.append(member)

    members = list(MEMBERS)
    while clock.monotonic() < deadline:
        idle = [(s, c.connector_id) for s in sims[:-1] for c in s.connectors.values()
                if c.transaction is None and c.car is None and c.status == "Available"]
        if idle and members:
            sim, connector_id = rng.choice(idle)
            member = members.pop(rng.randrange(len(members)))
            tasks.append(asyncio.create_task(session(sim, connector_id, member)))
            sessions += 1
        await clock.sleep(rng.uniform(20, 90))
    await asyncio.gather(*tasks, return_exceptions=True)
    return sessions


async def _settle(gateway: Any) -> None:
    bus = gateway.services.bus
    await bus.drain()
    await service_of(gateway).settle()
    await bus.drain()


Attack = Callable[[Kit], Awaitable[None]]


async def _attack(gateway: Any, kit: Kit, name: str, expected: tuple[str, ...], action: Attack,
                  timeout: float) -> AttackResult:
    """Run one attack while a watcher looks for its alert, so the time to alert does not include
    whatever the attack script does after the frame that gave it away."""
    store, clock = gateway.services.store, gateway.services.clock
    before = {a["id"] for a in await store.read(partial(records.list_alerts, expected=False, limit=5000))}
    result = AttackResult(name, expected)
    t0, wall0 = clock.now(), time.monotonic()  # wall time measures, it never drives the simulation

    async def watch() -> None:
        while True:
            new = await store.read(partial(records.list_alerts, expected=False, limit=5000))
            if any(a["kind"] in expected for a in new if a["id"] not in before):
                result.seconds_to_alert = time.monotonic() - wall0
                result.simulated_seconds_to_alert = max(0.0, (clock.now() - t0).total_seconds())
                return
            await asyncio.sleep(POLL)

    watcher = asyncio.create_task(watch())
    try:
        await action(kit)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(watcher), timeout)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    await _settle(gateway)
    new = [a for a in await store.read(partial(records.list_alerts, expected=False, limit=5000))
           if a["id"] not in before]
    result.alerted = [a["kind"] for a in new]
    return result


async def _booted(kit: Kit, cp_id: str, firmware: str = "1.0.0") -> RawChargePoint:
    cp = kit.post(cp_id)
    assert await cp.connect() == 101
    if kit.v201:
        await cp.call("BootNotification", {"chargingStation": {**STATION_201, "firmwareVersion": firmware},
                                           "reason": "PowerUp"})
    else:
        await cp.call("BootNotification", {**BOOT, "firmwareVersion": firmware})
    return cp


async def cabinet_forced(kit: Kit) -> None:
    cp = await _booted(kit, "AL-SEED-1")
    if kit.v201:  # a 2.0.1 station reports its tamper switch itself (its status carries no vendor code)
        await cp.call("SecurityEventNotification", {"type": "TamperDetectionActivated", "timestamp": kit.stamp(),
                                                    "techInfo": "cabinet door"})
    else:
        await cp.call("StatusNotification", {"connectorId": 0, "errorCode": "OtherError", "status": "Faulted",
                                             "vendorErrorCode": "CABINET_DOOR_OPEN", "timestamp": kit.stamp()})
    await kit.clock.sleep(30)  # the intruder works on the open cabinet for a while
    await cp.close()


async def laptop_requests(kit: Kit) -> None:
    """Calls a charge point never makes (1.6's GetConfiguration is no 2.0.1 action either) and malformed ones."""
    cp = await _booted(kit, "AL-SEED-2")
    await cp.call("GetConfiguration", {})
    await cp.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": "x"})
    for n in range(4):
        await cp.call("Heartbeat", {"probe": n})
    await cp.close()


async def duplicate_identity(kit: Kit) -> None:
    await kit.post(NORMAL[0]).connect()  # stolen, original live


async def brute_force(kit: Kit) -> None:
    for n in range(6):
        await kit.post(NORMAL[1], f"guess-{n:04d}-password!").connect()


async def replayed_start(kit: Kit) -> None:
    cp = await _booted(kit, "AL-REPLAY")
    if kit.v201:
        at, tx = kit.stamp(), f"tx-{uuid.uuid4().hex[:12]}"
        start = {"eventType": "Started", "timestamp": at, "triggerReason": "Authorized", "seqNo": 0,
                 "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
                 "evse": {"id": 1, "connectorId": 1}, "idToken": {"idToken": MEMBERS[0], "type": "ISO14443"},
                 "meterValue": [{"timestamp": at, "sampledValue": [
                     {"value": 1000, "context": "Transaction.Begin", "measurand": "Energy.Active.Import.Register"}]}]}
        await cp.call("TransactionEvent", start)
        await cp.call("TransactionEvent", {"eventType": "Ended", "timestamp": kit.stamp(), "seqNo": 1,
                                           "triggerReason": "StopAuthorized",
                                           "transactionInfo": {"transactionId": tx, "stoppedReason": "Local"}})
        await cp.call("TransactionEvent", start)  # captured frame, replayed with a new message id
        await cp.close()
        return
    start = {"connectorId": 1, "idTag": MEMBERS[0], "meterStart": 1000, "timestamp": kit.stamp()}
    tx = (await cp.call("StartTransaction", start))[2]["transactionId"]
    await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 4000, "timestamp": kit.stamp()})
    await cp.call("StartTransaction", start)  # captured frame, replayed with a new message id
    await cp.close()


async def exfiltration(kit: Kit) -> None:
    cp = await _booted(kit, "AL-EXFIL")
    dump = base64.b64encode(random.Random(5).randbytes(12_000)).decode()
    await cp.call("DataTransfer", {"vendorId": "com.contractor.lab", "messageId": "battery", "data": dump})
    await cp.close()


async def unrequested_diagnostics(kit: Kit) -> None:
    cp = await _booted(kit, "AL-DIAG")
    if kit.v201:  # 2.0.1's diagnostics are its logs
        await cp.call("LogStatusNotification", {"status": "Uploading", "requestId": 666})
    else:
        await cp.call("DiagnosticsStatusNotification", {"status": "Uploading"})
    await cp.close()


async def firmware_tampering(kit: Kit) -> None:
    cp = await _booted(kit, "AL-FW")
    await cp.close()
    cp = await _booted(kit, "AL-FW", "1.0.0-patched")
    await cp.close()


async def profile_downgrade(kit: Kit) -> None:
    await kit.post("AL-TLS").connect()  # plain ws, profile 2


ATTACKS: list[tuple[str, tuple[str, ...], Attack]] = [
    ("seed 1: cabinet forced open", ("cabinet_opened", "tamper_detected"), cabinet_forced),
    ("seed 2: laptop issuing requests through the charge point", ("protocol_violation", "violation_burst"),
     laptop_requests),
    ("duplicate-identity hijack", ("duplicate_identity",), duplicate_identity),
    ("credential brute force", ("brute_force_identity", "brute_force_source"), brute_force),
    ("replayed StartTransaction (2.0.1: TransactionEvent Started)", ("replayed_start_transaction",), replayed_start),
    ("exfiltration through DataTransfer", ("data_transfer_unknown_vendor", "data_transfer_large"), exfiltration),
    ("unrequested diagnostics upload (2.0.1: log upload)", ("diagnostics_unrequested", "log_unrequested"),
     unrequested_diagnostics),
    ("firmware tampering", ("firmware_changed_unordered", "firmware_unrequested"), firmware_tampering),
    ("security-profile downgrade", ("profile_downgrade",), profile_downgrade),
]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
