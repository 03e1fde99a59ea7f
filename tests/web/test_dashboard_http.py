"""Dashboard sessions over plain HTTP: token exchange, cookie flags, the API through the cookie with
its CSRF header, logout, assets, and the live stream's role filter."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import aiohttp

from voltlib.events import ConnectorStatusChanged, SecurityIncident
from voltlib.web.sessions import Sessions, digest

from .conftest import WebServer


def _client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # keep cookies of 127.0.0.1


async def _login(http: aiohttp.ClientSession, url: str, token: str) -> aiohttp.ClientResponse:
    return await http.post(f"{url}/dashboard/login", json={"token": token})


async def test_login_sets_a_strict_httponly_cookie_and_the_api_accepts_it(web_server: WebServer) -> None:
    operator = await web_server.new_token("operator")
    async with _client() as http:
        response = await _login(http, web_server.url, operator)
        assert response.status == 200
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and operator not in cookie
        session = await (await http.get(f"{web_server.url}/dashboard/session")).json()
        assert session["authenticated"] and session["role"] == "operator"
        listed = await http.get(f"{web_server.url}/api/v1/charge-points")
        assert listed.status == 200
        # a write through the cookie needs the CSRF header
        body = {"id": "CP-web-1", "security_profile": 0}
        refused = await http.post(f"{web_server.url}/api/v1/charge-points", json=body)
        assert refused.status == 403 and (await refused.json())["title"] == "csrf"
        created = await http.post(f"{web_server.url}/api/v1/charge-points", json=body,
                                  headers={"X-Requested-With": "voltlib"})
        assert created.status == 201
        # the role still applies: operators may not read the raw message log
        forbidden = await http.get(f"{web_server.url}/api/v1/charge-points/CP-web-1/messages")
        assert forbidden.status == 403
        out = await http.post(f"{web_server.url}/dashboard/logout", headers={"X-Requested-With": "voltlib"})
        assert out.status == 200
        assert (await http.get(f"{web_server.url}/api/v1/charge-points")).status == 401


async def test_bad_tokens_and_member_tokens_cannot_log_in(web_server: WebServer) -> None:
    member = await web_server.new_token("member")
    async with _client() as http:
        bad = await _login(http, web_server.url, "vlt_nope")
        assert bad.status == 401 and (await bad.json())["title"] == "unauthenticated"
        empty = await _login(http, web_server.url, "")
        assert empty.status == 422
        refused = await _login(http, web_server.url, member)
        assert refused.status == 403
        assert "voltlib_session" not in {c.key for c in http.cookie_jar}


async def test_assets_are_served_from_the_package_and_nothing_else(web_server: WebServer) -> None:
    async with _client() as http:
        page = await http.get(f"{web_server.url}/dashboard/")
        assert page.status == 200 and "default-src 'self'" in page.headers["Content-Security-Policy"]
        js = await http.get(f"{web_server.url}/dashboard/static/app.js")
        assert js.status == 200 and js.content_type == "text/javascript"
        for name in ("nope.js", "..%2Fapp.py", "__init__.py"):
            assert (await http.get(f"{web_server.url}/dashboard/static/{name}")).status == 404


async def _next_data(stream: aiohttp.ClientResponse) -> dict[str, object]:
    while True:
        line = (await stream.content.readline()).decode()
        if line.startswith("data: ") and line.strip() != "data: {}":
            result: dict[str, object] = json.loads(line[6:])
            return result


async def test_live_stream_delivers_bus_events_by_role(web_server: WebServer) -> None:
    bus = web_server.gateway.services.bus
    now = datetime.now(UTC)
    incident = SecurityIncident(charge_point_id="CP-9", at=now, kind="auth-failure", severity="high", source="x",
                                detail={})
    status = ConnectorStatusChanged(charge_point_id="CP-9", at=now, connector_id=1, previous="Available",
                                    status="Faulted", error_code="GroundFailure", vendor_error_code=None, info=None,
                                    expected=True)
    for role, first in (("operator", "ocpp.status"), ("security", "security.incident")):
        async with _client() as http:
            await _login(http, web_server.url, await web_server.new_token(role))
            async with http.get(f"{web_server.url}/dashboard/events") as stream:
                assert stream.headers["Content-Type"].startswith("text/event-stream")
                assert (await stream.content.readline()).startswith(b"event: hello")
                await bus.publish(incident)
                await bus.publish(status)
                received = await asyncio.wait_for(_next_data(stream), 10)
                assert received["topic"] == first and received["charge_point_id"] == "CP-9"
    async with _client() as http:
        assert (await http.get(f"{web_server.url}/dashboard/events")).status == 401


def test_sessions_keep_only_a_hash_and_expire() -> None:
    sessions = Sessions(lifetime=timedelta(hours=1))
    now = datetime(2026, 11, 28, tzinfo=UTC)
    session_id = sessions.open("alice", "operator", now)
    assert session_id not in repr(sessions.__dict__) and digest(session_id) in repr(sessions.__dict__)
    found = sessions.find(session_id, now + timedelta(minutes=59))
    assert found is not None and found.principal == "alice"
    assert sessions.find(session_id, now + timedelta(hours=1)) is None
    assert sessions.find("guess", now) is None
    sessions.close(session_id)
    assert sessions.find(session_id, now) is None
