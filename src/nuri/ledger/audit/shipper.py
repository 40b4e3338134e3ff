"""Durability process: acknowledged audit records wait in a local spool and ship in the background.

`append` writes the record to this replica's spool (`spool.py`: one `os.write` to a local file)
and returns; a write in the page cache survives a kill -9 of the gateway. A shipper task on the
event loop appends what was spooled to the chain in batches, through the same commit as the group
commit but relaxed (SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off). A replica that
starts ships, first, what dead replicas' spools (its own previous incarnation's too) still hold,
skipping records already in the chain, so every acknowledged record lands exactly once.
Why a spool rather than a commit before the answer: see writer.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path

from nuri.config import LedgerSettings
from nuri.ledger.audit import chain, spool
from nuri.ledger.audit.secrets import Keys
from nuri.ledger.audit.spool import SpoolFile, SpoolFull
from nuri.ledger.audit.writer import ChainWriter, Pair
from nuri.ledger.store.db import Database
from nuri.observability import metrics

log = logging.getLogger("nuri.ledger")

SPOOL_CAP = 64 << 20             # unshipped spool bytes beyond which appends fail closed
ROTATE_BYTES = 1 << 20           # a spool file this large is replaced by a fresh one, deleted once shipped
RESCAN_SECONDS = 60.0            # how often the spool directory is searched for dead replicas' files
# After an idle spell the shipper waits this long for more records before it commits: at low load
# every record would otherwise be a commit and a hop to the writer thread of its own, and waking a
# thread on an idle machine costs 0.3–0.45 ms. The record is already in the spool; only the chain
# lags, and a reader that needs it (`flush`) cuts the wait short, as a full batch does. 0.2 s
# rather than 0.02: at 100 requests/s a batch holds ~20 records instead of ~2, and a request
# (full pipeline, one every ~20 ms) executes 3.4 % fewer instructions (bench/instructions.py).
GATHER_SECONDS = 0.2


class SpoolWriter(ChainWriter):
    """`append` spools and returns; `flush` waits for the shipper."""

    mode = "spool"

    def __init__(self, db: Database, keys: Keys, settings: LedgerSettings, *,
                 spool_cap_bytes: int = SPOOL_CAP) -> None:
        super().__init__(db, keys, settings)
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
        self._hurry = asyncio.Event()          # ship now: a reader waits, the batch is full, or closing
        self._changed = asyncio.Event()        # replaced on every change, so waiters never miss one
        self._retry = _Retry()

    def start(self) -> None:
        self.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._orphans = spool.scan(self.spool_dir)
        self._files = [SpoolFile.create(self.spool_dir)]
        self._task = asyncio.get_running_loop().create_task(self._ship_loop(), name="nuri-audit-shipper")
        self._task.add_done_callback(lambda _: self._notify())

    async def append(self, pending: chain.Pending, usage: chain.UsageDelta | None) -> None:
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
        if len(self._backlog) >= self._settings.batch_max:
            self._hurry.set()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record appended so far is in the chain (and dead replicas' spools
        found at start have shipped). False if `timeout` passed first or the shipper stopped."""
        target = self._appended
        self._hurry.set()

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
        """Records spooled but not yet shipped."""
        return len(self._backlog)

    async def close(self, timeout: float = 10.0) -> None:
        """Stop after shipping everything appended. A spool that cannot ship within `timeout` (the
        database out of reach) is kept for the next start to ship."""
        self._closing = True
        self._wake.set()
        self._hurry.set()
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
        await asyncio.to_thread(self._thread.shutdown)   # a commit cut off by the timeout finishes first

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
                        await self._gather()
                        continue
                    await self._ship_backlog()
                except Exception as exc:   # the shipper must outlive anything a file system throws at it
                    log.error("audit shipper error", extra={"error_type": type(exc).__name__})
                    await asyncio.sleep(1.0)
        finally:
            rescan.cancel()

    async def _gather(self) -> None:
        """Let records that arrive within `GATHER_SECONDS` of the first join its commit."""
        if self._hurry.is_set() or self._closing:
            self._hurry.clear()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hurry.wait(), GATHER_SECONDS)
        self._hurry.clear()

    async def _ship_backlog(self) -> None:
        n = min(len(self._backlog), self._settings.batch_max)
        batch = [self._backlog[i] for i in range(n)]
        started = time.perf_counter()
        try:
            pairs: list[Pair] = [(p, u) for p, u, _, _, _ in batch]
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

    async def _not_in_chain(self, pairs: list[Pair]) -> list[Pair]:
        present = await self._present([p for p, _ in pairs])
        return [(p, u) for p, u in pairs if (p.kind, p.request_id, p.body_text) not in present]


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
