"""Smart charging after voltlib restarts: the charge points still hold the TxProfiles the previous
process sent, which the new one does not know. A station whose limit was lowered meanwhile must be
brought under it as soon as its charge points are back, not left at the old plan (a crash drill on the
Paris simulation showed stations at 173 % of their limits for the rest of the morning)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.conformance.conftest import wait_until
from tests.conftest import PASSWORD, free_port, start_server
from tests.energy.conftest import OPTIONS
from tests.energy.test_smart_charging_live import SNAPSHOT, SOCS, drawn
from voltlib.config import Settings
from voltlib.energy.smart_charging import write_limits
from voltlib.security.credentials import hash_password
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import parse_snapshot
from voltlib.sharing.store import import_snapshot, upsert_city
from voltlib.sim import Car, SimulatedChargePoint
from voltlib.store.db import Store
from voltlib.store.tables import vehicles

BEFORE_W, AFTER_W = 6_000, 2_000


async def test_a_restarted_voltlib_brings_a_station_under_its_limit_again(database_url: str) -> None:
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0, duplicate_probe_timeout=1.0)
    runner, server = await start_server(settings)
    parsed = parse_snapshot(SNAPSHOT, car_prefix="EN")

    def seed(conn: Any) -> None:
        upsert_city(conn, builtin_cities()["paris"])
        import_snapshot(conn, "paris", parsed, security_profile=1, password_hash=hash_password(PASSWORD),
                        soc_percent=80.0, now=datetime.now(UTC))
        for bay, soc in SOCS.items():
            conn.execute(vehicles.update().where(vehicles.c.charge_point_id == f"st-e-{bay}").values(soc_percent=soc))

    await server.store.write(seed)
    cps = {bay: SimulatedChargePoint(f"st-e-{bay}", server.ws_url, password=PASSWORD, options=OPTIONS)
           for bay in SOCS}
    try:
        for bay, cp in cps.items():
            cp.plug_in(1, Car(soc=SOCS[bay], max_power_w=3_000.0))
            await cp.start()
        for cp in cps.values():
            assert await cp.wait_accepted(10)
        async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=20) as api:
            response = await api.put("/api/v1/stations/st-e/power-limit", json={"limit_w": BEFORE_W})
            assert response.status_code == 200, response.text
        for bay, cp in cps.items():
            cp.start_transaction(1, f"CAREN{bay:06d}")

        async def at_the_first_plan() -> bool:
            return sum(drawn(cps).values()) >= BEFORE_W - 50

        await wait_until(at_the_first_plan, timeout=20)
        await runner.cleanup()  # voltlib stops; the charge points keep charging at the profiles they hold
        offline = Store(database_url)  # the stopped server's store is closed with it
        try:
            offline.run_sync(lambda conn: write_limits(conn, "st-e", AFTER_W, None))  # lowered meanwhile
        finally:
            offline.close()
        await asyncio.sleep(0.5)
        assert sum(drawn(cps).values()) >= BEFORE_W - 50
        runner, server = await start_server(settings)  # a new process: it never sent those profiles

        async def under_the_new_limit() -> bool:
            return all(cp.accepted.is_set() for cp in cps.values()) and sum(drawn(cps).values()) <= AFTER_W

        await wait_until(under_the_new_limit, timeout=20)
    finally:
        await asyncio.gather(*(cp.stop() for cp in cps.values()), return_exceptions=True)
        await runner.cleanup()
