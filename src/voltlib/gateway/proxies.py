"""The charge point's own address behind a load balancer, for the security detectors and the
lock-outs (docs/operations.md, "Behind HAProxy").

A balancer in HTTP mode appends the address it got the connection from to ``X-Forwarded-For``.
That header is believed only when the connection comes from a proxy named in ``trusted_proxies``:
anyone else could write it. The client is the rightmost address that is not a trusted proxy (a
chain of trusted proxies each appended one); a malformed entry makes the header ignored whole.

A trusted proxy that terminated TLS says so with ``X-Forwarded-Proto: https`` (security profile 2
then holds: the charge point's hop was encrypted) and passes the client certificate it verified
against the charge points' CA, DER in base64, in ``X-Client-Cert`` (profile 3: voltlib checks the
subject and the pinned fingerprint as for its own TLS listener). From anyone else both are ignored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT_CERT = "X-Client-Cert"
FORWARDED_CERT = web.RequestKey("voltlib-forwarded-client-cert", bytes)  # DER, from a trusted proxy only


def networks(trusted: Sequence[str]) -> list[IPv4Network | IPv6Network]:
    """``trusted_proxies`` parsed (addresses or CIDR blocks); a bad one raises ValueError."""
    return [ip_network(entry, strict=False) for entry in trusted]


def client_address(peer: str | None, forwarded_for: Sequence[str],
                   trusted: Sequence[IPv4Network | IPv6Network]) -> str | None:
    """The client's address when ``peer`` is a trusted proxy and the header says it; else None."""
    if peer is None or not forwarded_for or not _in(peer, trusted):
        return None
    hops = [hop.strip() for line in forwarded_for for hop in line.split(",")]
    client = None
    for hop in reversed(hops):
        if not _valid(hop):
            return None
        client = hop
        if not _in(hop, trusted):
            break
    return client


def forwarded(trusted: Sequence[str]) -> Middleware:
    """A middleware giving each request from a trusted proxy its client's address as ``remote``."""
    parsed = networks(trusted)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.remote is None or not _in(request.remote, parsed):
            return await handler(request)  # not a proxy of ours: its X-Forwarded-* headers are ignored
        changes: dict[str, str] = {}
        client = client_address(request.remote, request.headers.getall("X-Forwarded-For", []), parsed)
        if client is not None and client != request.remote:
            changes["remote"] = client
        if request.headers.get("X-Forwarded-Proto", "").lower() in ("https", "wss"):
            changes["scheme"] = "https"
        if changes:
            request = request.clone(**changes)  # type: ignore[arg-type]
        certificate = _certificate(request.headers.get(CLIENT_CERT, ""))
        if certificate is not None and request.scheme == "https":
            request[FORWARDED_CERT] = certificate
        return await handler(request)

    return middleware


def _certificate(text: str) -> bytes | None:
    if not text:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _valid(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def _in(address: str, trusted: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)
