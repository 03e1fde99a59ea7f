"""OCPP 1.6 security profiles at the WebSocket upgrade, over real sockets (ws and wss), on SQLite
and PostgreSQL. Test names carry the OCA test case ids (OCTT, OCPP 1.6 security whitepaper
edition 3) where one corresponds."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from websockets.exceptions import InvalidStatus

from tests.conftest import PASSWORD, RunningServer, basic_auth, free_port, start_server
from tests.integration.tls_pki import Pki, make_pki
from voltlib.config import Settings
from voltlib.gateway.gateway import CommandError
from voltlib.server import tls_context, tls_site


@dataclass
class Env:
    server: RunningServer
    pki: Pki
    wss_url: str

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    def ssl(self, cp_id: str | None = None, *, trusted: bool = True) -> ssl.SSLContext:
        """A charge point's TLS context, presenting a client certificate for ``cp_id`` when given."""
        return self.pki.client_context(self.pki.charge_point(cp_id, trusted=trusted) if cp_id else None)

    async def events(self, cp_id: str | None = None) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.server.url, headers=self.server.api_headers()) as api:
            response = await api.get("/api/v1/security-events")
            assert response.status_code == 200
            rows: list[dict[str, Any]] = response.json()
        return [r for r in rows if cp_id is None or r["charge_point_id"] == cp_id]

    async def kinds(self, cp_id: str) -> list[str]:
        return [e["kind"] for e in await self.events(cp_id)]

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.server.url, headers=self.server.api_headers(),
                                     timeout=15) as api:
            return await api.request(method, path, **kwargs)


Launch = Callable[..., Awaitable[Env]]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest_asyncio.fixture
async def launch(database_url: str, pki: Pki) -> AsyncIterator[Launch]:
    """Starts voltlib with a plain listener and a TLS listener (server certificate from the test CA,
    client certificates verified against it); settings may be overridden."""
    async with AsyncExitStack() as stack:

        async def start(max_handshakes: int = 1000, **overrides: Any) -> Env:
            options: dict[str, Any] = {
                "database_url": database_url, "port": free_port(), "tls_port": free_port(),
                "tls_cert": pki.server.cert, "tls_key": pki.server.key, "tls_client_ca": pki.ca.cert,
                "command_timeout": 5.0, "duplicate_probe_timeout": 1.0, **overrides}
            settings = Settings(**options)
            runner, running = await start_server(settings)
            stack.push_async_callback(runner.cleanup)
            site = tls_site(runner, settings, running.gateway, reload_every=0.0,  # files looked at each handshake
                            max_handshakes=max_handshakes)
            assert site is not None
            await site.start()
            return Env(running, pki, f"wss://{settings.host}:{settings.tls_port}/ocpp")

        yield start


@pytest_asyncio.fixture
async def env(launch: Launch) -> Env:
    return await launch()


def connect(url: str, *, headers: dict[str, str] | None = None, tls: ssl.SSLContext | None = None,
            subprotocols: list[str] | None = None) -> Any:
    return websockets.connect(url, subprotocols=subprotocols or ["ocpp1.6"], additional_headers=headers, ssl=tls,
                              open_timeout=10)


async def refused(url: str, **kwargs: Any) -> int:
    """The HTTP status with which the upgrade is refused."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, **kwargs):
            pass
    return info.value.response.status_code


async def call(ws: Any, message_id: str, action: str, payload: dict[str, Any]) -> list[Any]:
    await ws.send(json.dumps([2, message_id, action, payload]))
    return list(json.loads(await ws.recv()))


BOOT = {"chargePointVendor": "voltlib", "chargePointModel": "test"}


async def boot(ws: Any) -> str:
    reply = await call(ws, f"boot-{uuid.uuid4().hex[:8]}", "BootNotification", BOOT)
    return str(reply[2]["status"])


async def answer_next_call(ws: Any, status: str = "Accepted") -> list[Any]:
    """Read the central system's next call, answer it with ``status``, return the call."""
    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert frame[0] == 2
    await ws.send(json.dumps([3, frame[1], {"status": status}]))
    return list(frame)


# -- profile 1: HTTP Basic over ws --------------------------------------------------------------


async def test_TC_085_BasicAuthenticationValidCredentials(env: Env) -> None:
    await env.server.add_charge_point("CP-1", profile=1)
    async with connect(f"{env.ws_url}/CP-1", headers=basic_auth("CP-1")) as ws:
        assert await boot(ws) == "Accepted"
        assert "CP-1" in env.server.gateway.connections


