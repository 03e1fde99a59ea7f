"""``voltlib demo``: a small Paris car-sharing network, live, on this machine.

voltlib runs in-process on SQLite (``voltlib-demo.db`` in the current directory, recreated each
run). Six simulated charge points of two connectors each, at two Autolib'-style stations, connect
with security profile 1 (generated passwords), boot and report their connectors. Members badge
and charge in a loop (transactions with meter values); one badge is Blocked and refused; an
impostor with a wrong password is refused (a security event); one command goes through the real
HTTP API. A summary is printed every few seconds until Ctrl-C, or for ``duration`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiohttp import web
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from sqlalchemy import Connection, func, select

from voltlib.config import Settings
from voltlib.gateway.gateway import Gateway
from voltlib.security.credentials import hash_api_token, new_api_token, new_charge_point_password
from voltlib.server import GATEWAY_KEY, build_app
from voltlib.sim.chargepoint import Car, SimOptions, SimulatedChargePoint
from voltlib.store import repo
from voltlib.store.tables import ocpp_messages, security_events, transactions

DEMO_DB = "voltlib-demo.db"
STATIONS: dict[str, list[str]] = {
    "République": ["AL-REPUBLIQUE-1", "AL-REPUBLIQUE-2", "AL-REPUBLIQUE-3"],
    "Hôtel de Ville": ["AL-HOTELDEVILLE-1", "AL-HOTELDEVILLE-2", "AL-HOTELDEVILLE-3"],
}
MEMBERS = [f"MEMBER-{n:04d}" for n in range(1, 11)]
BLOCKED_BADGE = "MEMBER-BLOCKED"
DEMO_OPTIONS = SimOptions(vendor="Bollore", model="Autolib Borne", meter_interval=2, call_timeout=10.0,
                          connect_timeout=5.0, reconnect_min=0.5, reconnect_max=5.0, step_delay=0.5,
                          reboot_delay=1.0, tick=0.5)


@dataclass
class DemoState:
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    activity: deque[str] = field(default_factory=lambda: deque(maxlen=6))
    refused: int = 0
    sessions: int = 0

    def note(self, line: str) -> None:
        self.activity.append(f"{datetime.now(UTC):%H:%M:%S}  {line}")


@dataclass(frozen=True)
class Counters:
    transactions: int
    active: int
    messages: int
    security_events: int


async def run_demo(*, port: int = 8180, host: str = "127.0.0.1", duration: float | None = None,
                   db_path: str | Path = DEMO_DB, summary_every: float = 3.0, console: Console | None = None,
                   seed: int | None = None) -> Counters:
    """Run the demo until cancelled (Ctrl-C) or for ``duration`` seconds; return the final counters."""
    console = console or Console()
    rng = random.Random(seed)
    path = _fresh_database(Path(db_path))
    # model_validate: the demo's settings are its own, not VOLTLIB_* variables or a config file.
    settings = Settings.model_validate({"database_url": f"sqlite:///{path}", "host": host, "port": port,
                                        "heartbeat_interval": 30, "log_level": "WARNING"})
    app = build_app(settings)
    gateway = app[GATEWAY_KEY]
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
    await runner.setup()
    base = f"http://{host}:{port}"
    state = DemoState()
    sims: list[SimulatedChargePoint] = []
    tasks: list[asyncio.Task[None]] = []
    counters = Counters(0, 0, 0, 0)
    try:
        await web.TCPSite(runner, host, port).start()
        token = new_api_token()
        await gateway.services.store.write(partial(repo.add_api_token, name="demo-admin", role="admin",
                                                   token_hash=hash_api_token(token), now=datetime.now(UTC)))
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                     timeout=15) as api:
            passwords = await _register(api)
            _banner(console, base, token)
            sims = [SimulatedChargePoint(cp_id, f"ws://{host}:{port}/ocpp", password=password, options=DEMO_OPTIONS)
                    for cp_id, password in passwords.items()]
            for sim in sims:
                await sim.start()
            accepted = await asyncio.gather(*(sim.wait_accepted(10) for sim in sims))
            state.note(f"{sum(accepted)} of {len(sims)} charge points booted and Accepted")
            tasks = [asyncio.create_task(_drive(sims, rng, state)),
                     asyncio.create_task(_show_api_command(api, console, state, sims[0].cp_id)),
                     asyncio.create_task(_impostor(host, port, sims[-1].cp_id, state))]
            loop = asyncio.get_running_loop()
            deadline = None if duration is None else loop.time() + duration
            while deadline is None or loop.time() < deadline:
                wait = summary_every if deadline is None else min(summary_every, max(deadline - loop.time(), 0))
                await asyncio.sleep(wait)
                if deadline is None or loop.time() < deadline - 0.5:
                    counters = await _summary(console, gateway, sims, state)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.gather(*(_close_sessions(sim) for sim in sims))
        await asyncio.gather(*(sim.stop(timeout=3) for sim in sims), return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.sleep(0.3)  # let the store commit what the last frames wrote
            console.print("\n[bold]Final summary[/]")
            counters = await _summary(console, gateway, sims, state)
        await runner.cleanup()
    return counters


async def _close_sessions(sim: SimulatedChargePoint) -> None:
    """At the end of the demo, members stop charging; their StopTransactions are sent (briefly waited for)."""
    for c in sim.connectors.values():
        if c.transaction is not None:
            sim.stop_transaction(c.connector_id, reason="Local", id_tag=c.transaction.id_tag)
    await sim.wait_drained(2.0)


def _fresh_database(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


async def _register(api: httpx.AsyncClient) -> dict[str, str]:
    """Charge points (profile 1, generated passwords) and badges, through the HTTP API."""
    passwords: dict[str, str] = {}
    for cp_ids in STATIONS.values():
        for cp_id in cp_ids:
            password = new_charge_point_password()
            response = await api.post("/api/v1/charge-points", json={"id": cp_id, "security_profile": 1,
                                                                      "password": password})
            response.raise_for_status()
            passwords[cp_id] = password
    for member in MEMBERS:
        (await api.put(f"/api/v1/id-tags/{member}", json={"status": "Accepted"})).raise_for_status()
    (await api.put(f"/api/v1/id-tags/{BLOCKED_BADGE}", json={"status": "Blocked"})).raise_for_status()
    return passwords


def _banner(console: Console, base: str, token: str) -> None:
    lines = Text.assemble(
        ("voltlib demo", "bold"), " - an Autolib'-style car-sharing network in Paris\n\n",
        ("API        ", "bold"), f"{base}/api/v1\n",
        ("OpenAPI    ", "bold"), f"{base}/api/v1/openapi.json\n",
        ("OCPP       ", "bold"), f"{base.replace('http', 'ws', 1)}/ocpp/<charge point id>  (OCPP 1.6J)\n",
        ("Admin token", "bold"), f" {token}\n",
        ("Database   ", "bold"), f"{DEMO_DB} (SQLite, recreated each run)")
    console.print(Panel(lines, expand=False))
    console.print("Try it (ready to paste):", style="bold")
    console.print(f'curl -s -H "Authorization: Bearer {token}" {base}/api/v1/transactions', soft_wrap=True,
                  markup=False, highlight=False)
    console.print(f'curl -s -X POST -H "Authorization: Bearer {token}" -H "Content-Type: application/json" '
                  f"-d '{{\"requestedMessage\": \"StatusNotification\"}}' "
                  f"{base}/api/v1/charge-points/AL-REPUBLIQUE-1/commands/TriggerMessage",
                  soft_wrap=True, markup=False, highlight=False)
    console.print("Press Ctrl-C to stop.\n")


async def _drive(sims: list[SimulatedChargePoint], rng: random.Random, state: DemoState) -> None:
    """Members come, badge, charge a while, badge again and leave; once, a blocked badge is refused."""
    busy: set[str] = set()
    sessions: set[asyncio.Task[None]] = set()
    blocked_tried = False

    async def session(sim: SimulatedChargePoint, connector_id: int, member: str) -> None:
        try:
            await asyncio.sleep(rng.uniform(6, 15))
            if sim.connectors[connector_id].transaction is not None:
                await sim.badge(connector_id, member)
                state.note(f"{member} stopped charging at {sim.cp_id}/{connector_id}")
            await asyncio.sleep(1.0)
            sim.unplug(connector_id)
        finally:
            busy.discard(member)

    try:
        while True:
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            idle = [(sim, c.connector_id) for sim in sims if sim.accepted.is_set()
                    for c in sim.connectors.values() if c.transaction is None and c.car is None
                    and c.status == "Available"]
            free = [m for m in MEMBERS if m not in busy]
            if not idle:
                continue
            sim, connector_id = rng.choice(idle)
            if not blocked_tried:
                blocked_tried = True
                sim.plug_in(connector_id, Car(soc=rng.uniform(10, 60)))
                status = await sim.badge(connector_id, BLOCKED_BADGE)
                state.refused += status != "Accepted"
                state.note(f"{BLOCKED_BADGE} refused at {sim.cp_id}/{connector_id}: {status}")
                sim.unplug(connector_id)
                continue
            if not free:
                continue
            member = rng.choice(free)
            busy.add(member)
            sim.plug_in(connector_id, Car(soc=rng.uniform(10, 80)))
            status = await sim.badge(connector_id, member)
            if status != "Accepted":
                state.note(f"{member} refused at {sim.cp_id}/{connector_id}: {status}")
                sim.unplug(connector_id)
                busy.discard(member)
                continue
            state.sessions += 1
            state.note(f"{member} started charging at {sim.cp_id}/{connector_id}")
            task = asyncio.create_task(session(sim, connector_id, member))
            sessions.add(task)
            task.add_done_callback(sessions.discard)
    finally:
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)


async def _show_api_command(api: httpx.AsyncClient, console: Console, state: DemoState, cp_id: str) -> None:
    """One command through the real HTTP API, to show that commands work."""
    await asyncio.sleep(2.0)
    keys = ["HeartbeatInterval", "MeterValueSampleInterval", "NumberOfConnectors"]
    response = await api.post(f"/api/v1/charge-points/{cp_id}/commands/GetConfiguration", json={"key": keys},
                              params={"timeout": 10})
    row: dict[str, Any] = response.json()
    if response.status_code == 200 and row.get("state") == "answered":
        values = ", ".join(f"{k['key']}={k.get('value')}" for k in row["response"]["configurationKey"])
        state.note(f"API command GetConfiguration to {cp_id}: answered ({values})")
    else:
        state.note(f"API command GetConfiguration to {cp_id}: {response.status_code} {row}")


async def _impostor(host: str, port: int, cp_id: str, state: DemoState) -> None:
    """Someone tries to connect as a real charge point with a wrong password: refused, and recorded."""
    await asyncio.sleep(3.0)
    headers = {"Authorization": aiohttp.encode_basic_auth(cp_id, "not-the-right-password-42")}
    async with aiohttp.ClientSession() as http:
        try:
            ws = await asyncio.wait_for(http.ws_connect(f"ws://{host}:{port}/ocpp/{cp_id}", protocols=("ocpp1.6",),
                                                        headers=headers), 5)
            await ws.close()
            state.note(f"impostor as {cp_id} was let in?!")
        except aiohttp.WSServerHandshakeError as exc:
            state.note(f"impostor as {cp_id} with a wrong password: refused (HTTP {exc.status})")
        except (aiohttp.ClientError, TimeoutError) as exc:
            state.note(f"impostor as {cp_id}: {exc}")


def _counts(conn: Connection) -> Counters:
    def count(query: Any) -> int:
        return int(conn.execute(query).scalar_one())

    return Counters(
        transactions=count(select(func.count()).select_from(transactions)),
        active=count(select(func.count()).select_from(transactions).where(transactions.c.stopped_at.is_(None))),
        messages=count(select(func.count()).select_from(ocpp_messages)),
        security_events=count(select(func.count()).select_from(security_events)))


async def _summary(console: Console, gateway: Gateway, sims: list[SimulatedChargePoint],
                   state: DemoState) -> Counters:
    store = gateway.services.store
    counters = await store.read(_counts)
    details = {sim.cp_id: await store.read(partial(repo.charge_point_detail, cp_id=sim.cp_id)) for sim in sims}
    station_of = {cp_id: station for station, ids in STATIONS.items() for cp_id in ids}
    table = Table(expand=False, show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in ("charge point", "station", "connector 1", "connector 2"):
        table.add_column(column, no_wrap=True)
    table.add_column("meter Wh", justify="right", no_wrap=True)
    for sim in sims:
        detail = details[sim.cp_id] or {}
        statuses = {c["connector_id"]: c["status"] for c in detail.get("connectors", [])}
        online = "[green]●[/]" if sim.cp_id in gateway.connections else "[red]○[/]"
        energy = sum(c.energy_wh for c in sim.connectors.values())
        table.add_row(f"{online} {sim.cp_id}", station_of.get(sim.cp_id, "?"), _status(statuses.get(1)),
                      _status(statuses.get(2)), f"{energy:.0f}")
    uptime = int((datetime.now(UTC) - state.started).total_seconds())
    line = (f"Connected charge points: {len(gateway.connections)}/{len(sims)}  "
            f"Transactions: {counters.transactions} ({counters.active} active)  "
            f"Messages: {counters.messages}\nSecurity events: {counters.security_events}  "
            f"Refused badges: {state.refused}  Uptime: {uptime} s")
    console.rule(f"voltlib demo - {datetime.now(UTC):%H:%M:%S} UTC", style="dim")
    console.print(table)
    console.print(Text(line, style="bold"))
    console.print(Text("\n".join(state.activity) or "(nothing yet)", style="dim"))
    return counters


_STATUS_STYLE = {"Available": "green", "Charging": "bold cyan", "Preparing": "yellow", "Finishing": "yellow",
                 "SuspendedEV": "cyan", "SuspendedEVSE": "magenta", "Reserved": "blue", "Unavailable": "red",
                 "Faulted": "bold red"}


def _status(status: str | None) -> str:
    if status is None:
        return "-"
    return f"[{_STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


def run(port: int = 8180, duration: float | None = None) -> Counters | None:
    """Blocking entry point for the CLI: Ctrl-C ends the demo cleanly."""
    try:
        return asyncio.run(run_demo(port=port, duration=duration))
    except KeyboardInterrupt:
        return None
