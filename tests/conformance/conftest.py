"""The charge-point side of the OCA conformance tests: an independent OCPP 1.6J client.

``Station`` is the ``ocpp`` package's :class:`ocpp.v16.ChargePoint` over a real ``websockets``
connection. It answers every command a central system may send with ``@on`` handlers (the
answer is configurable per test in ``station.replies``) and can run a follow-up after
answering (``station.follow_ups``, hooked with ``@after``), e.g. send ``StopTransaction`` after
accepting ``RemoteStopTransaction``. Central-system steps go through voltlib's real HTTP API
(:class:`Api`), and tests assert both what the station received and what voltlib stored.

Unlike the library's default loop, ``Station.start`` handles each incoming frame in its own
task, so a handler may itself wait on a call to the central system, as real firmware does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from tests.conftest import PASSWORD, RunningServer, basic_auth

FollowUp = Callable[..., Awaitable[None]]


def now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


DEFAULT_REPLIES: dict[str, Any] = {
    Action.cancel_reservation: call_result.CancelReservation(status="Accepted"),
    Action.certificate_signed: call_result.CertificateSigned(status="Accepted"),
    Action.change_availability: call_result.ChangeAvailability(status="Accepted"),
    Action.change_configuration: call_result.ChangeConfiguration(status="Accepted"),
    Action.clear_cache: call_result.ClearCache(status="Accepted"),
    Action.clear_charging_profile: call_result.ClearChargingProfile(status="Accepted"),
    Action.data_transfer: call_result.DataTransfer(status="UnknownVendorId"),
    Action.delete_certificate: call_result.DeleteCertificate(status="Accepted"),
    Action.extended_trigger_message: call_result.ExtendedTriggerMessage(status="Accepted"),
    Action.get_composite_schedule: call_result.GetCompositeSchedule(status="Rejected"),
    Action.get_configuration: call_result.GetConfiguration(configuration_key=[]),
    Action.get_diagnostics: call_result.GetDiagnostics(),
    Action.get_installed_certificate_ids: call_result.GetInstalledCertificateIds(status="NotFound"),
    Action.get_local_list_version: call_result.GetLocalListVersion(list_version=0),
    Action.get_log: call_result.GetLog(status="Rejected"),
    Action.install_certificate: call_result.InstallCertificate(status="Accepted"),
    Action.remote_start_transaction: call_result.RemoteStartTransaction(status="Accepted"),
    Action.remote_stop_transaction: call_result.RemoteStopTransaction(status="Accepted"),
    Action.reserve_now: call_result.ReserveNow(status="Accepted"),
    Action.reset: call_result.Reset(status="Accepted"),
    Action.send_local_list: call_result.SendLocalList(status="Accepted"),
    Action.set_charging_profile: call_result.SetChargingProfile(status="Accepted"),
    Action.signed_update_firmware: call_result.SignedUpdateFirmware(status="Accepted"),
    Action.trigger_message: call_result.TriggerMessage(status="Accepted"),
    Action.unlock_connector: call_result.UnlockConnector(status="Unlocked"),
    Action.update_firmware: call_result.UpdateFirmware(),
}


class Station(ChargePoint):
    """A scriptable OCPP 1.6J charge point."""

    def __init__(self, cp_id: str, connection: Any) -> None:
        super().__init__(cp_id, connection, response_timeout=10)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.replies: dict[str, Any] = dict(DEFAULT_REPLIES)
        self.follow_ups: dict[str, FollowUp] = {}
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
            task = self._follow_up_tasks.pop(0)
            await task

    async def _answer(self, action: str, payload: dict[str, Any]) -> Any:
        self.received.append((action, payload))
        reply = self.replies[action]
        if callable(reply):
            reply = reply(**payload)
            if asyncio.iscoroutine(reply):
                reply = await reply
        return reply

    def _after(self, action: str, payload: dict[str, Any]) -> None:
        follow_up = self.follow_ups.get(action)
        if follow_up is not None:
            self._follow_up_tasks.append(asyncio.create_task(follow_up(**payload)))

    # -- messages the station sends --

    async def send(self, payload: Any) -> Any:
        """Send one call; a CallError raises (``suppress=False``)."""
        return await self.call(payload, suppress=False)

    async def boot(self, vendor: str = "VoltTest", model: str = "CT-1", **kwargs: Any) -> call_result.BootNotification:
        return await self.send(call.BootNotification(charge_point_vendor=vendor, charge_point_model=model, **kwargs))

    async def status(self, connector_id: int, status: str, error_code: str = "NoError", **kwargs: Any) -> None:
        await self.send(call.StatusNotification(connector_id=connector_id, error_code=error_code, status=status,
                                                timestamp=kwargs.pop("timestamp", now_iso()), **kwargs))

    async def authorize(self, id_tag: str) -> dict[str, Any]:
        return (await self.send(call.Authorize(id_tag=id_tag))).id_tag_info

    async def start_tx(self, connector_id: int, id_tag: str, meter_start: int = 0, *, timestamp: str | None = None,
                       reservation_id: int | None = None) -> call_result.StartTransaction:
        return await self.send(call.StartTransaction(connector_id=connector_id, id_tag=id_tag, meter_start=meter_start,
                                                     timestamp=timestamp or now_iso(), reservation_id=reservation_id))

    async def stop_tx(self, transaction_id: int, meter_stop: int, *, reason: str | None = None,
                      id_tag: str | None = None, timestamp: str | None = None,
                      transaction_data: list[dict[str, Any]] | None = None) -> call_result.StopTransaction:
        return await self.send(call.StopTransaction(meter_stop=meter_stop, timestamp=timestamp or now_iso(),
                                                    transaction_id=transaction_id, reason=reason, id_tag=id_tag,
                                                    transaction_data=transaction_data))

    async def meter(self, connector_id: int, transaction_id: int | None, wh: int | None, *,
                    timestamp: str | None = None, context: str = "Sample.Periodic", soc: float | None = None) -> None:
        """One MeterValues: the energy register ``wh`` and, when given, the car's state of charge."""
        samples: list[dict[str, Any]] = []
        if wh is not None:
            samples.append({"value": str(wh), "context": context, "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh"})
        if soc is not None:
            samples.append({"value": f"{soc:g}", "context": context, "measurand": "SoC", "unit": "Percent",
                            "location": "EV"})
        await self.send(call.MeterValues(connector_id=connector_id, transaction_id=transaction_id, meter_value=[
            {"timestamp": timestamp or now_iso(), "sampledValue": samples}]))

    # -- commands the central system sends: answer, then run the follow-up --

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, **kw: Any) -> Any:
        return await self._answer(Action.cancel_reservation, kw)

    @after(Action.cancel_reservation)
    def after_cancel_reservation(self, **kw: Any) -> None:
        self._after(Action.cancel_reservation, kw)

    @on(Action.certificate_signed)
    async def on_certificate_signed(self, **kw: Any) -> Any:
        return await self._answer(Action.certificate_signed, kw)

    @after(Action.certificate_signed)
    def after_certificate_signed(self, **kw: Any) -> None:
        self._after(Action.certificate_signed, kw)

    @on(Action.change_availability)
    async def on_change_availability(self, **kw: Any) -> Any:
        return await self._answer(Action.change_availability, kw)

    @on(Action.change_configuration)
    async def on_change_configuration(self, **kw: Any) -> Any:
        return await self._answer(Action.change_configuration, kw)

    @after(Action.change_configuration)
    def after_change_configuration(self, **kw: Any) -> None:
        self._after(Action.change_configuration, kw)

    @on(Action.clear_cache)
    async def on_clear_cache(self, **kw: Any) -> Any:
        return await self._answer(Action.clear_cache, kw)

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, **kw: Any) -> Any:
        return await self._answer(Action.clear_charging_profile, kw)

    @on(Action.data_transfer)
    async def on_data_transfer(self, **kw: Any) -> Any:
        return await self._answer(Action.data_transfer, kw)

    @on(Action.delete_certificate)
    async def on_delete_certificate(self, **kw: Any) -> Any:
        return await self._answer(Action.delete_certificate, kw)

    @on(Action.extended_trigger_message)
    async def on_extended_trigger_message(self, **kw: Any) -> Any:
        return await self._answer(Action.extended_trigger_message, kw)

    @after(Action.extended_trigger_message)
    def after_extended_trigger_message(self, **kw: Any) -> None:
        self._after(Action.extended_trigger_message, kw)

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, **kw: Any) -> Any:
        return await self._answer(Action.get_composite_schedule, kw)

    @on(Action.get_configuration)
    async def on_get_configuration(self, **kw: Any) -> Any:
        return await self._answer(Action.get_configuration, kw)

    @on(Action.get_diagnostics)
    async def on_get_diagnostics(self, **kw: Any) -> Any:
        return await self._answer(Action.get_diagnostics, kw)

    @after(Action.get_diagnostics)
    def after_get_diagnostics(self, **kw: Any) -> None:
        self._after(Action.get_diagnostics, kw)

    @on(Action.get_installed_certificate_ids)
    async def on_get_installed_certificate_ids(self, **kw: Any) -> Any:
        return await self._answer(Action.get_installed_certificate_ids, kw)

    @on(Action.get_local_list_version)
    async def on_get_local_list_version(self, **kw: Any) -> Any:
        return await self._answer(Action.get_local_list_version, kw)

    @on(Action.get_log)
    async def on_get_log(self, **kw: Any) -> Any:
        return await self._answer(Action.get_log, kw)

    @after(Action.get_log)
    def after_get_log(self, **kw: Any) -> None:
        self._after(Action.get_log, kw)

    @on(Action.install_certificate)
    async def on_install_certificate(self, **kw: Any) -> Any:
        return await self._answer(Action.install_certificate, kw)

    @on(Action.remote_start_transaction)
    async def on_remote_start_transaction(self, **kw: Any) -> Any:
        return await self._answer(Action.remote_start_transaction, kw)

    @after(Action.remote_start_transaction)
    def after_remote_start_transaction(self, **kw: Any) -> None:
        self._after(Action.remote_start_transaction, kw)

    @on(Action.remote_stop_transaction)
    async def on_remote_stop_transaction(self, **kw: Any) -> Any:
        return await self._answer(Action.remote_stop_transaction, kw)

    @after(Action.remote_stop_transaction)
    def after_remote_stop_transaction(self, **kw: Any) -> None:
        self._after(Action.remote_stop_transaction, kw)

    @on(Action.reserve_now)
    async def on_reserve_now(self, **kw: Any) -> Any:
        return await self._answer(Action.reserve_now, kw)

    @after(Action.reserve_now)
    def after_reserve_now(self, **kw: Any) -> None:
        self._after(Action.reserve_now, kw)

    @on(Action.reset)
    async def on_reset(self, **kw: Any) -> Any:
        return await self._answer(Action.reset, kw)

    @after(Action.reset)
    def after_reset(self, **kw: Any) -> None:
        self._after(Action.reset, kw)

    @on(Action.send_local_list)
    async def on_send_local_list(self, **kw: Any) -> Any:
        return await self._answer(Action.send_local_list, kw)

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, **kw: Any) -> Any:
        return await self._answer(Action.set_charging_profile, kw)

    @on(Action.signed_update_firmware)
    async def on_signed_update_firmware(self, **kw: Any) -> Any:
        return await self._answer(Action.signed_update_firmware, kw)

    @after(Action.signed_update_firmware)
    def after_signed_update_firmware(self, **kw: Any) -> None:
        self._after(Action.signed_update_firmware, kw)

    @on(Action.trigger_message)
    async def on_trigger_message(self, **kw: Any) -> Any:
        return await self._answer(Action.trigger_message, kw)

    @after(Action.trigger_message)
    def after_trigger_message(self, **kw: Any) -> None:
        self._after(Action.trigger_message, kw)

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, **kw: Any) -> Any:
        return await self._answer(Action.unlock_connector, kw)

    @after(Action.unlock_connector)
    def after_unlock_connector(self, **kw: Any) -> None:
        self._after(Action.unlock_connector, kw)

    @on(Action.update_firmware)
    async def on_update_firmware(self, **kw: Any) -> Any:
        return await self._answer(Action.update_firmware, kw)

    @after(Action.update_firmware)
    def after_update_firmware(self, **kw: Any) -> None:
        self._after(Action.update_firmware, kw)


