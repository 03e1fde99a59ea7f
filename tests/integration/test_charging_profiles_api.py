"""Charging profiles as a resource over HTTP (issue 20 part 3, issue 17 K), on SQLite and
PostgreSQL, with a real simulated charge point of each OCPP version over a WebSocket: stored
profiles checked and paged, installed by id (SetChargingProfile in the charge point's words),
listed as the charge point holds them, read back (GetCompositeSchedule; GetChargingProfiles and
its ReportChargingProfiles parts on 2.0.1), cleared by id and by criteria, smart charging's own
profiles read-only, and every answer valid against the OpenAPI document."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conformance.conftest import wait_until
from tests.conftest import BOTH_VERSIONS, PASSWORD, RunningServer
from tests.integration.test_openapi import check, success
from voltlib.domain import charging
from voltlib.domain.commands import LimitPower
from voltlib.gateway.charging_profiles import SMART_CHARGING
from voltlib.sim import SimOptions, SimulatedChargePoint

pytestmark = pytest.mark.parametrize("ocpp_version", BOTH_VERSIONS, indirect=True)
OPTIONS = SimOptions(connectors=2, connector_power_w=7_400.0, max_power_w=11_000.0, call_timeout=5.0,
                     connect_timeout=5.0, reconnect_min=0.2, reconnect_max=1.0, tick=0.1)
CP = "CP-K"
NIGHT = {"name": "night cap", "purpose": "TxDefault", "stack_level": 2,
         "periods": [{"start_s": 0, "limit_w": 3700}, {"start_s": 3600, "limit_w": 7400}]}


@pytest_asyncio.fixture
async def post(server: RunningServer) -> AsyncIterator[SimulatedChargePoint]:
    await server.add_charge_point(CP)
    cp = SimulatedChargePoint(CP, server.ws_url, password=PASSWORD, options=OPTIONS,
                              ocpp_version=server.station_version)
    async with contextlib.AsyncExitStack() as stack:
        await cp.start()
        stack.push_async_callback(cp.stop)
        assert await cp.wait_accepted(10)
        yield cp


class Api:
    """An HTTP client that checks each successful answer against the OpenAPI document."""

    def __init__(self, client: httpx.AsyncClient, doc: dict[str, Any]) -> None:
        self.client, self.doc = client, doc

    async def call(self, method: str, path: str, template: str, expect: int, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        assert response.status_code == expect, (method, path, response.text)
        if expect >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
            return response.json()
        status, described = success(self.doc["paths"][template][method.lower()])
        assert str(expect) == status
        check(self.doc, described["content"]["application/json"]["schema"], response.json())
        return response.json()


def ids_on(cp: SimulatedChargePoint) -> set[int]:
    return {p.id for p in cp.profiles.profiles}


async def test_store_install_list_refresh_and_clear(server: RunningServer, post: SimulatedChargePoint) -> None:
    v201 = server.station_version == "2.0.1"
    cp_path = f"/api/v1/charge-points/{CP}/charging-profiles"
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=30) as client:
        api = Api(client, (await client.get("/api/v1/openapi.json")).json())
        stored = "/api/v1/charging-profiles"
        night = await api.call("POST", stored, stored, 201, json=NIGHT)
        assert night["charging_profile_id"] == night["id"] + 1000 and night["created_by"].startswith("test-")
        peak = await api.call("POST", stored, stored, 201, json={
            "name": "site max", "purpose": "ChargePointMax", "periods": [{"start_s": 0, "limit_w": 9000}],
            "kind": "Recurring", "recurrency": "Daily", "start_at": "2026-01-01T06:00:00Z", "duration_s": 43200})
        clash = await api.call("POST", stored, stored, 201, json={**NIGHT, "name": "on the safe start",
                                                                   "stack_level": 0})
        for bad, title in [({**NIGHT, "name": "other", "periods": [{"start_s": 60, "limit_w": 1}]}, "invalid-profile"),
                           ({**NIGHT, "name": "other", "kind": "Recurring"}, "invalid-profile"),
                           ({**NIGHT, "name": "other", "kind": "Relative", "start_at": "2026-01-01T00:00:00Z"},
                            "invalid-profile"),
                           ({**NIGHT, "name": "other", "start_at": "2026-01-01T00:00:00"}, "invalid-body"),
                           ({**NIGHT, "name": "other", "purpose": "Everything"}, "invalid-body"),
                           ({**NIGHT, "name": "other", "periods": [{"start_s": 0, "limit_w": -5}]}, "invalid-body"),
                           ({**NIGHT, "name": "other", "surprise": 1}, "invalid-body"),
                           ({**NIGHT, "name": "other", "periods": []}, "invalid-body")]:
            assert (await api.call("POST", stored, stored, 422, json=bad))["title"] == title, bad
        assert (await api.call("POST", stored, stored, 409, json=NIGHT))["title"] == "exists"
        first = await client.get(stored, params={"limit": 2})
        assert [r["name"] for r in first.json()] == ["night cap", "site max"] and "next" in first.links
        assert [r["name"] for r in (await client.get(first.links["next"]["url"])).json()] == ["on the safe start"]
        one = f"{stored}/{{profile_id}}"
        assert (await api.call("GET", f"{stored}/{night['id']}", one, 200))["installed_on"] == []
        for missing in ("999", "x", "-1", "1" * 30):
            await api.call("GET", f"{stored}/{missing}", one, 404)

        # installed by id, in the charge point's own version
        answer = await api.call("POST", cp_path, "/api/v1/charge-points/{cp_id}/charging-profiles", 200,
                                json={"profile_id": night["id"], "connector_id": 1})
        assert answer["status"] == "Accepted" and answer["command"]["action"] == "SetChargingProfile"
        sent = answer["command"]["request"]["chargingProfile" if v201 else "csChargingProfiles"]
        assert sent["chargingProfilePurpose"] == "TxDefaultProfile" and sent["stackLevel"] == 2
        assert night["charging_profile_id"] in ids_on(post)
        maximum = await api.call("POST", cp_path, "/api/v1/charge-points/{cp_id}/charging-profiles", 200,
                                 json={"profile_id": peak["id"]})
        assert maximum["status"] == "Accepted"
        sent = maximum["command"]["request"]["chargingProfile" if v201 else "csChargingProfiles"]
        assert (sent["chargingProfileKind"], sent["recurrencyKind"]) == ("Recurring", "Daily")
        for body, status, title in [({"profile_id": peak["id"], "connector_id": 1}, 422, "invalid-connector"),
                                    ({"profile_id": night["id"], "transaction_id": 5}, 422, "invalid-transaction"),
                                    ({"profile_id": 9999}, 404, "not-found"),
                                    ({"profile_id": "one"}, 422, "invalid-body")]:
            problem = await api.call("POST", cp_path, "", status, json=body)
            assert problem["title"] == title, body
        assert (await api.call("POST", "/api/v1/charge-points/NOPE/charging-profiles", "", 404,
                               json={"profile_id": night["id"]}))["title"] == "not-found"

        # smart charging's own profile: listed read-only, never cleared nor replaced by an operator
        safe = charging.charging_profile([charging.SchedulePeriod(0, 1500)], datetime.now(UTC), 2, "TxDefault")
        assert (await server.gateway.commands.send(CP, LimitPower(0, safe), requested_by=SMART_CHARGING)).accepted

        async def followed() -> bool:  # the follower's write is queued, not awaited
            return any(r["charging_profile_id"] == 2 for r in (await client.get(cp_path)).json()["profiles"])

        await wait_until(followed, timeout=10)
        held = await api.call("GET", cp_path, "/api/v1/charge-points/{cp_id}/charging-profiles", 200)
        by_id = {r["charging_profile_id"]: r for r in held["profiles"]}
        assert set(by_id) == {2, night["charging_profile_id"], peak["charging_profile_id"]}
        assert (by_id[2]["source"], by_id[2]["read_only"]) == ("smart-charging", True)
        mine = by_id[night["charging_profile_id"]]
        assert (mine["source"], mine["read_only"], mine["stored_profile_id"], mine["connector_id"]) == (
            "operator", False, night["id"], 1)
        assert [p["limit_w"] for p in mine["profile"]["periods"]] == [3700, 7400]
        assert by_id[peak["charging_profile_id"]]["purpose"] == "ChargePointMax"
        for clear in ({"purpose": "TxDefault"}, {"charging_profile_id": 2}, {}):
            problem = await api.call("POST", f"{cp_path}/clear", "", 409, json=clear)
            assert problem["title"] == "owned-by-smart-charging" and problem["profiles"] == [2], clear
        assert (await api.call("DELETE", f"{cp_path}/2", "", 409))["title"] == "owned-by-smart-charging"
        assert (await api.call("POST", cp_path, "", 409, json={"profile_id": clash["id"]}))["title"] == \
            "owned-by-smart-charging"
        assert 2 in ids_on(post)
        assert (await api.call("DELETE", f"{stored}/{night['id']}", "", 409))["charge_points"] == [CP]

        # read back what it holds
        refreshed = await api.call("POST", f"{cp_path}/refresh", "/api/v1/charge-points/{cp_id}/charging-profiles/"
                                   "refresh", 200, json={"duration_s": 600})
        assert [r["status"] for r in refreshed["composites"]] == ["Accepted"] * 3
        composites = {r["connector_id"]: r for r in (await client.get(cp_path)).json()["composite_schedules"]}
        assert set(composites) == {0, 1, 2} and composites[0]["duration_s"] == 600
        assert composites[1]["periods"][0]["limit_w"] <= 3700  # the night cap rules connector 1 now
        assert composites[2]["periods"][0]["limit_w"] <= 1500  # smart charging's safe start, connector 0's
        if v201:
            report = refreshed["report"]
            assert report is not None and report["full"] is True
            template = "/api/v1/charge-points/{cp_id}/charging-profiles/reports/{request_id}"

            async def complete() -> bool:
                row = (await client.get(f"{cp_path}/reports/{report['request_id']}")).json()
                return bool(row["status"] == "complete")

            await wait_until(complete, timeout=10)
            done = await api.call("GET", f"{cp_path}/reports/{report['request_id']}", template, 200)
            assert done["profiles"] == 3 and done["parts"] == 2  # one part per EVSE: 0 and 1
            reported = {r["charging_profile_id"]: r for r in (await client.get(cp_path)).json()["profiles"]}
            assert {r["request_id"] for r in reported.values()} == {report["request_id"]}
            assert reported[2]["source"] == "smart-charging" and reported[2]["limit_source"] == "CSO"
            await api.call("GET", f"{cp_path}/reports/4242", template, 404)
        else:
            assert refreshed["report"] is None

        # clear by id, then by criteria
        cleared = await api.call("DELETE", f"{cp_path}/{night['charging_profile_id']}",
                                 "/api/v1/charge-points/{cp_id}/charging-profiles/{charging_profile_id}", 200)
        assert cleared["status"] == "Accepted" and night["charging_profile_id"] not in ids_on(post)
        nothing = await api.call("POST", f"{cp_path}/clear", "/api/v1/charge-points/{cp_id}/charging-profiles/clear",
                                 200, json={"stack_level": 7})
        assert nothing["status"] == "Unknown"
        by_purpose = await api.call("POST", f"{cp_path}/clear", "/api/v1/charge-points/{cp_id}/charging-profiles/clear",
                                    200, json={"purpose": "ChargePointMax"})
        assert by_purpose["status"] == "Accepted" and ids_on(post) == {2}
        left = (await client.get(cp_path)).json()["profiles"]
        assert [r["charging_profile_id"] for r in left] == [2]
        assert (await api.call("DELETE", f"{stored}/{night['id']}", "/api/v1/charging-profiles/{profile_id}",
                               200)) == {"id": night["id"], "deleted": True}
        await api.call("GET", f"{stored}/{night['id']}", one, 404)


async def test_a_tx_profile_goes_with_its_transaction(server: RunningServer, post: SimulatedChargePoint) -> None:
    await server.add_id_tag("K-TAG")
    cp_path = f"/api/v1/charge-points/{CP}/charging-profiles"
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=30) as client:
        tx_profile = (await client.post("/api/v1/charging-profiles", json={
            "name": "boost", "purpose": "Tx", "stack_level": 3, "kind": "Relative",
            "periods": [{"start_s": 0, "limit_w": 5000}]})).json()
        post.plug_in(1)
        post.start_transaction(1, "K-TAG")

        async def open_tx() -> int | None:
            rows = (await client.get("/api/v1/transactions", params={"charge_point": CP, "open": "true"})).json()
            return int(rows[0]["id"]) if rows else None

        await wait_until(lambda: _truthy(open_tx()), timeout=10)
        tx = await open_tx()
        wrong = await client.post(cp_path, json={"profile_id": tx_profile["id"], "connector_id": 2,
                                                 "transaction_id": tx})
        assert wrong.status_code == 409 and wrong.json()["title"] == "no-open-transaction"
        answer = (await client.post(cp_path, json={"profile_id": tx_profile["id"], "connector_id": 1,
                                                   "transaction_id": tx})).json()
        assert answer["status"] == "Accepted", answer
        held = (await client.get(cp_path)).json()["profiles"]
        assert [(r["purpose"], r["profile"]["kind"]) for r in held] == [("Tx", "Relative")]
        assert held[0]["transaction_id"] is not None
        post.stop_transaction(1, reason="Local")

        async def gone() -> bool:
            return (await client.get(cp_path)).json()["profiles"] == []

        await wait_until(gone, timeout=10)


async def _truthy(value: Any) -> bool:
    return bool(await value)
