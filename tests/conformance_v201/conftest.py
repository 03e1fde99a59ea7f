"""The charging-station side of the OCA OCPP 2.0.1 conformance tests: an independent 2.0.1 client.

``Station`` is the ``ocpp`` package's :class:`ocpp.v201.ChargePoint` over a real ``websockets``
connection, as the 1.6 suite's (tests/conformance/conftest.py). It answers every call a CSMS may
send (``station.replies``, configurable per test: a call_result, a wire payload, or a callable that
gets the request) and can run a follow-up after answering (``station.follow_ups``), e.g. send a
StatusNotification after accepting a ChangeAvailability. Its GetVariables/SetVariables answer
from a small device model (``station.variables``).

The reusable states of the OCTT 2.0.1 test case document (part 6, section 3.18: Booted,
Authorized, EVConnectedPreSession, EnergyTransferStarted, StopAuthorized, EVConnectedPostSession,
EVDisconnected...) are methods of :class:`Transaction`, one transaction of one EVSE with its own
transactionId and seqNo. Central-system steps go through voltlib's real HTTP API (:class:`Api` of
the 1.6 suite), on SQLite and PostgreSQL, with OCPP 2.0.1 enabled beside 1.6.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result

from tests.conformance.conftest import Api, now_iso
from tests.conftest import PASSWORD, RunningServer, basic_auth, free_port, start_server
from voltlib.config import Settings

FollowUp = Callable[..., Awaitable[None]]
VALID = ("OCTT-TOKEN-1", "ISO14443")  # <Configured valid_idtoken_idtoken> and its type


@pytest_asyncio.fixture
async def server(database_url: str) -> AsyncIterator[RunningServer]:
    """voltlib on a free loopback port speaking OCPP 2.0.1 beside 1.6, on SQLite and on PostgreSQL."""
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        duplicate_probe_timeout=1.0, ocpp_versions=["1.6", "2.0.1"])
    runner, running = await start_server(settings)
    try:
        yield running
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)


def write_ca(directory: Path, name: str = "voltlib test charge-point CA") -> tuple[Path, Path]:
    """A small EC CA for charge-point certificates, as PEM files (``ca_cert``, ``ca_key``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = datetime.now(UTC) - timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest_asyncio.fixture
async def ca_server(database_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The 2.0.1 server with a charge-point CA (SignCertificate can be Accepted) and the local V2G back
    end (voltlib.security.v2g_local) for ISO 15118 certificates and OCSP."""
    ca_cert, ca_key = write_ca(tmp_path)
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        duplicate_probe_timeout=1.0, ocpp_versions=["1.6", "2.0.1"], ca_cert=ca_cert, ca_key=ca_key,
                        v2g_backend="voltlib.security.v2g_local:local_backend")
    runner, running = await start_server(settings)
    try:
        yield running
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)


@pytest_asyncio.fixture
async def api(server: RunningServer) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=20) as client:
        yield Api(server, client)


@pytest_asyncio.fixture
async def ca_api(ca_server: RunningServer) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=ca_server.url, headers=ca_server.api_headers(), timeout=20) as client:
        yield Api(ca_server, client)


def _get_variables(station: Station) -> Callable[..., call_result.GetVariables]:
    def answer(get_variable_data: list[dict[str, Any]], **_: Any) -> call_result.GetVariables:
        results = []
        for item in get_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            result: dict[str, Any] = {"component": item["component"], "variable": item["variable"],
                                      "attributeType": item.get("attribute_type", "Actual")}
            if key in station.variables:
                result.update(attributeStatus="Accepted", attributeValue=station.variables[key])
            elif key[0] in {component for component, _ in station.variables}:
                result["attributeStatus"] = "UnknownVariable"
            else:
                result["attributeStatus"] = "UnknownComponent"
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    return answer


def _set_variables(station: Station) -> Callable[..., call_result.SetVariables]:
    def answer(set_variable_data: list[dict[str, Any]], **_: Any) -> call_result.SetVariables:
        results = []
        for item in set_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            status = "Accepted" if key in station.variables else "UnknownVariable"
            if status == "Accepted":
                station.variables[key] = item["attribute_value"]
            results.append({"component": item["component"], "variable": item["variable"],
                            "attributeType": item.get("attribute_type", "Actual"), "attributeStatus": status})
        return call_result.SetVariables(set_variable_result=results)

    return answer


def _set_monitoring(set_monitoring_data: list[dict[str, Any]], **_: Any) -> call_result.SetVariableMonitoring:
    """Every monitor Accepted, numbered from 1 in the order asked (or its own id when it has one)."""
    return call_result.SetVariableMonitoring(set_monitoring_result=[
        {"id": item.get("id") or n, "status": "Accepted", "type": item["type"], "severity": item["severity"],
         "component": item["component"], "variable": item["variable"]}
        for n, item in enumerate(set_monitoring_data, start=1)])


def _clear_monitoring(id: list[int], **_: Any) -> call_result.ClearVariableMonitoring:
    return call_result.ClearVariableMonitoring(clear_monitoring_result=[{"id": i, "status": "Accepted"} for i in id])


# What a station answers each call a CSMS may send, unless its test says otherwise.
DEFAULT_REPLIES: dict[str, Any] = {
    "CancelReservation": call_result.CancelReservation(status="Accepted"),
    "CertificateSigned": call_result.CertificateSigned(status="Accepted"),
    "ChangeAvailability": call_result.ChangeAvailability(status="Accepted"),
    "ClearCache": call_result.ClearCache(status="Accepted"),
    "ClearChargingProfile": call_result.ClearChargingProfile(status="Accepted"),
    "ClearDisplayMessage": call_result.ClearDisplayMessage(status="Accepted"),
    "ClearVariableMonitoring": _clear_monitoring,
    "CustomerInformation": call_result.CustomerInformation(status="Accepted"),
    "DataTransfer": call_result.DataTransfer(status="UnknownVendorId"),
    "DeleteCertificate": call_result.DeleteCertificate(status="Accepted"),
    "GetBaseReport": call_result.GetBaseReport(status="Accepted"),
    "GetCompositeSchedule": call_result.GetCompositeSchedule(status="Rejected"),
    "GetDisplayMessages": call_result.GetDisplayMessages(status="Accepted"),
    "GetInstalledCertificateIds": call_result.GetInstalledCertificateIds(status="NotFound"),
    "GetLocalListVersion": call_result.GetLocalListVersion(version_number=0),
    "GetLog": call_result.GetLog(status="Rejected"),
    "GetMonitoringReport": call_result.GetMonitoringReport(status="Accepted"),
    "GetReport": call_result.GetReport(status="Accepted"),
    "GetTransactionStatus": call_result.GetTransactionStatus(messages_in_queue=False),
    "InstallCertificate": call_result.InstallCertificate(status="Accepted"),
    "RequestStartTransaction": call_result.RequestStartTransaction(status="Accepted"),
    "RequestStopTransaction": call_result.RequestStopTransaction(status="Accepted"),
    "ReserveNow": call_result.ReserveNow(status="Accepted"),
    "Reset": call_result.Reset(status="Accepted"),
    "SendLocalList": call_result.SendLocalList(status="Accepted"),
    "SetChargingProfile": call_result.SetChargingProfile(status="Accepted"),
    "SetDisplayMessage": call_result.SetDisplayMessage(status="Accepted"),
    "SetMonitoringBase": call_result.SetMonitoringBase(status="Accepted"),
    "SetMonitoringLevel": call_result.SetMonitoringLevel(status="Accepted"),
    "SetVariableMonitoring": _set_monitoring,
    "SetNetworkProfile": call_result.SetNetworkProfile(status="Accepted"),
    "TriggerMessage": call_result.TriggerMessage(status="Accepted"),
    "UnlockConnector": call_result.UnlockConnector(status="Unlocked"),
    "UpdateFirmware": call_result.UpdateFirmware(status="Accepted"),
}
ANSWERED = (*DEFAULT_REPLIES, "GetVariables", "SetVariables")


class Station(ChargePoint):
    """A scriptable OCPP 2.0.1 charging station (its @on/@after handlers are added below the class)."""

    def __init__(self, cp_id: str, connection: Any) -> None:
        super().__init__(cp_id, connection, response_timeout=10)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.replies: dict[str, Any] = {**DEFAULT_REPLIES, "GetVariables": _get_variables(self),
                                        "SetVariables": _set_variables(self)}
        self.follow_ups: dict[str, FollowUp] = {}
        self.variables: dict[tuple[str, str], str] = {  # part of the device model every station has
            ("OCPPCommCtrlr", "OfflineThreshold"): "60", ("AuthCtrlr", "AuthorizeRemoteStart"): "false",
            ("AuthCtrlr", "Enabled"): "true", ("TxCtrlr", "TxStartPoint"): "EVConnected,Authorized",
            ("OCPPCommCtrlr", "NetworkConfigurationPriority"): "0", ("SecurityCtrlr", "SecurityProfile"): "1"}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._follow_up_tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        """Handle each frame in its own task: handlers may call the central system themselves."""
        while True:
            message = await self._connection.recv()
            task = asyncio.create_task(self.route_message(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def got(self, action: str) -> list[dict[str, Any]]:
        """The payloads (snake_case keys) of every ``action`` the central system sent us."""
        return [payload for name, payload in self.received if name == action]

    async def settle(self) -> None:
        """Wait for every follow-up started so far (and the ones they start)."""
        while self._follow_up_tasks:
            await self._follow_up_tasks.pop(0)

    async def _answer(self, action: str, payload: dict[str, Any]) -> Any:
        self.received.append((action, payload))
        reply = self.replies[action]
        if callable(reply):
            reply = reply(**payload)
            if asyncio.iscoroutine(reply):
                reply = await reply
        if isinstance(reply, dict):  # a wire payload: its action's call_result
            reply = getattr(call_result, action)(**{_snake(k): v for k, v in reply.items()})
        return reply

    def _after(self, action: str, payload: dict[str, Any]) -> None:
        follow_up = self.follow_ups.get(action)
        if follow_up is not None:
            self._follow_up_tasks.append(asyncio.create_task(follow_up(**payload)))

    # -- messages the station sends --

    async def send(self, payload: Any, unique_id: str | None = None) -> Any:
        """Send one call; a CallError raises (``suppress=False``)."""
        return await self.call(payload, suppress=False, unique_id=unique_id)

    async def boot(self, reason: str = "PowerUp", vendor: str = "OCTT", model: str = "OCTT-201",
                   **station: Any) -> call_result.BootNotification:
        return await self.send(call.BootNotification(
            charging_station={"vendorName": vendor, "model": model, **station}, reason=reason))

    async def status(self, evse_id: int, status: str, connector_id: int = 1, *, timestamp: str | None = None,
                     **kwargs: Any) -> call_result.StatusNotification:
        return await self.send(call.StatusNotification(
            timestamp=timestamp or now_iso(), connector_status=status, evse_id=evse_id, connector_id=connector_id,
            **kwargs))

    async def heartbeat(self) -> call_result.Heartbeat:
        return await self.send(call.Heartbeat())

    async def authorize(self, id_token: str = VALID[0], token_type: str = VALID[1]) -> dict[str, Any]:
        """Authorize; its idTokenInfo (snake_case keys)."""
        reply = await self.send(call.Authorize(id_token={"idToken": id_token, "type": token_type}))
        info: dict[str, Any] = reply.id_token_info
        return info

    async def booted(self, evses: int = 1) -> call_result.BootNotification:
        """Reusable state Booted: BootNotification PowerUp answered Accepted, then every EVSE's
        connector Available (the NotifyEvent that accompanies it is not sent; voltlib stores NotifyEvent,
        tests/conformance_v201/test_diagnostics.py)."""
        boot = await self.boot()
        assert boot.status == "Accepted"
        for evse_id in range(1, evses + 1):
            await self.status(evse_id, "Available")
        return boot

    async def report(self, request_id: int, *, full: bool, parts: int = 2) -> None:
        """The NotifyReport parts of a base report of ``station.variables`` (every one ReadWrite; a
        FullInventory adds the read-only identity of the station), the last with tbc false."""
        data = [{"component": {"name": c}, "variable": {"name": v},
                 "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadWrite"}],
                 "variableCharacteristics": {"dataType": "string", "supportsMonitoring": False}}
                for (c, v), value in sorted(self.variables.items()) if v != "BasicAuthPassword"]
        if full:
            data += [{"component": {"name": "ChargingStation"}, "variable": {"name": name},
                      "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadOnly"}],
                      "variableCharacteristics": {"dataType": "string", "supportsMonitoring": False}}
                     for name, value in (("Model", "OCTT-201"), ("VendorName", "OCTT"))]
        size = -(-len(data) // parts)
        for seq_no in range(parts):
            await self.send(call.NotifyReport(request_id=request_id, generated_at=now_iso(), seq_no=seq_no,
                                              report_data=data[seq_no * size:(seq_no + 1) * size],
                                              tbc=seq_no < parts - 1))

    def transaction(self, evse_id: int = 1, id_token: tuple[str, str] = VALID) -> Transaction:
        return Transaction(self, evse_id, id_token)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _answering(action: str) -> tuple[Callable[..., Any], Callable[..., None]]:
    """The @on and @after handlers of ``action`` (routed by the ocpp package by method name)."""
    snake = _snake(action)

    async def answer(self: Station, **payload: Any) -> Any:
        return await self._answer(action, payload)

    def follow(self: Station, **payload: Any) -> None:
        self._after(action, payload)

    answer.__name__ = answer.__qualname__ = f"on_{snake}"
    follow.__name__ = follow.__qualname__ = f"after_{snake}"
    return on(action)(answer), after(action)(follow)


for _action in ANSWERED:
    _on, _follow = _answering(_action)
    setattr(Station, _on.__name__, _on)
    setattr(Station, _follow.__name__, _follow)


@dataclass
class Transaction:
    """One transaction of one EVSE as the station reports it: its transactionId, its next seqNo and
    where it stands (the reusable states of the OCTT document are its methods)."""

    station: Station
    evse_id: int
    id_token: tuple[str, str]
    id: str = field(default_factory=lambda: f"octt-{uuid.uuid4().hex[:12]}")
    seq_no: int = 0
    started: bool = False
    authorized: bool = False
    ev_connected: bool = False
    replies: list[call_result.TransactionEvent] = field(default_factory=list)

    @property
    def token(self) -> dict[str, str]:
        return {"idToken": self.id_token[0], "type": self.id_token[1]}

    async def event(self, trigger_reason: str, event_type: str | None = None, *, charging_state: str | None = None,
                    stopped_reason: str | None = None, seq_no: int | None = None, evse: bool | None = None,
                    info: dict[str, Any] | None = None, **fields: Any) -> call_result.TransactionEvent:
        """One TransactionEvent: Started if none was sent yet, Updated otherwise (or ``event_type``),
        with the next seqNo (or ``seq_no``). The EVSE is named in the first event (or when ``evse``)."""
        event_type = event_type or ("Updated" if self.started else "Started")
        transaction_info: dict[str, Any] = {"transactionId": self.id, **(info or {})}
        if charging_state is not None:
            transaction_info["chargingState"] = charging_state
        if stopped_reason is not None:
            transaction_info["stoppedReason"] = stopped_reason
        if evse if evse is not None else not self.started:
            fields["evse"] = {"id": self.evse_id, "connectorId": 1}
        if seq_no is None:
            seq_no, self.seq_no = self.seq_no, self.seq_no + 1
        reply: call_result.TransactionEvent = await self.station.send(call.TransactionEvent(
            event_type=event_type, timestamp=fields.pop("timestamp", None) or now_iso(),
            trigger_reason=trigger_reason, seq_no=seq_no, transaction_info=transaction_info, **fields))
        self.started = True
        self.replies.append(reply)
        return reply

    # -- the reusable states of the OCTT 2.0.1 document (part 6, 3.18) --

    async def ev_connected_pre_session(self) -> None:
        """EVConnectedPreSession: the connector Occupied, then CablePluggedIn (Started, or Updated
        when already authorized)."""
        await self.station.status(self.evse_id, "Occupied")
        await self.event("CablePluggedIn", charging_state="EVConnected", evse=True)
        self.ev_connected = True

    async def authorize(self) -> None:
        """Authorized: Authorize, then TransactionEvent Authorized with the idToken; both Accepted."""
        assert (await self.station.authorize(*self.id_token))["status"] == "Accepted"
        reply = await self.event("Authorized", id_token=self.token)
        assert reply.id_token_info is not None and reply.id_token_info["status"] == "Accepted"
        self.authorized = True

    async def energy_transfer_started(self) -> None:
        """EnergyTransferStarted: Authorized if not yet, the cable plugged in if not yet, then
        ChargingStateChanged to Charging."""
        if not self.authorized:
            await self.authorize()
        if not self.ev_connected:
            await self.station.status(self.evse_id, "Occupied")
            await self.event("CablePluggedIn", charging_state="EVConnected", evse=True)
            self.ev_connected = True
        await self.event("ChargingStateChanged", charging_state="Charging")

    async def energy_transfer_suspended(self) -> None:
        await self.event("ChargingStateChanged", charging_state="SuspendedEV")

    async def stop_authorized(self) -> None:
        """StopAuthorized: Updated with triggerReason StopAuthorized (the same idToken), Accepted."""
        reply = await self.event("StopAuthorized", id_token=self.token)
        assert reply.id_token_info is not None and reply.id_token_info["status"] == "Accepted"

    async def ev_connected_post_session(self) -> None:
        await self.event("ChargingStateChanged", charging_state="EVConnected")

    async def ev_disconnected(self, **fields: Any) -> call_result.TransactionEvent:
        """EVDisconnected: the connector Available, then Ended (EVCommunicationLost, EVDisconnected)."""
        await self.station.status(self.evse_id, "Available")
        return await self.event("EVCommunicationLost", "Ended", charging_state="Idle", stopped_reason="EVDisconnected",
                                **fields)

    async def charging_to_end(self) -> call_result.TransactionEvent:
        """StopAuthorized, EVConnectedPostSession, then EVDisconnected."""
        await self.stop_authorized()
        await self.ev_connected_post_session()
        return await self.ev_disconnected()


@contextlib.asynccontextmanager
async def connect(server: RunningServer, cp_id: str, *, password: str = PASSWORD,
                  station: Station | None = None) -> AsyncIterator[Station]:
    """Open a WebSocket as ``cp_id`` over ``ocpp2.0.1`` and run a station on it (or re-attach
    ``station`` after a reboot, keeping its replies, device model and what it received)."""
    async with websockets.connect(f"{server.ws_url}/{cp_id}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                  additional_headers=basic_auth(cp_id, password), open_timeout=5) as ws:
        assert ws.subprotocol == "ocpp2.0.1"
        if station is None:
            station = Station(cp_id, ws)
        else:
            station._connection = ws
            station._response_queue = asyncio.Queue()
        reader = asyncio.create_task(station.start())
        try:
            yield station
            await station.settle()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await reader