async def test_profile_1_refuses_wrong_missing_and_foreign_credentials(env: Env) -> None:
    await env.server.add_charge_point("CP-1", profile=1)
    await env.server.add_charge_point("CP-OTHER", profile=1)
    assert await refused(f"{env.ws_url}/CP-1", headers=basic_auth("CP-1", "wrong-password-but-long")) == 401
    assert await refused(f"{env.ws_url}/CP-1") == 401
    # the right password of another charge point, or the username not being the path's identity
    assert await refused(f"{env.ws_url}/CP-1", headers=basic_auth("CP-OTHER")) == 401
    kinds = await env.kinds("CP-1")
    assert kinds.count("auth_failed") == 2 and kinds.count("auth_missing") == 1
    refusal = next(e for e in await env.events("CP-1") if e["kind"] == "auth_missing")
    assert refusal["severity"] == "high" and refusal["detail"]["status"] == 401
    assert refusal["source"] == "127.0.0.1"


# -- profile 2: HTTP Basic over TLS -------------------------------------------------------------


async def test_TC_086_TLS_ServerSideCertificate_ValidCertificate(env: Env) -> None:
    await env.server.add_charge_point("CP-2", profile=2)
    # the charge point verifies the server certificate (test CA, SAN 127.0.0.1) and sends Basic auth
    async with connect(f"{env.wss_url}/CP-2", headers=basic_auth("CP-2"), tls=env.ssl()) as ws:
        assert await boot(ws) == "Accepted"
        assert ws.subprotocol == "ocpp1.6"


async def test_profile_2_over_plain_ws_is_a_downgrade(env: Env) -> None:
    await env.server.add_charge_point("CP-2", profile=2)
    assert await refused(f"{env.ws_url}/CP-2", headers=basic_auth("CP-2")) == 403
    assert await refused(f"{env.wss_url}/CP-2", headers=basic_auth("CP-2", "wrong-password-but-long"),
                         tls=env.ssl()) == 401
    kinds = await env.kinds("CP-2")
    assert "security_profile_downgrade" in kinds and "auth_failed" in kinds


# -- profile 3: TLS client certificates ---------------------------------------------------------


async def test_TC_087_TLS_ClientSideCertificate_ValidCertificate(env: Env) -> None:
    await env.server.add_charge_point("CP-3", profile=3)
    async with connect(f"{env.wss_url}/CP-3", tls=env.ssl("CP-3")) as ws:
        assert await boot(ws) == "Accepted"
    # a pinned fingerprint that matches is accepted too
    pinned = env.pki.charge_point("CP-3P")
    await env.server.add_charge_point("CP-3P", profile=3, fingerprint=pinned.fingerprint.upper())
    async with connect(f"{env.wss_url}/CP-3P", tls=env.pki.client_context(pinned)) as ws:
        assert await boot(ws) == "Accepted"


async def test_profile_3_refusals(env: Env) -> None:
    await env.server.add_charge_point("CP-3", profile=3)
    # no client certificate: a downgrade to profile 2 (even with Basic credentials)
    assert await refused(f"{env.wss_url}/CP-3", tls=env.ssl(), headers=basic_auth("CP-3")) == 403
    # a valid certificate of another charge point
    assert await refused(f"{env.wss_url}/CP-3", tls=env.ssl("CP-9")) == 401
    # over plain ws
    assert await refused(f"{env.ws_url}/CP-3") == 403
    kinds = await env.kinds("CP-3")
    assert kinds.count("security_profile_downgrade") == 2 and kinds.count("certificate_mismatch") == 1


async def test_profile_3_pinned_fingerprint_mismatch(env: Env) -> None:
    pinned = env.pki.charge_point("CP-3", name="cp3-pinned")
    await env.server.add_charge_point("CP-3", profile=3, fingerprint=pinned.fingerprint)
    # another certificate, validly issued by the trusted CA for the same id: not the pinned one
    assert await refused(f"{env.wss_url}/CP-3", tls=env.ssl("CP-3")) == 401
    event = next(e for e in await env.events("CP-3") if e["kind"] == "certificate_mismatch")
    assert "pinned" in event["detail"]["reason"]


