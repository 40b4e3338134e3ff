"""Durability "process", on SQLite and PostgreSQL alike: the audit record's path to acknowledgement
is one write to a local spool file; a shipper puts the spool into the chain in the background
(SQLite through the writer thread), and a restart ships a dead replica's spool, each record once.
Real SQLite files and PostgreSQL, real spool files, real processes killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nuri.config import LedgerSettings
from nuri.ledger import AuditRecord, Ledger
from nuri.ledger.audit import chain, shipper, spool
from nuri.ledger.audit.records import canonical
from nuri.ledger.audit.secrets import Keys
from nuri.ledger.audit.shipper import SpoolWriter
from nuri.ledger.audit.spool import SpoolFile, SpoolFull
from nuri.ledger.store.db import Database

from .conftest import PG_URL, pg_schema

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def rec(i: int, team: str = "t") -> AuditRecord:
    return AuditRecord(request_id=f"req_{i:05d}", endpoint="chat", team=team, deployment="d",
                       prompt_tokens=10, completion_tokens=2, cost=0.001)


def pending_of(keys: Keys, record: AuditRecord) -> tuple[chain.Pending, chain.UsageDelta]:
    """What Ledger.finish hands the writer for `record`."""
    body = record.to_body(keys.keyed_hash)
    p = chain.Pending(canonical(body), body["time"], record.kind, record.request_id, record.team)
    u = chain.UsageDelta(body["time"][:10], record.team, record.deployment or "-", 1, record.prompt_tokens,
                         record.completion_tokens, round(record.cost * 1e9))
    return p, u


@pytest.fixture(params=["sqlite", "postgres"])
def spooled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`durability: process` settings (a dict: child processes get them too) on each backend in turn."""
    sdir = str(tmp_path / "spool")
    if request.param == "sqlite":
        yield {"durability": "process", "spool_dir": sdir}
        return
    for schema in pg_schema():
        yield {"database_url": PG_URL, "db_schema": schema, "durability": "process", "spool_dir": sdir}


async def open_ledger(settings: dict[str, Any], data_dir: Path, **kw: Any) -> Ledger:
    return await Ledger.open(LedgerSettings(**settings, **kw), data_dir)


async def request_ids(led: Ledger) -> list[str]:
    return list(await led.db.run(lambda c: c.exec_driver_sql("SELECT request_id FROM audit_log ORDER BY seq")
                                 .scalars().all()))


async def usage_requests(led: Ledger) -> int:
    return sum(r["requests"] for r in await led.usage())


async def assert_chain_holds_once(led: Ledger, expected: list[str]) -> None:
    """Everything spooled has shipped: each expected request once, its usage counted once, and the
    chain verifies through exactly that many records."""
    assert await led.writer.flush(timeout=30)
    assert sorted(await request_ids(led)) == sorted(expected)
    assert await usage_requests(led) == len(expected)
    result = await led.verify()
    assert result.ok and result.head_seq == len(expected), result.describe()


def spool_files(directory: Path | str) -> list[Path]:
    return sorted(Path(directory).glob(spool.PATTERN))


