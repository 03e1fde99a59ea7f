"""Which OCPP version a charge point speaks: the WebSocket subprotocol negotiated at the upgrade.

Both versions share one endpoint, ``ws(s)://.../ocpp/<id>``. The versions offered are the
``ocpp_versions`` setting; when a charge point offers several of them, the newest wins (2.0.1
before 1.6, as OCPP 2.0.1 part 4 section 3.1.2 asks of a CSMS), whatever their order in its header.
"""

from __future__ import annotations

from collections.abc import Iterable

# subprotocol -> OCPP version, the preferred first
SUBPROTOCOLS: dict[str, str] = {"ocpp2.0.1": "2.0.1", "ocpp1.6": "1.6"}


def offered(enabled: Iterable[str]) -> tuple[str, ...]:
    """The subprotocols voltlib accepts with the versions ``enabled``, the preferred first."""
    versions = set(enabled)
    return tuple(name for name, version in SUBPROTOCOLS.items() if version in versions)


def negotiate(header: str, enabled: Iterable[str]) -> str | None:
    """The subprotocol to answer a ``Sec-WebSocket-Protocol`` header with, or None if none fits."""
    asked = {p.strip() for p in header.split(",") if p.strip()}
    return next((name for name in offered(enabled) if name in asked), None)


def version_of(subprotocol: str) -> str:
    return SUBPROTOCOLS[subprotocol]