async def test_profile_3_certificate_from_untrusted_ca_fails_the_handshake(
        launch: Launch, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    # Point OpenSSL's default trust store at the untrusted CA too: voltlib must trust tls_client_ca
    # only, never the system store (a server context that called load_default_certs would).
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.untrusted_ca.cert))
    env = await launch()
    await env.server.add_charge_point("CP-3", profile=3)
    with pytest.raises((ssl.SSLError, OSError, websockets.exceptions.InvalidHandshake,
                        websockets.exceptions.ConnectionClosed)) as info:
        async with connect(f"{env.wss_url}/CP-3", tls=env.ssl("CP-3", trusted=False)) as ws:
            await ws.recv()
    assert not isinstance(info.value, InvalidStatus), "refused at HTTP level, not in the TLS handshake"
    context = tls_context(env.server.settings)
    assert context is not None and context.cert_store_stats()["x509_ca"] == 1
    assert context.verify_mode == ssl.CERT_OPTIONAL
    # the failed handshake is a security event with the address it came from (A00.FR.408), and an alert
    event = await tls_event(env, "tls_certificate_refused")
    assert event["severity"] == "high" and event["source"] == "127.0.0.1" and event["charge_point_id"] is None
    assert event["detail"]["reason"] == "CERTIFICATE_VERIFY_FAILED" and event["detail"]["verify_message"]
    await env.server.settled()
    alerts = (await env.api("GET", "/api/v1/security/alerts")).json()
    assert [a["source"] for a in alerts if a["kind"] == "tls_certificate_refused"] == ["127.0.0.1"]


async def test_a_revoked_certificate_fails_the_handshake_once_the_new_crl_is_written(launch: Launch,
                                                                                     pki: Pki) -> None:
    crl = pki.crl([])
    env = await launch(tls_client_crl=crl)
    stolen, other = pki.charge_point("CP-3"), pki.charge_point("CP-4")
    for cp_id in ("CP-3", "CP-4"):
        await env.server.add_charge_point(cp_id, profile=3)
    async with connect(f"{env.wss_url}/CP-3", tls=env.pki.client_context(stolen)) as ws:
        assert await boot(ws) == "Accepted"
    pki.crl([stolen])  # the operator publishes the revocation: no restart
    with pytest.raises((ssl.SSLError, OSError, websockets.exceptions.InvalidHandshake,
                        websockets.exceptions.ConnectionClosed)):
        async with connect(f"{env.wss_url}/CP-3", tls=env.pki.client_context(stolen)) as ws:
            await ws.recv()
    event = await tls_event(env, "tls_certificate_refused")
    assert "revoked" in event["detail"]["verify_message"]
    crl.write_text("-----BEGIN X509 CRL-----\nnot a CRL\n-----END X509 CRL-----\n")  # half-written
    async with connect(f"{env.wss_url}/CP-4", tls=env.pki.client_context(other)) as ws:
        assert await boot(ws) == "Accepted"  # the previous context serves on
    with pytest.raises((ssl.SSLError, OSError, websockets.exceptions.InvalidHandshake,
                        websockets.exceptions.ConnectionClosed)):
        async with connect(f"{env.wss_url}/CP-3", tls=env.pki.client_context(stolen)) as ws:
            await ws.recv()


def test_a_crl_without_the_ca_it_belongs_to_is_refused(pki: Pki) -> None:
    settings = Settings(tls_port=free_port(), tls_cert=pki.server.cert, tls_key=pki.server.key,
                        tls_client_crl=pki.crl([]))
    with pytest.raises(ValueError, match="tls_client_ca"):
        tls_context(settings)


async def tls_event(env: Env, kind: str) -> dict[str, Any]:
    """The one security event of ``kind``, waiting for it: a failed handshake is recorded after the
    client has seen its connection fail."""
    for _ in range(100):
        found = [e for e in await env.events() if e["kind"] == kind]
        if found:
            (event,) = found
            return event
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} event")


async def test_a_handshake_that_is_not_tls_is_recorded_but_not_alerted(env: Env) -> None:
    host, port = env.wss_url.removeprefix("wss://").split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP on the TLS port
    assert await asyncio.wait_for(reader.read(), 10) == b""  # hung up on, no answer
    writer.close()
    event = await tls_event(env, "tls_handshake_failed")
    assert event["severity"] == "warning" and event["source"] == "127.0.0.1"
    assert event["detail"]["reason"] == "HTTP_REQUEST"
    # a connection that says nothing and leaves (a port probe, a load balancer's check) is no event
    _, probe = await asyncio.open_connection(host, int(port))
    probe.close()
    await probe.wait_closed()
    good = env.pki.charge_point("CP-3")
    await env.server.add_charge_point("CP-3", profile=3)
    async with connect(f"{env.wss_url}/CP-3", tls=env.pki.client_context(good)) as ws:
        assert await boot(ws) == "Accepted"  # after the garbage and the probe, TLS still serves
    await env.server.settled()
    assert [e["kind"] for e in await env.events() if e["kind"].startswith("tls_")] == ["tls_handshake_failed"]
    alerts = (await env.api("GET", "/api/v1/security/alerts")).json()
    assert not [a for a in alerts if a["kind"].startswith("tls_")]