@contextlib.asynccontextmanager
async def connect(server: RunningServer, cp_id: str, *, password: str = PASSWORD,
                  subprotocols: tuple[str, ...] = ("ocpp1.6",), station: Station | None = None,
                  ) -> AsyncIterator[Station]:
    """Open a WebSocket as ``cp_id`` and run a station on it (or re-attach ``station`` after a reboot,
    keeping its configured replies and what it received). On a server whose test charge points speak
    2.0.1 (``server.station_version``), the station is a :class:`tests.conformance.station201.Station201`
    with the same methods."""
    if server.station_version == "2.0.1" and station is None and subprotocols == ("ocpp1.6",):
        from tests.conformance.station201 import connect201

        async with connect201(server, cp_id, password=password) as station201:
            yield station201  # type: ignore[misc]
        return
    async with websockets.connect(f"{server.ws_url}/{cp_id}", subprotocols=list(subprotocols),
                                  additional_headers=basic_auth(cp_id, password), open_timeout=5) as ws:
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


async def bring_online(station: Station, connectors: int = 1) -> None:
    """Cold boot: BootNotification Accepted, then StatusNotification Available for 0..connectors."""
    boot = await station.boot()
    assert boot.status == "Accepted"
    for connector_id in range(connectors + 1):
        await station.status(connector_id, "Available")


