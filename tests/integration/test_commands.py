"""Central-system commands: validation, one outstanding call per connection, timeout, offline,
and every outcome stored."""

from __future__ import annotations

import asyncio
import json

import httpx
import websockets

from tests.conftest import RunningServer


async def test_calls_to_one_charge_point_are_sent_one_at_a_time(server: RunningServer) -> None:
    await server.add_charge_point("CP-Q", profile=0)
    async with websockets.connect(f"{server.ws_url}/CP-Q", subprotocols=["ocpp1.6"]) as ws, \
            httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=20) as api:
        first = asyncio.create_task(api.post("/api/v1/charge-points/CP-Q/commands/ClearCache", json={}))
        second = asyncio.create_task(api.post("/api/v1/charge-points/CP-Q/commands/GetLocalListVersion", json={}))
        frame_1 = json.loads(await ws.recv())
        # While the first call is unanswered, the second must not arrive.
        try:
            early = await asyncio.wait_for(ws.recv(), 0.5)
        except TimeoutError:
            early = None
        assert early is None
        await ws.send(json.dumps([3, frame_1[1], {"status": "Accepted"} if frame_1[2] == "ClearCache"
                                  else {"listVersion": 3}]))
        frame_2 = json.loads(await ws.recv())
        assert {frame_1[2], frame_2[2]} == {"ClearCache", "GetLocalListVersion"}
        assert frame_1[1] != frame_2[1]
        await ws.send(json.dumps([3, frame_2[1], {"status": "Accepted"} if frame_2[2] == "ClearCache"
                                  else {"listVersion": 3}]))
        results = [(await first).json(), (await second).json()]
    assert [r["state"] for r in results] == ["answered", "answered"]
    by_action = {r["action"]: r["response"] for r in results}
    assert by_action == {"ClearCache": {"status": "Accepted"}, "GetLocalListVersion": {"listVersion": 3}}


async def test_timeout_error_and_offline_outcomes_are_stored(server: RunningServer) -> None:
    await server.add_charge_point("CP-T", profile=0)
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=20) as api:
        offline = (await api.post("/api/v1/charge-points/CP-T/commands/Reset", json={"type": "Hard"})).json()
        assert offline["state"] == "offline"
        async with websockets.connect(f"{server.ws_url}/CP-T", subprotocols=["ocpp1.6"]) as ws:
            timed_out = (await api.post("/api/v1/charge-points/CP-T/commands/Reset?timeout=0.5",
                                        json={"type": "Soft"})).json()
            assert timed_out["state"] == "timeout"
            late = json.loads(await ws.recv())
            await ws.send(json.dumps([3, late[1], {"status": "Accepted"}]))  # too late: ignored

            async def refuse() -> None:
                frame = json.loads(await ws.recv())
                await ws.send(json.dumps([4, frame[1], "NotSupported", "no unlocking here", {}]))

            refusing = asyncio.create_task(refuse())
            failed = (await api.post("/api/v1/charge-points/CP-T/commands/UnlockConnector",
                                     json={"connectorId": 1})).json()
            await refusing

            async def answer_badly() -> None:
                frame = json.loads(await ws.recv())
                await ws.send(json.dumps([3, frame[1], {"status": "Maybe"}]))

            bad = asyncio.create_task(answer_badly())
            invalid = (await api.post("/api/v1/charge-points/CP-T/commands/ClearCache", json={})).json()
            await bad
        assert failed["state"] == "failed" and failed["error_code"] == "NotSupported"
        assert invalid["state"] == "failed" and "invalid response" in invalid["error_description"]
        history = (await api.get("/api/v1/charge-points/CP-T/commands")).json()
        assert [h["state"] for h in history] == ["failed", "failed", "timeout", "offline"]
        log = (await api.get("/api/v1/charge-points/CP-T/messages")).json()
        assert {"timeout", "error", "violation"} <= {row["outcome"] for row in log}


async def test_bad_commands_are_refused_before_anything_is_sent(server: RunningServer) -> None:
    await server.add_charge_point("CP-B", profile=0)
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        unknown = await api.post("/api/v1/charge-points/CP-B/commands/SelfDestruct", json={})
        assert unknown.status_code == 404
        assert unknown.headers["content-type"].startswith("application/problem+json")
        invalid = await api.post("/api/v1/charge-points/CP-B/commands/Reset", json={"type": "Gentle"})
        assert invalid.status_code == 422 and "type" in invalid.json()["detail"]
        not_json = await api.post("/api/v1/charge-points/CP-B/commands/Reset", content=b"{nope")
        assert not_json.status_code == 400
        nobody = await api.post("/api/v1/charge-points/NOBODY/commands/Reset", json={"type": "Soft"})
        assert nobody.status_code == 404
        assert (await api.get("/api/v1/charge-points/CP-B/commands")).json() == []
        anonymous = await httpx.AsyncClient(base_url=server.url).post(
            "/api/v1/charge-points/CP-B/commands/Reset", json={"type": "Soft"})
        assert anonymous.status_code == 401