async def test_connections_beyond_the_handshakes_under_way_are_closed_at_once(launch: Launch, pki: Pki) -> None:
    """Sockets that open and say nothing (a slow-loris) hold at most ``max_handshakes`` handshakes."""
    env = await launch(max_handshakes=2)
    host, port = env.wss_url.removeprefix("wss://").split("/")[0].split(":")
    silent = [await asyncio.open_connection(host, int(port)) for _ in range(2)]
    await asyncio.sleep(0.2)  # both accepted, waiting for a ClientHello
    reader, writer = await asyncio.open_connection(host, int(port))
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the third: closed at once, not after 10 s
    writer.close()
    for _, quiet in silent:
        quiet.close()
    await asyncio.sleep(0.2)  # their handshakes end with their sockets
    await env.server.add_charge_point("CP-3", profile=3)
    async with connect(f"{env.wss_url}/CP-3", tls=env.ssl("CP-3")) as ws:
        assert await boot(ws) == "Accepted"
    assert not [e for e in await env.events() if e["kind"].startswith("tls_")]  # none of it is an attempt


async def test_a_source_over_the_failure_limit_is_hung_up_on_before_its_handshake(launch: Launch) -> None:
    env = await launch(auth_failures_per_source_per_minute=3)
    await env.server.add_charge_point("CP-3", profile=3)
    for attempt in range(5):
        with pytest.raises((ssl.SSLError, OSError, websockets.exceptions.InvalidHandshake,
                            websockets.exceptions.ConnectionClosed)):
            async with connect(f"{env.wss_url}/CP-3", tls=env.ssl("CP-3", trusted=False)) as ws:
                await ws.recv()
        if attempt < 3:
            await tls_event_count(env, attempt + 1)
    await asyncio.sleep(0.3)
    assert len([e for e in await env.events() if e["kind"] == "tls_certificate_refused"]) == 3
    # the limit is the source's, for plain ws as well: the upgrade is refused with 429
    assert await refused(f"{env.ws_url}/CP-3") == 429


async def tls_event_count(env: Env, count: int) -> None:
    for _ in range(100):
        if len([e for e in await env.events() if e["kind"] == "tls_certificate_refused"]) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} tls_certificate_refused events")


# -- profile 0, subprotocols --------------------------------------------------------------------


async def test_profile_0_accepts_without_authentication(env: Env) -> None:
    await env.server.add_charge_point("CP-0", profile=0)
    async with connect(f"{env.ws_url}/CP-0") as ws:
        assert await boot(ws) == "Accepted"


async def test_TC_088_WebSocketSubprotocolNegotiation(env: Env) -> None:
    await env.server.add_charge_point("CP-1", profile=1)
    async with connect(f"{env.ws_url}/CP-1", headers=basic_auth("CP-1"),
                       subprotocols=["ocpp2.0", "ocpp1.6"]) as ws:  # 2.0 (not 2.0.1): not spoken
        assert ws.subprotocol == "ocpp1.6"
        assert await boot(ws) == "Accepted"
    # nothing voltlib speaks offered: handshake without a subprotocol, then closed (OCPP-J 4.1.2)
    async with websockets.connect(f"{env.ws_url}/CP-1", subprotocols=["ocpp2.0"],  # type: ignore[list-item]
                                  additional_headers=basic_auth("CP-1")) as ws:
        assert ws.subprotocol is None
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1002
    assert "no_subprotocol" in await env.kinds("CP-1")


# -- registration policy ------------------------------------------------------------------------


