"""Group commit: one task turns the audit records that arrive together into one transaction.

`append()` returns only after the record's transaction has committed, which is what lets the
gateway acknowledge a request only once its audit record is durable. While one batch commits
(an fsync on SQLite, a round trip and WAL flush on PostgreSQL), the next batch gathers, so at
high load the cost of a commit is shared by every request that arrived during the previous one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from nuri.config import LedgerSettings
from nuri.ledger import chain, metrics
from nuri.ledger.db import Database
from nuri.ledger.secrets import Keys

log = logging.getLogger("nuri.ledger")

_Item = tuple[chain.Pending, chain.UsageDelta | None, asyncio.Future[None]]


class AuditWriter:
    def __init__(self, db: Database, keys: Keys, settings: LedgerSettings) -> None:
        self._db = db
        self._keys = keys
        self._settings = settings
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nuri-audit-writer")
        self._task: asyncio.Task[None] | None = None
        self._head: chain.Head | None = None   # what this writer committed last (PostgreSQL)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="nuri-audit-writer")

    async def append(self, pending: chain.Pending, usage: chain.UsageDelta | None) -> None:
        if self._task is None or self._task.done():
            raise RuntimeError("the audit writer is not running")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((pending, usage, fut))
        await asyncio.shield(fut)   # a cancelled request still gets its record written

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._queue.put_nowait(None)
            await self._task
        self._thread.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._settings.batch_max:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            started = time.perf_counter()
            try:
                if self._db.is_sqlite:
                    await loop.run_in_executor(self._thread, self._commit, batch)
                else:
                    await self._commit_async(batch)
            except Exception as exc:
                log.error("audit commit failed for %d records", len(batch), extra={"error_type": type(exc).__name__})
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            metrics.AUDIT_BATCH.observe(len(batch))
            metrics.AUDIT_COMMIT.observe(time.perf_counter() - started)
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def _commit_async(self, batch: list[_Item]) -> None:
        """PostgreSQL: on the event loop, on a pooled connection; one round trip while the head is
        the one this writer left, two when another writer (a replica) moved it since."""
        items, usage = self._prepare(batch)
        s = self._settings
        head, self._head = self._head, None   # after a failure the next batch reads the head afresh
        async with self._db.aconn() as conn:
            self._head = await chain.append_async(conn, items, usage, self._keys, head=head,
                                                  checkpoint_every=s.checkpoint_every,
                                                  checkpoint_seconds=s.checkpoint_seconds)

    def _commit(self, batch: list[_Item]) -> None:
        items, usage = self._prepare(batch)
        s = self._settings
        self._db.call_raw(
            lambda conn: chain.append(conn, items, usage, self._keys,
                                      checkpoint_every=s.checkpoint_every, checkpoint_seconds=s.checkpoint_seconds),
            tx=False,   # append runs its own transaction
        )

    @staticmethod
    def _prepare(batch: list[_Item]) -> tuple[list[chain.Pending], list[chain.UsageDelta]]:
        usage: dict[tuple[str, str, str], chain.UsageDelta] = {}
        for _, u, _ in batch:
            if u is None:
                continue
            acc = usage.setdefault((u.day, u.team, u.deployment), chain.UsageDelta(u.day, u.team, u.deployment))
            acc.requests += u.requests
            acc.prompt_tokens += u.prompt_tokens
            acc.completion_tokens += u.completion_tokens
            acc.cost_nanos += u.cost_nanos
        return [p for p, _, _ in batch], list(usage.values())
