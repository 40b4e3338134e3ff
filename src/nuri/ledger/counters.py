"""Rate and budget counters: in memory, in the database, or in Redis — same semantics in all three.

Rate limits use a rolling 60-second window at one-second resolution: a request is admitted only if
the requests (or tokens) already admitted in the last 60 whole seconds plus this one stay within
the limit, so in any 60-second span no more than the limit is admitted. Budgets are a spend
counter per team and period (in nano-units of the catalog currency) that admission reserves the
estimated cost against and completion corrects to the actual cost.

Every check-and-increment is one atomic step: a single pass of the event loop (memory), one
locked transaction (database: advisory locks on PostgreSQL, BEGIN IMMEDIATE on SQLite), or one
Lua script (Redis). That is what makes the limits exact under concurrency and across replicas.

The Redis counters live in redis_counters.py.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from nuri.ledger.db import Database, RawConn

log = logging.getLogger("nuri.ledger")

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


# --- database: replicas without Redis -------------------------------------------------------


def _lock_id(name: str) -> int:
    return zlib.crc32(name.encode("utf-8")) - 2**31


class DatabaseCounters:
    """Exact across processes: each admission is one transaction holding the scopes' locks."""

    def __init__(self, db: Database, seed_sql: Callable[[RawConn, str, str], int]) -> None:
        self._db = db
        self._seed_sql = seed_sql
        self._admits = 0

    async def admit(self, ask: Ask) -> Verdict:
        self._admits += 1
        prune = self._admits % 500 == 0
        return await self._db.run_raw(lambda conn: self._admit(conn, ask, prune), write=True)

    def _admit(self, conn: RawConn, ask: Ask, prune: bool) -> Verdict:
        names = sorted({sc.name for sc in ask.scopes} | {f"budget:{ask.team}"})
        if not self._db.is_sqlite:
            conn.run("SET LOCAL synchronous_commit = off")   # counters, not the record
            for name in names:
                conn.rows("SELECT pg_advisory_xact_lock(:k)", {"k": _lock_id(name)})
        if prune:
            conn.run("DELETE FROM rate_window WHERE second < :lo", {"lo": ask.now - 2 * WINDOW})
        sums: dict[str, tuple[int, int, int]] = {}
        if ask.scopes:
            marks = ", ".join(f":s{i}" for i in range(len(ask.scopes)))
            params: dict[str, object] = {f"s{i}": sc.name for i, sc in enumerate(ask.scopes)}
            params["lo"] = ask.now - WINDOW
            rows = conn.rows(
                "SELECT scope, SUM(requests), SUM(tokens), MIN(second) FROM rate_window "
                f"WHERE scope IN ({marks}) AND second > :lo GROUP BY scope", params)
            sums = {r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or ask.now)) for r in rows}
        for sc in ask.scopes:
            req, tok, oldest = sums.get(sc.name, (0, 0, ask.now))
            retry = max(1, oldest + WINDOW - ask.now)
            if sc.rpm is not None and req + 1 > sc.rpm:
                return Verdict(False, "rpm", sc.name, retry)
            if sc.tpm is not None and tok + ask.tokens > sc.tpm:
                return Verdict(False, "tpm", sc.name, retry)
        spent: int | None = None
        if ask.budget_nanos is not None:
            row = conn.one("SELECT spent_nanos FROM budget_spend WHERE team = :t AND period = :p",
                           {"t": ask.team, "p": ask.period})
            if row is None:
                spent = self._seed_sql(conn, ask.team, ask.period)
                conn.run("INSERT INTO budget_spend (team, period, spent_nanos) VALUES (:t, :p, :s)",
                         {"t": ask.team, "p": ask.period, "s": spent})
            else:
                spent = int(row[0])
            if spent >= ask.budget_nanos or spent + ask.cost_nanos > ask.budget_nanos:
                return Verdict(False, "budget", f"team:{ask.team}", 0, spent)
        conn.many(
            "INSERT INTO rate_window (scope, second, requests, tokens) VALUES (:s, :sec, 1, :tok) "
            "ON CONFLICT (scope, second) DO UPDATE SET requests = rate_window.requests + 1, "
            "tokens = rate_window.tokens + excluded.tokens",
            [{"s": sc.name, "sec": ask.now, "tok": ask.tokens} for sc in ask.scopes],
        )
        if spent is not None and ask.cost_nanos:
            spent += ask.cost_nanos
            conn.run("UPDATE budget_spend SET spent_nanos = spent_nanos + :c WHERE team = :t AND period = :p",
                     {"c": ask.cost_nanos, "t": ask.team, "p": ask.period})
        return Verdict(True, spent_nanos=spent)

    async def settle(self, s: Settle) -> None:
        if not s.token_delta and not s.cost_delta_nanos:
            return
        await self._db.run_raw(lambda conn: self._settle(conn, s), write=True)

    def _settle(self, conn: RawConn, s: Settle) -> None:
        if not self._db.is_sqlite:
            conn.run("SET LOCAL synchronous_commit = off")
        if s.token_delta:
            for name in s.scopes:
                conn.run("UPDATE rate_window SET tokens = tokens + :d WHERE scope = :n AND second = :sec",
                         {"d": s.token_delta, "n": name, "sec": s.second})
        if s.cost_delta_nanos:
            conn.run("UPDATE budget_spend SET spent_nanos = spent_nanos + :c WHERE team = :t AND period = :p",
                     {"c": s.cost_delta_nanos, "t": s.team, "p": s.period})

    async def close(self) -> None:
        return None