def ids(n: int, start: int = 0) -> list[str]:
    return [f"req_{i:05d}" for i in range(start, n)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- both backends ------------------------------------------------------------------------------


async def test_spooled_records_reach_the_database_and_verify(spooled: dict[str, Any], tmp_path: Path) -> None:
    led = await open_ledger(spooled, tmp_path, checkpoint_every=25)
    try:
        assert led.writer.mode == "spool"
        for i in range(40):
            await led.finish(None, rec(i))
        await asyncio.gather(*[led.finish(None, rec(i)) for i in range(40, 200)])
        [own] = spool_files(spooled["spool_dir"])
        assert own.stat().st_mode & 0o777 == 0o600
        assert await led.writer.flush(timeout=30)
        assert led.writer.backlog == 0 and led.writer.stats["shipped"] == 200
        result = await led.verify()
        assert result.ok and result.head_seq == 200 and result.checkpoints >= 1, result.describe()
        assert sorted(await request_ids(led)) == ids(200)
        assert await usage_requests(led) == 200
    finally:
        await led.close()
    assert spool_files(spooled["spool_dir"]) == []    # close shipped everything and removed the spool


async def test_spool_files_roll_over_and_shipped_ones_are_deleted(spooled: dict[str, Any], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shipper, "ROTATE_BYTES", 4000)
    led = await open_ledger(spooled, tmp_path)
    try:
        for burst in range(10):
            await asyncio.gather(*[led.finish(None, rec(burst * 20 + i)) for i in range(20)])
            assert await led.writer.flush(timeout=30)
        assert len(spool_files(spooled["spool_dir"])) <= 2   # each file rolled over is gone once shipped
        result = await led.verify()
        assert result.ok and result.head_seq == 200, result.describe()
    finally:
        await led.close()
    assert spool_files(spooled["spool_dir"]) == []


async def test_recovery_skips_records_already_shipped_and_ships_the_rest_once(spooled: dict[str, Any],
                                                                               tmp_path: Path) -> None:
    """A dead replica's spool whose shipped offset lags behind the database (it died after a batch
    committed, before it noted so), with a half-written last line."""
    sdir = Path(spooled["spool_dir"])
    led = await open_ledger(spooled, tmp_path)
    try:
        pairs = [pending_of(led.secrets, rec(i)) for i in range(30)]
        for p, u in pairs[:20]:                        # these reach the database
            await led.writer.append(p, u)
        assert await led.writer.flush(timeout=30)
        dead = SpoolFile.create(sdir)
        ends = [dead.append(spool.encode(p, u)) for p, u in pairs]
        dead.mark_shipped(ends[4])                     # it knew of the first 5 only
        dead.close()                                   # its process "died": the lock is free
        with open(dead.path, "ab") as fh:              # … in the middle of writing one more record
            fh.write(spool.encode(*pending_of(led.secrets, rec(99)))[:40])
    finally:
        await led.close()

    again = await open_ledger(spooled, tmp_path)
    try:
        assert again.writer.stats["recovered"] == 10     # shipped before open returned: before any admission
        # each once, usage of skipped records not re-applied; the torn one was never acknowledged
        await assert_chain_holds_once(again, ids(30))
    finally:
        await again.close()
    assert spool_files(sdir) == []


async def test_a_batch_whose_answer_was_lost_is_not_written_twice(spooled: dict[str, Any], tmp_path: Path) -> None:
    """After a failed shipment the writer checks what the chain already holds before writing."""
    led = await open_ledger(spooled, tmp_path)
    try:
        pairs = [pending_of(led.secrets, rec(i)) for i in range(6)]
        items, usage = [p for p, _ in pairs[:3]], [u for _, u in pairs[:3]]
        kw = {"checkpoint_every": 1000, "checkpoint_seconds": 3600}
        if led.db.is_sqlite:                           # "committed, but the commit reported an error"
            await led.db.run_raw(lambda c: chain.append(c, items, usage, led.secrets, **kw), tx=False)
        else:                                          # "committed, but the connection died before the answer"
            async with led.db.aconn() as conn:
                await chain.append_async(conn, items, usage, led.secrets, **kw)
        led.writer._uncertain = True
        for p, u in pairs:
            await led.writer.append(p, u)
        await assert_chain_holds_once(led, ids(6))
    finally:
        await led.close()


_CHILD = """
import asyncio, json, sys
from nuri.config import LedgerSettings
from nuri.ledger import AuditRecord, Ledger

async def main():
    led = await Ledger.open(LedgerSettings(**json.loads(sys.argv[1])), sys.argv[2])
    print("open", flush=True)
    i = 0
    while True:
        rid = f"{sys.argv[3]}_{i:06d}"
        await led.finish(None, AuditRecord(request_id=rid, endpoint="chat", team="t", deployment="d",
                                           prompt_tokens=3, completion_tokens=1, cost=0.0001))
        print(rid, flush=True)          # acknowledged
        i += 1
        if i % 7 == 0:
            await asyncio.sleep(0.0005)  # lets the shipper run

asyncio.run(main())
"""


def run_and_kill(settings: dict[str, Any], data_dir: Path, at_least: int, prefix: str = "crash") -> list[str]:
    """Start a writer process, let it acknowledge `at_least` records, kill -9 it; the acknowledged ids."""
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(settings), str(data_dir), prefix],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acked: list[str] = []
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first == "open", first + (proc.stderr.read() if proc.stderr else "")
        while len(acked) < at_least:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "child exited"
            acked.append(line.strip())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        acked += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return acked


async def assert_all_once_and_verified(settings: dict[str, Any], data_dir: Path, acked: list[str]) -> None:
    led = await open_ledger(settings, data_dir)
    try:
        assert await led.writer.flush(timeout=60)
        assert led.writer.stats["recovered"] > 0
        stored = await request_ids(led)
        assert len(stored) == len(set(stored)), "a record was shipped twice"
        missing = set(acked) - set(stored)
        assert not missing, f"{len(missing)} acknowledged records are missing"
        result = await led.verify()
        assert result.ok and result.head_seq == len(stored), result.describe()
    finally:
        await led.close()
    assert spool_files(settings["spool_dir"]) == []


