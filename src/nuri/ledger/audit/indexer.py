"""The audit index (migration 0004) kept up to date off the request path.

Writing an audit record does no indexing at all: an index filled inside the record's own
transaction (triggers) cost ~0.2 ms of CPU per record on SQLite, a quarter of the gateway's budget
per request. Instead this indexer reads the records after the mark in `audit_index_state`, parses
each body once, and adds facet rows and rollup counts for a batch in one short transaction that
also moves the mark. It runs every few seconds in the background (paced while it is behind, so a
backfill or a burst leaves the CPU to the requests and the write lock to the audit writer), and a
console read catches up first (bounded), so what a page shows lags the trail by at most the
records not yet indexed.

Several processes may index the same store (replicas, `--workers`): a batch is read and prepared
without any lock, and written only if the mark is still where it was read (compare and set), so
each record is counted once. Records are committed in `seq` order (the chain head serialises
writers), so nothing below the mark can still appear.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson

from nuri.ledger.quota.admission import NANO
from nuri.ledger.store.db import Database, RawConn

log = logging.getLogger("nuri.ledger")

BATCH = 500              # records per transaction
BATCH_FSYNC_SQLITE = 50  # SQLite with `durability: fsync`: the write lock held ~1 ms (see `batch_for`)
TICK_ROWS = 5_000        # records per background tick
READ_ROWS = 2_500        # records a read catches up before it answers (~0.1 s at most)
INTERVAL = 2.0           # seconds between background ticks once caught up
BEHIND_DUTY = 0.1        # the background task's share of the time while it is behind

_MARK = "SELECT seq FROM audit_index_state WHERE id = 1"
_ROWS = "SELECT seq, time, kind, team, body FROM audit_log WHERE seq > :s ORDER BY seq LIMIT :n"
_MOVE = "UPDATE audit_index_state SET seq = :new WHERE id = 1 AND seq = :old"
# positional parameters (? on SQLite, %s on PostgreSQL): tuples bind faster than dicts
_FACET = "INSERT INTO audit_facet (name, value, seq) VALUES ({0}, {0}, {0}) ON CONFLICT DO NOTHING"
_ROLLUP = ("INSERT INTO audit_rollup (bucket, name, value, n, cost_nanos) VALUES ({0}, {0}, {0}, {0}, {0}) "
           "ON CONFLICT (bucket, name, value) DO UPDATE SET n = audit_rollup.n + excluded.n, "
           "cost_nanos = audit_rollup.cost_nanos + excluded.cost_nanos")
_LAG = "SELECT (SELECT seq FROM audit_head WHERE id = 1), (SELECT seq FROM audit_index_state WHERE id = 1)"


def index_rows(rows: list[Any]) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, str, int, int]]]:
    """Facet rows (name, value, seq) and summed rollup rows (bucket, name, value, n, cost_nanos)
    for (seq, time, kind, team, body) records, each body parsed once.

    Facets (every kind): team, action, deployment, each rule. Per minute (request records):
    requests, action, jurisdiction ("-": not routed), outcome, each rule, once per record. Per day
    (request records): requests and spend of the key ("-": no key).
    """
    facets: list[tuple[str, str, int]] = []
    add = facets.append
    counts: dict[tuple[str, str, str], int] = {}
    spend: dict[tuple[str, str, str], list[int]] = {}
    for seq, stamp, kind, team, text in rows:
        body = orjson.loads(text)
        action, deployment, rules = body.get("action"), body.get("deployment"), body.get("rule_ids")
        distinct = {str(r) for r in rules if r is not None} if rules else ()
        if team is not None:
            add(("team", str(team), seq))
        if action is not None:
            add(("action", str(action), seq))
        if deployment is not None:
            add(("deployment", str(deployment), seq))
        for rule in distinct:
            add(("rule", rule, seq))
        if kind != "request":
            continue
        minute = stamp[:16]
        outcome, jurisdiction = body.get("outcome"), body.get("jurisdiction")
        keys = [(minute, "requests", ""), (minute, "jurisdiction", "-" if jurisdiction is None else str(jurisdiction))]
        if action is not None:
            keys.append((minute, "action", str(action)))
        if outcome is not None:
            keys.append((minute, "outcome", str(outcome)))
        keys.extend((minute, "rule", rule) for rule in distinct)
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        key_id = body.get("key_id")
        acc = spend.setdefault((stamp[:10], "key", "-" if key_id is None else str(key_id)), [0, 0])
        acc[0] += 1
        acc[1] += round(float(body.get("cost") or 0.0) * NANO)
    rollups = [(*key, n, 0) for key, n in counts.items()]
    rollups += [(*key, acc[0], acc[1]) for key, acc in spend.items()]
    return facets, rollups


def index_step(conn: RawConn, limit: int = BATCH) -> int | None:
    """Index up to `limit` records after the mark (conn in autocommit). Returns how many; 0 when
    caught up; None when another indexer moved the mark meanwhile (nothing written: try again)."""
    mark = int((conn.one(_MARK) or (0,))[0])
    rows = conn.rows(_ROWS, {"s": mark, "n": limit})
    if not rows:
        return 0
    facets, rollups = index_rows(rows)
    with _not_flushed(conn), conn.transaction(write=True):
        if not conn.is_sqlite:
            conn.run("SET LOCAL synchronous_commit = off")
        if not conn.run(_MOVE, {"new": int(rows[-1][0]), "old": mark}):
            return None
        _many(conn, _FACET, facets)
        _many(conn, _ROLLUP, rollups)
    return len(rows)


@contextlib.contextmanager
def _not_flushed(conn: RawConn) -> Iterator[None]:
    """Commit the index without waiting for the disk: it is derived from the chain and its mark
    moves in the same transaction, so a batch lost to a power cut is simply indexed again. (With
    `durability: fsync` each flush would hold SQLite's write lock while the audit writer waits.)"""
    if not conn.is_sqlite:
        yield                                # PostgreSQL: SET LOCAL inside the transaction
        return
    level = conn.conn.execute("PRAGMA synchronous").fetchone()[0]
    conn.conn.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        conn.conn.execute(f"PRAGMA synchronous={int(level)}")


def _many(conn: RawConn, sql: str, rows: list[Any]) -> None:
    if rows:
        cur = conn.conn.cursor()
        cur.executemany(sql.format("?" if conn.is_sqlite else "%s"), rows)
        cur.close()


def lag(conn: RawConn) -> int:
    """Records in the chain the index does not cover yet."""
    row = conn.one(_LAG)
    return max(int(row[0] or 0) - int(row[1] or 0), 0) if row else 0


def forget_pruned(conn: RawConn, before_iso: str) -> None:
    """In the prune's transaction, after `chain.prune`: drop the facets of the records it dropped
    (up to its newest anchor), never index those, and drop the per-minute counts before the cutoff
    (a quiet minute's counts describe single records). Per-day spend per key stays, as the usage
    table's spend does."""
    row = conn.one("SELECT MAX(seq) FROM audit_checkpoint WHERE kind = 'anchor'")
    last = int(row[0]) if row and row[0] is not None else 0
    if last <= 0:
        return
    conn.run("UPDATE audit_index_state SET seq = :s WHERE id = 1 AND seq < :s", {"s": last})
    # one primary-key range per (facet, value): a delete by seq alone would read the whole table
    key = conn.one("SELECT name, value FROM audit_facet ORDER BY name, value LIMIT 1")
    while key is not None:
        conn.run("DELETE FROM audit_facet WHERE name = :n AND value = :v AND seq <= :s",
                 {"n": key[0], "v": key[1], "s": last})
        key = conn.one("SELECT name, value FROM audit_facet WHERE (name, value) > (:n, :v) "
                       "ORDER BY name, value LIMIT 1", {"n": key[0], "v": key[1]})
    conn.run("DELETE FROM audit_rollup WHERE bucket < :m AND length(bucket) = 16", {"m": before_iso[:16]})


def batch_for(db: Database) -> int:
    """Records per transaction. On SQLite with `durability: fsync` a request waits for its audit
    commit, and a commit that finds the write lock taken sleeps in growing steps (1, 2, 5, 10 ms…):
    a batch must hold the lock for about a millisecond, though small batches cost the indexer about
    twice the CPU per record (each commit rewrites the same few pages). Otherwise nothing on the request
    path waits for that lock (PostgreSQL locks rows, and the spool's shipper is behind the answers),
    so batches are large and cheap."""
    return BATCH_FSYNC_SQLITE if db.is_sqlite and db.sqlite_sync == "FULL" else BATCH


class AuditIndexer:
    """The background task of one process, and the catch-up a read asks for."""

    def __init__(self, db: Database, *, interval: float = INTERVAL, tick_rows: int = TICK_ROWS,
                 batch: int | None = None) -> None:
        self.db = db
        self.interval = interval
        self.tick_rows = tick_rows
        self.batch = batch or batch_for(db)
        self.indexed = 0                     # records this process indexed (for benchmarks and logs)
        self.cpu_seconds = 0.0               # CPU time its batches took, in the worker threads
        self._lock = asyncio.Lock()          # one catch-up at a time in this process
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stop.clear()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="nuri-audit-indexer")

    async def stop(self) -> None:
        """Stop the background task; a batch already being written finishes first."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def catch_up(self, max_rows: int = READ_ROWS, *, duty: float = 1.0) -> int:
        """Index up to `max_rows` records after the mark, a batch per transaction on the ledger's
        worker threads; returns how many this call indexed. With `duty` < 1, each batch is
        followed by a pause so indexing takes that share of the time: the audit writer finds
        SQLite's write lock free (its busy wait backs off in growing steps, so back-to-back batches
        would starve it) and the requests find the CPU."""
        done = conflicts = 0
        while done < max_rows:
            limit = min(self.batch, max_rows - done)
            started = time.perf_counter()
            async with self._lock:           # one batch at a time in this process; reads slip in between
                n = await self.db.run_raw(functools.partial(self._step, limit=limit), tx=False)
            if n is None:                    # another process indexed the same batch: read the mark again
                conflicts += 1
                if conflicts > 20:
                    break
                continue
            done += n
            self.indexed += n
            if n < limit:
                break
            if duty < 1.0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), (time.perf_counter() - started) * (1 / duty - 1))
                if self._stop.is_set():
                    break
        return done

    def _step(self, conn: RawConn, limit: int) -> int | None:
        started = time.thread_time()         # one step at a time (the lock), so the sum is safe
        try:
            return index_step(conn, limit)
        finally:
            self.cpu_seconds += time.thread_time() - started

    async def lag(self) -> int:
        return await self.db.run_raw(lag, tx=False)

    async def _run(self) -> None:
        """Tick every `interval`; while behind (a backfill, a burst) go straight on, paced to
        `BEHIND_DUTY` of the time so the requests keep the CPU and the writer its lock (a million
        records take a few minutes)."""
        wait = self.interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=wait)
            if self._stop.is_set():
                return
            try:
                n = await self.catch_up(self.tick_rows, duty=BEHIND_DUTY)
            except Exception as exc:         # the database is away: keep trying, the mark is safe
                log.warning("audit index tick failed", extra={"error_type": type(exc).__name__})
                wait = max(self.interval, 5.0)
                continue
            wait = 0.0 if n >= self.tick_rows else self.interval
