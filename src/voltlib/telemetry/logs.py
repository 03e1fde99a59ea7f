"""Logs for a log pipeline: ``log_format = "json"`` writes one JSON object per line with the time,
level, logger, message and, where known, the node, charge point, OCPP message id and rental.

Where a line comes from is carried by context variables, set by the layers that know it: the
gateway for a connection's charge point (``Gateway._serve``) and each frame's message id
(``ChargePointConnection._on_text``), and an HTTP middleware for the charge point or rental an API
request names. A task started from a connection inherits its values, as asyncio copies the context;
long-lived tasks started lazily (bus subscribers, the GBFS flusher) start from an empty context.

Secrets are kept out in both formats twice over: nothing in voltlib logs a password, key or token
(tests/integration/test_logs.py drives logins, tokens and a password rotation and looks), and every
line is scrubbed of what looks like one (``scrub``) in case a library or an exception text carries it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec
from aiohttp import web

CHARGE_POINT: ContextVar[str | None] = ContextVar("voltlib_charge_point", default=None)
MESSAGE_ID: ContextVar[str | None] = ContextVar("voltlib_message_id", default=None)
RENTAL: ContextVar[str | None] = ContextVar("voltlib_rental", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "<redacted>"

# What a secret looks like in a log line: an Authorization header's credentials, a JSON or key=value
# field named like a secret (an OCPP AuthorizationKey's value follows its key), an API token.
_SECRETS = (
    (re.compile(r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?(?:basic|bearer)\s+)[^\s\"',}]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)([\"']?(?:password|passwd|secret|token|api_key|metrics_token|authorization_key)[\"']?"
                r"\s*[:=]\s*[\"']?)(?!<redacted>)[^\s\"',}]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(\"key\"\s*:\s*\"authorizationkey\"\s*,\s*\"value\"\s*:\s*\")[^\"]*"), r"\1" + REDACTED),
    (re.compile(r"\bvlt_[A-Za-z0-9_-]{8,}"), REDACTED),
)


def scrub(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``<redacted>``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class TextFormatter(logging.Formatter):
    """The plain format, scrubbed."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, RFC 3339, milliseconds), level, logger, message, then
    node, charge_point_id, message_id and rental_id when known, and the exception's traceback."""

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node
        self._encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": scrub(record.getMessage())}
        if self.node is not None:
            line["node"] = self.node
        for key, var in (("charge_point_id", CHARGE_POINT), ("message_id", MESSAGE_ID), ("rental_id", RENTAL)):
            value = getattr(record, key, None) or var.get()  # extra={...} wins over the context
            if value is not None:
                line[key] = str(value)
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = scrub(record.exc_text)
        if record.stack_info:
            line["stack"] = scrub(self.formatStack(record.stack_info))
        return self._encoder.encode(line).decode()


def configure(level: str | int, log_format: str = "text", *, node: str | None = None,
              stream: TextIO | None = None) -> logging.Handler:
    """Send every log line to ``stream`` (stderr) in ``log_format``; replaces the root's handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(node) if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


@web.middleware
async def request_context(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """An API request's log lines name the charge point or rental in its path (each request runs in a
    task of its own: nothing leaks into the next)."""
    info = request.match_info
    if "cp_id" in info:
        CHARGE_POINT.set(info["cp_id"][:48])
    if "rental_id" in info:
        RENTAL.set(info["rental_id"][:32])
    return await handler(request)
