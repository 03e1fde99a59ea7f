"""A small typed layer over aiohttp: routes declared once give both the handler table and the
OpenAPI document; request bodies are msgspec Structs; every error is RFC 9457 problem+json."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, Protocol, TypeVar, overload

import msgspec
from aiohttp import web

from voltlib.ocpp.frames import too_deep
from voltlib.security.credentials import hash_api_token
from voltlib.store import repo
from voltlib.store.db import Store

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
# Arrays and objects nested deeper than this in a request body are refused (400) before decoding:
# a few thousand levels exhausted the decoder's recursion (a 500, issue 22). The deepest body the API
# takes is an OCPP payload for a command (SetChargingProfile: 5 levels).
MAX_BODY_DEPTH = 32
MAX_ID = 2**63 - 1  # the largest integer id a database column holds
_WHOLE = re.compile(r"-?[0-9]{1,19}")
PUBLIC = frozenset[str]()
READ_ROLES = frozenset({"admin", "operator", "security"})
WRITE_ROLES = frozenset({"admin", "operator"})

T = TypeVar("T", bound=msgspec.Struct)
PRINCIPAL = web.RequestKey("principal", str)
MEMBER = web.RequestKey("member", str)  # the member a role-"member" token speaks for
MEMBER_ROLES = frozenset({"member"})
OPERATOR_ROLES = frozenset({"admin", "operator"})
Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SessionLookup(Protocol):
    """(principal, role, member id) of a browser session cookie on the request, if any (voltlib.web)."""

    def __call__(self, request: web.Request) -> tuple[str, str, str | None] | None: ...


SESSION_LOOKUP = web.AppKey("session_lookup", SessionLookup)
CSRF_HEADER = ("X-Requested-With", "voltlib")  # required on cookie-authenticated writes


@dataclass(frozen=True)
class Query:
    """A query parameter a route reads, for the OpenAPI document (``kind``: str, int, float, bool,
    datetime, or a tuple of the allowed strings; ``low``/``high``: a number's bounds, in the schema)."""

    name: str
    kind: Any = str
    description: str = ""
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Endpoint
    summary: str
    roles: frozenset[str] | None  # None: no authentication
    body: type[msgspec.Struct] | None = None
    tag: str = "charge points"
    body_media: str | None = None  # a body that is not JSON (e.g. text/csv): its media type
    returns: Any = None  # the type of a successful answer's body (api/models.py); None: not described yet
    status: int = 200  # of a successful answer
    query: tuple[Query, ...] = ()  # the query parameters it reads
    paged: bool = False  # a list paged by ?limit= and ?cursor=, the next page in a Link header (api/paging.py)
    unpaged: str = ""  # a list that is not paged: why it stays small (docs/operations.md, "Not paged")
    returns_media: str | None = None  # an answer that is not JSON (e.g. text/csv)


class Problem(web.HTTPException):
    """An HTTP error rendered as application/problem+json."""

    def __init__(self, status: int, title: str, detail: str = "", **extra: Any) -> None:
        self.status_code = status
        super().__init__(text=json.dumps({"type": "about:blank", "title": title, "status": status,
                                          "detail": detail, **extra}, default=str),
                         content_type="application/problem+json")


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data, enc_hook=_default), status=status,
                        content_type="application/json")


async def json_body(request: web.Request) -> bytes:
    """The request's body, refused as a problem when over :data:`MAX_BODY_BYTES` (413) or nested
    deeper than :data:`MAX_BODY_DEPTH` (400); an empty body reads as ``{}``. Every JSON route reads
    its body through here (``body_of``, ``json_object``)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Problem(413, "body-too-large", f"the body is over {MAX_BODY_BYTES} bytes")
    raw = await request.read()  # the application's client_max_size also stops a body sent without a length
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, "body-too-large", f"the body is over {MAX_BODY_BYTES} bytes")
    if too_deep(raw.decode("utf-8", "replace"), MAX_BODY_DEPTH):
        raise Problem(400, "malformed-json", f"arrays and objects nest deeper than {MAX_BODY_DEPTH} levels")
    if b"\\u0000" in raw and _holds_nul(raw):  # the one way JSON carries a NUL; no text column can hold one
        raise Problem(422, "invalid-body", "text in the body may not contain a NUL character (\\u0000)")
    return raw or b"{}"


def _holds_nul(raw: bytes) -> bool:
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return False  # the decoder says what is wrong
    return _nul_in(data)


def _nul_in(value: Any) -> bool:
    """Recursion bounded by MAX_BODY_DEPTH: the body's depth is checked first."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _nul_in(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_nul_in(v) for v in value)
    return False


