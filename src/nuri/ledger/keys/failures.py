"""Refused credentials, per client address: a limit, and counts for periodic audit records.

One chained audit row per refused key would let anyone without a key grow the chain at the
rate they can send requests (1,000 junk-key requests once added 1,000 rows). Instead each
replica counts failures per client address in fixed windows; an address over the limit gets
429 until its window ends, before any key lookup, and every finished window becomes one audit
record per address with the counts by reason. State is in memory and bounded: past
`max_clients` addresses in one window, the rest are counted together under "other".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

OTHER = "other"


@dataclass(slots=True)
class Window:
    """Failures of one client address in one window."""

    client: str
    start: float
    total: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class AuthFailures:
    """Counts refused credentials per client address and says when an address must wait."""

    def __init__(self, limit: int, window_seconds: float = 60.0, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_clients = max_clients
        self._open: dict[str, Window] = {}
        self._done: list[Window] = []

    def _start(self, now: float) -> float:
        return math.floor(now / self.window) * self.window

    def retry_after(self, client: str | None, now: float | None = None) -> int | None:
        """Seconds the address must wait, or None when it may try a key."""
        if self.limit <= 0 or client is None:
            return None
        now = time.time() if now is None else now
        win = self._open.get(client)
        if win is None or win.start != self._start(now) or win.total < self.limit:
            return None
        return max(1, math.ceil(win.start + self.window - now))

    def note(self, client: str | None, reason: str, now: float | None = None) -> None:
        """Count one refusal (`reason`: missing, malformed, invalid, revoked, rate_limited)."""
        now = time.time() if now is None else now
        start = self._start(now)
        key = client or "-"
        win = self._open.get(key)
        if win is not None and win.start != start:
            self._done.append(self._open.pop(key))
            win = None
        if win is None:
            if len(self._open) >= self.max_clients:
                self._close_before(start)
            if len(self._open) >= self.max_clients and key != OTHER:
                self.note(OTHER, reason, now)
                return
            win = self._open[key] = Window(key, start)
        win.total += 1
        win.reasons[reason] = win.reasons.get(reason, 0) + 1

    def _close_before(self, start: float) -> None:
        for key in [k for k, w in self._open.items() if w.start < start]:
            self._done.append(self._open.pop(key))

    def take(self, now: float | None = None, *, everything: bool = False) -> list[Window]:
        """Finished windows (all windows with `everything`, at shutdown), handed out once."""
        now = time.time() if now is None else now
        if everything:
            self._done.extend(self._open.values())
            self._open.clear()
        else:
            self._close_before(self._start(now))
        done, self._done = self._done, []
        return done
