"""A tiny city on a running voltlib: two stations from an Autolib'-format snapshot, and members
signed up, verified and subscribed through the real API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest_asyncio

from tests.conftest import PASSWORD, RunningServer
from voltlib.clock import Clock
from voltlib.security.credentials import hash_password
from voltlib.sharing.cities import builtin_cities
from voltlib.sharing.importer import parse_snapshot
from voltlib.sharing.store import import_snapshot, upsert_city

HEADER = ("Address;Cars;Bluecar counter;Utilib counter;Utilib 1.4 counter;Charge Slots;Charging Status;City;"
          "Displayed comment;ID;Kind;Geo point;Postal code;Public name;Rental status;Scheduled at;Slots;"
          "Station type;Status;Subscription status")
# station A has one car and one free bay; B (1.2 km away) two free bays; C (far) one free bay
SNAPSHOT = "\n".join([
    HEADER,
    "1 rue A;1;1;0;0;0;operational;Paris;;st-a;STATION;48.8600, 2.3500;75001;Paris/A/1;operational;;1;station;ok;x",
    "2 rue B;0;0;0;0;0;operational;Paris;;st-b;STATION;48.8700, 2.3550;75002;Paris/B/2;operational;;2;station;ok;x",
    "3 rue C;0;0;0;0;0;operational;Paris;;st-c;STATION;48.9000, 2.4000;75003;Paris/C/3;operational;;1;station;ok;x",
]) + "\n"

CAR_TAG = "CARPA000001"
CAR_ID = "car-pa-00001"


@dataclass
class Member:
    id: str
    badge: str
    token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class City:
    server: RunningServer
    client: httpx.AsyncClient

    async def sign_up(self, n: int = 0, *, verify: bool = True, plan: str | None = "premium") -> Member:
        response = await self.client.post("/api/v1/members", json={
            "city": "paris", "name": f"Member {n}", "email": f"m{n}-{datetime.now(UTC).timestamp()}@example.org",
            "licence_number": f"L{n:06d}", "licence_expiry": (datetime.now(UTC) + timedelta(days=365)).isoformat()})
        assert response.status_code == 201, response.text
        data = response.json()
        member = Member(data["member_id"], data["badge"], data["token"])
        if verify:
            response = await self.client.patch(f"/api/v1/members/{member.id}", json={"licence_verified": True},
                                               headers=self.server.api_headers())
            assert response.status_code == 200, response.text
        if plan is not None:
            response = await self.client.post("/api/v1/me/subscription", json={"plan_code": plan},
                                              headers=member.headers())
            assert response.status_code == 200, response.text
        return member

    async def rental(self, member: Member) -> Any:
        response = await self.client.get("/api/v1/me/rental", headers=member.headers())
        assert response.status_code == 200, response.text
        return response.json()["rental"]

    async def wait_for_state(self, member: Member, state: str | None) -> None:
        """Until the member's live rental is in ``state`` (None: no live rental any more)."""
        from tests.conformance.conftest import wait_until

        async def reached() -> bool:
            rental = await self.rental(member)
            return (rental is None) if state is None else (rental is not None and rental["state"] == state)

        await wait_until(reached)

    async def vehicle(self, car_id: str = CAR_ID) -> dict[str, Any]:
        response = await self.client.get("/api/v1/vehicles", headers=self.server.api_headers())
        return next(v for v in response.json() if v["id"] == car_id)


@pytest_asyncio.fixture
async def city(server: RunningServer) -> AsyncIterator[City]:
    async with seeded_city(server) as seeded:
        yield seeded


@asynccontextmanager
async def seeded_city(server: RunningServer) -> AsyncIterator[City]:
    """The tiny city imported into ``server``, with an HTTP client on it."""
    paris = builtin_cities()["paris"]
    parsed = parse_snapshot(SNAPSHOT, car_prefix="PA")

    def op(conn: Any) -> None:
        upsert_city(conn, paris)
        import_snapshot(conn, "paris", parsed, security_profile=1, password_hash=hash_password(PASSWORD),
                        soc_percent=80.0, now=datetime.now(UTC))

    await server.store.write(op)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield City(server, client)


class AheadClock:
    """voltlib's clock ``offset`` ahead of the wall clock: a test lets rental time pass without
    waiting, and the charge points' stamps of that time are not in voltlib's future (the clock policy
    would not believe them)."""

    def __init__(self, base: Clock) -> None:
        self.base, self.offset = base, timedelta(0)

    @property
    def factor(self) -> float:
        return self.base.factor

    def now(self) -> datetime:
        return self.base.now() + self.offset

    def monotonic(self) -> float:
        return self.base.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self.base.sleep(seconds)


def advance(server: RunningServer, delta: timedelta) -> None:
    """Move voltlib's clock ``delta`` ahead (what its handlers, timers and car sharing read)."""
    services = server.gateway.services
    if not isinstance(services.clock, AheadClock):
        services.clock = AheadClock(services.clock)
    services.clock.offset += delta


def catch_up(server: RunningServer, until: datetime) -> None:
    """Move voltlib's clock to ``until`` (a second after it) unless it is there already: what a test
    charge point stamps ``until`` has then happened."""
    late = until + timedelta(seconds=1) - server.gateway.services.clock.now()
    if late > timedelta(0):
        advance(server, late)


def set_soc(server: RunningServer, car_id: str, soc: float) -> Any:
    from voltlib.store.tables import vehicles

    return server.store.write(partial(lambda conn: conn.execute(
        vehicles.update().where(vehicles.c.id == car_id).values(soc_percent=soc))))
