"""Console sessions: a random id in an HttpOnly cookie, the credential kept on the server.

Sessions live in this process's memory: each replica (and each `--workers` process) has its own,
so a load balancer in front of several needs sticky sessions, and a restart logs everyone out.
The id is never stored, only its SHA-256, and every change must carry the session's CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from nuri.config import env

COOKIE = "nuri_console"
IDLE_SECONDS = 30 * 60
MAX_SESSIONS = 10_000


def session_seconds() -> int:
    """Idle lifetime of a session (NURI_CONSOLE_SESSION_SECONDS, default 30 minutes)."""
    raw = env("NURI_CONSOLE_SESSION_SECONDS")
    try:
        return max(1, int(raw)) if raw else IDLE_SECONDS
    except ValueError:
        return IDLE_SECONDS


@dataclass(slots=True)
class Session:
    credential: str                  # the admin key or an admin team's key, sent to the admin API
    actor: str                       # who it is, as admin records name it
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    expires: float = 0.0
    flash: str | None = None         # a new key's secret, shown once on the next page


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class SessionStore:
    def __init__(self, lifetime: int | None = None) -> None:
        self.lifetime = lifetime or session_seconds()
        self._sessions: dict[str, Session] = {}

    def create(self, credential: str, actor: str) -> tuple[str, Session]:
        self._sweep()
        session_id = secrets.token_urlsafe(32)
        session = Session(credential, actor, expires=time.monotonic() + self.lifetime)
        self._sessions[_digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session for this cookie, its idle expiry pushed on; None if unknown or expired."""
        if not session_id:
            return None
        key = _digest(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = time.monotonic()
        if session.expires <= now:
            del self._sessions[key]
            return None
        session.expires = now + self.lifetime
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(_digest(session_id), None)

    def _sweep(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]
        while len(self._sessions) >= MAX_SESSIONS:      # the oldest go first
            self._sessions.pop(min(self._sessions, key=lambda k: self._sessions[k].expires))


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted CSRF token."""
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))
