"""Audit search over the index of migration 0004, on SQLite and PostgreSQL: paging newest first
through every filter returns exactly the records a full scan finds, and a page that used its scan
budget goes on from where it stopped."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nuri.config import LedgerSettings
from nuri.ledger.audit import search
from nuri.ledger.audit.records import AuditRecord
from nuri.ledger.service import Ledger

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
    try:
        yield led
    finally:
        await led.close()
        if schema:
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _fill(led: Ledger, n: int) -> list[dict[str, Any]]:
    made = []
    for i in range(n):
        action = ("allow", "pseudonymize", "block")[i % 3]
        rules = ["r.masked"] if action == "pseudonymize" else (["r.block", "r.rare"] if i % 37 == 0 else [])
        rec = AuditRecord(request_id=f"q{i}", team=f"t{i % 4}", key_id=f"k{i % 5}", action=action, rule_ids=rules,
                          deployment=None if action == "block" else ("kr", "us")[i % 2],
                          jurisdiction=None if action == "block" else ("KR", "US")[i % 2], cost=0.001,
                          outcome="blocked" if action == "block" else "ok")
        await led.finish(None, rec)
        made.append({"team": rec.team, "action": action, "rules": rules, "deployment": rec.deployment})
    await led.drain()
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
