"""GBFS over HTTP on a running server: documented URLs, validation, caching headers, 304, and a
change reaching station_status through the bus without a restart."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp

from voltlib.events import ConnectorStatusChanged
from voltlib.gbfs import feeds
from voltlib.server import GBFS_KEY

from .conftest import WebServer
from .gbfs_schema import errors


async def test_manifest_and_every_city_file_validate(web_server: WebServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{web_server.url}/gbfs/manifest.json") as r:
            manifest = await r.json()
        assert errors("manifest", manifest) == []
        assert [d["system_id"] for d in manifest["data"]["datasets"]] == ["paris", "lyon"]
        for dataset in manifest["data"]["datasets"]:
            async with http.get(dataset["versions"][0]["url"]) as r:
                discovery = await r.json()
            assert errors("gbfs", discovery) == []
            for feed in discovery["data"]["feeds"]:
                async with http.get(feed["url"]) as r:
                    assert r.status == 200, feed["url"]
                    assert errors(feed["name"], await r.json()) == [], feed["url"]


async def test_status_matches_the_snapshot(web_server: WebServer) -> None:
    snap = await web_server.source.snapshot("paris")
    assert snap is not None
    async with aiohttp.ClientSession() as http, http.get(f"{web_server.url}/gbfs/paris/station_status.json") as r:
        served = {s["station_id"]: s for s in (await r.json())["data"]["stations"]}
    assert len(served) == len(snap.stations)
    for state in snap.states:
        assert served[state.station_id]["num_vehicles_available"] == state.cars_available
        assert served[state.station_id]["num_docks_available"] == state.bays_free


async def test_etag_cache_control_and_304(web_server: WebServer) -> None:
    url = f"{web_server.url}/gbfs/paris/station_information.json"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as r:
            etag = r.headers["ETag"]
            assert r.headers["Cache-Control"] == f"public, max-age={feeds.TTL['station_information']}"
            assert (await r.json())["ttl"] == feeds.TTL["station_information"]
        async with http.get(url, headers={"If-None-Match": etag}) as r:
            assert r.status == 304 and await r.read() == b""
        async with http.get(url, headers={"If-None-Match": '"something-else"'}) as r:
            assert r.status == 200


async def test_unknown_city_and_file_are_problems(web_server: WebServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{web_server.url}/gbfs/atlantis/station_status.json") as r:
            assert r.status == 404 and (await r.json())["title"] == "unknown-system"
        async with http.get(f"{web_server.url}/gbfs/paris/free_beer.json") as r:
            assert r.status == 404 and (await r.json())["title"] == "unknown-feed"


async def test_a_bus_event_rebuilds_station_status(web_server: WebServer) -> None:
    url = f"{web_server.url}/gbfs/paris/station_status.json"
    cache = web_server.app[GBFS_KEY]
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as r:
            before, etag = await r.json(), r.headers["ETag"]
        snap = await web_server.source.snapshot("paris")
        assert snap is not None
        first = snap.states[1]
        changed = replace(first, cars_available=first.cars_available + 1, bays_free=first.bays_free - 1)
        web_server.source.put(replace(snap, states=(snap.states[0], changed, *snap.states[2:])))
        rebuilt = cache.rebuilt
        await web_server.gateway.services.bus.publish(ConnectorStatusChanged(
            charge_point_id="CP-1", at=datetime.now(UTC), connector_id=1, previous="Available", status="Occupied",
            error_code="NoError", vendor_error_code=None, info=None, expected=True))
        await asyncio.wait_for(rebuilt.wait(), 10)  # rebuilt in the background, not on the next request
        async with http.get(url, headers={"If-None-Match": etag}) as r:
            assert r.status == 200
            after = await r.json()
    old = {s["station_id"]: s for s in before["data"]["stations"]}[first.station_id]
    new = {s["station_id"]: s for s in after["data"]["stations"]}[first.station_id]
    assert new["num_vehicles_available"] == old["num_vehicles_available"] + 1


async def test_a_forged_host_never_reaches_other_clients(web_server: WebServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{web_server.url}/gbfs/paris/gbfs.json", headers={"Host": "evil.example"}) as r:
            forged = await r.json()
        async with http.get(f"{web_server.url}/gbfs/paris/gbfs.json") as r:
            honest = await r.json()
    assert forged["data"]["feeds"][0]["url"].startswith("http://evil.example/")
    assert all(f["url"].startswith(web_server.url + "/gbfs/paris/") for f in honest["data"]["feeds"])


async def test_a_reconnection_storm_costs_a_few_rebuilds_not_one_per_event(web_server: WebServer) -> None:
    cache, bus = web_server.app[GBFS_KEY], web_server.gateway.services.bus
    async with aiohttp.ClientSession() as http, http.get(f"{web_server.url}/gbfs/paris/station_status.json") as r:
        assert r.status == 200  # the city is cached, so changes there are followed
    before, rebuilt = cache.rebuilds, cache.rebuilt
    for n in range(2_000):
        await bus.publish(ConnectorStatusChanged(
            charge_point_id=f"CP-{n}", at=datetime.now(UTC), connector_id=1, previous="Unavailable",
            status="Available", error_code="NoError", vendor_error_code=None, info=None, expected=True))
    await asyncio.wait_for(rebuilt.wait(), 10)
    await asyncio.sleep(0.3)  # a second flush, if the storm straddled two, has had its chance to start
    assert 1 <= cache.rebuilds - before <= 2
    stats = {c.name: c for c in bus.stats()}
    assert stats["gbfs-cache"].kind == "watcher" and stats["gbfs-cache"].handled >= 2_000
