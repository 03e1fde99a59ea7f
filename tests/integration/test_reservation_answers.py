"""Every way a reservation can go, over HTTP on SQLite and PostgreSQL, with a raw charge point that
answers what each test sets (issue 20): each refusal of ReserveNow is the reservation's status, no
answer leaves it Requested (the charge point may hold it), an offline charge point makes it Failed;
DELETE when the charge point says it holds none (Rejected: Cancelled all the same) or is offline
(502, still open). A raw ReserveNow / CancelReservation command is the same reservation in the one
table, in either OCPP version, waited for or not."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import BOTH_VERSIONS, RunningServer
from tests.integration.test_command_port import mixed, post  # noqa: F401 (mixed: a fixture)
from tests.sim.test_chargepoint import eventually

CP = "CP-ANS"


async def _connected(api: httpx.AsyncClient, connected: bool) -> None:
    async def state() -> bool | None:
        return True if (await api.get(f"/api/v1/charge-points/{CP}")).json()["connected"] is connected else None

    await eventually(state)


async def test_every_answer_to_reservenow_is_the_reservations_status(server: RunningServer) -> None:
    await server.add_charge_point(CP)
    await server.add_id_tag("R-A")
    body = {"connector_id": 1, "id_tag": "R-A", "minutes": 30}
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=20) as api:
        async def reserve() -> dict[str, Any]:
            made = await api.post(f"/api/v1/charge-points/{CP}/reservations", json=body)
            assert made.status_code == 201, made.text
            listed = (await api.get("/api/v1/reservations", params={"status": made.json()["status"]})).json()
            assert made.json()["id"] in [r["id"] for r in listed]
            return dict(made.json())

        async with post(server, CP, "1.6") as station:
            for status in ("Faulted", "Unavailable", "Occupied", "Rejected"):
                station.replies["ReserveNow"] = {"status": status}
                assert (await reserve())["status"] == status
            station.silent.add("ReserveNow")  # times out (command_timeout 5 s): the charge point may hold it
            unanswered = await reserve()
            assert (unanswered["status"], unanswered["detail"]) == ("Requested", "no answer to ReserveNow (timeout)")
            station.silent.clear()
            station.replies["ReserveNow"] = {"status": "Accepted"}
            first, second = await reserve(), await reserve()
            assert first["status"] == second["status"] == "Accepted"
            station.replies["CancelReservation"] = {"status": "Rejected"}  # it holds none: ended all the same
            gone = await api.delete(f"/api/v1/reservations/{first['id']}")
            assert gone.status_code == 200, gone.text
            assert (gone.json()["status"], gone.json()["detail"]) == \
                ("Cancelled", f"by {gone.json()['requested_by']}; the charge point did not hold it")
            assert ("CancelReservation", {"reservationId": first["id"]}) in station.received
        await _connected(api, False)
        stuck = await api.delete(f"/api/v1/reservations/{second['id']}")
        assert stuck.status_code == 502 and stuck.headers["Content-Type"].startswith("application/problem+json")
        assert (stuck.json()["title"], stuck.json()["command"]["state"]) == ("not-cancelled", "offline")
        assert (await api.get(f"/api/v1/reservations/{second['id']}")).json()["status"] == "Accepted"
        failed = await reserve()
        assert (failed["status"], failed["detail"]) == ("Failed", "ReserveNow offline")


def _reserve_now(version: str, reservation_id: int, tag: str) -> dict[str, Any]:
    expiry = (datetime.now(UTC) + timedelta(minutes=20)).isoformat().replace("+00:00", "Z")
    if version == "1.6":
        return {"connectorId": 1, "expiryDate": expiry, "idTag": tag, "reservationId": reservation_id}
    return {"id": reservation_id, "expiryDateTime": expiry, "idToken": {"idToken": tag, "type": "Central"},
            "evseId": 1}


@pytest.mark.parametrize("version", BOTH_VERSIONS)
async def test_a_raw_reservenow_is_a_reservation_of_the_table(mixed: RunningServer, version: str) -> None:  # noqa: F811
    server = mixed
    await server.add_charge_point(CP)
    await server.add_charge_point("CP-ELSEWHERE")  # never connected: spoken to in 1.6
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=20) as api:
        async def command(cp_id: str, action: str, payload: dict[str, Any], **params: str) -> httpx.Response:
            return await api.post(f"/api/v1/charge-points/{cp_id}/commands/{action}", json=payload, params=params)

        async def reservation(reservation_id: int) -> dict[str, Any]:
            return dict((await api.get(f"/api/v1/reservations/{reservation_id}")).json())

        def until(reservation_id: int, status: str) -> Callable[[], Awaitable[dict[str, Any] | None]]:
            async def check() -> dict[str, Any] | None:
                row = await reservation(reservation_id)
                return row if row["status"] == status else None
            return check

        async with post(server, CP, version) as station:
            sent = await command(CP, "ReserveNow", _reserve_now(version, 5150, "RAW-1"))
            assert sent.status_code == 200 and sent.json()["state"] == "answered", sent.text
            row = await reservation(5150)
            assert (row["status"], row["origin"], row["id_tag"], row["charge_point_id"], row["detail"]) == \
                ("Accepted", "api", "RAW-1", CP, "ReserveNow command")
            assert row["requested_by"] == sent.json()["requested_by"] is not None
            assert [r["id"] for r in (await api.get(f"/api/v1/charge-points/{CP}/reservations")).json()] == [5150]

            taken = await command("CP-ELSEWHERE", "ReserveNow", _reserve_now("1.6", 5150, "RAW-2"))
            assert taken.status_code == 409 and taken.json()["title"] == "reservation-id-taken", taken.text
            assert taken.json()["reservation"]["charge_point_id"] == CP

            again = await command(CP, "ReserveNow", _reserve_now(version, 5150, "RAW-2"))  # OCPP: replaces it
            assert again.status_code == 200 and (await reservation(5150))["id_tag"] == "RAW-2"

            station.replies["ReserveNow"] = {"status": "Occupied"}
            later = await command(CP, "ReserveNow", _reserve_now(version, 5151, "RAW-3"), wait="false")
            assert later.status_code == 202, later.text
            await eventually(until(5151, "Occupied"))  # nobody waited: the answer is stored all the same

            ended = await command(CP, "CancelReservation", {"reservationId": 5150}, wait="false")
            assert ended.status_code == 202, ended.text
            row = await eventually(until(5150, "Cancelled"))
            assert row["detail"] == f"by {sent.json()['requested_by']}"
            assert [a for a, _ in station.received].count("ReserveNow") == 3

        offline = await command("CP-ELSEWHERE", "ReserveNow", _reserve_now("1.6", 5152, "RAW-4"))
        assert offline.status_code == 200 and offline.json()["state"] == "offline", offline.text
        assert ((await reservation(5152))["status"], (await reservation(5152))["detail"]) == \
            ("Failed", "ReserveNow offline")
        nothing = await command(CP, "ReserveNow", {"reservationId": 5153})  # invalid: refused as ever, not kept
        assert nothing.status_code == 422 and (await api.get("/api/v1/reservations/5153")).status_code == 404