async def test_registration_policy_pending_then_operator_accepts(launch: Launch) -> None:
    env = await launch(registration_policy="pending")
    async with connect(f"{env.ws_url}/CP-NEW", headers=basic_auth("CP-NEW")) as ws:
        assert await boot(ws) == "Pending"
        reply = await call(ws, "hb-1", "Heartbeat", {})
        assert reply[0] == 4 and reply[2] == "SecurityError"
        response = await env.api("POST", "/api/v1/charge-points/CP-NEW/registration",
                                 json={"registration": "Accepted"})
        assert response.status_code == 200
        assert await boot(ws) == "Accepted"
        assert (await call(ws, "hb-2", "Heartbeat", {}))[0] == 3
    detail = (await env.api("GET", "/api/v1/charge-points/CP-NEW")).json()
    # registered with the credentials it first presented (trust on first use): profile 1
    assert detail["registration"] == "Accepted" and detail["security_profile"] == 1
    assert "registered_pending" in await env.kinds("CP-NEW")
    # ... which it must keep presenting
    assert await refused(f"{env.ws_url}/CP-NEW", headers=basic_auth("CP-NEW", "wrong-password-but-long")) == 401
    async with connect(f"{env.ws_url}/CP-NEW", headers=basic_auth("CP-NEW")) as ws:
        assert await boot(ws) == "Accepted"


async def test_registration_policy_pending_over_tls(launch: Launch) -> None:
    env = await launch(registration_policy="pending")
    async with connect(f"{env.wss_url}/CP-TLS", headers=basic_auth("CP-TLS"), tls=env.ssl()) as ws:
        assert await boot(ws) == "Pending"
    async with connect(f"{env.wss_url}/CP-CERT", tls=env.ssl("CP-CERT")) as ws:
        assert await boot(ws) == "Pending"
    tls = (await env.api("GET", "/api/v1/charge-points/CP-TLS")).json()
    cert = (await env.api("GET", "/api/v1/charge-points/CP-CERT")).json()
    assert tls["security_profile"] == 2
    assert cert["security_profile"] == 3 and len(cert["certificate_fingerprint"]) == 64
    assert await refused(f"{env.ws_url}/CP-TLS", headers=basic_auth("CP-TLS")) == 403


async def test_registration_policy_reject_refuses_unknown(launch: Launch) -> None:
    env = await launch(registration_policy="reject")
    assert await refused(f"{env.ws_url}/CP-NOBODY", headers=basic_auth("CP-NOBODY")) == 404
    assert "unknown_identity" in await env.kinds("CP-NOBODY")


# -- failure limits -----------------------------------------------------------------------------


async def test_ten_failures_a_minute_for_one_identity_then_429(env: Env) -> None:
    await env.server.add_charge_point("CP-1", profile=1)
    await env.server.add_charge_point("CP-2", profile=1)
    limit = env.server.settings.auth_failures_per_minute
    assert limit == 10
    for _ in range(limit):
        assert await refused(f"{env.ws_url}/CP-1", headers=basic_auth("CP-1", "wrong-password-but-long")) == 401
    # the identity is blocked now, even with good credentials
    assert await refused(f"{env.ws_url}/CP-1", headers=basic_auth("CP-1")) == 429
    assert "auth_rate_limited" in await env.kinds("CP-1")
    # another charge point behind the same address (a shared NAT) is not locked out
    async with websockets.connect(f"{env.ws_url}/CP-2", subprotocols=["ocpp1.6"],
                                  additional_headers=basic_auth("CP-2")) as ws:
        assert await boot(ws) == "Accepted"


async def test_wrong_passwords_from_elsewhere_do_not_lock_the_real_charge_point_out(env: Env) -> None:
    await env.server.add_charge_point("CP-1", profile=1)
    async with connect(f"{env.ws_url}/CP-1", headers=basic_auth("CP-1")) as ws:  # its usual address
        assert await boot(ws) == "Accepted"
    await env.server.settled()
    limit = env.server.settings.auth_failures_per_minute
    for _ in range(limit):  # someone who knows its id, from another address
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(f"{env.ws_url}/CP-1", subprotocols=["ocpp1.6"], open_timeout=10,
                                          additional_headers=basic_auth("CP-1", "wrong-password-but-long"),
                                          local_addr=("127.0.0.2", 0)):
                pass
        assert info.value.response.status_code == 401
    for address in ("127.0.0.2", "127.0.0.3"):  # the identity is locked out everywhere else
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(f"{env.ws_url}/CP-1", subprotocols=["ocpp1.6"], open_timeout=10,
                                          additional_headers=basic_auth("CP-1"), local_addr=(address, 0)):
                pass
        assert info.value.response.status_code == 429
    async with connect(f"{env.ws_url}/CP-1", headers=basic_auth("CP-1")) as ws:  # but not where it lives
        assert await boot(ws) == "Accepted"