class Api:
    """voltlib's HTTP API as the operator uses it."""

    def __init__(self, server: RunningServer, client: httpx.AsyncClient) -> None:
        self.server = server
        self.http = client

    async def get(self, path: str) -> Any:
        response = await self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    async def command(self, cp_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a command through the API; return the command row as GET .../commands lists it."""
        response = await self.http.post(f"/api/v1/charge-points/{cp_id}/commands/{action}", json=payload)
        assert response.status_code == 200, response.text
        row = response.json()
        stored = [c for c in await self.commands(cp_id) if c["id"] == row["id"]]
        assert len(stored) == 1
        assert stored[0]["state"] == row["state"] and stored[0]["response"] == row["response"]
        assert stored[0]["action"] == action and stored[0]["request"] == payload
        assert stored[0]["finished_at"] is not None
        return stored[0]

    async def commands(self, cp_id: str) -> list[dict[str, Any]]:
        return await self.get(f"/api/v1/charge-points/{cp_id}/commands")

    async def charge_point(self, cp_id: str) -> dict[str, Any]:
        return await self.get(f"/api/v1/charge-points/{cp_id}")

    async def connector(self, cp_id: str, connector_id: int) -> dict[str, Any]:
        detail = await self.charge_point(cp_id)
        return next(c for c in detail["connectors"] if c["connector_id"] == connector_id)

    async def transactions(self, cp_id: str) -> list[dict[str, Any]]:
        return await self.get(f"/api/v1/charge-points/{cp_id}/transactions")

    async def transaction(self, cp_id: str, tx_id: int) -> dict[str, Any]:
        return next(t for t in await self.transactions(cp_id) if t["id"] == tx_id)

    async def security_events(self) -> list[dict[str, Any]]:
        return await self.get("/api/v1/security-events")

    async def put_id_tag(self, id_tag: str, **body: Any) -> None:
        response = await self.http.put(f"/api/v1/id-tags/{id_tag}", json=body)
        assert response.status_code == 200, response.text

    async def id_tag(self, id_tag: str) -> dict[str, Any]:
        return next(t for t in await self.get("/api/v1/id-tags") if t["id_tag"] == id_tag)


@pytest_asyncio.fixture
async def api(server: RunningServer) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=20) as client:
        yield Api(server, client)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll an async predicate (for effects voltlib commits after it has answered)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
