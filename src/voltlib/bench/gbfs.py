"""`voltlib bench gbfs`: Paris station_status served from the in-memory cache (requests/s, plain
and conditional), and how long a change at a charge point takes to show in it.

The server runs in its own process (``voltlib serve``) on a SQLite copy of the packaged Paris
snapshot (1,119 stations); the load generator is this process, on the same machine, so the figure
is a floor set partly by the client. The change is real: a simulated charge point of an empty bay
reports Faulted over OCPP, and the time is taken until a client sees ``num_docks_disabled`` move.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from voltlib.security.credentials import hash_password
from voltlib.sharing.cities import builtin_cities, paris_snapshot
from voltlib.sharing.importer import parse_snapshot
from voltlib.sharing.store import import_snapshot, seed_cities, upsert_city
from voltlib.sim.chargepoint import SimOptions, SimulatedChargePoint
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade

PASSWORD = "bench-gbfs-password-1"
PATH = "/gbfs/paris/station_status.json"


@dataclass
class GbfsBenchResult:
    stations: int
    body_bytes: int
    gzip_bytes: int
    concurrency: int
    seconds: float
    identity_per_s: float
    requests_per_s: float
    not_modified_per_s: float
    rebuild_ms: list[float]

    @property
    def rebuild_median_ms(self) -> float:
        return statistics.median(self.rebuild_ms)


def _prepare(url: str) -> None:
    store = Store(url)
    upgrade(store.engine)

    def load(conn: Any) -> None:
        seed_cities(conn)
        upsert_city(conn, builtin_cities()["paris"])
        import_snapshot(conn, "paris", parse_snapshot(paris_snapshot(), car_prefix="PA"), security_profile=1,
                        password_hash=hash_password(PASSWORD), soc_percent=80.0, now=datetime.now(UTC))

    store.run_sync(load)
    store.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_up(base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(base + PATH) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("voltlib did not start")


async def _hammer(base: str, seconds: float, concurrency: int, etag: str | None, *, gzip: bool = True) -> int:
    """Completed requests from ``concurrency`` keep-alive connections. The client is a bare HTTP/1.1
    loop on asyncio streams (read the head, then Content-Length bytes; nothing decompressed or
    parsed, as a cache or CDN does): a full HTTP client reading 420 KB bodies would take most of the
    CPU the server needs, on this shared machine."""
    host, port = base.removeprefix("http://").split(":")
    request = (f"GET {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept-Encoding: {'gzip' if gzip else 'identity'}\r\n"
               + (f"If-None-Match: {etag}\r\n" if etag else "") + "\r\n").encode()
    expected = b" 304 " if etag else b" 200 "
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
        try:
            while time.monotonic() < stop:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                if head[8:13] == expected:
                    done += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def _disabled(http: aiohttp.ClientSession, base: str, station_id: str) -> int:
    async with http.get(base + PATH) as r:
        data = await r.json()
    return int(next(s["num_docks_disabled"] for s in data["data"]["stations"] if s["station_id"] == station_id))


async def _rebuild_latency(base: str, ws: str, rounds: int) -> list[float]:
    """Toggle a fault on an empty bay; time until station_status shows it."""
    parsed = parse_snapshot(paris_snapshot())
    station = next(s for s in parsed.stations if s.status == "operational" and s.bays > s.cars)
    sim = SimulatedChargePoint(f"{station.id}-{station.cars + 1}", ws, password=PASSWORD,
                               options=SimOptions(connectors=1, heartbeat_interval=3600, meter_interval=3600))
    await sim.start()
    timings: list[float] = []
    try:
        if not await sim.wait_accepted(30):
            raise RuntimeError("the simulated charge point was not accepted")
        async with aiohttp.ClientSession() as http:
            await asyncio.sleep(1.0)  # let the boot's own status notification settle
            for i in range(rounds * 2):
                faulted = i % 2 == 0
                want = 1 if faulted else 0
                started = time.perf_counter()
                sim.set_fault(1, "GroundFailure" if faulted else None)
                while await _disabled(http, base, station.id) != want:  # noqa: ASYNC110 - polling over HTTP
                    await asyncio.sleep(0.002)
                timings.append((time.perf_counter() - started) * 1000)
    finally:
        await sim.stop()
    return timings


async def run(*, seconds: float = 5.0, concurrency: int = 32, rounds: int = 10) -> GbfsBenchResult:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'gbfs-bench.db'}"
        _prepare(url)
        port = _free_port()
        env = {**os.environ, "VOLTLIB_LOG_LEVEL": "WARNING"}
        server = await asyncio.create_subprocess_exec(sys.executable, "-m", "voltlib", "serve", "--database-url",
                                                      url, "--port", str(port), env=env)
        base, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ocpp"
        try:
            await _wait_up(base)
            async with aiohttp.ClientSession() as http, http.get(base + PATH) as r:
                body = await r.read()
                stations = len((await r.json())["data"]["stations"])
            async with aiohttp.ClientSession(auto_decompress=False) as http, http.get(base + PATH) as r:
                zipped = len(await r.read())
                etag = r.headers["ETag"]
            await _hammer(base, 1.0, concurrency, None)  # warm-up
            identity = await _hammer(base, seconds, concurrency, None, gzip=False)
            plain = await _hammer(base, seconds, concurrency, None)
            conditional = await _hammer(base, seconds, concurrency, etag)
            timings = await _rebuild_latency(base, ws, rounds)
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 10)
    return GbfsBenchResult(stations, len(body), zipped, concurrency, seconds, identity / seconds, plain / seconds,
                           conditional / seconds, timings)


def render(result: GbfsBenchResult) -> str:
    return "\n".join([
        f"Paris station_status: {result.stations} stations, {result.body_bytes:,} bytes "
        f"({result.gzip_bytes:,} gzipped)",
        f"| served from cache ({result.concurrency} keep-alive clients, {result.seconds:g} s) | requests/s |",
        "|---|---:|",
        f"| 200, identity | {result.identity_per_s:,.0f} |",
        f"| 200, gzip | {result.requests_per_s:,.0f} |",
        f"| 304 (If-None-Match) | {result.not_modified_per_s:,.0f} |",
        "",
        f"change at a charge point -> visible in station_status ({len(result.rebuild_ms)} changes): "
        f"median {result.rebuild_median_ms:.0f} ms, max {max(result.rebuild_ms):.0f} ms",
    ])
