"""Writing the audit trail: one record per request (and per admin action), hash-chained.

`AuditTrail` turns an `AuditRecord` into its chain entry and usage row, hands both to the writer
(the process spool with `durability: process`, a group commit with `fsync`) and, when a write
fails because the database is gone, writes the record once the store answers again, so a request
still ends with exactly one record.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from nuri.config import LedgerSettings
from nuri.ledger.audit import chain
from nuri.ledger.audit.records import AuditRecord, canonical
from nuri.ledger.audit.secrets import Keys
from nuri.ledger.audit.shipper import SpoolWriter
from nuri.ledger.audit.writer import GroupCommitWriter
from nuri.ledger.quota.admission import to_nanos
from nuri.ledger.store.db import Database
from nuri.observability import metrics

log = logging.getLogger("nuri.ledger")
_LATE_MAX = 10_000               # records held in memory while their write waits for the database

Entry = tuple[chain.Pending, chain.UsageDelta | None]


def clean_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """Admin detail is configuration facts: keep scalars and short lists, drop anything else."""
    out: dict[str, Any] = {}
    for k, v in detail.items():
        if isinstance(v, str | int | float | bool) or v is None:
            out[str(k)] = v if not isinstance(v, str) else v[:200]
        elif isinstance(v, list | tuple) and all(isinstance(x, str | int | float) for x in v):
            out[str(k)] = list(v)[:100]
    return out


class AuditTrail:
    """The chain writer of one process, and the records that wait for the database."""

    def __init__(self, settings: LedgerSettings, db: Database, secrets: Keys) -> None:
        self.settings = settings
        self.db = db
        self.secrets = secrets
        self.writer: GroupCommitWriter | SpoolWriter = (
            SpoolWriter(db, secrets, settings) if settings.durability == "process"
            else GroupCommitWriter(db, secrets, settings))
        self._late: set[asyncio.Task[None]] = set()      # records waiting for the database (finish_later)

    async def start(self) -> None:
        """Start the writer; records a crashed predecessor left in its spool reach the chain (and
        the usage that seeds budget counters) before this process admits anything."""
        writer = self.writer
        writer.start()
        metrics.AUDIT_SPOOL_BACKLOG.set_function(lambda: writer.backlog)
        if not await writer.flush(timeout=self.settings.recovery_wait_seconds):
            log.warning("audit spools of stopped replicas are still shipping; budgets seeded now may miss their cost")
        head = await self.db.run_raw(lambda c: c.one("SELECT seq, hash, sig FROM audit_head WHERE id = 1"), tx=False)
        if head is not None and int(head[0]) > 0 and not self.secrets.signature_ok(int(head[0]), head[1], head[2]):
            log.error("the audit chain head was not signed with this process's signing key: every replica "
                      "(and the CLI) must share NURI_AUDIT_SIGNING_KEY, or the head was edited; run `nuri audit verify`")

    def keyed_hash(self, value: str) -> str:
        return self.secrets.keyed_hash(value)

    def entry(self, record: AuditRecord) -> Entry:
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

    async def write(self, entry: Entry) -> None:
        """Append an entry; returns once it is acknowledged (spooled or committed)."""
        await self.writer.append(*entry)

    async def admin_event(self, kind: str, actor: str, detail: dict[str, Any] | None = None) -> None:
        record = AuditRecord(request_id=f"admin_{uuid.uuid4().hex[:24]}", endpoint=kind, team=actor or "admin",
                             kind="admin", outcome="ok", detail=clean_detail(detail or {}))
        await self.write(self.entry(record))

    async def record_attempt(self, record: AuditRecord) -> None:
        """Commit an attempt record (kind "attempt"): no usage, no settlement, not counted as traffic."""
        body = record.to_body(self.keyed_hash)
        await self.write((chain.Pending(canonical(body), body["time"], record.kind, record.request_id, record.team),
                          None))

    def finish_later(self, record: AuditRecord) -> None:
        """See `Ledger.finish_later`."""
        if len(self._late) >= _LATE_MAX:
            log.error("audit record dropped: %d records already wait for the database", len(self._late))
            return
        task = asyncio.get_running_loop().create_task(self._write_late(self.entry(record)))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _write_late(self, entry: Entry) -> None:
        """Retry with backoff until the record is in: the database's return is not announced."""
        pending = entry[0]
        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            try:
                # the failed commit may have gone through before its answer was lost
                present = await self.writer._present([pending])
                if not any(kind == pending.kind and rid == pending.request_id for kind, rid, _ in present):
                    await self.write(entry)
                log.info("audit record %s written after the database came back", pending.request_id)
                return
            except Exception:
                delay = min(delay * 2, 2.0)

    async def drain(self, timeout: float) -> bool:
        """Every acknowledged record in the database; False if it stayed out of reach."""
        if self._late:
            await asyncio.wait(list(self._late), timeout=timeout)
        return await self.writer.flush(timeout=timeout) and not self._late

    async def close(self) -> None:
        if self._late:
            log.error("%d audit records could not be written before shutdown", len(self._late))
            for task in list(self._late):
                task.cancel()
        await self.writer.close()
