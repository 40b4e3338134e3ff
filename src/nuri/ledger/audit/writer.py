"""The audit writer: every record into the hash chain, by the path the durability setting asks for.

`append()` returns once the record is as safe as `ledger.durability` promises, which is what
lets the gateway acknowledge a request only then:

- fsync: group commit, the record on disk before `append` returns. While one batch commits the
  next gathers, so at high load a commit's cost is shared by every request that arrived during
  the previous one. SQLite commits in the writer thread (synchronous=FULL); PostgreSQL on the
  event loop, one round trip while this writer knows the chain head.
- process (either backend, shipper.py): the record goes into this replica's audit spool
  (`spool.py`: one `os.write` to a local file) and `append` returns; a shipper task chains what
  was spooled in batches, and a replica that starts ships dead replicas' spools first.

Why a spool, on SQLite too: paced at one request every 5 ms on a 2-vCPU host, anything that
waits for the database on the request's path — a round trip to PostgreSQL, a hop to the writer
thread, even an SQLite commit on the event loop (0.45 ms p50) — costs 0.3–0.45 ms, the ledger's
whole budget per request or more; a spool append costs ~0.12 ms p50 (encoding the line ~0.07,
the write ~0.04). A write in the page cache survives a kill -9 of the gateway as a
synchronous=NORMAL commit does; neither survives a power loss of the host.

Either way a kill -9 of the gateway loses no acknowledged request, and every acknowledged
request ends up in the chain exactly once. SQLite is written only by the writer thread, which
waits (busy timeout) while another process sharing the file holds its write lock.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from nuri.config import LedgerSettings
from nuri.ledger.audit import chain
from nuri.ledger.audit.secrets import Keys
from nuri.ledger.store.db import Database, RawConn
from nuri.observability import metrics

log = logging.getLogger("nuri.ledger")

T = TypeVar("T")
_Item = tuple[chain.Pending, chain.UsageDelta | None, asyncio.Future[None]]
Pair = tuple[chain.Pending, chain.UsageDelta | None]

_PRESENT_CHUNK = 1000            # request ids per lookup of records already in the chain
_PRESENT_PG = "SELECT kind, request_id, body FROM audit_log WHERE request_id = ANY(%s)"
_PRESENT_SQLITE = ("SELECT kind, request_id, body FROM audit_log "
                   "WHERE request_id IN (SELECT value FROM json_each(:ids))")


def _present_sqlite(conn: RawConn, param: dict[str, Any]) -> list[Any]:
    return conn.rows(_PRESENT_SQLITE, param)


class ChainWriter:
    """What both writers share: records into the chain in one transaction, on either store."""

    mode = ""

    def __init__(self, db: Database, keys: Keys, settings: LedgerSettings) -> None:
        self._db = db
        self._keys = keys
        self._settings = settings
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nuri-audit-writer")  # SQLite
        self._task: asyncio.Task[None] | None = None
        self._head: chain.Head | None = None   # what this writer committed last (PostgreSQL)
        self.stats = {"shipped": 0, "recovered": 0}

    @property
    def backlog(self) -> int:
        """Records acknowledged but not yet in the chain (only a spool has any)."""
        return 0

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record appended so far is in the chain; True at once without a spool."""
        return True

    async def _write(self, pairs: list[Pair]) -> None:
        """Chain these records in one transaction. SQLite: in the writer thread, which waits (busy
        timeout) for another process's write lock. PostgreSQL: on the event loop, on a pooled
        connection; one round trip while the head is the one this writer left, two when another
        writer (a replica) moved it since."""
        items, usage = self._prepare(pairs)
        s = self._settings
        if self._db.is_sqlite:
            await self._in_thread(lambda conn: chain.append(
                conn, items, usage, self._keys, checkpoint_every=s.checkpoint_every,
                checkpoint_seconds=s.checkpoint_seconds))
            return
        head, self._head = self._head, None   # after a failure the next batch reads the head afresh
        async with self._db.aconn() as conn:
            self._head = await chain.append_async(conn, items, usage, self._keys, head=head,
                                                  checkpoint_every=s.checkpoint_every,
                                                  checkpoint_seconds=s.checkpoint_seconds)

    async def _in_thread(self, fn: Callable[[RawConn], T]) -> T:
        """fn(the writer thread's SQLite connection), in that thread, in autocommit."""
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, lambda: self._db.call_raw(fn, tx=False))

    async def _present(self, pendings: list[chain.Pending]) -> set[tuple[str, str, str]]:
        """Which of these records the chain already holds. PostgreSQL: looked up under the head's
        row lock, so a batch still committing (the one whose answer was lost) has finished when we
        look. SQLite: in the writer thread, after any commit of ours; a dead process's is over."""
        found: set[tuple[str, str, str]] = set()
        for i in range(0, len(pendings), _PRESENT_CHUNK):
            ids = sorted({p.request_id for p in pendings[i:i + _PRESENT_CHUNK]})
            rows: list[Any]
            if self._db.is_sqlite:
                param = {"ids": json.dumps(ids)}
                rows = await self._in_thread(functools.partial(_present_sqlite, param=param))
            else:
                async with self._db.aconn() as conn:
                    await conn.begin_locked(chain._HEAD)
                    try:
                        rows = await (await conn.conn.execute(_PRESENT_PG, [ids])).fetchall()
                    finally:
                        await conn.rollback()
            found.update((str(r[0]), str(r[1]), str(r[2])) for r in rows)
        return found

    @staticmethod
    def _prepare(pairs: list[Pair]) -> tuple[list[chain.Pending], list[chain.UsageDelta]]:
        usage: dict[tuple[str, str, str], chain.UsageDelta] = {}
        for _, u in pairs:
            if u is None:
                continue
            acc = usage.setdefault((u.day, u.team, u.deployment), chain.UsageDelta(u.day, u.team, u.deployment))
            acc.requests += u.requests
            acc.prompt_tokens += u.prompt_tokens
            acc.completion_tokens += u.completion_tokens
            acc.cost_nanos += u.cost_nanos
        return [p for p, _ in pairs], list(usage.values())




class GroupCommitWriter(ChainWriter):
    """Durability fsync: `append` returns once the record's group commit is on disk."""

    def __init__(self, db: Database, keys: Keys, settings: LedgerSettings) -> None:
        super().__init__(db, keys, settings)
        self.mode = "thread" if db.is_sqlite else "commit"
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="nuri-audit-writer")

    async def append(self, pending: chain.Pending, usage: chain.UsageDelta | None) -> None:
        if self._task is None or self._task.done():
            raise RuntimeError("the audit writer is not running")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((pending, usage, fut))
        await asyncio.shield(fut)   # a cancelled request still gets its record written

    async def close(self, timeout: float = 10.0) -> None:
        """Stop after committing everything appended."""
        if self._task is not None and not self._task.done():
            self._queue.put_nowait(None)
            await self._task
        await asyncio.to_thread(self._thread.shutdown)

    async def _run(self) -> None:
        """Durability fsync: the group commit."""
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
                await self._write([(p, u) for p, u, _ in batch])
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
