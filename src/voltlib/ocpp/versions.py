"""The OCPP versions voltlib speaks, and each one's typed requests: what the version-neutral parts of
the protocol core (:mod:`voltlib.ocpp.session`, :mod:`voltlib.ocpp.compiled`) look up by version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from voltlib.ocpp.v16 import messages as v16
from voltlib.ocpp.v201 import messages as v201

SUPPORTED = ("1.6", "2.0.1")

# A charge point's call, typed: a class of :mod:`voltlib.ocpp.v16.messages` or of
# :mod:`voltlib.ocpp.v201.messages`, according to the connection's version. Both name their wire
# action in ``ACTION``.
Request = v16.Message | v201.Message

_REQUESTS: dict[str, Mapping[str, type[Request]]] = {"1.6": v16.REQUESTS, "2.0.1": v201.REQUESTS}


def requests(version: str) -> Mapping[str, type[Request]]:
    """The calls a charge point speaking ``version`` may make to us, by action."""
    return _REQUESTS[version]


def decode_request(version: str, action: str, payload: dict[str, Any]) -> Request:
    """Turn a schema-valid payload of a charge point's call into its typed message."""
    return msgspec.convert(payload, requests(version)[action])
