"""The ledger the gateway talks to: authenticate, admit, finish, admin_event.

One object per gateway process, a façade over four parts that each do one job: keys
(authentication and key management), quota (rate limits and budgets), audit (the hash-chained
trail and its reports) and store (the database). Every method that touches storage runs it off
the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from nuri.catalog import Deployment
from nuri.config import LedgerSettings, MoneySettings
from nuri.ledger.audit import chain
from nuri.ledger.audit.export import Range
from nuri.ledger.audit.indexer import AuditIndexer
from nuri.ledger.audit.records import AuditRecord
from nuri.ledger.audit.reports import AuditReports
from nuri.ledger.audit.secrets import Keys
from nuri.ledger.audit.shipper import SpoolWriter
from nuri.ledger.audit.trail import AuditTrail
from nuri.ledger.audit.writer import GroupCommitWriter
from nuri.ledger.keys import rows
from nuri.ledger.keys.admin import KeyAdmin
from nuri.ledger.keys.auth import Authenticator
from nuri.ledger.quota.admission import Admission, Quota, highest_price, open_counters
from nuri.ledger.quota.counters import Counters
from nuri.ledger.store.db import Database
from nuri.observability import metrics
from nuri.principal import Principal

log = logging.getLogger("nuri.ledger")


class Ledger:
    """Keys, budgets, rate limits and the audit chain for one gateway process."""

    def __init__(self, settings: LedgerSettings, data_dir: Path, db: Database, audit: AuditTrail,
                 quota: Quota, money: MoneySettings | None = None) -> None:
        self.settings = settings
        self.money = money or MoneySettings(currency="USD")
        self.data_dir = data_dir
        self.db = db
        self.audit = audit
        self.quota = quota
        self.auth = Authenticator(settings, db, audit.keyed_hash, audit.admin_event)
        self.keys = KeyAdmin(db, self.auth, audit.admin_event)
        self.reports = AuditReports(audit)
        self.indexer = AuditIndexer(db)   # the console's audit index, kept off the request path

    @property
    def secrets(self) -> Keys:
        return self.audit.secrets

    @property
    def writer(self) -> GroupCommitWriter | SpoolWriter:
        return self.audit.writer

    @property
    def counters(self) -> Counters:
        return self.quota.counters

    # --- life cycle -----------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: LedgerSettings, data_dir: Path, *,
                   deployments: Iterable[Deployment] | None = None, money: MoneySettings | None = None) -> Ledger:
        """Connect, migrate, start the audit writer.

        Pass the catalog's `deployments` so admission reserves the worst-case cost of a request
        against the team's budget; without it the budget stops only once spend reaches it, and
        requests already in flight may overshoot by their own cost. `money` (the config's) is the
        budget currency every recorded cost is converted into.
        """
        data_dir = Path(data_dir)
        db = Database(settings, data_dir)
        await asyncio.to_thread(db.migrate)
        secrets = await asyncio.to_thread(Keys.load, data_dir)
        counters, mode = open_counters(settings, db)
        audit = AuditTrail(settings, db, secrets)
        await audit.start()
        ledger = cls(settings, data_dir, db, audit, Quota(settings, counters, highest_price(deployments)), money)
        await ledger.auth.start()
        ledger.indexer.start()
        log.info("ledger open", extra={"backend": "sqlite" if db.is_sqlite else "postgresql",
                                       "counters": mode, "open_mode": ledger.auth.open_mode})
        return ledger

    def use_catalog(self, deployments: Iterable[Deployment], money: MoneySettings) -> None:
        """A reloaded catalog: admission reserves by its prices, records convert by its rates."""
        self.quota.price_per_token = highest_price(deployments)
        self.money = money

    async def close(self) -> None:
        await self.auth.close()
        await self.indexer.stop()
        await self.drain()
        await self.audit.close()
        await self.quota.close()
        await self.db.aclose()
        await asyncio.to_thread(self.db.close)

    @property
    def open_mode(self) -> bool:
        """True while no API key exists: the gateway then serves anonymously, on loopback only."""
        return self.auth.open_mode

    def keyed_hash(self, value: str) -> str:
        """HMAC of a personal value for the audit record: equal values link, nothing reverses."""
        return self.audit.keyed_hash(value)

    # --- authenticate ---------------------------------------------------------------------

    async def authenticate(self, authorization_header: str | None, client: str | None = None) -> Principal:
        """The caller's Principal (keys/auth.py). `client` is the peer address: refusals are
        counted per address, and an address over `auth_failure_limit` gets 429 before its key is
        even looked up."""
        return await self.auth.authenticate(authorization_header, client)

    def auth_failed(self, client: str | None, reason: str) -> None:
        """Count a refused credential (also the admin routes' refusals) for metrics and the summary."""
        self.auth.failed(client, reason)

    def auth_retry_after(self, client: str | None) -> int | None:
        """Seconds `client` must wait after too many refused credentials, or None."""
        return self.auth.retry_after(client)

    async def any_key(self) -> bool:
        """Whether an API key exists: from then on loopback alone no longer opens the admin routes."""
        return await self.auth.any_key()

    # --- admit ----------------------------------------------------------------------------

    async def admit(self, principal: Principal, estimated_tokens: int, *,
                    estimated_cost: float | None = None) -> Admission:
        """Apply the key's and the team's rate limits and the team's budget; raise 429 if over.

        `estimated_tokens` (prompt + max completion) is counted against tpm now and corrected
        to the real count in `finish`. The budget reserves `estimated_cost` (default: tokens ×
        the catalog's highest per-token price), also corrected in `finish`.
        """
        return await self.quota.admit(principal, estimated_tokens, estimated_cost=estimated_cost, now=time.time())

    # --- finish ---------------------------------------------------------------------------

    async def finish(self, admission: Admission | None, record: AuditRecord) -> None:
        """Settle usage and append the audit record; returns once the record is acknowledged.

        Call it once per request, also for refused ones (admission None). It also updates the
        Prometheus metrics, so the gateway need not call `metrics.observe` itself.
        """
        self._in_budget_currency(record)
        entry = self.audit.entry(record)            # clamps usage before the settlement reads it
        settle = self.quota.settlement(admission, record)
        try:
            await self.audit.write(entry)
        finally:
            if settle is not None:   # after the commit: the correction's work stays off the record's path
                self.quota.settle_later(settle)
        metrics.observe(record)

    def _in_budget_currency(self, record: AuditRecord) -> None:
        """Cost in the budget currency, so the record, the usage table and the budget agree; the
        deployment's list cost and currency stay in the record's detail."""
        money = self.money
        if record.currency == money.currency:
            return
        if record.cost:
            rate = money.rate(record.currency)
            if rate is None:     # the config refuses such a catalog; never settle a foreign amount as is
                log.error("no exchange rate from %s to %s: cost recorded as 0", record.currency, money.currency)
                rate = 0.0
            record.detail["list_cost"] = round(float(record.cost), 9)
            record.detail["list_currency"] = record.currency
            record.cost = float(record.cost) * rate
        record.currency = money.currency or record.currency

    def finish_later(self, record: AuditRecord) -> None:
        """Write the record of a request whose `finish` failed (database lost, spool full) once the
        store answers again, so the request still ends with exactly one record; the client was told
        503. Counters were settled by the failed `finish`. If that write did commit before its
        answer was lost, the request already has its record and this one is dropped."""
        self._in_budget_currency(record)
        self.audit.finish_later(record)

    @property
    def records_attempts(self) -> bool:
        """Whether the gateway commits an attempt record before forwarding (durability fsync): the
        promise there is that nothing leaves without a committed record, even if the database is
        lost while the upstream works."""
        return self.settings.durability == "fsync"

    async def record_attempt(self, record: AuditRecord) -> None:
        """Commit an attempt record (kind "attempt"): no usage, no settlement, not counted as traffic."""
        await self.audit.record_attempt(record)

    async def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every counter correction already issued has been applied and every audit
        record already acknowledged is in the database (with `durability: process` records reach
        it from the spool a moment after the answer). False if the database stayed out of reach."""
        await self.quota.drain()
        return await self.audit.drain(timeout)

    async def admin_event(self, kind: str, actor: str, detail: dict[str, Any] | None = None) -> None:
        """An audit record for an admin action (key created/revoked, policy or catalog reloaded)."""
        await self.audit.admin_event(kind, actor, detail)

    # --- administration (CLI and admin API: one implementation, keys/admin.py, audit/reports.py) ---

    async def create_key(self, team: str, *, budget: float | None = None, rpm: int | None = None,
                         tpm: int | None = None, team_rpm: int | None = None, team_tpm: int | None = None,
                         models: list[str] | None = None, name: str | None = None,
                         expires_at: str | datetime | None = None, user_id: str | None = None,
                         workload: str | None = None, actor: str = "cli") -> rows.NewKey:
        return await self.keys.create_key(team, budget=budget, rpm=rpm, tpm=tpm, team_rpm=team_rpm,
                                          team_tpm=team_tpm, models=models, name=name, expires_at=expires_at,
                                          user_id=user_id, workload=workload, actor=actor)

    async def set_team(self, team: str, *, budget: float | None = None, rpm: int | None = None,
                       tpm: int | None = None, tags: list[str] | None = None, roles: list[str] | None = None,
                       latency_tier: str | None = None, clear: tuple[str, ...] = (),
                       actor: str = "cli") -> rows.TeamInfo:
        return await self.keys.set_team(team, budget=budget, rpm=rpm, tpm=tpm, tags=tags, roles=roles,
                                        latency_tier=latency_tier, clear=clear, actor=actor)

    async def list_teams(self) -> list[rows.TeamInfo]:
        return await self.keys.list_teams()

    async def get_team(self, team: str) -> rows.TeamInfo:
        return await self.keys.get_team(team)

    async def revoke_key(self, key_id: str, *, actor: str = "cli") -> bool:
        return await self.keys.revoke_key(key_id, actor=actor)

    async def rotate_key(self, key_id: str, *, grace_seconds: int = 0, expires_at: str | datetime | None = None,
                         actor: str = "cli") -> rows.NewKey:
        return await self.keys.rotate_key(key_id, grace_seconds=grace_seconds, expires_at=expires_at, actor=actor)

    async def list_keys(self, team: str | None = None, user_id: str | None = None) -> list[rows.KeyInfo]:
        return await self.keys.list_keys(team, user_id)

    async def get_key(self, key_id: str) -> rows.KeyInfo:
        return await self.keys.get_key(key_id)

    async def verify(self) -> chain.VerifyResult:
        return await self.reports.verify()

    async def prune(self, older_than_days: int, *, actor: str = "cli") -> int:
        return await self.reports.prune(older_than_days, actor=actor)

    async def usage(self, team: str | None = None) -> list[dict[str, Any]]:
        """Tokens and cost per day, team and deployment (the metering report)."""
        return await self.reports.usage(team)

    async def usage_report(self, *, by: tuple[str, ...] = ("day", "team", "deployment"), team: str | None = None,
                           key_id: str | None = None, deployment: str | None = None, since: str | None = None,
                           until: str | None = None) -> list[dict[str, Any]]:
        """Usage and spend grouped by any of day, team, key and deployment, costs in the budget currency."""
        rows_ = await self.reports.usage_report(by=by, team=team, key_id=key_id, deployment=deployment,
                                                since=since, until=until)
        for row in rows_:
            row["currency"] = self.money.currency
        return rows_

    async def export_audit(self, fmt: str, span: Range) -> tuple[str, int]:
        """The audit records in `span` as JSON lines or CSV text, and their count."""
        return await self.reports.export_text(fmt, span)
