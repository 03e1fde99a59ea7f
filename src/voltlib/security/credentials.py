"""Salted, slow hashes for charge-point passwords; fast hashes for high-entropy API tokens.

Charge-point passwords (OCPP security profiles 1 and 2, 16 to 40 bytes) are hashed with
scrypt (n=2**14, r=8, p=1) and a 16-byte random salt. Checking one costs ~30-50 ms of CPU, in a
worker thread, so a successful check is remembered in memory (keyed by an HMAC of the password
under a per-process secret, never the password itself) to survive reconnection storms of
thousands of charge points.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1
MIN_PASSWORD_BYTES, MAX_PASSWORD_BYTES = 16, 40


class PasswordPolicyError(ValueError):
    pass


def check_policy(password: str) -> None:
    size = len(password.encode())
    if not MIN_PASSWORD_BYTES <= size <= MAX_PASSWORD_BYTES:
        raise PasswordPolicyError(f"a charge-point password must be 16 to 40 bytes, not {size}")


def hash_password(password: str) -> str:
    check_policy(password)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(candidate, _unb64(digest))


class VerifiedCache:
    """Remembers (stored hash, password) pairs that verified, without keeping passwords.

    A check is a pure function of the stored hash and the password, so its result is keyed by
    an HMAC of both: a rotated password has a new hash and is checked again, and charge points
    sharing one hash (a simulated city seeds them so) pay for one slow check, not thousands.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._key = secrets.token_bytes(32)
        self._seen: dict[bytes, None] = {}  # insertion-ordered: the oldest goes first when full
        self._capacity = capacity

    def _tag(self, stored: str, password: str) -> bytes:
        return hmac.new(self._key, f"{stored}\0{password}".encode(), hashlib.sha256).digest()

    async def verify(self, password: str, stored: str) -> bool:
        """The slow check runs in a worker thread (scrypt releases the GIL): a storm of first
        connections after a restart does not stall the event loop, and uses every core."""
        tag = self._tag(stored, password)
        if tag in self._seen:
            return True
        if not await asyncio.to_thread(verify_password, password, stored):
            return False
        if len(self._seen) >= self._capacity:
            self._seen.pop(next(iter(self._seen)))
        self._seen[tag] = None
        return True


def new_api_token() -> str:
    return "vlt_" + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    """API tokens are 256-bit random strings: SHA-256 is enough and keeps every request cheap."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_charge_point_password() -> str:
    return secrets.token_urlsafe(24)[:32]


AUTHORIZATION_KEY_BYTES = 20


def new_authorization_key() -> str:
    """A new OCPP 1.6 AuthorizationKey: 20 random bytes as 40 hexadecimal digits.

    The security whitepaper (A00.FR.205/304) wants it randomly generated binary, at least 16 and at most
    20 bytes, hexadecimal represented; the 40 characters are the Basic-auth password (and, at 40 bytes,
    within the 16-40 byte policy above).
    """
    return secrets.token_bytes(AUTHORIZATION_KEY_BYTES).hex()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
