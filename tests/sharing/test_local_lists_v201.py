"""Local authorisation on a 2.0.1 station (D01, D02; C11 ClearCache): the raw commands relayed in
2.0.1, and the car-sharing badge block pushed as a Full list to a station that never had one, then
as Differential updates; over real WebSockets, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.conformance.conftest import wait_until
from tests.integration.test_command_port import AnsweringPost, post
from tests.sharing.conftest import City
from tests.sharing.test_reservations_v201 import city201
from voltlib.ocpp import schemas

__all__ = ["city201"]  # fixture
CS = "st-a-1"


def got(station: AnsweringPost, action: str) -> list[dict[str, Any]]:
    return [payload for name, payload in station.received if name == action]


async def test_clear_cache_and_get_local_list_version_are_relayed_in_2_0_1(city201: City) -> None:
    server = city201.server
    async with post(server, CS, "2.0.1") as station:
        station.replies["GetLocalListVersion"] = {"versionNumber": 1765098000}
        station.replies["ClearCache"] = {"status": "Rejected"}
        base = f"/api/v1/charge-points/{CS}/commands"
        version = await city201.client.post(f"{base}/GetLocalListVersion", json={}, headers=server.api_headers())
        cleared = await city201.client.post(f"{base}/ClearCache", json={}, headers=server.api_headers())
        old = await city201.client.post(f"{base}/GetLocalListVersion", json={"connectorId": 0},
                                        headers=server.api_headers())  # a 1.6-looking payload: refused
    assert version.status_code == 200 and version.json()["state"] == "answered"
    assert version.json()["response"] == {"versionNumber": 1765098000}
    assert cleared.json()["state"] == "answered" and cleared.json()["response"] == {"status": "Rejected"}
    assert old.status_code == 422 and old.json()["title"] == "invalid-payload"
    assert got(station, "GetLocalListVersion") == [{}] and got(station, "ClearCache") == [{}]


async def test_blocked_badges_reach_a_2_0_1_station_as_a_full_list_then_differential_updates(
        city201: City) -> None:
    server = city201.server
    first, second = await city201.sign_up(1), await city201.sign_up(2)
    headers = server.api_headers()
    offline = await city201.client.post(f"/api/v1/badges/{first.badge}/block", json={"reason": "lost"},
                                        headers=headers)
    assert offline.status_code == 200 and offline.json()["connected"] == 0
    async with post(server, CS, "2.0.1") as station:
        async def caught_up() -> bool:
            return bool(got(station, "SendLocalList"))

        await wait_until(caught_up)  # boot Accepted: the station never had a list, it gets a full one
        online = await city201.client.post(f"/api/v1/badges/{second.badge}/block", json={"reason": "stolen"},
                                           headers=headers)
        assert online.status_code == 200 and online.json()["pushed_to"] == 1
        detail = (await city201.client.get(f"/api/v1/charge-points/{CS}", headers=headers)).json()
    full, differential = got(station, "SendLocalList")
    for payload in (full, differential):
        schemas.validate("2.0.1", "SendLocalList", "request", payload)
    assert full["updateType"] == "Full" and full["versionNumber"] == offline.json()["list_version"]
    assert full["localAuthorizationList"] == [{"idToken": {"idToken": first.badge, "type": "ISO14443"},
                                               "idTokenInfo": {"status": "Blocked"}}]
    assert differential["updateType"] == "Differential"
    assert differential["versionNumber"] == online.json()["list_version"] > full["versionNumber"]
    assert differential["localAuthorizationList"] == [{"idToken": {"idToken": second.badge, "type": "ISO14443"},
                                                       "idTokenInfo": {"status": "Blocked"}}]
    assert detail["local_list_version"] == online.json()["list_version"]  # what the station accepted last
