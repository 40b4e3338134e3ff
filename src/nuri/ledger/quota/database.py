"""Rate and budget counters in the database, for replicas without Redis.

Each admission is one locked transaction (advisory locks on PostgreSQL, BEGIN IMMEDIATE on
SQLite), so the limits are exact across processes; semantics are those of counters.py.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from nuri.ledger.quota.counters import WINDOW, Ask, Settle, Verdict
from nuri.ledger.store.db import Database, RawConn


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
