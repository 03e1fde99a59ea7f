"""What the operator map needs beyond the API: which station each charge point stands at (to put
a charge point's security incidents on the map), and which cities have an offline basemap."""

from __future__ import annotations

from importlib.resources.abc import Traversable

from sqlalchemy import Connection, select

from voltlib.store.tables import bays, stations


def charge_point_stations(conn: Connection, city: str) -> dict[str, str]:
    """Charge point id -> station id, for the city's bays."""
    query = (select(bays.c.charge_point_id, bays.c.station_id).join(stations, stations.c.id == bays.c.station_id)
             .where(stations.c.city == city).distinct())
    return {row.charge_point_id: row.station_id for row in conn.execute(query)}


def basemap_cities(static: Traversable) -> list[str]:
    """City codes with a basemap file (static/basemap/<city>.json)."""
    folder = static / "basemap"
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))
