"""Audit search over the index of migration 0004, on SQLite and PostgreSQL: paging newest first
through every filter returns exactly the records a full scan finds, and a page that used its scan
budget goes on from where it stopped. The index is kept by the indexer, off the write path: a
record write adds no index rows, a catch-up (in any batch size, by several indexers at once)
indexes each record exactly once, the background task catches up without being asked, and
pruning takes the pruned records' index rows with it."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nuri.config import LedgerSettings
from nuri.ledger.audit import search
from nuri.ledger.audit.indexer import AuditIndexer
from nuri.ledger.audit.records import AuditRecord
from nuri.ledger.service import Ledger
from nuri.ledger.store.db import Database

PG_URL = os.environ.get("NURI_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(params=["sqlite", "postgres"])
async def ledger(request: Any, tmp_path: Path) -> AsyncIterator[Ledger]:
    os.environ.setdefault("NURI_AUDIT_HMAC_KEY", "test-hmac-key-0123456789")
    schema = None
    if request.param == "postgres":
        if not _pg_up():
            pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
        schema = f"nuri_test_{secrets.token_hex(5)}"
        settings = LedgerSettings(database_url=PG_URL, db_schema=schema)
    else:
        settings = LedgerSettings()
    led = await Ledger.open(settings, tmp_path)
    await led.indexer.stop()              # each test says when the index catches up
    try:
        yield led
    finally:
        await led.close()
        if schema:
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _fill(led: Ledger, n: int, *, index: bool = True, time: float | None = None) -> list[dict[str, Any]]:
    made = []
    for i in range(n):
        action = ("allow", "pseudonymize", "block")[i % 3]
        rules = ["r.masked"] if action == "pseudonymize" else (["r.block", "r.rare"] if i % 37 == 0 else [])
        rec = AuditRecord(request_id=f"q{i}", team=f"t{i % 4}", key_id=f"k{i % 5}", action=action, rule_ids=rules,
                          deployment=None if action == "block" else ("kr", "us")[i % 2],
                          jurisdiction=None if action == "block" else ("KR", "US")[i % 2], cost=0.001,
                          outcome="blocked" if action == "block" else "ok", **({"time": time} if time else {}))
        await led.finish(None, rec)
        made.append({"team": rec.team, "action": action, "rules": rules, "deployment": rec.deployment})
    await led.drain()
    if index:
        await led.indexer.catch_up()
    return made


async def _all_pages(led: Ledger, f: search.Filters, budget: int) -> list[int]:
    seqs: list[int] = []
    before = None
    for _ in range(1000):
        page = await led.db.run_raw(lambda c, b=before: search.page(c, f, before=b, limit=7, budget=budget))
        seqs += [r["seq"] for r in page.records]
        if page.next_before is None:
            return seqs
        before = page.next_before
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("budget", [20_000, 9])
async def test_pages_match_a_full_scan(ledger: Ledger, budget: int) -> None:
    made = await _fill(ledger, 120)
    cases = [search.Filters(), search.Filters(team="t1"), search.Filters(action="pseudonymize"),
             search.Filters(rule="r.rare"), search.Filters(deployment="us", team="t3"),
             search.Filters(rule="r.block", team="t0"), search.Filters(team="nobody")]
    for f in cases:
        expected = [i + 1 for i, m in reversed(list(enumerate(made)))
                    if (f.team is None or m["team"] == f.team) and (f.action is None or m["action"] == f.action)
                    and (f.rule is None or f.rule in m["rules"])
                    and (f.deployment is None or m["deployment"] == f.deployment)]
        assert await _all_pages(ledger, f, budget) == expected, f


async def test_rollups_count_what_the_overview_and_key_spend_show(ledger: Ledger) -> None:
    await _fill(ledger, 30)
    rows = await ledger.db.run_raw(lambda c: search.rollup(c, "0000"))
    totals: dict[tuple[str, str], int] = {}
    for _bucket, name, value, n, _cost in rows:
        totals[(name, value)] = totals.get((name, value), 0) + int(n)
    assert totals[("requests", "")] == 30
    assert totals[("action", "block")] == 10 and totals[("action", "pseudonymize")] == 10
    assert totals[("jurisdiction", "-")] == 10 and totals[("rule", "r.masked")] == 10
    spend = await ledger.db.run_raw(lambda c: search.key_spend(c, "0000-00-00"))
    assert sum(n for n, _ in spend.values()) == 30 and spend["k0"][1] == 6 * 1_000_000


async def _totals(led: Ledger) -> dict[tuple[str, str], int]:
    rows = await led.db.run_raw(lambda c: search.rollup(c, "0000"))
    totals: dict[tuple[str, str], int] = {}
    for _bucket, name, value, n, _cost in rows:
        totals[(name, value)] = totals.get((name, value), 0) + int(n)
    return totals


async def _count(led: Ledger, sql: str) -> int:
    return int((await led.db.run_raw(lambda c: c.one(sql), tx=False) or (0,))[0])


async def test_writes_add_no_index_rows_and_a_catch_up_in_small_batches_backfills(ledger: Ledger) -> None:
    made = await _fill(ledger, 60, index=False)
    assert await _count(ledger, "SELECT COUNT(*) FROM audit_facet") == 0            # nothing on the write path
    assert await _count(ledger, "SELECT COUNT(*) FROM audit_rollup") == 0
    assert await ledger.indexer.lag() == 60
    assert await _all_pages(ledger, search.Filters(team="t1"), 20_000) == []          # not indexed yet

    small = AuditIndexer(ledger.db, batch=7)
    assert await small.catch_up(max_rows=20) == 20                                    # bounded
    assert await ledger.indexer.lag() == 40
    assert await small.catch_up() == 40
    assert await ledger.indexer.lag() == 0 and await small.catch_up() == 0
    expected = [i + 1 for i, m in reversed(list(enumerate(made))) if m["team"] == "t1"]
    assert await _all_pages(ledger, search.Filters(team="t1"), 20_000) == expected
    totals = await _totals(ledger)
    assert totals[("requests", "")] == 60 and totals[("action", "block")] == 20 and totals[("rule", "r.masked")] == 20


async def test_indexers_of_several_processes_count_each_record_once(ledger: Ledger, tmp_path: Path) -> None:
    await _fill(ledger, 90, index=False)
    other = Database(ledger.settings, tmp_path)          # another process's connections to the same store
    try:
        ours, theirs = AuditIndexer(ledger.db, batch=5), AuditIndexer(other, batch=5)
        await asyncio.gather(ours.catch_up(), theirs.catch_up(), ours.catch_up(), theirs.catch_up())
        assert ours.indexed + theirs.indexed == 90 and await ledger.indexer.lag() == 0
    finally:
        await asyncio.to_thread(other.close)
    totals = await _totals(ledger)
    assert totals[("requests", "")] == 90 and totals[("action", "pseudonymize")] == 30
    spend = await ledger.db.run_raw(lambda c: search.key_spend(c, "0000-00-00"))
    assert sum(n for n, _ in spend.values()) == 90
    assert await _count(ledger, "SELECT COUNT(*) FROM audit_facet WHERE name = 'team'") == 90


async def test_the_background_task_catches_up_unasked(ledger: Ledger) -> None:
    ledger.indexer.interval = 0.2
    ledger.indexer.start()
    await _fill(ledger, 25, index=False)
    deadline = asyncio.get_running_loop().time() + 10
    while (await _totals(ledger)).get(("requests", ""), 0) < 25:
        assert asyncio.get_running_loop().time() < deadline, "the background indexer did not catch up"
        await asyncio.sleep(0.1)
    assert await ledger.indexer.lag() == 0
    await ledger.indexer.stop()
    assert not ledger.indexer.running


async def test_prune_takes_the_index_rows_of_pruned_records(ledger: Ledger) -> None:
    old = time.time() - 10 * 86400
    await _fill(ledger, 12, time=old)                                  # indexed, then pruned
    await _fill(ledger, 6, index=False, time=old + 60)                 # pruned before they were indexed
    recent = await _fill(ledger, 9, index=False)
    assert await ledger.prune(5) == 18
    await ledger.indexer.catch_up()
    anchor = await _count(ledger, "SELECT MAX(seq) FROM audit_checkpoint WHERE kind = 'anchor'")
    assert anchor == 18
    assert await _count(ledger, f"SELECT COUNT(*) FROM audit_facet WHERE seq <= {anchor}") == 0
    assert await _all_pages(ledger, search.Filters(team="t1"), 20_000) == [
        19 + i for i, m in reversed(list(enumerate(recent))) if m["team"] == "t1"]
    totals = await _totals(ledger)                                     # per-minute counts before the cutoff: gone
    assert totals[("requests", "")] == 9
    spend = await ledger.db.run_raw(lambda c: search.key_spend(c, "0000-00-00"))
    assert sum(n for n, _ in spend.values()) == 12 + 9                 # spend per key and day stays, as usage does