async def test_a_scanning_source_is_blocked_for_every_identity(env: Env) -> None:
    await env.server.add_charge_point("CP-3", profile=1)
    limit = env.server.settings.auth_failures_per_source_per_minute
    for i in range(limit):
        assert await refused(f"{env.ws_url}/SCAN-{i}", headers=basic_auth(f"SCAN-{i}")) == 404
    assert await refused(f"{env.ws_url}/CP-3", headers=basic_auth("CP-3")) == 429
    async with websockets.connect(f"{env.ws_url}/CP-3", subprotocols=["ocpp1.6"],
                                  additional_headers=basic_auth("CP-3"), local_addr=("127.0.0.2", 0)) as ws:
        assert await boot(ws) == "Accepted"


# -- changing credentials and profiles over OCPP ------------------------------------------------


async def test_TC_083_UpgradeChargePointSecurityProfileAccepted(env: Env) -> None:
    gateway = env.server.gateway
    await env.server.add_charge_point("CP-U", profile=1)
    async with connect(f"{env.ws_url}/CP-U", headers=basic_auth("CP-U")) as ws:
        assert await boot(ws) == "Accepted"
        # lowering is refused before anything is sent (whitepaper A00.FR.005)
        with pytest.raises(CommandError) as lowering:
            await gateway.send_command("CP-U", "ChangeConfiguration", {"key": "SecurityProfile", "value": "0"})
        assert lowering.value.status == 422
        command = asyncio.create_task(gateway.send_command(
            "CP-U", "ChangeConfiguration", {"key": "SecurityProfile", "value": "2"}, requested_by="test"))
        frame = await answer_next_call(ws, "Accepted")
        assert frame[2:] == ["ChangeConfiguration", {"key": "SecurityProfile", "value": "2"}]
        row = await command
        assert row["state"] == "answered" and row["response"] == {"status": "Accepted"}
        # the operator raises the registered profile; the charge point then reconnects over TLS
        response = await env.api("POST", "/api/v1/charge-points/CP-U/security-profile", json={"security_profile": 2})
        assert response.status_code == 200 and response.json()["security_profile"] == 2
    async with connect(f"{env.wss_url}/CP-U", headers=basic_auth("CP-U"), tls=env.ssl()) as ws:
        assert await boot(ws) == "Accepted"
    assert await refused(f"{env.ws_url}/CP-U", headers=basic_auth("CP-U")) == 403
    # lowering the registered profile needs an explicit downgrade
    response = await env.api("POST", "/api/v1/charge-points/CP-U/security-profile", json={"security_profile": 1})
    assert response.status_code == 409
    assert "security_profile_changed" in await env.kinds("CP-U")


async def test_TC_083_upgrade_from_profile_2_to_3_with_pinned_certificate(env: Env) -> None:
    gateway = env.server.gateway
    await env.server.add_charge_point("CP-U3", profile=2)
    certificate = env.pki.charge_point("CP-U3")
    async with connect(f"{env.wss_url}/CP-U3", headers=basic_auth("CP-U3"), tls=env.ssl()) as ws:
        assert await boot(ws) == "Accepted"
        command = asyncio.create_task(gateway.send_command(
            "CP-U3", "ChangeConfiguration", {"key": "SecurityProfile", "value": "3"}))
        await answer_next_call(ws, "Accepted")
        assert (await command)["response"] == {"status": "Accepted"}
        response = await env.api("POST", "/api/v1/charge-points/CP-U3/security-profile",
                                 json={"security_profile": 3, "certificate_fingerprint": certificate.fingerprint})
        assert response.status_code == 200
    async with connect(f"{env.wss_url}/CP-U3", tls=env.pki.client_context(certificate)) as ws:
        assert await boot(ws) == "Accepted"
    # Basic auth alone no longer does; nor does another certificate for the same id
    assert await refused(f"{env.wss_url}/CP-U3", headers=basic_auth("CP-U3"), tls=env.ssl()) == 403
    assert await refused(f"{env.wss_url}/CP-U3", tls=env.ssl("CP-U3")) == 401


async def rotate(env: Env, cp_id: str, ws: Any, status: str) -> tuple[dict[str, Any], str]:
    """Ask the API to rotate the password while the charge point answers with ``status``."""
    request = asyncio.create_task(env.api("POST", f"/api/v1/charge-points/{cp_id}/rotate-password"))
    frame = await answer_next_call(ws, status)
    response = await request
    assert response.status_code == 200, response.text
    assert frame[2] == "ChangeConfiguration" and frame[3]["key"] == "AuthorizationKey"
    return response.json(), str(frame[3]["value"])


