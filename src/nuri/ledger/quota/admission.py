"""Admission and settlement: a key's and its team's rate limits and the team's budget.

`Quota.admit` counts an estimate (tokens, cost) against every limit or refuses with 429; once the
request is done `settle_later` corrects the counters to what it really used, beside the request
rather than in its latency. Which counters hold the counts (memory, database, Redis) is chosen by
`open_counters`; all three share the semantics of counters.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nuri.catalog import Deployment
from nuri.config import LedgerSettings
from nuri.errors import BudgetExceeded, RateLimited, ServiceUnavailable
from nuri.ledger.audit.records import AuditRecord
from nuri.ledger.quota.counters import Ask, Counters, MemoryCounters, Scope, Settle
from nuri.ledger.quota.database import DatabaseCounters
from nuri.ledger.store.db import Database, RawConn
from nuri.observability import metrics
from nuri.principal import Principal

log = logging.getLogger("nuri.ledger")
NANO = 1_000_000_000


def to_nanos(amount: float) -> int:
    return round(amount * NANO)


def period_of(ts: float, kind: str) -> str:
    """The budget period a time falls in ("2026-12-06", "2026-12" or "all"); asked on every
    admission, so the formatted day is cached: it changes once a day."""
    return _period_of_day(int(ts // 86400), kind)


@functools.lru_cache(maxsize=64)
def _period_of_day(day: int, kind: str) -> str:
    d = datetime.fromtimestamp(day * 86400, UTC)
    if kind == "day":
        return d.strftime("%Y-%m-%d")
    if kind == "month":
        return d.strftime("%Y-%m")
    return "all"


@dataclass(slots=True)
class Admission:
    """The ticket `admit` hands out and `finish` settles."""

    principal: Principal
    estimated_tokens: int
    reserved_nanos: int = 0
    second: int = 0
    period: str = ""
    scopes: list[str] = field(default_factory=list)
    budget_remaining: float | None = None
    budget_warning: bool = False
    counted: bool = False            # counters were touched: finish must settle them

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.budget_remaining is not None:
            out["x-nuri-budget-remaining"] = f"{self.budget_remaining:.6f}"
        if self.budget_warning:
            out["x-nuri-budget-warning"] = "true"
        return out


def usage_seed_sql(conn: RawConn, team: str, period: str) -> int:
    """Nanos a team has spent in a period, from the durable usage table."""
    if period == "all":
        row = conn.one("SELECT SUM(cost_nanos) FROM usage_daily WHERE team = :t", {"t": team})
    elif len(period) == 7:
        row = conn.one("SELECT SUM(cost_nanos) FROM usage_daily WHERE team = :t AND day LIKE :p",
                       {"t": team, "p": period + "-%"})
    else:
        row = conn.one("SELECT SUM(cost_nanos) FROM usage_daily WHERE team = :t AND day = :p",
                       {"t": team, "p": period})
    return int((row or (0,))[0] or 0)


def open_counters(settings: LedgerSettings, db: Database) -> tuple[Counters, str]:
    """The counters `settings.counters` asks for (auto: Redis if configured, memory on SQLite,
    else the database), and the mode chosen."""
    mode = settings.counters
    if mode == "auto":
        mode = "redis" if settings.redis_url else ("memory" if db.is_sqlite else "database")

    async def seed(team: str, period: str) -> int:
        return await db.run_raw(lambda conn: usage_seed_sql(conn, team, period), tx=False)

    if mode == "redis":
        if not settings.redis_url:
            raise ValueError("ledger.counters is redis but ledger.redis_url is not set")
        from nuri.ledger.quota.redis_counters import RedisCounters

        return RedisCounters(settings.redis_url, settings.redis_prefix, seed, settings.counter_lease_share), mode
    if mode == "database":
        return DatabaseCounters(db, usage_seed_sql), mode
    return MemoryCounters(seed), mode


def highest_price(deployments: Iterable[Deployment] | None) -> float:
    """The catalog's highest per-token price in the budget currency: what admission reserves per
    estimated token."""
    return max((d.price.highest_per_token() for d in deployments or ()), default=0.0)


class Quota:
    """Admits requests against the counters and settles them afterwards."""

    def __init__(self, settings: LedgerSettings, counters: Counters, price_per_token: float) -> None:
        self.settings = settings
        self.counters = counters
        self.price_per_token = price_per_token
        self._settling: set[asyncio.Task[None]] = set()

    async def admit(self, principal: Principal, estimated_tokens: int, *,
                    estimated_cost: float | None = None, now: float) -> Admission:
        """See `Ledger.admit`."""
        tokens = max(int(estimated_tokens), 0)
        adm = Admission(principal, tokens, second=int(now), period=period_of(now, self.settings.budget_period))
        if principal.is_anonymous:
            return adm
        scopes = []
        if principal.rpm is not None or principal.tpm is not None:
            scopes.append(Scope(f"key:{principal.key_id}", principal.rpm, principal.tpm))
        if principal.team_rpm is not None or principal.team_tpm is not None:
            scopes.append(Scope(f"team:{principal.team}", principal.team_rpm, principal.team_tpm))
        budget = None if principal.budget is None else to_nanos(principal.budget)
        if not scopes and budget is None:
            return adm
        cost = estimated_cost if estimated_cost is not None else tokens * self.price_per_token
        ask = Ask(scopes, tokens, principal.team, adm.period, budget, to_nanos(cost) if budget is not None else 0,
                  adm.second)
        try:
            verdict = await self.counters.admit(ask)
        except Exception as exc:
            log.error("rate/budget store unavailable", extra={"error_type": type(exc).__name__})
            raise ServiceUnavailable("the rate-limit and budget store is unavailable; request refused",
                                     code="ledger_unavailable") from exc
        if not verdict.ok:
            metrics.LIMITED.labels(verdict.limit or "-").inc()
            if verdict.limit == "budget":
                if budget is not None and verdict.spent_nanos is not None:
                    metrics.set_budget_remaining(principal.team, (budget - verdict.spent_nanos) / NANO)
                raise BudgetExceeded(
                    f"team {principal.team!r} has used its {self.settings.budget_period} budget of "
                    f"{principal.budget:g}; requests are refused until the budget is raised or the period ends",
                )
            what = "requests" if verdict.limit == "rpm" else "tokens"
            limit = next((s.rpm if verdict.limit == "rpm" else s.tpm) for s in scopes if s.name == verdict.scope)
            raise RateLimited(
                f"rate limit reached for {verdict.scope}: {limit} {what} per minute; retry in {verdict.retry_after}s",
                headers={"retry-after": str(verdict.retry_after)},
            )
        adm.counted = True
        adm.scopes = [s.name for s in scopes]
        adm.reserved_nanos = ask.cost_nanos
        if budget is not None and verdict.spent_nanos is not None:
            remaining = (budget - verdict.spent_nanos) / NANO
            adm.budget_remaining = remaining
            adm.budget_warning = verdict.spent_nanos >= self.settings.budget_warning_ratio * budget
            metrics.set_budget_remaining(principal.team, remaining)
        return adm

    @staticmethod
    def settlement(admission: Admission | None, record: AuditRecord) -> Settle | None:
        """The correction from an admission's estimate to what the record says was used."""
        if admission is None or not admission.counted:
            return None
        settle = Settle(admission.scopes, admission.second, admission.principal.team, admission.period,
                        int(record.prompt_tokens + record.completion_tokens) - admission.estimated_tokens,
                        to_nanos(record.cost) - admission.reserved_nanos)
        if record.outcome != "ok" and not (record.prompt_tokens or record.completion_tokens):
            settle.token_delta = -admission.estimated_tokens   # nothing was consumed
        return settle

    def settle_later(self, settle: Settle) -> None:
        """Counter corrections run beside the request, not in its latency: until one lands the
        counters hold the estimate, which is the conservative side for tokens and budget."""
        task = asyncio.get_running_loop().create_task(self._settle(settle))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, settle: Settle) -> None:
        try:
            await self.counters.settle(settle)
        except Exception as exc:
            log.warning("counter settle failed", extra={"error_type": type(exc).__name__})

    async def drain(self) -> None:
        """Wait until every correction already issued has been applied (or has failed)."""
        while self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)

    async def close(self) -> None:
        await self.counters.close()
