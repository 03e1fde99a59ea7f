"""Serves the GBFS files of every city under ``/gbfs/``, from an in-memory cache.

Each file is encoded once and kept with its strong ETag. A bus watcher notes which charge points
changed (a set insert, nothing more: it runs inside ``publish``); a background flusher maps them to
cities and rebuilds those cities' files. Rebuilds are spaced so they take at most ``REBUILD_SHARE``
of the event loop, and never more than ``REBUILD_EVERY`` apart: a change shows in station_status
within a second, while a reconnection storm of thousands of charge points costs a few rebuilds a
second (a Paris rebuild costs tens of milliseconds). Static files are rebuilt when older than their ttl.
``If-None-Match`` gets 304.
"""

from __future__ import annotations

import asyncio
import contextvars
import gzip
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import msgspec
from aiohttp import web

from voltlib.api.framework import Problem
from voltlib.bus import Bus
from voltlib.clock import Clock
from voltlib.events import (
    ChargePointConnected,
    ChargePointDisconnected,
    ConnectorStatusChanged,
    Event,
    RentalChanged,
    TransactionStarted,
    TransactionStopped,
)
from voltlib.gbfs import feeds
from voltlib.gbfs.model import CitySnapshot, System
from voltlib.telemetry.counters import WORK_SECONDS, Histogram

log = logging.getLogger(__name__)
PREFIX = "/gbfs"
COALESCE = 0.2  # seconds: changes this close together share one rebuild
REBUILD_EVERY = 0.7  # seconds: the most between two rebuilds, so a change shows within 1 s even in a storm
REBUILD_SHARE = 0.2  # the rest of the time, rebuilds take at most this share of the event loop
CityResolver = Callable[[set[str]], Awaitable[set[str] | None]]  # charge points -> cities (None: all)
# Cache ages, COALESCE and REBUILD_EVERY are wall time, even under simulated time: they are HTTP caching
# (Cache-Control max-age is wall seconds) and process load; the feeds' last_updated is voltlib's clock.


class SnapshotSource(Protocol):
    """Where city snapshots come from (the database in production)."""

    async def systems(self) -> list[System]: ...

    async def snapshot(self, system_id: str) -> CitySnapshot | None: ...


@dataclass(frozen=True, slots=True)
class Encoded:
    """A file ready to send: JSON bytes and their gzip, each with its own strong ETag."""

    body: bytes
    gzipped: bytes
    etag: str
    built: float  # monotonic seconds
    ttl: int

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'


def encode(document: object, ttl: int) -> Encoded:
    body = msgspec.json.encode(document)
    digest = hashlib.blake2b(body, digest_size=12).hexdigest()
    return Encoded(body, gzip.compress(body, compresslevel=6, mtime=0), f'"{digest}"', time.monotonic(), ttl)


