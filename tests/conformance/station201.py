"""The charge-point side of the tests, over OCPP 2.0.1: an independent client with the same method
names and result shapes as the 1.6 :class:`tests.conformance.conftest.Station`, so a suite runs on
either version (the server fixture says which: ``RunningServer.station_version``).

``Station201`` is the ``ocpp`` package's :class:`ocpp.v201.ChargePoint` over a real ``websockets``
connection. The 1.6 words map onto 2.0.1 messages:

- ``status(connector, status)``: StatusNotification of EVSE ``connector``, plug 1, the 1.6 status
  in 2.0.1's five (Preparing, Charging, Suspended*, Finishing are Occupied); connector 0 (the
  charge point itself) has no status in 2.0.1: nothing is sent;
- ``authorize(tag)``: Authorize with an IdToken (``token_type``, ISO14443 unless said);
- ``start_tx``: TransactionEvent Started with the idToken and the register as Transaction.Begin.
  The transaction id is the station's (a string); the same (EVSE, tag, timestamp) again is sent
  again with the same transactionId and seqNo, as a station retransmits;
- ``meter(connector, tx, wh)``: TransactionEvent Updated (MeterValuePeriodic) within a
  transaction, MeterValues of the EVSE outside one;
- ``stop_tx``: TransactionEvent Ended with the register as Transaction.End (and the 1.6
  ``transaction_data`` readings), stoppedReason = the 1.6 reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result

from tests.conftest import PASSWORD, RunningServer, basic_auth

OCCUPIED = {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"}
TRIGGER_OF_STOP = {"EVDisconnected": "EVCommunicationLost", "Remote": "RemoteStop", "DeAuthorized": "Deauthorized"}


def _now_iso() -> str:
    from tests.conformance.conftest import now_iso

    return now_iso()


@dataclass
class Started:
    """What ``start_tx`` answers, in the 1.6 result's shape: the transaction id (the station's) and
    the idTokenInfo (snake_case keys, ``status`` as in 1.6)."""

    transaction_id: str
    id_tag_info: dict[str, Any] | None


@dataclass
class Stopped:
    id_tag_info: dict[str, Any] | None


@dataclass
class _Tx:
    evse: int
    next_seq: int = 0

    def seq(self, given: int | None = None) -> int:
        """The next seqNo, or ``given``; what follows is after both."""
        seq_no = self.next_seq if given is None else given
        self.next_seq = max(self.next_seq, seq_no + 1)
        return seq_no


# every station's transactions, by their (unique) id: a station connecting again, as after a
# reboot, goes on with a transaction's seqNo where it was
_TRANSACTIONS: dict[str, _Tx] = {}


def sampled(wh: float | None, context: str, *, soc: float | None = None) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    if wh is not None:
        samples.append({"value": wh, "context": context, "measurand": "Energy.Active.Import.Register",
                        "unitOfMeasure": {"unit": "Wh"}})
    if soc is not None:
        samples.append({"value": soc, "context": context, "measurand": "SoC", "location": "EV",
                        "unitOfMeasure": {"unit": "Percent"}})
    return samples


def from_v16(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """1.6 wire meter values (``transaction_data``) as 2.0.1's: numbers, the unit in unitOfMeasure."""
    out = []
    for value in values:
        samples = []
        for s in value["sampledValue"]:
            sample: dict[str, Any] = {"value": float(s["value"])}
            for key in ("context", "measurand", "phase", "location"):
                if key in s:
                    sample[key] = s[key]
            if "unit" in s:
                sample["unitOfMeasure"] = {"unit": s["unit"]}
            samples.append(sample)
        out.append({"timestamp": value["timestamp"], "sampledValue": samples})
    return out


