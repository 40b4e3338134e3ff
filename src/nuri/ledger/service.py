"""The ledger the gateway talks to: authenticate, admit, finish, admin_event.

One object per gateway process. It owns the database, the counters (memory, database or Redis)
and the audit writer. Every method that touches storage runs it off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from nuri.catalog import Deployment
from nuri.config import LedgerSettings
from nuri.errors import BudgetExceeded, RateLimited, ServiceUnavailable, Unauthorized
from nuri.ledger import chain, keys, metrics
from nuri.ledger.auth_failures import AuthFailures
from nuri.ledger.counters import (
    Ask,
    Counters,
    DatabaseCounters,
    MemoryCounters,
    Scope,
    Settle,
)
from nuri.ledger.db import Database, RawConn
from nuri.ledger.keycache import KeyCache, revocation_wait
from nuri.ledger.records import AuditRecord, canonical
from nuri.ledger.redis_counters import RedisCounters
from nuri.ledger.secrets import Keys
from nuri.ledger.shipper import SpoolWriter
from nuri.ledger.writer import GroupCommitWriter
from nuri.principal import ANONYMOUS, Principal

log = logging.getLogger("nuri.ledger")
NANO = 1_000_000_000
_LATE_MAX = 10_000               # records held in memory while their write waits for the database


def to_nanos(amount: float) -> int:
    return round(amount * NANO)


def period_of(ts: float, kind: str) -> str:
    d = datetime.fromtimestamp(ts, UTC)
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


def _usage_seed_sql(conn: RawConn, team: str, period: str) -> int:
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


def _clean_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """Admin detail is configuration facts: keep scalars and short lists, drop anything else."""
    out: dict[str, Any] = {}
    for k, v in detail.items():
        if isinstance(v, str | int | float | bool) or v is None:
            out[str(k)] = v if not isinstance(v, str) else v[:200]
        elif isinstance(v, list | tuple) and all(isinstance(x, str | int | float) for x in v):
            out[str(k)] = list(v)[:100]
    return out


class Ledger:
    """Keys, budgets, rate limits and the audit chain for one gateway process."""

    def __init__(self, settings: LedgerSettings, data_dir: Path, db: Database, secrets: Keys,
                 counters: Counters, writer: GroupCommitWriter | SpoolWriter, price_per_token: float) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.db = db
        self.secrets = secrets
        self.counters = counters
        self.writer = writer
        self.price_per_token = price_per_token
        self._open = False
        self._settling: set[asyncio.Task[None]] = set()
        self._late: set[asyncio.Task[None]] = set()      # records waiting for the database (finish_later)
        self._keys = KeyCache(settings.key_cache_lease_seconds)   # salted hashes only, never secrets
        self._key_poller: asyncio.Task[None] | None = None
        self._auth_failures = AuthFailures(settings.auth_failure_limit, settings.auth_failure_window_seconds)
        self._auth_summary: asyncio.Task[None] | None = None

    # --- life cycle -----------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: LedgerSettings, data_dir: Path, *,
                   deployments: Iterable[Deployment] | None = None) -> Ledger:
        """Connect, migrate, start the audit writer.

        Pass the catalog's `deployments` so admission reserves the worst-case cost of a request
        against the team's budget; without it the budget stops only once spend reaches it, and
        requests already in flight may overshoot by their own cost.
        """
        data_dir = Path(data_dir)
        db = Database(settings, data_dir)
        await asyncio.to_thread(db.migrate)
        secrets = await asyncio.to_thread(Keys.load, data_dir)
        mode = settings.counters
        if mode == "auto":
            mode = "redis" if settings.redis_url else ("memory" if db.is_sqlite else "database")

        async def seed(team: str, period: str) -> int:
            return await db.run_raw(lambda conn: _usage_seed_sql(conn, team, period), tx=False)

        counters: Counters
        if mode == "redis":
            if not settings.redis_url:
                raise ValueError("ledger.counters is redis but ledger.redis_url is not set")
            counters = RedisCounters(settings.redis_url, settings.redis_prefix, seed, settings.counter_lease_share)
        elif mode == "database":
            counters = DatabaseCounters(db, _usage_seed_sql)
        else:
            counters = MemoryCounters(seed)
        price = 0.0
        for d in deployments or ():
            price = max(price, d.price.input_per_mtok / 1e6, d.price.output_per_mtok / 1e6)
        writer = (SpoolWriter(db, secrets, settings) if settings.durability == "process"
                  else GroupCommitWriter(db, secrets, settings))
        writer.start()
        metrics.AUDIT_SPOOL_BACKLOG.set_function(lambda: writer.backlog)
        # records a crashed predecessor left in its spool reach the chain (and the usage that seeds
        # budget counters) before this process admits anything
        if not await writer.flush(timeout=settings.recovery_wait_seconds):
            log.warning("audit spools of stopped replicas are still shipping; budgets seeded now may miss their cost")
        ledger = cls(settings, data_dir, db, secrets, counters, writer, price)
        sent = time.monotonic()
        epoch, any_key = await db.run_raw(keys.epoch, tx=False)
        ledger._open = not any_key
        ledger._keys.confirm(epoch, sent, any_key)
        if ledger._keys.enabled:
            ledger._key_poller = asyncio.get_running_loop().create_task(ledger._poll_keys(), name="nuri-key-epoch")
        ledger._auth_summary = asyncio.get_running_loop().create_task(ledger._summarise_auth_failures(),
                                                                      name="nuri-auth-failures")
        head = await db.run_raw(lambda c: c.one("SELECT seq, hash, sig FROM audit_head WHERE id = 1"), tx=False)
        if head is not None and int(head[0]) > 0 and not secrets.signature_ok(int(head[0]), head[1], head[2]):
            log.error("the audit chain head was not signed with this process's signing key: every replica "
                      "(and the CLI) must share NURI_AUDIT_SIGNING_KEY, or the head was edited; run `nuri audit verify`")
        log.info("ledger open", extra={"backend": "sqlite" if db.is_sqlite else "postgresql",
                                       "counters": mode, "open_mode": ledger._open})
        return ledger

    async def close(self) -> None:
        for task in (self._key_poller, self._auth_summary):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            await self._record_auth_failures(everything=True)
        except Exception as exc:
            log.warning("auth failure summary not recorded at shutdown", extra={"error_type": type(exc).__name__})
        await self.drain()
        if self._late:
            log.error("%d audit records could not be written before shutdown", len(self._late))
            for task in list(self._late):
                task.cancel()
        await self.writer.close()
        await self.counters.close()
        await self.db.aclose()
        await asyncio.to_thread(self.db.close)

    @property
    def open_mode(self) -> bool:
        """True while no API key exists: the gateway then serves anonymously, on loopback only."""
        return self._open

    def keyed_hash(self, value: str) -> str:
        """HMAC of a personal value for the audit record: equal values link, nothing reverses."""
        return self.secrets.keyed_hash(value)

    # --- authenticate ---------------------------------------------------------------------

    async def authenticate(self, authorization_header: str | None, client: str | None = None) -> Principal:
        """The caller's Principal. Key rows come from the epoch-leased cache (keycache.py) or, on a
        miss, from the database; either way a revocation on any replica holds from the request after
        `revoke_key` returned.

        `client` is the peer address: refusals are counted per address (auth_failures.py), and an
        address over `auth_failure_limit` gets 429 before its key is even looked up."""
        if self._open and not await self._any_key():
            return ANONYMOUS
        wait = self.auth_retry_after(client)
        if wait is not None:
            self.auth_failed(client, "rate_limited")
            raise RateLimited(f"too many requests with refused API keys from this address; retry in {wait}s",
                              code="too_many_auth_failures", headers={"retry-after": str(wait)})
        token = keys.bearer(authorization_header)
        if token is None:
            self.auth_failed(client, "missing")
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        parts = keys.split_key(token)
        if parts is None:
            self.auth_failed(client, "malformed")
            raise Unauthorized("invalid API key")
        key_id, secret = parts
        row = self._keys.row(key_id)
        if row is None:
            sent = time.monotonic()
            row, epoch = await self._read(lambda conn: keys.lookup(conn, key_id),
                                          lambda conn: keys.lookup_async(conn, key_id))
            self._keys.confirm(epoch, sent)
            self._keys.put(key_id, row, epoch)     # unknown ids are never cached
        principal = keys.principal_from(row, key_id, secret)
        if principal is None:
            revoked = row is not None and row[2] is not None and keys.hash_secret(row[0], secret) == row[1]
            self.auth_failed(client, "revoked" if revoked else "invalid")
            raise Unauthorized("this API key has been revoked" if revoked else "invalid API key",
                               code="revoked_api_key" if revoked else None)
        return principal

    def auth_failed(self, client: str | None, reason: str) -> None:
        """Count a refused credential (also the admin routes' refusals) for metrics and the summary."""
        metrics.AUTH_FAILURES.labels(reason).inc()
        self._auth_failures.note(client, reason)

    def auth_retry_after(self, client: str | None) -> int | None:
        """Seconds `client` must wait after too many refused credentials, or None."""
        return self._auth_failures.retry_after(client)

    async def any_key(self) -> bool:
        """Whether an API key exists: from then on loopback alone no longer opens the admin routes."""
        return not self._open or await self._any_key()

    async def _summarise_auth_failures(self) -> None:
        """Every window, one audit record per client address that had refused credentials."""
        while True:
            await asyncio.sleep(self.settings.auth_failure_window_seconds)
            try:
                await self._record_auth_failures()
            except Exception as exc:
                log.warning("auth failure summary not recorded", extra={"error_type": type(exc).__name__})

    async def _record_auth_failures(self, *, everything: bool = False) -> None:
        for win in self._auth_failures.take(everything=everything):
            start = datetime.fromtimestamp(win.start, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            await self.admin_event("auth_failures", "gateway", {
                "client": self.keyed_hash(win.client), "window_start": start,
                "window_seconds": self.settings.auth_failure_window_seconds, "failures": win.total,
                **{f"reason_{k}": v for k, v in sorted(win.reasons.items())},
            })

    async def _any_key(self) -> bool:
        """Whether any API key exists yet (while none does, the gateway serves anonymously)."""
        if not (self._keys.fresh() and self._keys.any_key is not None):
            sent = time.monotonic()
            epoch, any_key = await self._read(keys.epoch, keys.epoch_async)
            self._keys.confirm(epoch, sent, any_key)
            if not any_key:
                return False
        elif not self._keys.any_key:
            return False
        self._open = False
        return True

    async def _poll_keys(self) -> None:
        """Renew the key cache's lease: read the key epoch every `key_poll_seconds`."""
        failing = False
        while True:
            await asyncio.sleep(self.settings.key_poll_seconds)
            sent = time.monotonic()
            try:
                epoch, any_key = await self._query(keys.epoch, keys.epoch_async)
            except Exception:
                if not failing:
                    log.warning("key epoch unreadable: cached keys expire, requests read their keys")
                failing = True
                continue
            failing = False
            self._keys.confirm(epoch, sent, any_key)

    async def _keys_changed(self) -> None:
        """Return only once every replica obeys a change to keys or teams (see keycache.py)."""
        self._keys.expire()
        await asyncio.sleep(revocation_wait(self.settings.key_cache_lease_seconds))

    async def _query(self, fn: Any, afn: Any) -> Any:
        """One autocommit read: on the event loop for PostgreSQL, in a thread for SQLite."""
        if not self.db.is_sqlite:
            async with self.db.aconn() as conn:
                return await afn(conn)
        return await self.db.run_raw(fn, tx=False)

    async def _read(self, fn: Any, afn: Any) -> Any:
        """A request's read; a store that is down refuses the request (fail closed, 503)."""
        try:
            return await self._query(fn, afn)
        except Exception as exc:
            log.error("key store unavailable", extra={"error_type": type(exc).__name__})
            raise ServiceUnavailable("the key store is unavailable; request refused", code="ledger_unavailable") from exc

    # --- admit ----------------------------------------------------------------------------

    async def admit(self, principal: Principal, estimated_tokens: int, *,
                    estimated_cost: float | None = None) -> Admission:
        """Apply the key's and the team's rate limits and the team's budget; raise 429 if over.

        `estimated_tokens` (prompt + max completion) is counted against tpm now and corrected
        to the real count in `finish`. The budget reserves `estimated_cost` (default: tokens ×
        the catalog's highest per-token price), also corrected in `finish`.
        """
        now = time.time()
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

    # --- finish ---------------------------------------------------------------------------

    async def finish(self, admission: Admission | None, record: AuditRecord) -> None:
        """Settle usage and append the audit record; returns once the record is committed.

        Call it once per request, also for refused ones (admission None). It also updates the
        Prometheus metrics, so the gateway need not call `metrics.observe` itself.
        """
        pending, usage = self._entry(record)
        settle = None
        if admission is not None and admission.counted:
            settle = Settle(admission.scopes, admission.second, admission.principal.team, admission.period,
                            int(record.prompt_tokens + record.completion_tokens) - admission.estimated_tokens,
                            to_nanos(record.cost) - admission.reserved_nanos)
            if record.outcome != "ok" and not (record.prompt_tokens or record.completion_tokens):
                settle.token_delta = -admission.estimated_tokens   # nothing was consumed
        try:
            await self.writer.append(pending, usage)
        finally:
            if settle is not None:   # after the commit: the correction's work stays off the record's path
                self._settle_later(settle)
        metrics.observe(record)

    def _entry(self, record: AuditRecord) -> tuple[chain.Pending, chain.UsageDelta | None]:
        """The record's chain entry and usage row. A negative count or cost would hand a spent
        budget back, so whatever the caller passes, usage is clamped here, before the record, the
        usage table and the settlement see it."""
        record.prompt_tokens = max(int(record.prompt_tokens), 0)
        record.completion_tokens = max(int(record.completion_tokens), 0)
        record.cost = max(float(record.cost), 0.0)
        body = record.to_body(self.keyed_hash)
        pending = chain.Pending(canonical(body), body["time"], record.kind, record.request_id, record.team)
        usage = None
        if record.kind == "request":
            usage = chain.UsageDelta(body["time"][:10], record.team, record.deployment or "-", 1,
                                     record.prompt_tokens, record.completion_tokens, to_nanos(record.cost))
        return pending, usage

    def finish_later(self, record: AuditRecord) -> None:
        """Write the record of a request whose `finish` failed (database lost, spool full) once the
        store answers again, so the request still ends with exactly one record; the client was told
        503. Counters were settled by the failed `finish`. If that write did commit before its
        answer was lost, the request already has its record and this one is dropped."""
        if len(self._late) >= _LATE_MAX:
            log.error("audit record dropped: %d records already wait for the database", len(self._late))
            return
        task = asyncio.get_running_loop().create_task(self._write_late(*self._entry(record)))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    @property
    def records_attempts(self) -> bool:
        """Whether the gateway commits an attempt record before forwarding (durability fsync): the
        promise there is that nothing leaves without a committed record, even if the database is
        lost while the upstream works."""
        return self.settings.durability == "fsync"

    async def record_attempt(self, record: AuditRecord) -> None:
        """Commit an attempt record (kind "attempt"): no usage, no settlement, not counted as traffic."""
        body = record.to_body(self.keyed_hash)
        await self.writer.append(
            chain.Pending(canonical(body), body["time"], record.kind, record.request_id, record.team), None)

    async def _write_late(self, pending: chain.Pending, usage: chain.UsageDelta | None) -> None:
        """Retry with backoff until the record is in: the database's return is not announced."""
        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            try:
                # the failed commit may have gone through before its answer was lost
                present = await self.writer._present([pending])
                if not any(kind == pending.kind and rid == pending.request_id for kind, rid, _ in present):
                    await self.writer.append(pending, usage)
                log.info("audit record %s written after the database came back", pending.request_id)
                return
            except Exception:
                delay = min(delay * 2, 2.0)

    def _settle_later(self, settle: Settle) -> None:
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

    async def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every counter correction already issued has been applied and every audit
        record already acknowledged is in the database (with `durability: process` records reach
        it from the spool a moment after the answer). False if the database stayed out of reach."""
        while self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)
        if self._late:
            await asyncio.wait(list(self._late), timeout=timeout)
        return await self.writer.flush(timeout=timeout) and not self._late

    async def admin_event(self, kind: str, actor: str, detail: dict[str, Any] | None = None) -> None:
        """An audit record for an admin action (key created/revoked, policy or catalog reloaded)."""
        record = AuditRecord(request_id=f"admin_{uuid.uuid4().hex[:24]}", endpoint=kind, team=actor or "admin",
                             kind="admin", outcome="ok", detail=_clean_detail(detail or {}))
        await self.finish(None, record)

    # --- administration (CLI and management endpoints) ---------------------------------------

    async def create_key(self, team: str, *, budget: float | None = None, rpm: int | None = None,
                         tpm: int | None = None, team_rpm: int | None = None, team_tpm: int | None = None,
                         models: list[str] | None = None, name: str | None = None,
                         actor: str = "cli") -> keys.NewKey:
        def work(conn: Connection) -> tuple[keys.NewKey, bool]:
            first = conn.execute(text("SELECT 1 FROM api_keys LIMIT 1")).first() is None
            known = conn.execute(text("SELECT 1 FROM teams WHERE name = :n"), {"n": team}).first() is not None
            keys.upsert_team(conn, team, budget=budget, rpm=team_rpm, tpm=team_tpm)
            new = keys.create_key(conn, team, rpm=rpm, tpm=tpm, models=models, name=name)
            # replicas must learn of it before we return only if it ends open mode or changes the
            # limits of a team whose keys they may have cached (a new key id is never in a cache)
            changes_cached = first or (known and any(v is not None for v in (budget, team_rpm, team_tpm)))
            return new, changes_cached

        new, changes_cached = await self.db.run(work, write=True)
        self._open = False
        if changes_cached:
            await self._keys_changed()
        await self.admin_event("key_created", actor, {"key_id": new.key_id, "team": team, "budget": budget,
                                                      "rpm": rpm, "tpm": tpm, "team_rpm": team_rpm,
                                                      "team_tpm": team_tpm, "models": models or []})
        return new

    async def set_team(self, team: str, *, budget: float | None = None, rpm: int | None = None,
                       tpm: int | None = None, actor: str = "cli") -> None:
        await self.db.run(lambda conn: keys.upsert_team(conn, team, budget=budget, rpm=rpm, tpm=tpm), write=True)
        await self._keys_changed()
        await self.admin_event("team_updated", actor, {"team": team, "budget": budget, "rpm": rpm, "tpm": tpm})

    async def revoke_key(self, key_id: str, *, actor: str = "cli") -> bool:
        done = await self.db.run(lambda conn: keys.revoke_key(conn, key_id), write=True)
        if done:
            await self._keys_changed()
            await self.admin_event("key_revoked", actor, {"key_id": key_id})
        return done

    async def list_keys(self) -> list[keys.KeyInfo]:
        return await self.db.run(keys.list_keys)

    async def verify(self) -> chain.VerifyResult:
        await self.writer.flush(timeout=30.0)   # this replica's own spooled records first
        return await self.db.run_raw(lambda conn: chain.verify(conn, self.secrets), snapshot=True)

    async def prune(self, older_than_days: int, *, actor: str = "cli") -> int:
        cutoff = datetime.fromtimestamp(time.time() - older_than_days * 86400, UTC)
        cutoff_iso = cutoff.isoformat(timespec="microseconds").replace("+00:00", "Z")
        dropped = await self.db.run_raw(
            lambda conn: chain.prune(conn, self.secrets, cutoff_iso, postgres=not self.db.is_sqlite), write=True)
        await self.admin_event("audit_pruned", actor, {"older_than_days": older_than_days, "records": dropped})
        return dropped

    async def usage(self, team: str | None = None) -> list[dict[str, Any]]:
        """Tokens and cost per day, team and deployment (the metering report)."""
        await self.writer.flush(timeout=30.0)
        def work(conn: Connection) -> list[dict[str, Any]]:
            sql = ("SELECT day, team, deployment, requests, prompt_tokens, completion_tokens, cost_nanos "
                   "FROM usage_daily" + (" WHERE team = :t" if team else "") + " ORDER BY day, team, deployment")
            rows = conn.execute(text(sql), {"t": team} if team else {}).all()
            return [{"day": r[0], "team": r[1], "deployment": r[2], "requests": r[3], "prompt_tokens": r[4],
                     "completion_tokens": r[5], "cost": r[6] / NANO} for r in rows]

        return await self.db.run(work)
