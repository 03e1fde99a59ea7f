"""Reservations over HTTP (issue 20), against a simulated charge point of each OCPP version over a
real WebSocket, on SQLite and PostgreSQL: voltlib allocates the id and sends ReserveNow, the
charge point's answer is the reservation's status, a transaction started on it marks it Used, one
past its expiry reads Expired (a 2.0.1 station's ReservationStatusUpdate stores it), DELETE sends
CancelReservation; filters and cursor pages; hostile requests get problems."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import BOTH_VERSIONS, RunningServer
from tests.integration.test_operator_cli import cli
from tests.integration.test_transactions_api import all_pages
from tests.sim.test_chargepoint import FAST, eventually, simulated


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def reserve(api: httpx.AsyncClient, cp_id: str, **body: Any) -> dict[str, Any]:
    answer = await api.post(f"/api/v1/charge-points/{cp_id}/reservations", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.headers["Location"] == f"/api/v1/reservations/{answer.json()['id']}"
    return dict(answer.json())


@pytest.mark.parametrize("ocpp_version", BOTH_VERSIONS, indirect=True)
async def test_a_reservation_through_its_life(server: RunningServer) -> None:
    cp_id = "CP-RES"
    await server.add_charge_point(cp_id)
    for tag in ("R-1", "R-2", "R-3"):
        await server.add_id_tag(tag)
    async with simulated(server, cp_id, options=FAST, ocpp_version=server.station_version) as cp, \
            httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=15) as api:
        assert await cp.wait_accepted(10)
        first = await reserve(api, cp_id, connector_id=1, id_tag="R-1", minutes=30)
        assert first["status"] == "Accepted" and first["origin"] == "api" and first["requested_by"]
        assert cp.connectors[1].reservation is not None
        assert cp.connectors[1].reservation.reservation_id == first["id"]  # the id voltlib chose reached it
        taken = await reserve(api, cp_id, connector_id=1, id_tag="R-2")
        assert taken["status"] == "Occupied" and taken["id"] != first["id"]
        nowhere = await reserve(api, cp_id, connector_id=9, id_tag="R-2")
        assert nowhere["status"] == "Rejected"

        cp.start_transaction(1, "R-1", trigger="Authorized")  # the holder arrives: its reservation is used

        async def used() -> dict[str, Any] | None:
            row = (await api.get(f"/api/v1/reservations/{first['id']}")).json()
            return row if row["status"] == "Used" else None

        row = await eventually(used)
        [tx] = (await api.get(f"/api/v1/charge-points/{cp_id}/transactions")).json()
        assert row["transaction_id"] == tx["id"] and tx["reservation_id"] == first["id"]

        second = await reserve(api, cp_id, connector_id=2, id_tag="R-3")
        assert second["status"] == "Accepted" and cp.connectors[2].reservation is not None
        cancelled = await api.delete(f"/api/v1/reservations/{second['id']}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "Cancelled", cancelled.text
        assert cp.connectors[2].reservation is None  # CancelReservation reached the charge point
        again = await api.delete(f"/api/v1/reservations/{second['id']}")
        assert again.status_code == 409 and again.json()["title"] == "not-open"

        lapsing = await reserve(api, cp_id, connector_id=2, id_tag="R-3",
                                expires_at=iso(datetime.now(UTC) + timedelta(seconds=2)))
        assert lapsing["status"] == "Accepted"

        async def expired() -> dict[str, Any] | None:
            row = (await api.get(f"/api/v1/reservations/{lapsing['id']}")).json()
            return row if row["status"] == "Expired" and cp.connectors[2].reservation is None else None

        await eventually(expired)
        if server.station_version == "2.0.1":  # the station said so (ReservationStatusUpdate): stored

            async def stored() -> bool:
                row = (await api.get(f"/api/v1/reservations/{lapsing['id']}")).json()
                return row["detail"] == "ReservationStatusUpdate"

            await eventually(stored)

        everything, pages = await all_pages(api, "/api/v1/reservations?limit=2")
        assert [r["id"] for r in everything] == [lapsing["id"], second["id"], nowhere["id"], taken["id"], first["id"]]
        assert pages == 3
        statuses = {r["id"]: r["status"] for r in everything}
        assert statuses == {first["id"]: "Used", taken["id"]: "Occupied", nowhere["id"]: "Rejected",
                            second["id"]: "Cancelled", lapsing["id"]: "Expired"}
        by_tag = (await api.get("/api/v1/reservations", params={"id_tag": "R-3"})).json()
        assert [r["id"] for r in by_tag] == [lapsing["id"], second["id"]]
        only = (await api.get(f"/api/v1/charge-points/{cp_id}/reservations", params={"status": "Used"})).json()
        assert [r["id"] for r in only] == [first["id"]]
        assert (await api.get("/api/v1/reservations", params={"charge_point": "CP-ELSEWHERE"})).json() == []
        assert (await api.get("/api/v1/reservations", params={"origin": "car-sharing"})).json() == []


async def test_hostile_reservation_requests_get_problems(server: RunningServer) -> None:
    await server.add_charge_point("CP-RES-BAD")
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=15) as api:
        url = "/api/v1/charge-points/CP-RES-BAD/reservations"
        later = iso(datetime.now(UTC) + timedelta(minutes=5))
        for body, status in [({"id_tag": "T", "minutes": 0}, 422), ({"id_tag": ""}, 422),
                             ({"id_tag": "T", "connector_id": -1}, 422),
                             ({"id_tag": "T", "expires_at": later, "minutes": 5}, 422),
                             ({"id_tag": "T", "expires_at": "2020-01-01T00:00:00Z"}, 422),
                             ({"id_tag": "T", "expires_at": "2999-01-01T00:00:00Z"}, 422),
                             ({"id_tag": "T", "expires_at": "2030-01-01T00:00:00"}, 422),
                             ({"id_tag": "T", "surprise": 1}, 422)]:
            answer = await api.post(url, json=body)
            assert answer.status_code == status, (body, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
        unknown = await api.post("/api/v1/charge-points/CP-NOBODY/reservations", json={"id_tag": "T"})
        assert unknown.status_code == 404
        assert (await api.get("/api/v1/reservations", params={"status": "Pending"})).status_code == 400
        assert (await api.get("/api/v1/reservations", params={"cursor": "garbage"})).status_code == 400
        for odd in ("0", "-1", "99999999999", "x"):
            assert (await api.get(f"/api/v1/reservations/{odd}")).status_code == 404
            assert (await api.delete(f"/api/v1/reservations/{odd}")).status_code == 404
        offline = await api.post(url, json={"id_tag": "T", "connector_id": 1})  # not connected: never sent
        assert offline.status_code == 201 and offline.json()["status"] == "Failed", offline.text
        assert (await api.get("/api/v1/reservations", params={"status": "Failed"})).json()[0]["id"] == \
            offline.json()["id"]


async def test_an_operator_reserves_lists_and_cancels_from_the_cli(server: RunningServer) -> None:
    await server.add_charge_point("CP-RES-CLI")
    await server.add_id_tag("R-CLI")
    async with simulated(server, "CP-RES-CLI", options=FAST) as cp:
        assert await cp.wait_accepted(10)
        made = await cli(server, "reservation", "make", "CP-RES-CLI", "R-CLI", "--connector", "1", "--minutes", "20",
                         "--json")
        assert made.exit_code == 0, made.output
        row = json.loads(made.output)
        assert row["status"] == "Accepted" and cp.connectors[1].reservation is not None
        refused = await cli(server, "reservation", "make", "CP-RES-CLI", "R-CLI", "--connector", "1")
        assert refused.exit_code == 2 and "Occupied" in refused.output
        table = await cli(server, "reservation", "list", "--cp", "CP-RES-CLI")
        assert table.exit_code == 0 and "2 reservation(s)" in table.output and str(row["id"]) in table.output
        accepted = await cli(server, "reservation", "list", "--status", "Accepted", "--json")
        assert [r["id"] for r in json.loads(accepted.output)] == [row["id"]]
        cancelled = await cli(server, "reservation", "cancel", str(row["id"]), "--json")
        assert cancelled.exit_code == 0 and json.loads(cancelled.output)["status"] == "Cancelled", cancelled.output
        assert cp.connectors[1].reservation is None
        shown = await cli(server, "reservation", "show", str(row["id"]))
        assert shown.exit_code == 0 and "Cancelled" in shown.output
        again = await cli(server, "reservation", "cancel", str(row["id"]))
        assert again.exit_code == 1 and "409 not-open" in again.output
