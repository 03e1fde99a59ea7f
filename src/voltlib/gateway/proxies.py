"""The charge point's own address behind a load balancer, for the security detectors and the
lock-outs (docs/operations.md, "Behind HAProxy").

A balancer in HTTP mode appends the address it got the connection from to ``X-Forwarded-For``.
That header is believed only when the connection comes from a proxy named in ``trusted_proxies``:
anyone else could write it. The client is the rightmost address that is not a trusted proxy (a
chain of trusted proxies each appended one); a malformed entry makes the header ignored whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
        client = client_address(request.remote, request.headers.getall("X-Forwarded-For", []), parsed)
        if client is not None and client != request.remote:
            request = request.clone(remote=client)
        return await handler(request)

    return middleware


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