async def test_TC_073_UpdateChargePointPasswordForHttpBasicAuth(env: Env) -> None:
    await env.server.add_charge_point("CP-P", profile=1)
    async with connect(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P")) as ws:
        assert await boot(ws) == "Accepted"
        row, key = await rotate(env, "CP-P", ws, "Accepted")
    # 20 random bytes, hexadecimal represented (whitepaper A00.FR.205)
    assert len(key) == 40 and bytes.fromhex(key)
    assert row["rotated"] is True and key not in json.dumps(row)
    assert row["request"] == {"key": "AuthorizationKey", "value": "<redacted>"}
    # the charge point reconnects with the new password; the old one is no longer accepted (A01.FR.03)
    async with connect(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P", key)) as ws:
        assert await boot(ws) == "Accepted"
    assert await refused(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P", PASSWORD)) == 401
    commands = (await env.api("GET", "/api/v1/charge-points/CP-P/commands")).json()
    assert key not in json.dumps(commands)
    assert "password_rotated" in await env.kinds("CP-P")


async def test_TC_073_reconnect_with_the_new_password_right_after_accepting(env: Env) -> None:
    """Whitepaper A01 steps 3-4: the charge point may disconnect and come back with the new password
    before voltlib has finished storing it; it must be let in, and the old password not."""
    await env.server.add_charge_point("CP-P", profile=1)
    async with connect(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P")) as ws:
        assert await boot(ws) == "Accepted"
        request = asyncio.create_task(env.api("POST", "/api/v1/charge-points/CP-P/rotate-password"))
        frame = await answer_next_call(ws, "Accepted")
        await ws.close()
    key = frame[3]["value"]
    async with connect(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P", key)) as ws:
        assert await boot(ws) == "Accepted"
    assert (await request).json()["rotated"] is True
    assert await refused(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P", PASSWORD)) == 401


async def test_TC_073_rejected_rotation_keeps_the_old_password(env: Env) -> None:
    await env.server.add_charge_point("CP-P", profile=2)
    async with connect(f"{env.wss_url}/CP-P", headers=basic_auth("CP-P"), tls=env.ssl()) as ws:
        assert await boot(ws) == "Accepted"
        row, key = await rotate(env, "CP-P", ws, "Rejected")
        assert row["rotated"] is False
    assert await refused(f"{env.wss_url}/CP-P", headers=basic_auth("CP-P", key), tls=env.ssl()) == 401
    async with connect(f"{env.wss_url}/CP-P", headers=basic_auth("CP-P"), tls=env.ssl()) as ws:
        assert await boot(ws) == "Accepted"
    assert "password_rotation_failed" in await env.kinds("CP-P")


async def rotation_unanswered(env: Env, cp_id: str) -> str:
    """Rotate while the charge point, connected with the old password, takes the key and never
    answers (its answer lost, or its modem gone); return the key."""
    async with connect(f"{env.ws_url}/{cp_id}", headers=basic_auth(cp_id)) as ws:
        assert await boot(ws) == "Accepted"
        request = asyncio.create_task(env.api("POST", f"/api/v1/charge-points/{cp_id}/rotate-password"))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame[2] == "ChangeConfiguration" and frame[3]["key"] == "AuthorizationKey"
        row = (await request).json()
    assert row["rotated"] is False and row["state"] == "timeout"
    return str(frame[3]["value"])


async def test_TC_073_a_rotation_never_answered_is_settled_by_the_next_login_with_the_new_key(
        launch: Launch) -> None:
    env = await launch(command_timeout=1.0)
    await env.server.add_charge_point("CP-P", profile=1)
    key = await rotation_unanswered(env, "CP-P")
    failed = next(e for e in await env.events("CP-P") if e["kind"] == "password_rotation_failed")
    assert failed["severity"] == "high" and failed["detail"]["pending_until"]
    # it took the key: its next login with it is let in, and the key is its password from then on
    async with connect(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P", key)) as ws:
        assert await boot(ws) == "Accepted"
    assert await refused(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P", PASSWORD)) == 401
    async with connect(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P", key)) as ws:
        assert await boot(ws) == "Accepted"
    confirmed = [e for e in await env.events("CP-P") if e["kind"] == "password_rotated"]
    assert [e["detail"]["confirmed_by"] for e in confirmed] == ["login"]
    detail = (await env.api("GET", "/api/v1/charge-points/CP-P")).json()
    assert "pending_password_hash" not in detail and "password_hash" not in detail


async def test_TC_073_a_rotation_never_answered_is_dropped_by_a_login_with_the_old_password(
        launch: Launch) -> None:
    env = await launch(command_timeout=1.0)
    await env.server.add_charge_point("CP-P", profile=1)
    key = await rotation_unanswered(env, "CP-P")
    async with connect(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P")) as ws:  # it never took the key
        assert await boot(ws) == "Accepted"
    assert await refused(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P", key)) == 401


async def test_TC_073_the_new_key_of_an_unanswered_rotation_expires(launch: Launch) -> None:
    env = await launch(command_timeout=1.0, password_rotation_grace_hours=0.0002)  # 0.72 s
    await env.server.add_charge_point("CP-P", profile=1)
    key = await rotation_unanswered(env, "CP-P")
    await asyncio.sleep(1.0)
    assert await refused(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P", key)) == 401
    async with connect(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P")) as ws:
        assert await boot(ws) == "Accepted"


def raw_basic_auth(cp_id: str, password: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(cp_id.encode() + b":" + password).decode()}


async def test_an_identity_with_a_colon_can_use_basic_auth(env: Env) -> None:
    """RFC 7617 splits Basic credentials at the first ":"; OCPP ids may contain one."""
    await env.server.add_charge_point("PARIS:0042", profile=1)
    async with connect(f"{env.ws_url}/PARIS:0042", headers=basic_auth("PARIS:0042")) as ws:
        assert await boot(ws) == "Accepted"
    assert await refused(f"{env.ws_url}/PARIS:0042", headers=basic_auth("PARIS:0042", "wrong-password-but-long")) \
        == 401
    assert "auth_failed" in await env.kinds("PARIS:0042")


async def test_a_charge_point_may_send_its_authorization_key_as_bytes(env: Env) -> None:
    """A00.FR.205 keys are binary, hexadecimal represented; some charge points send the bytes."""
    binary, ascii_ = "ff" * 20, "41424344454647484950515253545556"  # not UTF-8; "ABCDEFGHIPQRSTUV"
    await env.server.add_charge_point("CP-B", profile=1, password=binary)
    await env.server.add_charge_point("CP-A", profile=1, password=ascii_)
    for cp_id, key in (("CP-B", binary), ("CP-A", ascii_)):
        for password in (key.encode(), bytes.fromhex(key)):  # the text, and its bytes
            async with connect(f"{env.ws_url}/{cp_id}", headers=raw_basic_auth(cp_id, password)) as ws:
                assert await boot(ws) == "Accepted"
    assert await refused(f"{env.ws_url}/CP-B", headers=raw_basic_auth("CP-B", b"\xfe" * 20)) == 401
    assert await refused(f"{env.ws_url}/CP-A", headers=raw_basic_auth("CP-A", bytes.fromhex(binary))) == 401
    assert await refused(f"{env.ws_url}/CP-B", headers=raw_basic_auth("CP-B", b"\xff" * 12)) == 401  # no key


async def test_rotate_password_guards(env: Env) -> None:
    await env.server.add_charge_point("CP-P", profile=1)
    await env.server.add_charge_point("CP-3", profile=3)
    assert (await env.api("POST", "/api/v1/charge-points/CP-P/rotate-password")).status_code == 409  # offline
    assert (await env.api("POST", "/api/v1/charge-points/CP-3/rotate-password")).status_code == 409  # no password
    assert (await env.api("POST", "/api/v1/charge-points/NOPE/rotate-password")).status_code == 404
    # the generic command endpoint must not change the key behind voltlib's back
    async with connect(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P")) as ws:
        assert await boot(ws) == "Accepted"
        response = await env.api("POST", "/api/v1/charge-points/CP-P/commands/ChangeConfiguration",
                                 json={"key": "AuthorizationKey", "value": "00" * 20})
        assert response.status_code == 422


async def test_TC_073_new_password_is_not_in_the_message_log(env: Env) -> None:
    await env.server.add_charge_point("CP-P", profile=1)
    async with connect(f"{env.ws_url}/CP-P", headers=basic_auth("CP-P")) as ws:
        assert await boot(ws) == "Accepted"
        _, key = await rotate(env, "CP-P", ws, "Accepted")
    for _ in range(100):  # the frame log is written in the background
        log = json.dumps((await env.api("GET", "/api/v1/charge-points/CP-P/messages")).json())
        if "ChangeConfiguration" in log:
            break
        await asyncio.sleep(0.05)
    assert "ChangeConfiguration" in log
    assert key not in log
