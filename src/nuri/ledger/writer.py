"""The audit writer: every record into the hash chain, by the path the durability setting asks for.

`append()` returns once the record is as safe as `ledger.durability` promises, which is what
lets the gateway acknowledge a request only then:

- fsync: group commit, the record on disk before `append` returns. While one batch commits the
  next gathers, so at high load a commit's cost is shared by every request that arrived during
  the previous one. SQLite commits in the writer thread (synchronous=FULL); PostgreSQL on the
  event loop, one round trip while this writer knows the chain head.
- process (either backend): the record goes into this replica's audit spool (`spool.py`: one
  `os.write` to a local file) and `append` returns. A shipper task appends what was spooled to
  the chain in batches, through the same commit as fsync but relaxed (SQLite synchronous=NORMAL,
  PostgreSQL synchronous_commit=off). A replica that starts ships, first, what dead replicas'
  spools (its own previous incarnation's too) still hold, skipping records already in the chain.
  `flush()` waits until everything spooled so far has shipped.

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
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from nuri.config import LedgerSettings
from nuri.ledger import chain, metrics, spool
from nuri.ledger.db import Database, RawConn
from nuri.ledger.secrets import Keys
from nuri.ledger.spool import SpoolFile, SpoolFull

log = logging.getLogger("nuri.ledger")

T = TypeVar("T")
_Item = tuple[chain.Pending, chain.UsageDelta | None, asyncio.Future[None]]
_Pair = tuple[chain.Pending, chain.UsageDelta | None]

SPOOL_CAP = 64 << 20             # unshipped spool bytes beyond which appends fail closed
ROTATE_BYTES = 1 << 20           # a spool file this large is replaced by a fresh one, deleted once shipped
RESCAN_SECONDS = 60.0            # how often the spool directory is searched for dead replicas' files
_PRESENT_CHUNK = 1000            # request ids per lookup of records already in the chain
_PRESENT_PG = "SELECT kind, request_id, body FROM audit_log WHERE request_id = ANY(%s)"
_PRESENT_SQLITE = ("SELECT kind, request_id, body FROM audit_log "
                   "WHERE request_id IN (SELECT value FROM json_each(:ids))")


class AuditWriter:
    def __init__(self, db: Database, keys: Keys, settings: LedgerSettings, *, spool_cap_bytes: int = SPOOL_CAP) -> None:
        self._db = db
        self._keys = keys
        self._settings = settings
        self.mode = "spool" if settings.durability == "process" else "thread" if db.is_sqlite else "commit"
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()   # fsync: waiting for the group commit
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nuri-audit-writer")  # SQLite
        self._task: asyncio.Task[None] | None = None
        self._head: chain.Head | None = None   # what this writer committed last (PostgreSQL)
        self.stats = {"shipped": 0, "recovered": 0}
        # durability process: the spool
        self.spool_dir = Path(settings.spool_dir or Path(db.data_dir) / "audit-spool")
        self._cap = spool_cap_bytes
        self._files: list[SpoolFile] = []      # this writer's spools, oldest first; appends go to the last
        self._orphans: list[SpoolFile] = []    # dead replicas' spools being shipped
        self._backlog: deque[tuple[chain.Pending, chain.UsageDelta | None, SpoolFile, int, int]] = deque()
        self._backlog_bytes = 0
        self._appended = 0
        self._shipped = 0
        self._recovering = True
        self._uncertain = False                # the last shipment failed: it may have committed anyway
        self._closing = False
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()        # replaced on every change, so waiters never miss one
        self._retry = _Retry()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.mode != "spool":
            self._task = loop.create_task(self._run(), name="nuri-audit-writer")
            return
        self.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._orphans = spool.scan(self.spool_dir)
        self._files = [SpoolFile.create(self.spool_dir)]
        self._task = loop.create_task(self._ship_loop(), name="nuri-audit-shipper")
        self._task.add_done_callback(lambda _: self._notify())

    async def append(self, pending: chain.Pending, usage: chain.UsageDelta | None) -> None:
        if self.mode == "spool":
            self._spool(pending, usage)
            return
        if self._task is None or self._task.done():
            raise RuntimeError("the audit writer is not running")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((pending, usage, fut))
        await asyncio.shield(fut)   # a cancelled request still gets its record written

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record appended so far is in the chain (and dead replicas' spools
        found at start have shipped). False if `timeout` passed first or the shipper stopped.
        Without a spool every appended record is already committed: returns True at once."""
        if self.mode != "spool":
            return True
        target = self._appended

        async def shipped() -> bool:
            while self._recovering or self._shipped < target:
                if self._task is None or self._task.done():
                    return False
                changed = self._changed
                await changed.wait()
            return True

        try:
            return await asyncio.wait_for(shipped(), timeout)
        except TimeoutError:
            return False

    @property
    def backlog(self) -> int:
        """Records spooled but not yet shipped (durability process)."""
        return len(self._backlog)

    async def close(self, timeout: float = 10.0) -> None:
        """Stop after committing (or, with a spool, shipping) everything appended. A spool that
        cannot ship within `timeout` (the database out of reach) is kept for the next start to ship."""
        if self.mode == "spool":
            await self._close_spool(timeout)
        elif self._task is not None and not self._task.done():
            self._queue.put_nowait(None)
            await self._task
        await asyncio.to_thread(self._thread.shutdown)   # a commit cut off by the timeout finishes first

    # --- into the chain -----------------------------------------------------------------------

    async def _write(self, pairs: list[_Pair]) -> None:
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

    # --- the spool (durability process) -------------------------------------------------------

    def _spool(self, pending: chain.Pending, usage: chain.UsageDelta | None) -> None:
        if self._closing or self._task is None or self._task.done():
            raise RuntimeError("the audit writer is not running")
        data = spool.encode(pending, usage)
        if self._backlog_bytes + len(data) > self._cap:
            self._retry.full(self._backlog_bytes)
            raise SpoolFull("audit records cannot reach the database and the local audit spool is full; "
                            "request refused", code="ledger_unavailable")
        f = self._files[-1]
        end = f.append(data)
        self._backlog.append((pending, usage, f, end, len(data)))
        self._backlog_bytes += len(data)
        self._appended += 1
        self._wake.set()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _ship_loop(self) -> None:
        loop = asyncio.get_running_loop()
        await self._recover()
        self._recovering = False
        self._notify()
        rescan = loop.call_later(RESCAN_SECONDS, self._wake.set)
        try:
            while True:
                try:
                    if not self._backlog:
                        if self._closing:
                            return
                        if rescan.when() <= loop.time():
                            rescan = loop.call_later(RESCAN_SECONDS, self._wake.set)
                            self._orphans = spool.scan(self.spool_dir)
                            await self._recover()
                            continue
                        self._wake.clear()
                        await self._wake.wait()
                        continue
                    await self._ship_backlog()
                except Exception as exc:   # the shipper must outlive anything a file system throws at it
                    log.error("audit shipper error", extra={"error_type": type(exc).__name__})
                    await asyncio.sleep(1.0)
        finally:
            rescan.cancel()

    async def _ship_backlog(self) -> None:
        n = min(len(self._backlog), self._settings.batch_max)
        batch = [self._backlog[i] for i in range(n)]
        started = time.perf_counter()
        try:
            pairs: list[_Pair] = [(p, u) for p, u, _, _, _ in batch]
            if self._uncertain:
                pairs = await self._not_in_chain(pairs)
            if pairs:
                await self._write(pairs)
            self._uncertain = False
        except Exception as exc:
            self._uncertain = True
            self._retry.failed(exc, len(self._backlog))
            await self._retry.wait()
            return
        self._retry.ok()
        metrics.AUDIT_BATCH.observe(n)
        metrics.AUDIT_COMMIT.observe(time.perf_counter() - started)
        marks: dict[int, tuple[SpoolFile, int]] = {}
        for _ in range(n):
            _, _, f, end, size = self._backlog.popleft()
            self._backlog_bytes -= size
            marks[id(f)] = (f, end)
        self._shipped += n
        self.stats["shipped"] += n
        try:
            for f, end in marks.values():
                f.mark_shipped(end)
            self._roll()
        except OSError as exc:
            log.warning("audit spool bookkeeping failed", extra={"error_type": type(exc).__name__})
        self._notify()

    def _roll(self) -> None:
        """Start a fresh file once the current one is large; delete older files fully shipped."""
        if self._files[-1].size >= ROTATE_BYTES:
            self._files.append(SpoolFile.create(self.spool_dir))
        while len(self._files) > 1 and self._files[0].done:
            self._files.pop(0).remove()

    async def _recover(self) -> None:
        """Ship what dead replicas' spools still hold, each record once, then delete them."""
        while self._orphans:
            f = self._orphans[0]
            shipped = 0
            while True:
                try:
                    shipped += await self._ship_orphan(f)
                    break
                except Exception as exc:
                    self._retry.failed(exc, len(self._backlog))
                    await self._retry.wait()
            self._retry.ok()
            self._orphans.pop(0).remove()
            self.stats["recovered"] += shipped
            log.info("audit spool of a stopped replica shipped: %d records (%s)", shipped, f.path.name)

    async def _ship_orphan(self, f: SpoolFile) -> int:
        records = f.unshipped()
        present = await self._present([r.pending for r in records])
        todo = [r for r in records if (r.pending.kind, r.pending.request_id, r.pending.body_text) not in present]
        step = self._settings.batch_max
        for i in range(0, len(todo), step):
            chunk = todo[i:i + step]
            await self._write([(r.pending, r.usage) for r in chunk])
            f.mark_shipped(chunk[-1].end)
        f.mark_shipped(f.size)
        return len(todo)

    async def _not_in_chain(self, pairs: list[_Pair]) -> list[_Pair]:
        present = await self._present([p for p, _ in pairs])
        return [(p, u) for p, u in pairs if (p.kind, p.request_id, p.body_text) not in present]

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
                rows = await self._in_thread(lambda conn, param=param: conn.rows(_PRESENT_SQLITE, param))
            else:
                async with self._db.aconn() as conn:
                    await conn.begin_locked(chain._HEAD)
                    try:
                        rows = await (await conn.conn.execute(_PRESENT_PG, [ids])).fetchall()
                    finally:
                        await conn.rollback()
            found.update((str(r[0]), str(r[1]), str(r[2])) for r in rows)
        return found

    async def _close_spool(self, timeout: float) -> None:
        self._closing = True
        self._wake.set()
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            log.error("audit shipper stopped", extra={"error_type": type(task.exception()).__name__})
        if self._backlog or self._orphans:
            log.error("audit records not yet in the database at close: %d, kept in %s for the next start to "
                      "ship", len(self._backlog), self.spool_dir)
        for f in self._orphans:
            f.close()
        for f in self._files:
            if f.done:
                f.remove()
            else:
                f.close()
        self._orphans, self._files = [], []

    @staticmethod
    def _prepare(pairs: list[_Pair]) -> tuple[list[chain.Pending], list[chain.UsageDelta]]:
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


class _Retry:
    """Backoff and logging while the database is unreachable for the shipper."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.since: float | None = None
        self.logged = 0.0
        self.full_logged = 0.0

    def failed(self, exc: BaseException, backlog: int) -> None:
        now = time.monotonic()
        if self.since is None or now - self.logged >= 30:
            log.error("audit records cannot be shipped to the database; retrying (%d waiting in the spool)", backlog,
                      extra={"error_type": type(exc).__name__})
            self.logged = now
        if self.since is None:
            self.since = now
        self.delay = min(max(self.delay * 2, 0.05), 2.0)

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)

    def ok(self) -> None:
        if self.since is not None:
            log.info("audit records reach the database again after %.1f s", time.monotonic() - self.since)
        self.since, self.delay = None, 0.0

    def full(self, backlog_bytes: int) -> None:
        now = time.monotonic()
        if now - self.full_logged >= 10:
            log.error("the audit spool is full (%d bytes unshipped): requests are refused", backlog_bytes)
            self.full_logged = now
