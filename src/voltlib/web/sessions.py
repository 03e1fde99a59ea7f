"""Dashboard sessions: an API token is exchanged once for a random session id held in an HttpOnly,
SameSite=Strict cookie. Only the id's SHA-256 is kept, in memory: a restart logs everyone out,
which is acceptable for an operator console and needs no table."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Session:
    principal: str
    role: str
    expires: datetime
    member_id: str | None = None


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    def __init__(self, lifetime: timedelta = timedelta(hours=12)) -> None:
        self.lifetime = lifetime
        self._by_hash: dict[str, Session] = {}

    def open(self, principal: str, role: str, now: datetime, member_id: str | None = None) -> str:
        """A new session; returns the id for the cookie (never stored)."""
        session_id = secrets.token_urlsafe(32)
        self._by_hash[digest(session_id)] = Session(principal, role, now + self.lifetime, member_id)
        self._forget_expired(now)
        return session_id

    def find(self, session_id: str | None, now: datetime) -> Session | None:
        if not session_id:
            return None
        found = self._by_hash.get(digest(session_id))
        if found is None or found.expires <= now:
            return None
        return found

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_hash.pop(digest(session_id), None)

    def _forget_expired(self, now: datetime) -> None:
        for key in [k for k, s in self._by_hash.items() if s.expires <= now]:
            del self._by_hash[key]
