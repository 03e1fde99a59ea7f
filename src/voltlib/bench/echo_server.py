"""CEILING server for ``voltlib bench gateway``.

A raw OCPP-J "echo" server on aiohttp's WebSocket stack (the stack voltlib
uses).  Every CALL ``[2, id, action, payload]`` is answered with
``[3, id, {}]`` -- BootNotification and Heartbeat get a plausible payload --
with no schema validation, no storage, no routing and no per-charge-point
state.  Whatever voltlib does on top of aiohttp costs more than this, so its
throughput is the ceiling a gateway on this stack can reach on this machine.

Run: ``python -m voltlib.bench.echo_server --host 127.0.0.1 --port 9100``;
charge points connect to ``ws://127.0.0.1:9100/ocpp/{cp_id}`` with
subprotocol ``ocpp1.6`` or ``ocpp2.0.1`` (it answers both alike).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from datetime import UTC, datetime

import msgspec
from aiohttp import WSMsgType, web

SUBPROTOCOLS = ("ocpp1.6", "ocpp2.0.1")
_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _answer(frame: object) -> str | None:
    """Return the CALLRESULT text for a CALL frame, or None to ignore the frame."""
    if not isinstance(frame, list) or len(frame) < 3 or frame[0] != 2:
        return None
    unique_id = frame[1]
    action = frame[2]
    payload: dict[str, object]
    if action == "BootNotification":
        payload = {"currentTime": _now(), "interval": 300, "status": "Accepted"}
    elif action == "Heartbeat":
        payload = {"currentTime": _now()}
    else:
        payload = {}
    return _encode([3, unique_id, payload]).decode()


PING_INTERVAL_KEY = web.AppKey("ping_interval", float)


async def ocpp_ws(request: web.Request) -> web.StreamResponse:
    ping = request.app.get(PING_INTERVAL_KEY)  # None: the server never pings
    ws = web.WebSocketResponse(protocols=SUBPROTOCOLS, compress=False, heartbeat=ping)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is not WSMsgType.TEXT:
            continue
        try:
            frame = _decode(msg.data)
        except msgspec.DecodeError:
            continue
        answer = _answer(frame)
        if answer is not None:
            await ws.send_str(answer)
    return ws


def make_app(ping_interval: float | None = None) -> web.Application:
    app = web.Application()
    if ping_interval is not None:
        app[PING_INTERVAL_KEY] = ping_interval
    app.router.add_get("/ocpp/{cp}", ocpp_ws)
    return app


async def serve(host: str, port: int, backlog: int = 4096) -> None:
    runner = web.AppRunner(make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=backlog)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--backlog", type=int, default=4096)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.backlog))


if __name__ == "__main__":
    main()
