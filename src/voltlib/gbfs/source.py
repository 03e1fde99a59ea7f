"""Snapshot sources for the GBFS cache: fixed snapshots (tests, benchmarks, a city without a
database model yet) and, once the car-sharing tables exist, the database."""

from __future__ import annotations

from voltlib.gbfs.model import CitySnapshot, System


class StaticSource:
    """Snapshots held in memory; ``put`` replaces a city's snapshot (then tell the cache)."""

    def __init__(self, *snapshots: CitySnapshot) -> None:
        self._by_id = {s.system.system_id: s for s in snapshots}

    def put(self, snapshot: CitySnapshot) -> None:
        self._by_id[snapshot.system.system_id] = snapshot

    async def systems(self) -> list[System]:
        return [s.system for s in self._by_id.values()]

    async def snapshot(self, system_id: str) -> CitySnapshot | None:
        return self._by_id.get(system_id)
