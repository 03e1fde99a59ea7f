"""The TLS listener of security profiles 2 and 3, which knows when a handshake fails.

asyncio's own TLS server drops a failed handshake without a word: an untrusted or expired client
certificate, a charge point that refuses our certificate, a TLS version too old — none reaches HTTP,
so none could be recorded. The whitepaper (A00.FR.408) wants them logged as security events. Here
the listener accepts plain TCP and starts TLS on each connection itself (``loop.start_tls``), so a
failure is caught with the peer's address; a good handshake hands the connection to aiohttp exactly
as its own TLS server would.

A source over the gateway's failure limit is hung up on before its handshake: a handshake costs the
server a signature, and a blocked source would only add failures. So is any connection beyond
``MAX_HANDSHAKES`` under way at once: connections that open and then say nothing (a slow-loris)
cannot hold more than that many sockets and tasks, each for ``HANDSHAKE_TIMEOUT`` at most.

The TLS context is built again when one of its files changes (a new revocation list, a renewed
server certificate), so neither needs a restart; connections already open keep theirs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Protocol

from aiohttp import web

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # seconds a connection may take to finish its TLS handshake
RELOAD_EVERY = 10.0  # seconds between two looks at the context's files
MAX_HANDSHAKES = 1000  # handshakes under way at once; a connection beyond is closed at once


class HandshakeWatcher(Protocol):
    """What the listener tells about and asks of the gateway."""

    def tls_blocked(self, address: str) -> bool: ...

    def tls_failed(self, address: str, error: ssl.SSLError) -> Awaitable[None]: ...


class ContextSource:
    """The current TLS context. At most every ``every`` seconds, at a handshake, it looks whether
    a file changed; if so it builds the context again. A file that does not load (a CRL written
    half-way, a key that does not match) keeps the previous context, logged, until it changes again."""

    def __init__(self, build: Callable[[], ssl.SSLContext], files: Iterable[Path], *,
                 every: float = RELOAD_EVERY) -> None:
        self._build, self._files, self._every = build, tuple(files), every
        self._stamps = self._stamp()
        self._context = build()
        self._checked = time.monotonic()

    def current(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self._checked >= self._every:
            self._checked = now
            stamps = self._stamp()
            if stamps != self._stamps:
                self._stamps = stamps
                try:
                    self._context = self._build()
                except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                    log.error("TLS files changed but do not load (%s): keeping the previous TLS context", exc)
                else:
                    log.info("TLS files changed: new handshakes use the new context")
        return self._context

    def _stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        stamps: list[tuple[int, int, int] | None] = []
        for path in self._files:
            try:
                st = os.stat(path)
            except OSError:
                stamps.append(None)
            else:
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)


class TlsSite(web.TCPSite):
    """An aiohttp site whose TLS handshakes are voltlib's to watch."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, contexts: ContextSource,
                 watcher: HandshakeWatcher, backlog: int = 128, reuse_port: bool | None = None,
                 max_handshakes: int = MAX_HANDSHAKES) -> None:
        super().__init__(runner, host, port, ssl_context=contexts.current(), backlog=backlog, reuse_port=reuse_port)
        self._contexts = contexts
        self._watcher = watcher
        self._handshakes: set[asyncio.Task[None]] = set()
        self._max_handshakes = max_handshakes

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site; TCPSite.start would wrap TLS itself
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Handshake(server, self._contexts, self._watcher, self._handshakes, self._max_handshakes),
            self._host, self._port,
            backlog=self._backlog, reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port

    async def stop(self) -> None:
        for task in list(self._handshakes):
            task.cancel()
        await super().stop()


class _Handshake(asyncio.Protocol):
    """Holds one accepted TCP connection until its TLS handshake ends, then hands it on."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], contexts: ContextSource, watcher: HandshakeWatcher,
                 tasks: set[asyncio.Task[None]], most: int) -> None:
        self._factory, self._contexts, self._watcher, self._tasks, self._most = factory, contexts, watcher, tasks, most

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the ClientHello stays in the socket for start_tls
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "unknown"
        if len(self._tasks) >= self._most or self._watcher.tls_blocked(address):
            transport.abort()
            return
        task = asyncio.get_running_loop().create_task(self._start_tls(transport, address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_tls(self, transport: asyncio.Transport, address: str) -> None:
        protocol = self._factory()
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport, protocol, self._contexts.current(), server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except ssl.SSLError as exc:
            await self._watcher.tls_failed(address, exc)
            return
        except (OSError, TimeoutError) as exc:  # gone before or during the handshake: a probe, not an attempt
            log.debug("TLS connection from %s ended before its handshake: %r", address, exc)
            transport.abort()
            return
        if tls is None:  # the connection closed as the handshake finished
            return
        protocol.connection_made(tls)
