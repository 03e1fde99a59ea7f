"""The gateway: accepts charge-point WebSockets, keeps the registry of who is online, and sends
central-system commands."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from voltlib import events as ev
from voltlib.cluster import ClusterUnavailable
from voltlib.domain import commands
from voltlib.domain.commands import CommandRefused
from voltlib.gateway import auth, command_rules
from voltlib.gateway import versions as ocpp_versions
from voltlib.gateway.command_port import OcppCommandPort, read_outcome, to_call
from voltlib.gateway.connection import WS_GOING_AWAY, WS_POLICY_VIOLATION, CallOutcome, ChargePointConnection
from voltlib.gateway.context import ChargePointContext, Services
from voltlib.gateway.duplicates import TURN_SLACK, Takeovers, Turns
from voltlib.ocpp import schemas
from voltlib.ocpp.errors import OcppError
from voltlib.ocpp.session import Limits, MessageIdMemory, OcppSession
from voltlib.ocpp.v16.messages import COMMANDS as COMMANDS_V16
from voltlib.ocpp.v201.commands import CSMS_ACTIONS as COMMANDS_V201
from voltlib.security import firmware
from voltlib.security import records as security_records
from voltlib.security.credentials import (
    PasswordPolicyError,
    VerifiedCache,
    check_policy,
    hash_password,
    new_authorization_key,
)
from voltlib.store import repo

log = logging.getLogger(__name__)

WS_PROTOCOL_ERROR = 1002
FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
REDACTED = "<redacted>"
REPLACED_BY_NEWER = "replaced: a newer connection from the charge point's address"
NEW_PASSWORD_GRACE = 30.0  # seconds a just-accepted password hash overrides the one read from the database


CommandError = CommandRefused  # a command voltlib refuses to send; its status is what the API answers


class Gateway:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.connections: dict[str, ChargePointConnection] = {}
        self._memories: dict[str, MessageIdMemory] = {}
        self._credentials = VerifiedCache()
        self._failures = auth.FailureLimiter(services.settings.auth_failures_per_minute)
        self._source_failures = auth.FailureLimiter(services.settings.auth_failures_per_source_per_minute)
        self._pair_failures = auth.FailureLimiter(services.settings.auth_failures_per_minute)  # id@address
        self._turns = Turns()  # one upgrade per identity at a time (duplicates.py)
        self._takeovers = Takeovers(services.settings.duplicate_takeover_after,
                                    services.settings.duplicate_takeover_window)
        # password hashes a charge point accepted that are not in the database yet (rotate_password)
        self._new_password_hashes: dict[str, str] = {}
        s = services.settings
        self._firmware_roots = firmware.load_roots(s.firmware_signer_roots) if s.firmware_signer_roots else []
        self.limits = Limits(max_frame_bytes=s.max_frame_bytes, rate_per_second=s.rate_per_second, burst=s.rate_burst,
                             flood_seconds=s.flood_seconds)
        self.commands = OcppCommandPort(self)  # the domain's version-neutral commands go through it
        self._background: set[asyncio.Task[None]] = set()  # wait=False commands under way

    # -- the WebSocket endpoint --

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.services.draining:  # SIGTERM: a socket accepted before the listener closed must not stay
            return _draining()
        cp_id = unquote(request.match_info["cp_id"])
        transport = auth.transport_of(request)
        if not auth.IDENTITY.match(cp_id):
            return await self._refuse(request, None, transport, auth.Refusal(400, "bad_identity", "invalid identity"))
        if self._source_failures.blocked(transport.address) or self._pair_failures.blocked(
                _pair(cp_id, transport.address)):
            return await self._locked_out(request, cp_id, transport)
        header = request.headers.get("Sec-WebSocket-Protocol", "")
        subprotocol = ocpp_versions.negotiate(header, self.services.settings.ocpp_versions)
        if subprotocol is None:
            offered = [p.strip() for p in header.split(",") if p.strip()]
            return await self._refuse_subprotocol(request, cp_id, transport, offered)
        credentials = auth.basic_credentials(request, cp_id)
        record = await self._registered(cp_id, transport, credentials)
        if record is None:
            return await self._refuse(request, cp_id, transport, auth.Refusal(404, "unknown_identity", "unknown"))
        if self._failures.blocked(cp_id) and transport.address != record.last_address:
            # the identity's lock-out spares the address it last connected from: someone sending wrong
            # passwords for it from elsewhere cannot keep the real charge point out
            return await self._locked_out(request, cp_id, transport)
        if cp_id in self._new_password_hashes:  # accepted a new password a moment ago: only that one counts
            record = dataclasses.replace(record, password_hash=self._new_password_hashes[cp_id])
        refusal = await auth.check(record, transport, credentials, self._credentials)
        if record.pending_password_hash is not None and credentials is not None:
            refusal = await self._settle_rotation(record, transport, credentials, refusal)
        if refusal is not None:
            return await self._refuse(request, cp_id, transport, refusal)
        if not await self._make_room(record, transport):
            return await self._refuse(request, cp_id, transport, auth.Refusal(
                409, "duplicate_connection", "this charge point is already connected"), count=False)
        return await self._serve(request, record, transport, subprotocol)

    async def _registered(self, cp_id: str, transport: auth.Transport,
                          credentials: tuple[str, str] | None) -> repo.ChargePointRecord | None:
        """The charge point's record; under the ``pending`` policy an unknown one is registered as Pending
        with the strongest credentials it presented (trust on first use): a client certificate bound to
        its id (profile 3, fingerprint pinned), else Basic credentials that meet the password policy
        (profile 2 over TLS, 1 over ws), else none (profile 0, until an operator raises it)."""
        s = self.services
        record = await s.store.read(partial(repo.get_charge_point, cp_id=cp_id))
        if record is not None or s.settings.registration_policy == "reject":
            return record
        pending = await s.store.read(repo.count_pending)
        if pending >= s.settings.max_pending_registrations:  # unauthenticated peers must not fill the table
            await self._security(cp_id, transport.address, "pending_registrations_full", "high",
                                 {"pending": pending, "limit": s.settings.max_pending_registrations})
            return None
        profile, password_hash, fingerprint = 0, None, None
        if transport.tls and transport.certificate_cn == cp_id:
            profile, fingerprint = 3, transport.certificate_fingerprint
        elif credentials is not None and credentials[0] == cp_id and _meets_policy(credentials[1]):
            profile = 2 if transport.tls else 1
            password_hash = await asyncio.to_thread(hash_password, credentials[1])
        try:
            await s.store.write(partial(repo.add_charge_point, cp_id=cp_id, registration="Pending",
                                        security_profile=profile, password_hash=password_hash,
                                        certificate_fingerprint=fingerprint, now=s.clock.now()))
        except IntegrityError:  # registered concurrently by another upgrade: use that record
            return await s.store.read(partial(repo.get_charge_point, cp_id=cp_id))
        await self._security(cp_id, transport.address, "registered_pending", "warning",
                             {"reason": "unknown identity accepted as Pending by registration policy",
                              "security_profile": profile})
        return await s.store.read(partial(repo.get_charge_point, cp_id=cp_id))

    async def _make_room(self, record: repo.ChargePointRecord, transport: auth.Transport) -> bool:
        """Never let a newcomer silently displace a live charge point (CVE-2026-27652).

        The newcomer has authenticated. It waits for its turn (another upgrade of the id may be
        under way), then the existing socket, here or on another node, is probed: if it answers, it
        stays and the newcomer is refused, unless the takeover rule lets the newcomer win; if it is
        gone or does not answer, it is closed and the newcomer taken.

        On True the turn is kept until ``_serve`` has registered the newcomer, so two simultaneous
        upgrades cannot both find the slot empty and overwrite each other.
        """
        cp_id = record.id
        if not await self._turns.take(cp_id, self.services.settings.duplicate_probe_timeout + TURN_SLACK):
            return False
        try:
            room = await self._room_here(record, transport)
        except BaseException:
            self._turns.give_back(cp_id)
            raise
        if not room:
            self._turns.give_back(cp_id)
        return room

    async def _room_here(self, record: repo.ChargePointRecord, transport: auth.Transport) -> bool:
        cp_id = record.id
        existing = self.connections.get(cp_id)
        if existing is None:
            return await self._room_elsewhere(record, transport)
        alive = await existing.probe(self.services.settings.duplicate_probe_timeout)
        detail = {"existing_address": existing.ctx.address, "new_address": transport.address, "existing_alive": alive}
        if alive and self._takeovers.due(cp_id, transport.address, record.last_address):
            await self._taken_over(cp_id, transport, detail)
            await existing.close(WS_POLICY_VIOLATION, REPLACED_BY_NEWER)
        else:
            await self._security(cp_id, transport.address, "duplicate_connection", "high" if alive else "warning",
                                 detail)
            if alive:
                self._takeovers.refused(cp_id, transport.address, record.last_address)
                return False
            await existing.close(WS_GOING_AWAY, "replaced: did not answer a liveness probe")
        if self.connections.get(cp_id) is existing:
            del self.connections[cp_id]
        return True

    async def _room_elsewhere(self, record: repo.ChargePointRecord, transport: auth.Transport) -> bool:
        """The same rule across gateway nodes: the node holding ``cp_id`` probes its socket, or
        closes it when the newcomer takes over."""
        cp_id = record.id
        takeover = self._takeovers.due(cp_id, transport.address, record.last_address)
        alive = await self.services.cluster.probe_elsewhere(cp_id, self.services.settings.duplicate_probe_timeout,
                                                            takeover=takeover)
        if alive is None:
            return True
        if takeover and not alive:  # closed there, unprobed
            await self._taken_over(cp_id, transport, {"new_address": transport.address, "existing_node": "other"})
            return True
        detail = {"new_address": transport.address, "existing_alive": alive, "existing_node": "other"}
        await self._security(cp_id, transport.address, "duplicate_connection", "high" if alive else "warning", detail)
        if alive:
            self._takeovers.refused(cp_id, transport.address, record.last_address)
        return not alive

    async def _taken_over(self, cp_id: str, transport: auth.Transport, detail: dict[str, Any]) -> None:
        """A newcomer from the charge point's last address wins over a live connection after its
        ``duplicate_takeover_after`` refusals: recorded, and alerted (``duplicate_identity_takeover``)."""
        self._takeovers.taken(cp_id, transport.address)
        s = self.services.settings
        log.warning("%s: a newcomer from %s replaces a live connection after %d refusals", cp_id, transport.address,
                    s.duplicate_takeover_after)
        await self._security(cp_id, transport.address, "duplicate_identity_takeover", "high",
                             {**detail, "refused_before": s.duplicate_takeover_after,
                              "window_seconds": s.duplicate_takeover_window})

    async def _remote_probe(self, connection: ChargePointConnection, takeover: bool) -> bool:
        """Another node's newcomer for a charge point held here: probe it, or close it when the
        newcomer takes over (that node records the takeover)."""
        if takeover:
            await connection.close(WS_POLICY_VIOLATION, REPLACED_BY_NEWER)
            return False
        alive = await connection.probe(self.services.settings.duplicate_probe_timeout)
        if not alive:
            await connection.close(WS_GOING_AWAY, "replaced: did not answer a liveness probe")
        return alive

    async def _remote_command(self, cp_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """A command (or a password rotation) another node's API received for a charge point connected here."""
        try:
            if request.get("op") == "rotate-password":
                return {"row": await self.rotate_password(cp_id, requested_by=request.get("requested_by"))}
            if request.get("op") == "trace":
                until = request.get("until")
                return {"row": {"live": self._trace_here(cp_id, None if until is None
                                                         else datetime.fromisoformat(str(until)))}}
            row = await self.send_command(cp_id, str(request["action"]), dict(request["payload"]),
                                          requested_by=request.get("requested_by"), timeout=request.get("timeout"),
                                          command_id=request.get("command_id"))
        except CommandError as exc:
            return {"error": {"status": exc.status, "title": exc.title, "detail": exc.detail}}
        return {"row": row}

    async def _serve(self, request: web.Request, record: repo.ChargePointRecord, transport: auth.Transport,
                     subprotocol: str) -> web.StreamResponse:
        s = self.services
        if s.draining:  # the drain began while this upgrade read the database: not one more to close
            self._turns.give_back(record.id)
            return _draining()
        ws = web.WebSocketResponse(protocols=(subprotocol,), autoping=False, heartbeat=s.settings.ping_interval,
                                   max_msg_size=s.settings.max_frame_bytes, compress=False)
        try:
            await ws.prepare(request)
        except ConnectionResetError:  # it left before its 101, e.g. gave up while it waited for its turn
            self._turns.give_back(record.id)
            log.info("%s from %s left during its upgrade", record.id, transport.address)
            return ws
        except BaseException:
            self._turns.give_back(record.id)  # the turn taken in _make_room
            raise
        memory = self._memories.setdefault(record.id, MessageIdMemory())
        version = ocpp_versions.version_of(subprotocol)
        session = OcppSession(version=version, memory=memory, limits=self.limits)
        ctx = ChargePointContext(cp_id=record.id, address=transport.address, security_profile=record.security_profile,
                                 registration=record.registration, services=s, trace_until=record.trace_until,
                                 ocpp_version=version, is_bay=bool(record.is_bay))
        connection = ChargePointConnection(ctx, ws, session)
        self.connections[record.id] = connection
        self._turns.give_back(record.id)
        await s.cluster.hold(record.id, partial(self._remote_command, record.id),
                             partial(self._remote_probe, connection))
        now = s.clock.now()
        s.store.write_later(partial(repo.touch, cp_id=record.id, now=now, address=transport.address,
                                    ocpp_version=version))
        if record.ocpp_version is not None and record.ocpp_version != version:
            await self._version_changed(record, transport, version)
        await s.bus.publish(ev.ChargePointConnected(charge_point_id=record.id, at=now, address=transport.address,
                                                    security_profile=record.security_profile,
                                                    subprotocol=subprotocol,
                                                    certificate_fingerprint=transport.certificate_fingerprint))
        try:
            await connection.run()
        finally:
            if self.connections.get(record.id) is connection:
                del self.connections[record.id]
                await s.cluster.release(record.id)
            await s.bus.publish(ev.ChargePointDisconnected(charge_point_id=record.id, at=s.clock.now(),
                                                           code=ws.close_code, reason=connection.close_reason))
        return ws

    async def _version_changed(self, record: repo.ChargePointRecord, transport: auth.Transport, version: str) -> None:
        """A charge point that spoke another OCPP version last time: a firmware upgrade, or another
        device under its identity (docs/security.md)."""
        log.warning("%s now speaks OCPP %s (was %s)", record.id, version, record.ocpp_version)
        await self._security(record.id, transport.address, "ocpp_version_changed", "warning",
                             {"from": record.ocpp_version, "to": version})

    async def _refuse_subprotocol(self, request: web.Request, cp_id: str, transport: auth.Transport,
                                  offered: list[str]) -> web.WebSocketResponse:
        """OCPP-J 1.6 section 4.1.2 (2.0.1 part 4, 3.1.2): complete the handshake without a
        Sec-WebSocket-Protocol header, then close at once (1002 protocol error)."""
        supported = list(ocpp_versions.offered(self.services.settings.ocpp_versions))
        await self._security(cp_id, transport.address, "no_subprotocol", "warning",
                             {"offered": offered[:10], "supported": supported})
        ws = web.WebSocketResponse(autoping=False, compress=False)
        await ws.prepare(request)
        await ws.close(code=WS_PROTOCOL_ERROR, message=f"supported subprotocols: {', '.join(supported)}".encode())
        return ws

    async def _refuse(self, request: web.Request, cp_id: str | None, transport: auth.Transport,
                      refusal: auth.Refusal, *, count: bool = True) -> web.Response:
        if count:
            self._source_failures.failed(transport.address)
            if cp_id:
                self._failures.failed(cp_id)
                self._pair_failures.failed(_pair(cp_id, transport.address))
        severity = "high" if refusal.status in (401, 403) else "warning"
        await self._security(cp_id, transport.address, refusal.kind, severity,
                             {"status": refusal.status, "reason": refusal.reason, "path": request.path[:200]})
        log.warning("refused %s from %s: %s", cp_id, transport.address, refusal.reason)
        headers = {"WWW-Authenticate": 'Basic realm="voltlib"'} if refusal.status == 401 else None
        body = {"type": "about:blank", "title": refusal.kind, "status": refusal.status, "detail": refusal.reason}
        return web.json_response(body, status=refusal.status, headers=headers, content_type="application/problem+json")

    async def _locked_out(self, request: web.Request, cp_id: str, transport: auth.Transport) -> web.Response:
        return await self._refuse(request, cp_id, transport,
                                  auth.Refusal(429, "auth_rate_limited", "too many failed attempts; wait"), count=False)

    async def _security(self, cp_id: str | None, source: str, kind: str, severity: str, detail: dict[str, Any]) -> None:
        s = self.services
        now = s.clock.now()
        await s.store.write(partial(repo.record_security_event, kind=kind, severity=severity, charge_point_id=cp_id,
                                    source=source, detail=detail, now=now))
        await s.bus.publish(ev.SecurityIncident(charge_point_id=cp_id or "", at=now, kind=kind, severity=severity,
                                                source=source, detail=detail))

    # -- the TLS listener (gateway/tls.py) --

    def tls_blocked(self, address: str) -> bool:
        return self._source_failures.blocked(address)

    async def tls_failed(self, address: str, error: ssl.SSLError) -> None:
        """A TLS handshake failed, before any identity was sent: only the address is known. A
        certificate we do not trust is a failed authentication; any other failure (a TLS version too
        old, our certificate refused, not TLS at all) is recorded for the analyst."""
        self._source_failures.failed(address)
        kind, severity = "tls_handshake_failed", "warning"
        detail: dict[str, Any] = {"reason": error.reason or type(error).__name__, "error": str(error)[:200]}
        if isinstance(error, ssl.SSLCertVerificationError):
            kind, severity = "tls_certificate_refused", "high"
            detail["verify_message"] = error.verify_message
        log.warning("TLS handshake from %s failed: %s", address, detail["reason"])
        await self._security(None, address, kind, severity, detail)

    # -- commands to charge points --

    async def send_command(self, cp_id: str, action: str, payload: dict[str, Any], *,
                           requested_by: str | None = None, timeout: float | None = None, wait: bool = True,
                           command_id: int | None = None) -> dict[str, Any]:
        """Validate, record, send and await one command in the charge point's OCPP version; the stored
        command row is returned. With ``wait=False`` the row is returned as soon as it is stored
        (state ``queued``) and the command goes on in the background (``GET .../commands/{id}``).

        What would set the password or lower the security profile is refused
        (``command_rules.check``): ``rotate_password`` sends the password and stores its hash.
        """
        if action in ("ChangeConfiguration", "SetVariables", "SetNetworkProfile"):
            record = await self.services.store.read(partial(repo.get_charge_point, cp_id=cp_id))
            version = await self.commands.version_of(cp_id)
            command_rules.check(version, action, payload, None if record is None else record.security_profile)
        try:  # signed firmware: signer and signature checked before dispatch (security/firmware.py)
            firmware.check_update(action, payload, self._firmware_roots, self.services.clock.now())
        except firmware.FirmwareSignerRejected as exc:
            raise CommandError(422, exc.code, str(exc)) from None
        if command_rules.is_remote_start(action) and await self.services.store.read(
                partial(security_records.active_quarantine, cp_id=cp_id)) is not None:  # issue 5
            raise CommandError(409, "quarantined", f"{cp_id} is in quarantine: remote starts are refused")
        if wait:
            return await self._command(cp_id, action, payload, requested_by=requested_by, timeout=timeout,
                                       command_id=command_id)
        await self._admit(cp_id, action, payload)
        s = self.services
        command_id = await s.store.write(partial(repo.create_command, cp_id=cp_id, action=action, request=payload,
                                                 requested_by=requested_by, now=s.clock.now(), node=s.settings.node()))
        row = await s.store.read(partial(repo.get_command, command_id=command_id))  # as stored: queued
        assert row is not None
        task = asyncio.get_running_loop().create_task(
            self._in_background(cp_id, action, payload, requested_by, timeout, command_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return row

    async def _in_background(self, cp_id: str, action: str, payload: dict[str, Any], requested_by: str | None,
                             timeout: float | None, command_id: int) -> None:
        """An accepted ``wait=False`` command: whatever happens, its row ends in a final state."""
        try:
            await self._command(cp_id, action, payload, requested_by=requested_by, timeout=timeout,
                                command_id=command_id)
        except CommandError as exc:  # e.g. the other nodes cannot be reached now: not sent
            await self._finish(cp_id, action, command_id, {"state": "refused", "error_code": exc.title,
                                                           "error_description": exc.detail})
        except Exception:  # our fault: logged, and the row says it was not carried out
            log.exception("command %s to %s failed", command_id, cp_id)
            await self._finish(cp_id, action, command_id, {"state": "refused", "error_code": "internal-error",
                                                           "error_description": "voltlib failed to send it"})

    async def _admit(self, cp_id: str, action: str, payload: dict[str, Any]) -> str:
        """The version ``action`` is sent in, once it is a valid command of it to a known charge point."""
        version = await self.commands.version_of(cp_id)
        if action not in (COMMANDS_V201 if version == "2.0.1" else COMMANDS_V16):
            raise CommandError(404, "unknown-command", f"{action} is not a central-system command of OCPP {version}")
        try:
            schemas.validate(version, action, "request", payload)
        except OcppError as exc:
            raise CommandError(422, "invalid-payload", exc.description) from None
        if cp_id not in self.connections and await self.services.store.read(
                partial(repo.get_charge_point, cp_id=cp_id)) is None:
            raise CommandError(404, "unknown-charge-point", f"no charge point {cp_id}")  # connected: known
        return version

    async def _command(self, cp_id: str, action: str, payload: dict[str, Any], *, requested_by: str | None,
                       timeout: float | None, recorded: dict[str, Any] | None = None,
                       on_outcome: Callable[[CallOutcome], Awaitable[None]] | None = None,
                       command_id: int | None = None) -> dict[str, Any]:
        """Send one command; ``recorded`` (a redacted payload) is stored in its place when given, and
        ``on_outcome`` sees the answer before anything else runs. ``command_id``: its row exists
        already (a ``wait=False`` command, or one another node's API stored)."""
        s = self.services
        version = await self._admit(cp_id, action, payload)
        if cp_id not in self.connections and recorded is None:
            remote = await self._elsewhere(
                cp_id, {"action": action, "payload": payload, "requested_by": requested_by, "timeout": timeout,
                        "command_id": command_id}, timeout or s.settings.command_timeout)
            if remote is not None:
                if "error" in remote:
                    raise CommandError(**remote["error"])
                remote_row: dict[str, Any] = remote["row"]
                return remote_row
        here = self.connections.get(cp_id)
        if here is not None and here.session.version != version:  # it reconnected in between
            raise CommandError(409, "ocpp-version-changed", f"{cp_id} now speaks OCPP {here.session.version}")
        if command_id is None:
            command_id = await s.store.write(partial(repo.create_command, cp_id=cp_id, action=action,
                                                     request=payload if recorded is None else recorded,
                                                     requested_by=requested_by, now=s.clock.now(),
                                                     node=s.settings.node()))
        elif here is not None:  # stored by another node's API: sent from here, so lost if this node stops
            await s.store.write(partial(repo.update_command, command_id=command_id, node=s.settings.node()))
        connection = self.connections.get(cp_id)
        values: dict[str, Any]
        if connection is None:
            outcome_state, values = "offline", {"error_description": "charge point is not connected"}
        else:
            outcome = await connection.call(action, payload, timeout or s.settings.command_timeout)
            if on_outcome is not None:
                await on_outcome(outcome)
            outcome_state = outcome.state
            values = {"response": outcome.payload, "error_code": outcome.error_code,
                      "error_description": outcome.error_description}
        values["state"] = outcome_state
        return await self._finish(cp_id, action, command_id, values)

    async def _finish(self, cp_id: str, action: str, command_id: int, values: dict[str, Any]) -> dict[str, Any]:
        s = self.services
        values["finished_at"] = s.clock.now()
        row = await s.store.write(lambda conn: repo.finish_command(conn, command_id, **values))
        await s.bus.publish(ev.CommandFinished(charge_point_id=cp_id, at=s.clock.now(), command_id=command_id,
                                               action=action, state=values["state"], response=row["response"],
                                               request=row["request"], requested_by=row["requested_by"]))
        return row

    async def rotate_password(self, cp_id: str, *, requested_by: str | None = None) -> dict[str, Any]:
        """Give a profile 1/2 charge point a new random password (whitepaper A01, OCTT TC_073).

        The AuthorizationKey is 20 random bytes sent as 40 hexadecimal digits (A00.FR.205: at most
        20 bytes, hexadecimal represented); those 40 characters are the password the charge point
        then sends in its Basic credentials. Its hash replaces the old one only if the charge point
        answers Accepted (A01.FR.03); any other answer, a timeout or an error keep the old password
        (A01.FR.04). The password is never stored, logged by this method, or returned.
        """
        s = self.services
        record = await s.store.read(partial(repo.get_charge_point, cp_id=cp_id))
        if record is None:
            raise CommandError(404, "unknown-charge-point", f"no charge point {cp_id}")
        if record.security_profile not in (1, 2):
            raise CommandError(409, "no-password-profile",
                               f"{cp_id} uses security profile {record.security_profile}: no password to rotate")
        if cp_id not in self.connections:
            return await self._rotate_elsewhere(cp_id, requested_by)
        key = new_authorization_key()
        new_hash = await asyncio.to_thread(hash_password, key)

        version = await self.commands.version_of(cp_id)
        rotation = commands.SetPassword(key)
        action, payload = to_call(version, rotation)

        async def accepted(outcome: CallOutcome) -> None:
            # The charge point may reconnect with the new password right after answering (A01 steps
            # 3-4): from this instant on, only the new one is accepted here, and the database (which
            # the other gateway nodes read) has it one group commit later.
            if read_outcome(version, rotation, {"state": outcome.state, "response": outcome.payload}).accepted:
                self._new_password_hashes[cp_id] = new_hash
                await s.store.write(partial(repo.update_charge_point, cp_id=cp_id, password_hash=new_hash,
                                            pending_password_hash=None, pending_password_until=None))

        try:
            row = await self._command(cp_id, action, payload, requested_by=requested_by, timeout=None,
                                      on_outcome=accepted, recorded=to_call(version, commands.SetPassword(REDACTED))[1])
            rotated = self._new_password_hashes.get(cp_id) == new_hash
            status = read_outcome(version, rotation, row).status
        finally:
            if self._new_password_hashes.get(cp_id) == new_hash:
                # Kept a while after the write: an upgrade that read the record before it committed must
                # still compare against the new hash.
                asyncio.get_running_loop().call_later(NEW_PASSWORD_GRACE, self._forget_new_hash, cp_id, new_hash)
        detail = {"command_id": row["id"], "state": row["state"], "status": status, "requested_by": requested_by}
        if not rotated and row["state"] in ("timeout", "lost"):  # sent, never answered: it may hold the key
            until = s.clock.now() + timedelta(hours=s.settings.password_rotation_grace_hours)
            await s.store.write(partial(repo.update_charge_point, cp_id=cp_id, pending_password_hash=new_hash,
                                        pending_password_until=until))
            detail["pending_until"] = until.isoformat()
        severity = "info" if rotated else ("high" if row["state"] == "timeout" else "warning")
        await self._security(cp_id, "central-system", "password_rotated" if rotated else "password_rotation_failed",
                             severity, detail)
        return {**row, "rotated": rotated}

    async def _settle_rotation(self, record: repo.ChargePointRecord, transport: auth.Transport,
                               credentials: tuple[str, str], refusal: auth.Refusal | None) -> auth.Refusal | None:
        """A rotation whose ChangeConfiguration got no answer: the charge point's next login tells which
        key it holds. The old one: it never took the new one, which is dropped. The new one, within the
        grace: it did, and the new one becomes its password (without this, a lost answer would lock the
        charge point out for good: nobody else knows the key)."""
        s = self.services
        pending = record.pending_password_hash
        assert pending is not None
        if refusal is None:
            await s.store.write(partial(repo.settle_pending_password, cp_id=record.id, pending=pending, taken=False))
            return None
        user, password = credentials
        until = record.pending_password_until
        if refusal.kind != "auth_failed" or user != record.id or until is None or s.clock.now() > until \
                or not await auth.verify_password(password, pending, self._credentials):
            return refusal
        if await s.store.write(partial(repo.settle_pending_password, cp_id=record.id, pending=pending, taken=True)):
            self._new_password_hashes[record.id] = pending  # other nodes read it one group commit later
            asyncio.get_running_loop().call_later(NEW_PASSWORD_GRACE, self._forget_new_hash, record.id, pending)
            await self._security(record.id, transport.address, "password_rotated", "info",
                                 {"confirmed_by": "login", "pending_until": until.isoformat()})
        return None

    async def set_trace(self, cp_id: str, minutes: int) -> dict[str, Any]:
        """Log every frame of ``cp_id`` in full for ``minutes`` (0: stop), whatever ``message_log``
        says: for looking into one charge point without logging the whole network. Stored, so the
        next connection, on any node, traces too; the open connection, wherever it is, at once."""
        s = self.services
        until = s.clock.now() + timedelta(minutes=minutes) if minutes > 0 else None
        if not await s.store.write(partial(repo.update_charge_point, cp_id=cp_id, trace_until=until)):
            raise CommandError(404, "unknown-charge-point", f"no charge point {cp_id}")
        live = self._trace_here(cp_id, until)
        if not live:
            try:
                remote = await s.cluster.command_elsewhere(
                    cp_id, {"op": "trace", "until": None if until is None else until.isoformat()},
                    s.settings.command_timeout)
            except ClusterUnavailable:  # stored: it traces from its next connection
                remote = None
            live = remote is not None and bool((remote.get("row") or {}).get("live"))
        return {"id": cp_id, "trace_until": until, "live": live}

    def _trace_here(self, cp_id: str, until: datetime | None) -> bool:
        connection = self.connections.get(cp_id)
        if connection is None:
            return False
        connection.ctx.trace_until = until
        return True

    async def _elsewhere(self, cp_id: str, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The answer of the node holding ``cp_id`` (None: no node holds it); 503 while the other nodes
        cannot be reached, rather than "offline" for a charge point that may well be connected to one."""
        try:
            return await self.services.cluster.command_elsewhere(cp_id, request, timeout)
        except ClusterUnavailable as exc:
            raise CommandError(503, "cluster-unavailable", f"{exc}; {cp_id} may be connected to another node") from None

    async def _rotate_elsewhere(self, cp_id: str, requested_by: str | None) -> dict[str, Any]:
        """The node holding the charge point's socket rotates; this one relays its answer."""
        s = self.services
        remote = await self._elsewhere(cp_id, {"op": "rotate-password", "requested_by": requested_by},
                                       s.settings.command_timeout)
        if remote is None:
            raise CommandError(409, "offline", f"{cp_id} is not connected")
        if "error" in remote:
            raise CommandError(**remote["error"])
        row: dict[str, Any] = remote["row"]
        return row

    def _forget_new_hash(self, cp_id: str, new_hash: str) -> None:
        if self._new_password_hashes.get(cp_id) == new_hash:
            del self._new_password_hashes[cp_id]

    async def set_security_profile(self, cp_id: str, profile: int, *, password: str | None = None,
                                   certificate_fingerprint: str | None = None, allow_downgrade: bool = False,
                                   requested_by: str | None = None) -> repo.ChargePointRecord:
        """The operator's side of a profile change (OCTT TC_083): the profile a charge point must
        connect with from its next connection on. Lowering it needs ``allow_downgrade`` (A00.FR.005
        leaves that to means other than OCPP). The live connection is left alone: the charge point
        reconnects by itself after it accepted ChangeConfiguration SecurityProfile."""
        s = self.services
        record = await s.store.read(partial(repo.get_charge_point, cp_id=cp_id))
        if record is None:
            raise CommandError(404, "unknown-charge-point", f"no charge point {cp_id}")
        if profile not in (0, 1, 2, 3):
            raise CommandError(422, "invalid-profile", "a security profile is 0, 1, 2 or 3")
        if profile < record.security_profile and not allow_downgrade:
            raise CommandError(409, "downgrade-refused",
                               f"{cp_id} uses profile {record.security_profile}; lowering it needs allow_downgrade")
        values: dict[str, Any] = {"security_profile": profile}
        if password is not None:
            try:
                check_policy(password)
            except PasswordPolicyError as exc:
                raise CommandError(422, "weak-password", str(exc)) from None
            values["password_hash"] = await asyncio.to_thread(hash_password, password)
            values["pending_password_hash"] = values["pending_password_until"] = None
            self._new_password_hashes.pop(cp_id, None)
        elif profile in (1, 2) and not record.password_hash:
            raise CommandError(422, "password-required", "profiles 1 and 2 need a password")
        if certificate_fingerprint is not None:
            pin = certificate_fingerprint.replace(":", "").lower()
            if pin and not FINGERPRINT.match(pin):
                raise CommandError(422, "invalid-fingerprint", "a SHA-256 fingerprint is 64 hexadecimal digits")
            values["certificate_fingerprint"] = pin or None
        await s.store.write(partial(repo.update_charge_point, cp_id=cp_id, **values))
        await self._security(cp_id, "central-system", "security_profile_changed",
                             "high" if profile < record.security_profile else "info",
                             {"from": record.security_profile, "to": profile, "requested_by": requested_by,
                              "password_changed": password is not None,
                              "fingerprint_changed": certificate_fingerprint is not None})
        changed = await s.store.read(partial(repo.get_charge_point, cp_id=cp_id))
        assert changed is not None
        return changed

    async def set_registration(self, cp_id: str, registration: str) -> bool:
        s = self.services
        changed = await s.store.write(partial(repo.update_charge_point, cp_id=cp_id, registration=registration))
        connection = self.connections.get(cp_id)
        if connection is not None:
            connection.ctx.registration = registration
            if registration == "Rejected":
                await connection.close(WS_POLICY_VIOLATION, "registration rejected by operator")
        return changed

    def forget_idle_memories(self) -> int:
        """Drop the message-id memories of charge points that are not connected (run hourly)."""
        idle = [cp_id for cp_id in self._memories if cp_id not in self.connections]
        for cp_id in idle:
            del self._memories[cp_id]
        return len(idle)

    async def close_all(self) -> None:
        await asyncio.gather(*(c.close(WS_GOING_AWAY, "server shutting down") for c in list(self.connections.values())),
                             return_exceptions=True)
        # commands under way learn their connection closed ("lost") and record it
        await asyncio.gather(*list(self._background), return_exceptions=True)


def _meets_policy(password: str) -> bool:
    try:
        check_policy(password)
    except PasswordPolicyError:
        return False
    return True


def _draining() -> web.Response:
    """503 to a WebSocket upgrade while the node drains (its listener may have accepted the socket just
    before it closed): the charge point tries again, and the balancer sends it to a node that serves.
    Not a failed attempt of the charge point's, so neither counted nor a security event."""
    body = {"type": "about:blank", "title": "draining", "status": 503, "detail": "this node is shutting down"}
    return web.json_response(body, status=503, headers={"Retry-After": "1"}, content_type="application/problem+json")


def _pair(cp_id: str, address: str) -> str:
    return f"{cp_id}@{address}"
