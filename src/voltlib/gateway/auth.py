"""Who is connecting, and may they? OCPP security profiles at the WebSocket upgrade.

- Profile 0: no authentication (lab use only; see docs/security.md).
- Profile 1: HTTP Basic auth (username = charge point id) over plain ws.
- Profile 2: HTTP Basic auth over TLS.
- Profile 3: TLS with a client certificate whose subject CN is the charge point id (and, when one
  is pinned, whose SHA-256 fingerprint matches).

A connection weaker than the profile registered for the charge point is refused.

OCPP 2.0.1 (part 2, A00) keeps these rules: the username is the station's identity, the password
16 to 40 characters (its BasicAuthPassword, text), no downgrade. The one 1.6-only leniency, a
binary AuthorizationKey sent as bytes (``_binary_key``), costs a 2.0.1 station nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from voltlib.gateway.proxies import FORWARDED_CERT
from voltlib.security.credentials import VerifiedCache
from voltlib.store.repo import ChargePointRecord

IDENTITY = re.compile(r"^[A-Za-z0-9._:\-*+=@|]{1,48}$")


@dataclass(frozen=True, slots=True)
class Transport:
    """What the upgrade request tells about the connection itself."""

    tls: bool
    certificate_cn: str | None
    certificate_fingerprint: str | None
    address: str


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    kind: str  # the security event recorded
    reason: str


def transport_of(request: web.Request) -> Transport:
    """The connection as the charge point made it: to this node, or to a trusted proxy that
    terminated TLS and said so (``gateway/proxies.py``, which alone sets the forwarded certificate)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    cn = fingerprint = None
    if ssl_object is not None:
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            fingerprint = hashlib.sha256(der).hexdigest()
            cn = _common_name(ssl_object.getpeercert())
    forwarded = request.get(FORWARDED_CERT)
    if ssl_object is None and forwarded is not None:
        cn, fingerprint = _forwarded_identity(forwarded)
    return Transport(tls=ssl_object is not None or request.scheme == "https", certificate_cn=cn,
                     certificate_fingerprint=fingerprint, address=request.remote or "?")


def _forwarded_identity(der: bytes) -> tuple[str | None, str | None]:
    """Subject CN and SHA-256 fingerprint of a certificate a trusted proxy verified."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None, None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return (str(names[0].value) if names else None), hashlib.sha256(der).hexdigest()


def _common_name(cert: dict[str, Any] | None) -> str | None:
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


BINARY_KEY_BYTES = (16, 20)  # an AuthorizationKey's length in bytes (whitepaper A00.FR.205)


def basic_credentials(request: web.Request, identity: str) -> tuple[str, str] | None:
    """(user, password) of the Basic header. The user is split off after ``identity`` when the header
    starts with it: charge point ids may contain ":", which Basic auth (RFC 7617) uses as separator."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except binascii.Error:
        return None
    prefix = identity.encode("utf-8") + b":"
    if decoded.startswith(prefix):
        user, password_bytes = identity, decoded[len(prefix):]
    else:
        user_bytes, _, password_bytes = decoded.partition(b":")
        try:
            user = user_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        return user, password_bytes.decode("utf-8")
    except UnicodeDecodeError:
        if BINARY_KEY_BYTES[0] <= len(password_bytes) <= BINARY_KEY_BYTES[1]:
            return user, password_bytes.hex()  # an AuthorizationKey sent as its bytes: see _binary_key
        return None


def _binary_key(password: str) -> str | None:
    """Some charge points hex-decode the AuthorizationKey and send its 16-20 bytes as the Basic
    password rather than the hexadecimal text (A00.FR.205 leaves room for both readings). Bytes that
    are not UTF-8 are turned back into the text by ``basic_credentials``; bytes that happen to be
    UTF-8 arrive as text, and this gives the text to try next. Lower-case, as voltlib writes keys."""
    raw = password.encode("utf-8", "surrogatepass")
    return raw.hex() if BINARY_KEY_BYTES[0] <= len(raw) <= BINARY_KEY_BYTES[1] else None


async def check(record: ChargePointRecord, transport: Transport, credentials: tuple[str, str] | None,
          cache: VerifiedCache) -> Refusal | None:
    """None if this connection satisfies the charge point's registered profile."""
    profile = record.security_profile
    if profile >= 2 and not transport.tls:
        return Refusal(403, "security_profile_downgrade", f"profile {profile} requires TLS")
    if profile == 3:
        if transport.certificate_cn is None:
            return Refusal(403, "security_profile_downgrade", "profile 3 requires a client certificate")
        if transport.certificate_cn != record.id:
            return Refusal(401, "certificate_mismatch", "client certificate is not bound to this charge point")
        pinned = (record.certificate_fingerprint or "").replace(":", "").lower()
        if pinned and pinned != transport.certificate_fingerprint:
            return Refusal(401, "certificate_mismatch", "client certificate differs from the pinned one")
        return None
    if profile in (1, 2):
        if credentials is None:
            return Refusal(401, "auth_missing", "HTTP Basic authentication required")
        user, password = credentials
        stored = record.password_hash
        if user != record.id or not stored or not await verify_password(password, stored, cache):
            return Refusal(401, "auth_failed", "bad credentials")
    return None


async def verify_password(password: str, stored: str, cache: VerifiedCache) -> bool:
    """The password as sent, or else as a binary AuthorizationKey's hexadecimal text."""
    if await cache.verify(password, stored):
        return True
    binary = _binary_key(password)
    return binary is not None and await cache.verify(binary, stored)


class FailureLimiter:
    """Counts failed upgrades per source address and per identity over a sliding minute of wall time:
    the lock-out slows real attempts against this process, whatever the simulated clock says (the
    brute-force detectors count on voltlib's clock, from the events)."""

    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        """``per_minute`` failures within ``window`` seconds (a minute unless told) block a key."""
        self.per_minute = per_minute
        self.window = window
        # only keys that failed: every charge point is checked at each upgrade, and an empty deque
        # per charge point cost ~0.7 KiB of each connection's memory budget
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def blocked(self, *keys: str) -> bool:
        now = time.monotonic()
        return any(len(self._recent(key, now) or ()) >= self.per_minute for key in keys)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque()
            times.append(now)
        if len(self._failures) > 100_000:  # forget the quiet ones; bounded memory under a scan
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)
