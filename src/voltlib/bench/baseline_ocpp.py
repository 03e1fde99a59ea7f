"""BASELINE server for ``voltlib bench gateway``.

A minimal OCPP 1.6 (or, with ``--ocpp 2.0.1``, 2.0.1) central system written
with the ``ocpp`` package the way its documentation and
``examples/v16/central_system.py`` / ``examples/v201/central_system.py`` show
it: a ``websockets`` server, one ``ChargePoint`` subclass per connection with
``@on(Action....)`` handlers, nothing tuned.  This is the yardstick a
Python developer would write first; voltlib is compared against it.

Deviations from the upstream example, all neutral for performance:

* handlers for Heartbeat, MeterValues and StatusNotification (2.0.1: and
  TransactionEvent) besides BootNotification (the examples have only that and,
  for 2.0.1, Heartbeat);
* the charge point id is the *last* path segment, so both ``/{id}`` and
  ``/ocpp/{id}`` work (the example strips ``/`` from the whole path);
* a charge point disconnecting ends its handler quietly instead of logging
  a ``ConnectionClosed`` traceback;
* ``--log-level`` defaults to WARNING.  The example sets INFO, at which the
  ``ocpp`` package logs every frame received and sent; pass
  ``--log-level INFO`` to reproduce that (it costs throughput).

Run: ``python -m voltlib.bench.baseline_ocpp --host 127.0.0.1 --port 9200``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal
from datetime import UTC, datetime
from typing import Any

import websockets
from ocpp.routing import on  # type: ignore[import-untyped,unused-ignore]
from ocpp.v16 import ChargePoint as cp  # type: ignore[import-untyped,unused-ignore]
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, RegistrationStatus  # type: ignore[import-untyped,unused-ignore]
from ocpp.v201 import ChargePoint as cp201  # type: ignore[import-untyped,unused-ignore]
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201  # type: ignore[import-untyped,unused-ignore]
from ocpp.v201.enums import RegistrationStatusEnumType  # type: ignore[import-untyped,unused-ignore]
from websockets.asyncio.server import ServerConnection
from websockets.typing import Subprotocol

SUBPROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
LOGGER = logging.getLogger("voltlib.bench.baseline")


class ChargePoint(cp):  # type: ignore[misc]
    @on(Action.boot_notification)  # type: ignore[untyped-decorator]
    def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> Any:
        return call_result.BootNotification(
            current_time=datetime.now(UTC).isoformat(),
            interval=10,
            status=RegistrationStatus.accepted,
        )

    @on(Action.heartbeat)  # type: ignore[untyped-decorator]
    def on_heartbeat(self, **kwargs: Any) -> Any:
        return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())

    @on(Action.meter_values)  # type: ignore[untyped-decorator]
    def on_meter_values(
        self, connector_id: int, meter_value: list[Any], **kwargs: Any
    ) -> Any:
        return call_result.MeterValues()

    @on(Action.status_notification)  # type: ignore[untyped-decorator]
    def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **kwargs: Any
    ) -> Any:
        return call_result.StatusNotification()


class ChargePoint201(cp201):  # type: ignore[misc]
    @on(Action201.boot_notification)  # type: ignore[untyped-decorator]
    def on_boot_notification(self, charging_station: dict[str, Any], reason: str, **kwargs: Any) -> Any:
        return result201.BootNotification(current_time=datetime.now(UTC).isoformat(), interval=10,
                                          status=RegistrationStatusEnumType.accepted)

    @on(Action201.heartbeat)  # type: ignore[untyped-decorator]
    def on_heartbeat(self, **kwargs: Any) -> Any:
        return result201.Heartbeat(current_time=datetime.now(UTC).isoformat())

    @on(Action201.status_notification)  # type: ignore[untyped-decorator]
    def on_status_notification(self, timestamp: str, connector_status: str, evse_id: int, connector_id: int,
                               **kwargs: Any) -> Any:
        return result201.StatusNotification()

    @on(Action201.transaction_event)  # type: ignore[untyped-decorator]
    def on_transaction_event(self, event_type: str, timestamp: str, trigger_reason: str, seq_no: int,
                             transaction_info: dict[str, Any], **kwargs: Any) -> Any:
        return result201.TransactionEvent()

    @on(Action201.meter_values)  # type: ignore[untyped-decorator]
    def on_meter_values(self, evse_id: int, meter_value: list[Any], **kwargs: Any) -> Any:
        return result201.MeterValues()


def charge_point_id_from_path(path: str) -> str:
    """``/CP1`` -> ``CP1``; ``/ocpp/CP1`` -> ``CP1``; query strings are dropped."""
    return path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


async def on_connect(websocket: ServerConnection, version: str = "1.6") -> None:
    """For every new charge point that connects, create a ChargePoint
    instance and start listening for messages (as in the ocpp docs)."""
    request = websocket.request
    assert request is not None
    try:
        requested_protocols = request.headers["Sec-WebSocket-Protocol"]
    except KeyError:
        LOGGER.error("Client hasn't requested any Subprotocol. Closing Connection")
        return await websocket.close()
    if websocket.subprotocol:
        LOGGER.info("Protocols Matched: %s", websocket.subprotocol)
    else:
        LOGGER.warning(
            "Protocols Mismatched | Expected Subprotocols: %s,"
            " but client supports  %s | Closing connection",
            SUBPROTOCOLS[version],
            requested_protocols,
        )
        return await websocket.close()

    charge_point_id = charge_point_id_from_path(request.path)
    charge_point = (ChargePoint201 if version == "2.0.1" else ChargePoint)(charge_point_id, websocket)
    with contextlib.suppress(websockets.ConnectionClosed):
        await charge_point.start()


async def main(host: str = "127.0.0.1", port: int = 9200, version: str = "1.6") -> None:
    server = await websockets.serve(functools.partial(on_connect, version=version), host, port,
                                    subprotocols=[Subprotocol(SUBPROTOCOLS[version])])
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.close)
    LOGGER.info("Server Started listening to new connections...")
    await server.wait_closed()


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ocpp-package baseline central system")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--ocpp", choices=sorted(SUBPROTOCOLS), default="1.6")
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper()))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.host, args.port, args.ocpp))


if __name__ == "__main__":
    cli()
