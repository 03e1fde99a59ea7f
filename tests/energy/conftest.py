"""The tiny city of tests/sharing, and one station of docked cars on simulated posts, for the energy tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from tests.conftest import PASSWORD, RunningServer
from tests.sharing.conftest import city
from voltlib.security.credentials import hash_password
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import parse_snapshot
from voltlib.sharing.store import import_snapshot, upsert_city
from voltlib.sim import Car, SimOptions, SimulatedChargePoint
from voltlib.store.tables import vehicles

__all__ = ["OPTIONS", "city", "docked_station"]

OPTIONS = SimOptions(connectors=1, connector_power_w=3_000.0, max_power_w=3_000.0, meter_interval=1,
                     call_timeout=5.0, connect_timeout=5.0, reconnect_min=0.2, reconnect_max=1.0, tick=0.1)


@contextlib.asynccontextmanager
async def docked_station(server: RunningServer, snapshot: str, *, station: str, car_prefix: str,
                         cars: dict[int, Car], ocpp_version: str) -> AsyncIterator[dict[int, SimulatedChargePoint]]:
    """The one station of ``snapshot`` imported, each bay's car at its state of charge, and a booted
    simulated post per bay with its car plugged in before it boots, as in a full station."""
    parsed = parse_snapshot(snapshot, car_prefix=car_prefix)

    def seed(conn: Any) -> None:
        upsert_city(conn, builtin_cities()["paris"])
        import_snapshot(conn, "paris", parsed, security_profile=1, password_hash=hash_password(PASSWORD),
                        soc_percent=80.0, now=datetime.now(UTC))
        for bay, car in cars.items():
            conn.execute(vehicles.update().where(vehicles.c.charge_point_id == f"{station}-{bay}")
                         .values(soc_percent=car.soc))

    await server.store.write(seed)
    cps = {bay: SimulatedChargePoint(f"{station}-{bay}", server.ws_url, password=PASSWORD, options=OPTIONS,
                                     ocpp_version=ocpp_version) for bay in cars}
    for bay, car in cars.items():
        cps[bay].plug_in(1, car)
    async with contextlib.AsyncExitStack() as stack:
        for cp in cps.values():
            await cp.start()
            stack.push_async_callback(cp.stop)
        for cp in cps.values():
            assert await cp.wait_accepted(10)
        yield cps