async def body_of(request: web.Request, kind: type[T]) -> T:
    raw = await json_body(request)
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise Problem(422, "invalid-body", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Problem(400, "malformed-json", str(exc)) from None


async def json_object(request: web.Request) -> dict[str, Any]:
    raw = await json_body(request)
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise Problem(400, "malformed-json", str(exc)) from None
    if not isinstance(data, dict):
        raise Problem(422, "invalid-body", "the body must be a JSON object")
    return data


def whole_number(text: str, low: int = 0, high: int = MAX_ID) -> int | None:
    """``text`` as an integer in [low, high] (ASCII digits, an optional minus), else None."""
    if _WHOLE.fullmatch(text) is None:
        return None
    value = int(text)
    return value if low <= value <= high else None


@overload
def int_query(request: web.Request, name: str, default: int, *, low: int = 0, high: int = MAX_ID) -> int: ...
@overload
def int_query(request: web.Request, name: str, default: None = None, *, low: int = 0,
              high: int = MAX_ID) -> int | None: ...
def int_query(request: web.Request, name: str, default: int | None = None, *, low: int = 0,
              high: int = MAX_ID) -> int | None:
    """The integer query parameter ``name``: ``default`` when absent or empty, a 400 problem naming
    the parameter when it is not a whole number in [low, high]."""
    text = request.query.get(name, "")
    if text == "":
        return default
    value = whole_number(text, low, high)
    if value is None:
        raise Problem(400, "invalid-query", f"{name} must be a whole number from {low} to {high}", parameter=name)
    return value


def number_query(request: web.Request, name: str, *, low: float, high: float) -> float | None:
    """The number query parameter ``name`` (None when absent or empty), a 400 problem naming the
    parameter when it is not a finite number in [low, high]."""
    text = request.query.get(name, "")
    if text == "":
        return None
    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN compares false
        raise Problem(400, "invalid-query", f"{name} must be a number from {low:g} to {high:g}", parameter=name)
    return value


def bool_query(request: web.Request, name: str) -> bool | None:
    """``?name=true|false`` (None when absent or empty), a 400 problem naming it otherwise."""
    text = request.query.get(name, "")
    if text == "":
        return None
    if text not in ("true", "false"):
        raise Problem(400, "invalid-query", f"{name} must be true or false", parameter=name)
    return text == "true"


def time_query(request: web.Request, name: str) -> datetime | None:
    """An ISO 8601 date-time with its UTC offset (None when absent or empty), a 400 problem naming
    the parameter otherwise. In a query string "+" means a space: send it as %2B, or use Z."""
    text = request.query.get(name, "")
    if text == "":
        return None
    try:
        value = datetime.fromisoformat(text) if text.isascii() and len(text) <= 40 else None
        if value is not None and value.tzinfo is not None:
            value.astimezone(UTC)  # 0001-01-01T00:00:00+01:00 has no UTC time
            return value
    except (ValueError, OverflowError):
        pass
    raise Problem(400, "invalid-query", f"{name} must be a date-time with its offset, e.g. 2026-12-07T08:00:00Z "
                  "(send + as %2B)", parameter=name)


def authenticated(store: Store, roles: frozenset[str] | None, handler: Endpoint) -> Endpoint:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.query.items()):
            raise Problem(400, "invalid-character", "the path or the query string holds a NUL character (%00)")
        if roles is not None:
            header = request.headers.get("Authorization", "")
            lookup = request.app.get(SESSION_LOOKUP)
            session = lookup(request) if lookup is not None and not header else None
            if session is not None:
                if request.method not in ("GET", "HEAD") and request.headers.get(CSRF_HEADER[0]) != CSRF_HEADER[1]:
                    raise Problem(403, "csrf", f"browser sessions must send {CSRF_HEADER[0]}: {CSRF_HEADER[1]}")
                found: tuple[str, str, str | None] | None = session
            elif not header.startswith("Bearer "):
                raise Problem(401, "unauthenticated", "send Authorization: Bearer <token>")
            else:
                found = await store.read(partial(repo.find_api_token,
                                                 token_hash=hash_api_token(header[7:].strip())))
            if found is None:
                raise Problem(401, "unauthenticated", "unknown or revoked token")
            if found[1] not in roles:
                raise Problem(403, "forbidden", f"role {found[1]} may not do this")
            request[PRINCIPAL] = found[0]
            if found[2] is not None:
                request[MEMBER] = found[2]
        return await handler(request)

    return guarded


@web.middleware
async def problems(request: web.Request, handler: Endpoint) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        raise Problem(exc.status, exc.reason, exc.text or "") from None
    except Exception:
        log.exception("API error on %s %s", request.method, request.path)
        raise Problem(500, "internal-error", "the server failed; this is our fault, not yours") from None
