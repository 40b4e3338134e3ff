"""Per-deployment health: a circuit breaker and a latency moving average.

The breaker keeps a failing deployment from being hammered (and from adding its timeout to
every request): closed → open after `breaker_failures` consecutive failures → after
`breaker_reset_seconds` one probe request is let through (half-open) → closed on success, open
again on failure. The clock is injectable so the transitions are testable without sleeping.
State is in-process; replicas each keep their own (shared state is a later backend).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from nuri.config import RoutingSettings

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(slots=True)
class _Entry:
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probe_at: float | None = None      # when the half-open probe was granted
    latency: float | None = None       # EWMA of total latency, seconds
    ttft: float | None = None          # EWMA of time to first token, seconds
    last_error: str | None = None
    successes: int = 0
    total_failures: int = 0


class HealthBook:
    def __init__(self, settings: RoutingSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def _entry(self, dep_id: str) -> _Entry:
        entry = self._entries.get(dep_id)
        if entry is None:
            entry = self._entries[dep_id] = _Entry()
        return entry

    def _probe_due(self, entry: _Entry, now: float) -> bool:
        reset = self.settings.breaker_reset_seconds
        if entry.state == OPEN:
            return now - entry.opened_at >= reset
        # Half-open: a probe that never reported back (cancelled request) expires after `reset`.
        return entry.probe_at is None or now - entry.probe_at >= reset

    def available(self, dep_id: str) -> bool:
        """Whether a request could be sent now, without taking the half-open probe."""
        entry = self._entries.get(dep_id)
        if entry is None or entry.state == CLOSED:
            return True
        return self._probe_due(entry, self.clock())

    def allow(self, dep_id: str) -> bool:
        """Take permission to send one request; in half-open state only one probe gets it."""
        entry = self._entry(dep_id)
        if entry.state == CLOSED:
            return True
        now = self.clock()
        if not self._probe_due(entry, now):
            return False
        entry.state = HALF_OPEN
        entry.probe_at = now
        return True

    def record_success(self, dep_id: str, latency_s: float, ttft_s: float | None = None) -> None:
        entry = self._entry(dep_id)
        entry.state, entry.failures, entry.probe_at = CLOSED, 0, None
        entry.successes += 1
        alpha = self.settings.ewma_alpha
        entry.latency = latency_s if entry.latency is None else alpha * latency_s + (1 - alpha) * entry.latency
        if ttft_s is not None:
            entry.ttft = ttft_s if entry.ttft is None else alpha * ttft_s + (1 - alpha) * entry.ttft

    def record_failure(self, dep_id: str, reason: str) -> None:
        entry = self._entry(dep_id)
        entry.last_error = reason
        entry.total_failures += 1
        entry.failures += 1
        if entry.state == HALF_OPEN or entry.failures >= self.settings.breaker_failures:
            entry.state, entry.opened_at, entry.probe_at = OPEN, self.clock(), None

    def release(self, dep_id: str) -> None:
        """The deployment answered, but not usefully (e.g. a 400): it is up, record no latency."""
        entry = self._entry(dep_id)
        entry.state, entry.failures, entry.probe_at = CLOSED, 0, None

    def abandon(self, dep_id: str) -> None:
        """An attempt ended without an answer either way: free a half-open probe, change nothing else."""
        entry = self._entries.get(dep_id)
        if entry is not None and entry.state == HALF_OPEN:
            entry.probe_at = None

    def latency(self, dep_id: str) -> float | None:
        """EWMA of responsiveness: time to first token when streams reported it, else latency."""
        entry = self._entries.get(dep_id)
        if entry is None:
            return None
        return entry.ttft if entry.ttft is not None else entry.latency

    def state(self, dep_id: str) -> str:
        entry = self._entries.get(dep_id)
        if entry is None:
            return CLOSED
        if entry.state == OPEN and self._probe_due(entry, self.clock()):
            return HALF_OPEN
        return entry.state

    def describe(self, dep_id: str) -> str:
        """Why a deployment is unavailable, for 503 messages (no request data in it)."""
        entry = self._entries.get(dep_id)
        if entry is None:
            return "healthy"
        text = f"circuit {self.state(dep_id)} after {entry.failures} consecutive failure(s)"
        return f"{text}, last: {entry.last_error}" if entry.last_error else text

    def snapshot(self) -> dict[str, dict[str, object]]:
        """For metrics and the console."""
        return {
            dep_id: {
                "state": self.state(dep_id),
                "consecutive_failures": e.failures,
                "latency_s": e.latency,
                "ttft_s": e.ttft,
                "successes": e.successes,
                "failures": e.total_failures,
            }
            for dep_id, e in self._entries.items()
        }