class FeedCache:
    """Encoded files per (city, feed); one snapshot read rebuilds all files of a city."""

    def __init__(self, source: SnapshotSource, clock: Clock, base_url: str | None = None,
                 resolve: CityResolver | None = None) -> None:
        self.source, self.clock, self.base_url = source, clock, base_url
        self._files: dict[tuple[str, str], Encoded] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._generation: dict[str, int] = {}
        self._built_generation: dict[str, int] = {}
        self._snapshots: dict[str, CitySnapshot] = {}
        # files holding absolute URLs, per (city, feed, base URL): the Host header of one client
        # must never end up in what another client is served
        self._linked: dict[tuple[str, str, str], Encoded] = {}
        self._dirty: set[str] = set()  # charge points changed since the last flush
        self._resolve: CityResolver = resolve or _every_city
        self._last_flush = float("-inf")
        self._last_cost = 0.0  # seconds the last flush took
        self._flusher: asyncio.Task[None] | None = None
        self.rebuilds = 0
        self.rebuild_seconds = Histogram(WORK_SECONDS)  # metrics: a city's snapshot read and files encoded
        self.built_at: dict[str, float] = {}  # city -> monotonic time of its last rebuild (metrics: age)
        self.rebuilt = asyncio.Event()  # set after every rebuild (benchmarks and tests wait on it)

    def base(self, request: web.Request | None) -> str:
        if self.base_url:
            return self.base_url.rstrip("/") + PREFIX
        assert request is not None
        return f"{request.scheme}://{request.host}{PREFIX}"

    def invalidate(self, system_id: str | None = None) -> None:
        """Mark a city (or all) stale; the next read or the background rebuild refreshes it."""
        for key in [k for k in self._generation if system_id is None or k == system_id]:
            self._generation[key] += 1

    async def rebuild(self, system_id: str) -> bool:
        lock = self._locks.setdefault(system_id, asyncio.Lock())
        async with lock:
            started = time.monotonic()
            generation = self._generation.get(system_id, 0)
            snap = await self.source.snapshot(system_id)
            if snap is None:
                return False
            for name in feeds.CITY_FEEDS:
                if name not in feeds.LINKED:
                    self._files[(system_id, name)] = encode(feeds.build(name, snap, ""), feeds.TTL[name])
            self._snapshots[system_id] = snap
            for key in [k for k in self._linked if k[0] == system_id]:
                del self._linked[key]
            self._built_generation[system_id] = generation
            self.rebuilds += 1
            self.built_at[system_id] = now = time.monotonic()
            self.rebuild_seconds.observe(now - started)
            self.rebuilt.set()
            self.rebuilt = asyncio.Event()
            return True

    def fresh(self, system_id: str, feed: str, base_url: str) -> Encoded | None:
        if feed in feeds.LINKED:
            found = self._linked.get((system_id, feed, base_url))
            snap = self._snapshots.get(system_id)
            if found is None and snap is not None:
                if len(self._linked) > 256:  # many Host names: keep memory bounded
                    self._linked.clear()
                found = encode(feeds.build(feed, snap, base_url), feeds.TTL[feed])
                self._linked[(system_id, feed, base_url)] = found
        else:
            found = self._files.get((system_id, feed))
        if found is None or self._built_generation.get(system_id) != self._generation.get(system_id, 0):
            return None
        if found.ttl and time.monotonic() - found.built > found.ttl:
            return None
        return found

    async def get(self, system_id: str, feed: str, base_url: str) -> Encoded | None:
        found = self.fresh(system_id, feed, base_url)
        if found is not None:
            return found
        self._generation.setdefault(system_id, 0)
        if not await self.rebuild(system_id):
            return None
        return self.fresh(system_id, feed, base_url)

    def changed(self, charge_point_id: str) -> None:
        """Something changed at a charge point: its city is rebuilt soon (see the module docstring)."""
        self._dirty.add(charge_point_id)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), context=contextvars.Context())

    async def _flush(self) -> None:
        while self._dirty:
            gap = min(REBUILD_EVERY, self._last_cost / REBUILD_SHARE)
            await asyncio.sleep(max(COALESCE, self._last_flush + gap - time.monotonic()))
            changed, self._dirty = self._dirty, set()
            self._last_flush = time.monotonic()
            try:
                cities = await self._resolve(changed)
                for city in [c for c in self.cities() if cities is None or c in cities]:
                    self.invalidate(city)
                    await self.rebuild(city)
            except Exception:  # the next request retries; the flusher must keep going
                log.exception("GBFS rebuild after changes at %d charge points failed", len(changed))
            self._last_cost = time.monotonic() - self._last_flush

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()

    def cities(self) -> list[str]:
        return list(self._generation)


def respond(request: web.Request, file: Encoded) -> web.Response:
    """200 with the body (gzipped when the client accepts it), or 304 when its ETag matches."""
    zipped = "gzip" in request.headers.get("Accept-Encoding", "")
    etag = file.gzip_etag if zipped else file.etag
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={file.ttl}", "Vary": "Accept-Encoding",
               "Access-Control-Allow-Origin": "*"}
    if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers=headers)
    if zipped:
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=file.gzipped, content_type="application/json", headers=headers)
    return web.Response(body=file.body, content_type="application/json", headers=headers)


def routes(cache: FeedCache) -> list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]:
    async def manifest(request: web.Request) -> web.Response:
        systems = await cache.source.systems()
        now: datetime = cache.clock.now()
        # the list of cities changes rarely; its honest time is "checked now", cached for its ttl
        return respond(request, encode(feeds.manifest(systems, cache.base(request), now), feeds.TTL["manifest"]))

    async def city_file(request: web.Request) -> web.Response:
        system_id, name = request.match_info["system_id"], request.match_info["feed"]
        if name not in feeds.CITY_FEEDS:
            raise Problem(404, "unknown-feed", f"GBFS 3.0 files here: {', '.join(feeds.CITY_FEEDS)}")
        # a NUL is in no city's id, and PostgreSQL refuses it in a query: unknown, not a failure
        file = None if "\x00" in system_id else await cache.get(system_id, name, cache.base(request))
        if file is None:
            raise Problem(404, "unknown-system", f"no city {system_id}")
        return respond(request, file)

    return [(f"{PREFIX}/manifest.json", manifest), (PREFIX + "/{system_id}/{feed}.json", city_file)]


# What a GBFS file shows: connector states, cars coming and going, charge points on or offline.
# Meter values are left out: vehicle charge levels follow with the next of these (or the file's ttl).
CHANGES: tuple[type[Event], ...] = (ConnectorStatusChanged, TransactionStarted, TransactionStopped, RentalChanged,
                                    ChargePointConnected, ChargePointDisconnected)


def follow(cache: FeedCache, bus: Bus) -> None:
    """Keep the cache current from the bus."""
    bus.watch(lambda event: cache.changed(event.charge_point_id), *CHANGES, name="gbfs-cache",
              scope="network")  # every node serves every city's feeds


async def _every_city(charge_points: set[str]) -> set[str] | None:
    return None


def install(app: web.Application, cache: FeedCache) -> None:
    for path, handler in routes(cache):
        app.router.add_get(path, handler)