class Station201(ChargePoint):
    """A scriptable OCPP 2.0.1 charging station."""

    def __init__(self, cp_id: str, connection: Any) -> None:
        super().__init__(cp_id, connection, response_timeout=10)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.follow_ups: dict[str, Callable[..., Awaitable[None]]] = {}
        self.transactions = _TRANSACTIONS
        self._started: dict[tuple[int, str, str], tuple[str, call.TransactionEvent]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        while True:
            message = await self._connection.recv()
            task = asyncio.create_task(self.route_message(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _answer(self, action: str, kw: dict[str, Any], reply: Any) -> Any:
        self.received.append((action, kw))
        return reply

    # -- the commands car sharing, smart charging and security send: recorded, answered --

    @on("ReserveNow")
    def on_reserve_now(self, **kw: Any) -> Any:
        return self._answer("ReserveNow", kw, call_result.ReserveNow(status="Accepted"))

    @on("CancelReservation")
    def on_cancel_reservation(self, **kw: Any) -> Any:
        return self._answer("CancelReservation", kw, call_result.CancelReservation(status="Accepted"))

    @on("SetChargingProfile")
    def on_set_charging_profile(self, **kw: Any) -> Any:
        return self._answer("SetChargingProfile", kw, call_result.SetChargingProfile(status="Accepted"))

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(self, **kw: Any) -> Any:
        return self._answer("GetCompositeSchedule", kw, call_result.GetCompositeSchedule(status="Rejected"))

    @on("SendLocalList")
    def on_send_local_list(self, **kw: Any) -> Any:
        return self._answer("SendLocalList", kw, call_result.SendLocalList(status="Accepted"))

    @on("ChangeAvailability")
    def on_change_availability(self, **kw: Any) -> Any:
        return self._answer("ChangeAvailability", kw, call_result.ChangeAvailability(status="Accepted"))

    @on("SetDisplayMessage")
    def on_set_display_message(self, **kw: Any) -> Any:
        return self._answer("SetDisplayMessage", kw, call_result.SetDisplayMessage(status="Accepted"))

    @on("ClearDisplayMessage")
    def on_clear_display_message(self, **kw: Any) -> Any:
        return self._answer("ClearDisplayMessage", kw, call_result.ClearDisplayMessage(status="Accepted"))

    def got(self, action: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.received if name == action]

    async def settle(self) -> None:
        """Nothing runs after an answer on this station (it answers voltlib's commands at once)."""

    async def send(self, payload: Any, unique_id: str | None = None) -> Any:
        """Send one call; a CallError raises."""
        return await self.call(payload, suppress=False, unique_id=unique_id)

    # -- the 1.6 station's words --

    async def boot(self, vendor: str = "VoltTest", model: str = "CT-2", **kwargs: Any) -> call_result.BootNotification:
        return await self.send(call.BootNotification(
            charging_station={"vendorName": vendor, "model": model, **kwargs}, reason="PowerUp"))

    async def status(self, connector_id: int, status: str, error_code: str = "NoError", **kwargs: Any) -> None:
        if connector_id == 0:
            return
        state = "Occupied" if status in OCCUPIED else status
        await self.send(call.StatusNotification(timestamp=kwargs.pop("timestamp", None) or _now_iso(),
                                                connector_status=state, evse_id=connector_id, connector_id=1))

    async def authorize(self, id_tag: str, token_type: str = "ISO14443") -> dict[str, Any]:
        reply = await self.send(call.Authorize(id_token={"idToken": id_tag, "type": token_type}))
        info: dict[str, Any] = reply.id_token_info
        return info

    async def start_tx(self, connector_id: int, id_tag: str, meter_start: int = 0, *, timestamp: str | None = None,
                       reservation_id: int | None = None, token_type: str = "ISO14443") -> Started:
        key = (connector_id, id_tag, timestamp or "")
        if timestamp is not None and key in self._started:  # sent again as it was: a retransmission
            tx_id, event = self._started[key]
        else:
            tx_id = f"tx-{uuid.uuid4().hex[:12]}"
            self.transactions[tx_id] = _Tx(connector_id)
            at = timestamp or _now_iso()
            event = call.TransactionEvent(
                event_type="Started", timestamp=at, trigger_reason="Authorized",
                seq_no=self.transactions[tx_id].seq(),
                transaction_info={"transactionId": tx_id, "chargingState": "Charging"},
                evse={"id": connector_id, "connectorId": 1}, id_token={"idToken": id_tag, "type": token_type},
                meter_value=[{"timestamp": at, "sampledValue": sampled(meter_start, "Transaction.Begin")}],
                reservation_id=reservation_id)
            self._started[key] = (tx_id, event)
        reply = await self.send(event)
        return Started(tx_id, reply.id_token_info)

    async def stop_tx(self, transaction_id: str, meter_stop: int, *, reason: str | None = None,
                      id_tag: str | None = None, timestamp: str | None = None,
                      transaction_data: list[dict[str, Any]] | None = None) -> Stopped:
        at = timestamp or _now_iso()
        info: dict[str, Any] = {"transactionId": transaction_id, "chargingState": "Idle"}
        if reason is not None:
            info["stoppedReason"] = reason
        values = [*from_v16(transaction_data or []),
                  {"timestamp": at, "sampledValue": sampled(meter_stop, "Transaction.End")}]
        trigger = TRIGGER_OF_STOP.get(reason or "", "StopAuthorized")
        reply = await self.event("Ended", transaction_id, trigger, timestamp=at, transaction_info=info,
                                 meter_value=values, id_token=None if id_tag is None else {"idToken": id_tag,
                                                                                           "type": "ISO14443"})
        return Stopped(reply.id_token_info)

    async def meter(self, connector_id: int, transaction_id: str | None, wh: int | None, *,
                    timestamp: str | None = None, context: str = "Sample.Periodic", soc: float | None = None) -> None:
        values = [{"timestamp": timestamp or _now_iso(), "sampledValue": sampled(wh, context, soc=soc)}]
        if transaction_id is None:
            await self.send(call.MeterValues(evse_id=connector_id, meter_value=values))
        else:
            await self.event("Updated", transaction_id, "MeterValuePeriodic", meter_value=values)

    # -- 2.0.1 only --

    async def event(self, event_type: str, transaction_id: str, trigger_reason: str, *, timestamp: str | None = None,
                    transaction_info: dict[str, Any] | None = None, seq_no: int | None = None,
                    unique_id: str | None = None, **fields: Any) -> call_result.TransactionEvent:
        """One TransactionEvent of ``transaction_id`` with the next seqNo (or ``seq_no``)."""
        tx = self.transactions.setdefault(transaction_id, _Tx(fields.get("evse", {}).get("id", 1)))
        return await self.send(call.TransactionEvent(
            event_type=event_type, timestamp=timestamp or _now_iso(), trigger_reason=trigger_reason,
            seq_no=tx.seq(seq_no),
            transaction_info=transaction_info or {"transactionId": transaction_id}, **fields), unique_id=unique_id)

    async def plug_in(self, connector_id: int, *, timestamp: str | None = None) -> str:
        """A transaction started when the cable is plugged in, before anyone is known (TxStartPoint
        EVConnected): Started without idToken. Returns the station's transaction id."""
        tx_id = f"tx-{uuid.uuid4().hex[:12]}"
        self.transactions[tx_id] = _Tx(connector_id)
        await self.event("Started", tx_id, "CablePluggedIn", timestamp=timestamp,
                         evse={"id": connector_id, "connectorId": 1},
                         transaction_info={"transactionId": tx_id, "chargingState": "EVConnected"})
        return tx_id

    async def authorized(self, transaction_id: str, id_tag: str, token_type: str = "ISO14443",
                         **fields: Any) -> dict[str, Any] | None:
        """Updated with triggerReason Authorized and the idToken; returns its idTokenInfo."""
        reply = await self.event("Updated", transaction_id, "Authorized",
                                 id_token={"idToken": id_tag, "type": token_type}, **fields)
        info: dict[str, Any] | None = reply.id_token_info
        return info


@contextlib.asynccontextmanager
async def connect201(server: RunningServer, cp_id: str, *, password: str = PASSWORD) -> AsyncIterator[Station201]:
    """Open a WebSocket as ``cp_id`` over ``ocpp2.0.1`` and run a station on it."""
    async with websockets.connect(f"{server.ws_url}/{cp_id}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                  additional_headers=basic_auth(cp_id, password), open_timeout=5) as ws:
        assert ws.subprotocol == "ocpp2.0.1"
        station = Station201(cp_id, ws)
        reader = asyncio.create_task(station.start())
        try:
            yield station
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await reader


async def voltlib_id(server: RunningServer, cp_id: str, transaction_id: int | str) -> int:
    """voltlib's integer id of a transaction, given as a station names it (1.6: the same number)."""
    if isinstance(transaction_id, int):
        return transaction_id
    from sqlalchemy import select

    from voltlib.store.tables import transactions

    def op(conn: Any) -> int:
        return int(conn.execute(select(transactions.c.id).where(
            transactions.c.charge_point_id == cp_id, transactions.c.station_tx_id == transaction_id)).scalar_one())

    return await server.store.read(op)
