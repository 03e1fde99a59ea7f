"""Car sharing's holds are reservations in the one reservations table (issue 20): a member's hold
shows in the operator API (origin car-sharing, its rental, the charge point's answer) and ends
there as it ends in the rental; a bay an operator reserved through the API is not given to a
member; migration 0022 carries the holds rentals already had over. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select

from tests.conformance.conftest import connect, wait_until
from tests.conftest import BOTH_VERSIONS
from tests.sharing.conftest import CAR_ID, City
from voltlib.store.db import Store
from voltlib.store.migrate import alembic_config, upgrade
from voltlib.store.tables import rentals, reservations

ORIGIN = "st-a-1"


async def listed(city: City, **params: str) -> list[dict[str, Any]]:
    answer = await city.client.get("/api/v1/reservations", params=params, headers=city.server.api_headers())
    assert answer.status_code == 200, answer.text
    return list(answer.json())


@pytest.mark.parametrize("ocpp_version", BOTH_VERSIONS, indirect=True)
async def test_a_members_hold_is_a_reservation_from_request_to_cancellation(city: City) -> None:
    member = await city.sign_up(1)
    async with connect(city.server, ORIGIN) as a:
        await a.boot()
        held = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=member.headers())
        assert held.status_code == 201, held.text
        hold = held.json()["car_hold"]

        async def answered() -> bool:
            rows = await listed(city, origin="car-sharing")
            return len(rows) == 1 and rows[0]["status"] == "Accepted"

        await wait_until(answered)
        [row] = await listed(city, id_tag=member.badge)
        assert (row["id"], row["charge_point_id"], row["connector_id"], row["rental_id"], row["origin"]) == \
            (hold["reservation_id"], ORIGIN, 1, held.json()["rental_id"], "car-sharing")
        assert datetime.fromisoformat(row["expires_at"]) == datetime.fromisoformat(hold["expires_at"])
        refused = await city.client.delete(f"/api/v1/reservations/{row['id']}", headers=city.server.api_headers())
        assert refused.status_code == 409 and refused.json()["title"] == "car-sharing-hold"
        assert (await city.client.delete("/api/v1/me/reservation", headers=member.headers())).status_code == 200
        [row] = await listed(city, charge_point=ORIGIN)
        assert row["status"] == "Cancelled" and row["detail"] == "car sharing: cancel"


async def test_a_bay_reserved_through_the_api_is_not_given_to_a_member(city: City) -> None:
    member = await city.sign_up(1)
    assert (await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID},
                                   headers=member.headers())).status_code == 201
    async with connect(city.server, "st-b-1") as b1:
        await b1.boot()
        operator = await city.client.post("/api/v1/charge-points/st-b-1/reservations",
                                          json={"connector_id": 1, "id_tag": "VAN-7", "minutes": 60},
                                          headers=city.server.api_headers())
        assert operator.status_code == 201 and operator.json()["status"] == "Accepted", operator.text
        bay = await city.client.post("/api/v1/me/reservation/bay", json={"station_id": "st-b"},
                                     headers=member.headers())
        assert bay.status_code == 201, bay.text
        assert bay.json()["bay_hold"]["dock"] == ["st-b-2", 1]  # st-b-1 is the operator's
        assert {r["origin"] for r in await listed(city, status="Requested") + await listed(city, status="Accepted")} \
            <= {"api", "car-sharing"}
        assert [r["charge_point_id"] for r in await listed(city, origin="api")] == ["st-b-1"]

        async def told() -> bool:
            return bool(b1.got("ReserveNow"))

        await wait_until(told)


def _hold(reservation_id: int, dock: str, expires_at: datetime) -> dict[str, Any]:
    return {"reservation_id": reservation_id, "dock": [dock, 1], "expires_at": expires_at.isoformat()}


def test_migration_0022_carries_the_holds_rentals_had_over(database_url: str) -> None:
    store = Store(database_url)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        upgrade(store.engine)
        command.downgrade(alembic_config(store.engine), "0021")  # the schema before reservations
        live = {"member_id_tag": "BADGE-1", "car_id_tag": "CAR1", "car_hold": _hold(11, "st-a-1", now + timedelta(
            minutes=20)), "bay_hold": _hold(12, "st-b-1", now - timedelta(minutes=5))}
        closed = {"member_id_tag": "BADGE-2", "car_id_tag": "CAR2", "car_hold": None, "bay_hold": None}
        with store.engine.begin() as conn:
            for rental_id, data, state in (("r-live", live, "reserved"), ("r-closed", closed, "closed")):
                conn.execute(rentals.insert().values(id=rental_id, city="paris", member_id="m", car_id=rental_id,
                                                     state=state, data=data, created_at=now, updated_at=now))
        upgrade(store.engine)
        with store.engine.connect() as conn:
            rows = {r["id"]: dict(r) for r in conn.execute(select(reservations)).mappings()}
        assert set(rows) == {11, 12}
        assert (rows[11]["status"], rows[11]["id_tag"], rows[11]["charge_point_id"], rows[11]["rental_id"]) == \
            ("Requested", "BADGE-1", "st-a-1", "r-live")
        assert (rows[12]["status"], rows[12]["id_tag"], rows[12]["origin"]) == ("Expired", "CAR1", "car-sharing")
        assert rows[11]["expires_at"] == now + timedelta(minutes=20)
        command.downgrade(alembic_config(store.engine), "0021")
        upgrade(store.engine)
        with store.engine.connect() as conn:
            assert len(conn.execute(select(reservations.c.id)).all()) == 2
    finally:
        store.close()


async def test_an_id_an_operator_gave_by_hand_is_never_given_to_a_hold(city: City,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A raw ReserveNow's id is in the table, and car sharing draws from the API's allocator, inside
    its own transaction: an id taken is skipped, never a primary-key error (the random draw is steered
    onto it); a hold's id cannot be taken or cancelled by hand."""
    member = await city.sign_up(1)
    expiry = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    async with connect(city.server, ORIGIN) as a:
        await a.boot()
        raw = await city.client.post(f"/api/v1/charge-points/{ORIGIN}/commands/ReserveNow",
                                     headers=city.server.api_headers(),
                                     json={"connectorId": 2, "expiryDate": expiry, "idTag": "VAN-9",
                                           "reservationId": 4242})
        assert raw.status_code == 200 and raw.json()["response"] == {"status": "Accepted"}, raw.text
        # secrets.randbelow(n) + 1: 4242 (taken) five times, then 4343. Drawn outside the table, an id
        # taken was a primary-key error: the write ran again (at most twice more), then the member got a 409.
        draws = iter([4242 - 1] * 5 + [4343 - 1])
        monkeypatch.setattr("voltlib.store.reservations.secrets.randbelow", lambda n: next(draws))
        held = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=member.headers())
        assert held.status_code == 201, held.text
        assert held.json()["car_hold"]["reservation_id"] == 4343
        monkeypatch.undo()
        [mine] = await listed(city, origin="api")
        assert (mine["id"], mine["status"], mine["id_tag"], mine["detail"]) == (4242, "Accepted", "VAN-9",
                                                                                 "ReserveNow command")

        taken = await city.client.post(f"/api/v1/charge-points/{ORIGIN}/commands/ReserveNow",
                                       headers=city.server.api_headers(),
                                       json={"connectorId": 2, "expiryDate": expiry, "idTag": "VAN-9",
                                             "reservationId": 4343})
        assert taken.status_code == 409 and taken.json()["title"] == "reservation-id-taken", taken.text
        kept = await city.client.post(f"/api/v1/charge-points/{ORIGIN}/commands/CancelReservation",
                                      headers=city.server.api_headers(), json={"reservationId": 4343})
        assert kept.status_code == 409 and kept.json()["title"] == "car-sharing-hold", kept.text
        assert [c["reservation_id"] for c in a.got("ReserveNow")] == [4242, 4343] and not a.got("CancelReservation")
