"""Rate and budget counters: the admission vocabulary (Ask, Verdict, Settle) and the in-memory store.

The same semantics hold in memory (here), in the database (database.py) and in Redis
(redis_counters.py, with quota leasing in leasing.py).

Rate limits use a rolling 60-second window at one-second resolution: a request is admitted only if
the requests (or tokens) already admitted in the last 60 whole seconds plus this one stay within
the limit, so in any 60-second span no more than the limit is admitted. Budgets are a spend
counter per team and period (in nano-units of the catalog currency) that admission reserves the
estimated cost against and completion corrects to the actual cost.

Every check-and-increment is one atomic step: a single pass of the event loop (memory), one
locked transaction (database: advisory locks on PostgreSQL, BEGIN IMMEDIATE on SQLite), or one
Lua script (Redis). That is what makes the limits exact under concurrency and across replicas.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

WINDOW = 60
Seed = Callable[[str, str], Awaitable[int]]   # (team, period) → nanos spent so far, from usage


@dataclass(slots=True)
class Scope:
    name: str              # "key:<id>" or "team:<name>"
    rpm: int | None
    tpm: int | None


@dataclass(slots=True)
class Ask:
    """One admission request to the counters."""

    scopes: list[Scope]
    tokens: int
    team: str
    period: str
    budget_nanos: int | None
    cost_nanos: int                    # reserved against the budget now, corrected at settle
    now: int                           # unix second


@dataclass(slots=True)
class Verdict:
    ok: bool
    limit: str | None = None           # rpm | tpm | budget
    scope: str | None = None
    retry_after: int = 0
    spent_nanos: int | None = None     # after this admission's reservation


@dataclass(slots=True)
class Settle:
    scopes: list[str]
    second: int
    team: str
    period: str
    token_delta: int
    cost_delta_nanos: int


class Counters(Protocol):
    async def admit(self, ask: Ask) -> Verdict: ...
    async def settle(self, s: Settle) -> None: ...
    async def close(self) -> None: ...


# --- memory: one process ------------------------------------------------------------------


@dataclass(slots=True)
class _Window:
    buckets: dict[int, list[int]] = field(default_factory=dict)   # second → [requests, tokens]

    def sums(self, now: int) -> tuple[int, int, int | None]:
        lo = now - WINDOW + 1
        for sec in [s for s in self.buckets if s < lo]:
            del self.buckets[sec]
        req = sum(v[0] for v in self.buckets.values())
        tok = sum(v[1] for v in self.buckets.values())
        return req, tok, min(self.buckets) if self.buckets else None


class MemoryCounters:
    """Exact within one process: the check and the increment happen with no await between them.
    For one gateway on SQLite; replicas need `database` or `redis` counters."""

    def __init__(self, seed: Seed) -> None:
        self._seed = seed
        self._windows: dict[str, _Window] = {}
        self._spend: dict[tuple[str, str], int] = {}

    async def admit(self, ask: Ask) -> Verdict:
        if ask.budget_nanos is not None and (ask.team, ask.period) not in self._spend:
            seeded = await self._seed(ask.team, ask.period)
            self._spend.setdefault((ask.team, ask.period), seeded)
        # from here to the return there is no await: atomic on the event loop
        windows = []
        for sc in ask.scopes:
            w = self._windows.setdefault(sc.name, _Window())
            req, tok, oldest = w.sums(ask.now)
            retry = max(1, (oldest or ask.now) + WINDOW - ask.now)
            if sc.rpm is not None and req + 1 > sc.rpm:
                return Verdict(False, "rpm", sc.name, retry)
            if sc.tpm is not None and tok + ask.tokens > sc.tpm:
                return Verdict(False, "tpm", sc.name, retry)
            windows.append(w)
        spent = self._spend.get((ask.team, ask.period))
        if ask.budget_nanos is not None:
            assert spent is not None
            if spent >= ask.budget_nanos or spent + ask.cost_nanos > ask.budget_nanos:
                return Verdict(False, "budget", f"team:{ask.team}", 0, spent)
        for w in windows:
            bucket = w.buckets.setdefault(ask.now, [0, 0])
            bucket[0] += 1
            bucket[1] += ask.tokens
        if spent is not None:
            spent += ask.cost_nanos
            self._spend[(ask.team, ask.period)] = spent
        return Verdict(True, spent_nanos=spent)

    async def settle(self, s: Settle) -> None:
        for name in s.scopes:
            w = self._windows.get(name)
            if w is not None and s.second in w.buckets:
                w.buckets[s.second][1] += s.token_delta
        key = (s.team, s.period)
        if key in self._spend:
            self._spend[key] += s.cost_delta_nanos

    async def close(self) -> None:
        return None