async def test_kill_9_with_a_spool_loses_no_acknowledged_record(spooled: dict[str, Any], tmp_path: Path) -> None:
    acked = run_and_kill(spooled, tmp_path, at_least=1500)
    assert len(spool_files(spooled["spool_dir"])) == 1   # the dead replica's spool, unlocked now
    await assert_all_once_and_verified(spooled, tmp_path, acked)


_HOLDER = """
import sys, time
from pathlib import Path
from nuri.ledger.audit.spool import SpoolFile
f = SpoolFile.create(Path(sys.argv[1]))
f.append(sys.argv[2].encode() + b"\\n")
print("holding", flush=True)
time.sleep(600)
"""


async def test_a_spool_held_by_a_live_process_is_not_taken(spooled: dict[str, Any], tmp_path: Path) -> None:
    sdir = Path(spooled["spool_dir"])
    sdir.mkdir()
    keys = Keys.load(tmp_path)
    p, u = pending_of(keys, rec(7, team="live"))
    line = spool.encode(p, u).decode().rstrip("\n")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(sdir), line], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        led = await open_ledger(spooled, tmp_path)
        try:
            await led.finish(None, rec(1))
            assert await led.writer.flush(timeout=30)
            assert await request_ids(led) == ["req_00001"]       # the live replica's record stays with it
            assert len(spool_files(sdir)) == 2
        finally:
            await led.close()
        assert len(spool_files(sdir)) == 1
    finally:
        holder.kill()
        holder.wait(10)

    led = await open_ledger(spooled, tmp_path)                    # now it is a dead replica's spool
    try:
        await assert_chain_holds_once(led, ["req_00001", "req_00007"])
    finally:
        await led.close()
    assert spool_files(sdir) == []


async def test_two_ledgers_on_one_database_keep_their_own_spools(spooled: dict[str, Any], tmp_path: Path) -> None:
    """Two writers, one spool directory, one chain (on SQLite: one file, whose write lock they take turns on)."""
    a = await open_ledger(spooled, tmp_path)
    b = await open_ledger(spooled, tmp_path)
    try:
        for burst in range(4):
            await asyncio.gather(*[w.finish(None, rec(burst * 200 + 2 * j + k))
                                   for j in range(100) for k, w in enumerate((a, b))])
            await asyncio.sleep(0.01)
        assert len(spool_files(spooled["spool_dir"])) == 2
        assert await a.writer.flush(timeout=30) and await b.writer.flush(timeout=30)
        assert a.writer.stats["shipped"] == b.writer.stats["shipped"] == 400
        await assert_chain_holds_once(a, ids(800))
    finally:
        await a.close()
        await b.close()
    assert spool_files(spooled["spool_dir"]) == []


def test_spool_lines_round_trip() -> None:
    p = chain.Pending('{"a":"가\\n\\"b"}', "2026-01-01T00:00:00.000000Z", "request", "r1", "팀")
    u = chain.UsageDelta("2026-01-01", "팀", "d", 1, 2, 3, 4)
    line = spool.encode(p, u)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert spool.decode(line[:-1]) == (p, u)
    assert spool.decode(spool.encode(p, None)[:-1]) == (p, None)


# --- PostgreSQL out of reach ----------------------------------------------------------------------


async def spool_until_full(w: SpoolWriter, keys: Keys) -> list[str]:
    """Append until the size cap refuses (SpoolFull); no append may wait for the database or its
    lock. The request ids spooled."""
    spooled: list[str] = []
    started = time.perf_counter()
    with pytest.raises(SpoolFull):
        for i in range(10_000):
            await w.append(*pending_of(keys, rec(i)))
            spooled.append(f"req_{i:05d}")
            if i % 10 == 0:
                await asyncio.sleep(0)                 # the shipper starts a commit (and waits, if it must)
    elapsed = time.perf_counter() - started
    assert 20 < len(spooled) < 200
    assert elapsed / len(spooled) < 0.005, elapsed
    return spooled


async def test_appends_do_not_wait_for_an_unreachable_database_and_fail_closed_at_the_cap(
        pg: str, tmp_path: Path) -> None:
    sdir = tmp_path / "spool"
    down = LedgerSettings(database_url=f"postgresql://postgres@127.0.0.1:{_closed_port()}/test",
                          durability="process", spool_dir=str(sdir))
    keys = Keys.load(tmp_path)
    db = Database(down, tmp_path)
    w = SpoolWriter(db, keys, down, spool_cap_bytes=40_000)
    w.start()
    try:
        spooled = await spool_until_full(w, keys)
        assert w.backlog == len(spooled)
        assert not await w.flush(timeout=0.3)
    finally:
        await w.close(timeout=0.3)                    # cannot ship: the spool stays for the next start
        db.close()
    assert len(spool_files(sdir)) == 1

    settings = {"database_url": PG_URL, "db_schema": pg, "durability": "process", "spool_dir": str(sdir)}
    led = await open_ledger(settings, tmp_path)       # the database is back
    try:
        assert led.writer.stats["recovered"] == len(spooled)
        await assert_chain_holds_once(led, spooled)
    finally:
        await led.close()
    assert spool_files(sdir) == []


