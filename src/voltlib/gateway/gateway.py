"""The gateway: accepts charge-point WebSockets, keeps the registry of who is online, and sends
central-system commands."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from voltlib import events as ev
from voltlib.gateway import auth
from voltlib.gateway.connection import WS_GOING_AWAY, WS_POLICY_VIOLATION, ChargePointConnection
from voltlib.gateway.context import ChargePointContext, Services
from voltlib.ocpp import schemas
from voltlib.ocpp.errors import OcppError
from voltlib.ocpp.session import Limits, MessageIdMemory, OcppSession
from voltlib.ocpp.v16.messages import COMMANDS as COMMANDS_V16
from voltlib.security.credentials import VerifiedCache
from voltlib.store import repo

log = logging.getLogger(__name__)

SUBPROTOCOLS = ("ocpp1.6",)  # ocpp2.0.1 joins here with its own message module


class CommandError(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class Gateway:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.connections: dict[str, ChargePointConnection] = {}
        self._memories: dict[str, MessageIdMemory] = {}
        self._credentials = VerifiedCache()
        self._failures = auth.FailureLimiter(services.settings.auth_failures_per_minute)
        self._upgrading: set[str] = set()
        s = services.settings
        self.limits = Limits(max_frame_bytes=s.max_frame_bytes, rate_per_second=s.rate_per_second, burst=s.rate_burst)

    # -- the WebSocket endpoint --

    async def handle(self, request: web.Request) -> web.StreamResponse:
        cp_id = unquote(request.match_info["cp_id"])
        transport = auth.transport_of(request)
        if not auth.IDENTITY.match(cp_id):
            return await self._refuse(request, None, transport, auth.Refusal(400, "bad_identity", "invalid identity"))
        if self._failures.blocked(transport.address, cp_id):
            return await self._refuse(request, cp_id, transport,
                                      auth.Refusal(429, "auth_rate_limited", "too many failed attempts; wait"),
                                      count=False)
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        subprotocol = next((p for p in offered if p in SUBPROTOCOLS), None)
        if subprotocol is None:
            return await self._refuse(request, cp_id, transport, auth.Refusal(
                400, "no_subprotocol", f"offer one of the subprotocols {', '.join(SUBPROTOCOLS)}"), count=False)
        record = await self._registered(cp_id, transport)
        if record is None:
            return await self._refuse(request, cp_id, transport, auth.Refusal(404, "unknown_identity", "unknown"))
        refusal = auth.check(record, transport, auth.basic_credentials(request), self._credentials)
        if refusal is not None:
            return await self._refuse(request, cp_id, transport, refusal)
        if not await self._make_room(cp_id, transport):
            return await self._refuse(request, cp_id, transport, auth.Refusal(
                409, "duplicate_connection", "this charge point is already connected"), count=False)
        return await self._serve(request, record, transport, subprotocol)

    async def _registered(self, cp_id: str, transport: auth.Transport) -> repo.ChargePointRecord | None:
        s = self.services
        record = await s.store.read(partial(repo.get_charge_point, cp_id=cp_id))
        if record is not None or s.settings.registration_policy == "reject":
            return record
        profile = 2 if transport.tls else 0
        await s.store.write(partial(repo.add_charge_point, cp_id=cp_id, registration="Pending",
                                    security_profile=profile, password_hash=None, certificate_fingerprint=None,
                                    now=s.clock.now()))
        await self._security(cp_id, transport.address, "registered_pending", "warning",
                             {"reason": "unknown identity accepted as Pending by registration policy"})
        return await s.store.read(partial(repo.get_charge_point, cp_id=cp_id))

    async def _make_room(self, cp_id: str, transport: auth.Transport) -> bool:
        """Never let a newcomer silently displace a live charge point (CVE-2026-27652).

        The newcomer has authenticated. Probe the existing socket with a ping: if it answers,
        it stays and the newcomer is refused; if not, it is closed and the newcomer taken.
        """
        if cp_id in self._upgrading:
            return False
        existing = self.connections.get(cp_id)
        if existing is None:
            return True
        self._upgrading.add(cp_id)
        try:
            alive = await existing.probe(self.services.settings.duplicate_probe_timeout)
            detail = {"existing_address": existing.ctx.address, "new_address": transport.address,
                      "existing_alive": alive}
            await self._security(cp_id, transport.address, "duplicate_connection", "warning" if not alive else "high",
                                 detail)
            if alive:
                return False
            await existing.close(WS_GOING_AWAY, "replaced: did not answer a liveness probe")
            self.connections.pop(cp_id, None)
            return True
        finally:
            self._upgrading.discard(cp_id)

    async def _serve(self, request: web.Request, record: repo.ChargePointRecord, transport: auth.Transport,
                     subprotocol: str) -> web.WebSocketResponse:
        s = self.services
        ws = web.WebSocketResponse(protocols=(subprotocol,), autoping=False, heartbeat=s.settings.ping_interval,
                                   max_msg_size=s.settings.max_frame_bytes, compress=False)
        await ws.prepare(request)
        memory = self._memories.setdefault(record.id, MessageIdMemory())
        session = OcppSession(version="1.6", memory=memory, limits=self.limits)
        ctx = ChargePointContext(cp_id=record.id, address=transport.address, security_profile=record.security_profile,
                                 registration=record.registration, services=s)
        connection = ChargePointConnection(ctx, ws, session)
        self.connections[record.id] = connection
        now = s.clock.now()
        s.store.write_later(partial(repo.touch, cp_id=record.id, now=now, address=transport.address))
        await s.bus.publish(ev.ChargePointConnected(charge_point_id=record.id, at=now, address=transport.address,
                                                    security_profile=record.security_profile,
                                                    subprotocol=subprotocol))
        try:
            await connection.run()
        finally:
            if self.connections.get(record.id) is connection:
                del self.connections[record.id]
            await s.bus.publish(ev.ChargePointDisconnected(charge_point_id=record.id, at=s.clock.now(),
                                                           code=ws.close_code, reason=connection.close_reason))
        return ws

    async def _refuse(self, request: web.Request, cp_id: str | None, transport: auth.Transport,
                      refusal: auth.Refusal, *, count: bool = True) -> web.Response:
        if count:
            self._failures.failed(transport.address, *([cp_id] if cp_id else []))
        severity = "high" if refusal.status in (401, 403) else "warning"
        await self._security(cp_id, transport.address, refusal.kind, severity,
                             {"status": refusal.status, "reason": refusal.reason, "path": request.path[:200]})
        log.warning("refused %s from %s: %s", cp_id, transport.address, refusal.reason)
        headers = {"WWW-Authenticate": 'Basic realm="voltlib"'} if refusal.status == 401 else None
        body = {"type": "about:blank", "title": refusal.kind, "status": refusal.status, "detail": refusal.reason}
        return web.json_response(body, status=refusal.status, headers=headers, content_type="application/problem+json")

    async def _security(self, cp_id: str | None, source: str, kind: str, severity: str, detail: dict[str, Any]) -> None:
        s = self.services
        now = s.clock.now()
        await s.store.write(partial(repo.record_security_event, kind=kind, severity=severity, charge_point_id=cp_id,
                                    source=source, detail=detail, now=now))
        await s.bus.publish(ev.SecurityIncident(charge_point_id=cp_id or "", at=now, kind=kind, severity=severity,
                                                source=source, detail=detail))

    # -- commands to charge points --

    async def send_command(self, cp_id: str, action: str, payload: dict[str, Any], *,
                           requested_by: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Validate, record, send and await one command; the stored command row is returned."""
        s = self.services
        if action not in COMMANDS_V16:
            raise CommandError(404, "unknown-command", f"{action} is not a central-system command of OCPP 1.6")
        try:
            schemas.validate("1.6", action, "request", payload)
        except OcppError as exc:
            raise CommandError(422, "invalid-payload", exc.description) from None
        if await s.store.read(partial(repo.get_charge_point, cp_id=cp_id)) is None:
            raise CommandError(404, "unknown-charge-point", f"no charge point {cp_id}")
        command_id = await s.store.write(partial(repo.create_command, cp_id=cp_id, action=action, request=payload,
                                                 requested_by=requested_by, now=s.clock.now()))
        connection = self.connections.get(cp_id)
        values: dict[str, Any]
        if connection is None:
            outcome_state, values = "offline", {"error_description": "charge point is not connected"}
        else:
            outcome = await connection.call(action, payload, timeout or s.settings.command_timeout)
            outcome_state = outcome.state
            values = {"response": outcome.payload, "error_code": outcome.error_code,
                      "error_description": outcome.error_description}
        values.update(state=outcome_state, finished_at=s.clock.now())
        await s.store.write(lambda conn: repo.update_command(conn, command_id, **values))
        row = await s.store.read(partial(repo.get_command, command_id=command_id))
        assert row is not None
        await s.bus.publish(ev.CommandFinished(charge_point_id=cp_id, at=s.clock.now(), command_id=command_id,
                                               action=action, state=outcome_state, response=row["response"]))
        return row

    async def set_registration(self, cp_id: str, registration: str) -> bool:
        s = self.services
        changed = await s.store.write(partial(repo.update_charge_point, cp_id=cp_id, registration=registration))
        connection = self.connections.get(cp_id)
        if connection is not None:
            connection.ctx.registration = registration
            if registration == "Rejected":
                await connection.close(WS_POLICY_VIOLATION, "registration rejected by operator")
        return changed

    async def close_all(self) -> None:
        await asyncio.gather(*(c.close(WS_GOING_AWAY, "server shutting down") for c in list(self.connections.values())),
                             return_exceptions=True)