# --- SQLite shared by several processes -------------------------------------------------------------


def sqlite_process(tmp_path: Path) -> dict[str, Any]:
    return {"durability": "process", "spool_dir": str(tmp_path / "spool")}


async def test_sqlite_appends_do_not_wait_for_the_write_lock_and_fail_closed_at_the_cap(tmp_path: Path) -> None:
    """Another process holds the file's write lock: appends go on at spool speed, the shipper waits
    in the writer thread, the cap refuses requests; released, everything ships once."""
    settings = LedgerSettings(**sqlite_process(tmp_path))
    db = Database(settings, tmp_path)
    db.migrate()
    keys = Keys.load(tmp_path)
    other = sqlite3.connect(tmp_path / "nuri.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")                   # another replica holds the write lock
    w = SpoolWriter(db, keys, settings, spool_cap_bytes=40_000)
    w.start()
    try:
        spooled = await spool_until_full(w, keys)
        assert not await w.flush(timeout=0.3)
        other.execute("ROLLBACK")
        assert await w.flush(timeout=30)
        await w.append(*pending_of(keys, rec(9999)))    # room again
        assert await w.flush(timeout=30)
    finally:
        other.close()
        await w.close()
        db.close()
    led = await Ledger.open(settings, tmp_path)
    try:
        assert sorted(await request_ids(led)) == [*spooled, "req_09999"]
        result = await led.verify()
        assert result.ok and result.head_seq == len(spooled) + 1, result.describe()
    finally:
        await led.close()
    assert spool_files(tmp_path / "spool") == []


async def test_sqlite_shipment_cut_off_at_close_is_not_shipped_twice(tmp_path: Path) -> None:
    """close() gives up on a shipment waiting for the write lock; the commit still lands once the
    lock is free, the spool does not know it did, and the next start skips those records."""
    settings = sqlite_process(tmp_path)
    led = await open_ledger(settings, tmp_path)
    other = sqlite3.connect(tmp_path / "nuri.db", isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        for i in range(50):
            await led.finish(None, rec(i))
        await asyncio.sleep(0.05)                      # the shipper waits for the lock in the writer thread
        asyncio.get_running_loop().call_later(0.5, other.execute, "ROLLBACK")
        await led.writer.close(timeout=0.2)
        assert len(spool_files(settings["spool_dir"])) == 1
    finally:
        await led.close()
        other.close()
    again = await open_ledger(settings, tmp_path)
    try:
        assert await again.writer.flush(timeout=30)
        assert again.writer.stats["recovered"] == 0
        assert sorted(await request_ids(again)) == ids(50)
        result = await again.verify()
        assert result.ok and result.head_seq == 50, result.describe()
    finally:
        await again.close()
    assert spool_files(settings["spool_dir"]) == []


async def test_sqlite_two_processes_on_one_file_killed_lose_nothing_and_write_each_record_once(
        tmp_path: Path) -> None:
    settings = sqlite_process(tmp_path)
    Keys.load(tmp_path)                                # both children must sign with the same key
    first, second = await asyncio.gather(asyncio.to_thread(run_and_kill, settings, tmp_path, 1500, "a"),
                                         asyncio.to_thread(run_and_kill, settings, tmp_path, 1500, "b"))
    assert len(spool_files(settings["spool_dir"])) == 2
    await assert_all_once_and_verified(settings, tmp_path, first + second)


async def test_sqlite_ships_relaxed_in_the_writer_thread_whose_checkpoints_keep_the_wal_small(
        tmp_path: Path) -> None:
    led = await open_ledger(sqlite_process(tmp_path), tmp_path)
    try:
        w = led.writer
        assert await w._in_thread(lambda c: c.one("PRAGMA synchronous")) == (1,)   # NORMAL
        # a new file is made of 16 KB pages, and its WAL still checkpoints every 4 MB
        assert await w._in_thread(lambda c: c.one("PRAGMA page_size")) == (16384,)
        assert await w._in_thread(lambda c: c.one("PRAGMA wal_autocheckpoint")) == (256,)
        for i in range(1000):                          # 1000 commits of one record, ~25 KB of WAL each
            await led.finish(None, rec(i))
            assert await w.flush(timeout=30)
        wal = tmp_path / "nuri.db-wal"
        assert wal.stat().st_size < 10_000_000, wal.stat().st_size
        result = await led.verify()
        assert result.ok and result.head_seq == 1000, result.describe()
    finally:
        await led.close()
