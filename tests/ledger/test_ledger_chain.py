"""The audit chain: many writers make one contiguous chain; verify names the first record that was
edited, deleted, reordered or truncated — tampering done directly in SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nuri.ledger import AuditRecord, Ledger
from nuri.ledger.audit.records import chain_hash

from .conftest import PG_URL, Backend

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

Exec = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


@pytest.fixture
def raw(store: Backend) -> Iterator[Exec]:
    """Run SQL straight against the store, as someone with database access would."""
    if store.name == "sqlite":
        conn: Any = sqlite3.connect(store.data_dir / "nuri.db", isolation_level=None)
        ph = "?"
    else:
        import psycopg

        conn = psycopg.connect(PG_URL, autocommit=True, options=f"-c search_path={store.settings.db_schema}")
        ph = "%s"

    def run(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cur = conn.execute(sql.replace("?", ph), params)
        try:
            return list(cur.fetchall())
        except Exception:
            return []

    yield run
    conn.close()


def record(i: int) -> AuditRecord:
    return AuditRecord(request_id=f"req_{i:04d}", endpoint="chat", team="t", model_requested="default",
                       classification={"PHONE": 1}, action="allow", rule_ids=["kr-pipa.personal"],
                       deployment="local", jurisdiction="KR", prompt_tokens=10, completion_tokens=i,
                       cost=0.001, latency_ms=12.5)


async def fill(store: Backend, n: int = 20, **settings: Any) -> Ledger:
    led = await store.open(**settings)
    for start in range(0, n, 5):            # several batches, so several transactions
        await asyncio.gather(*[led.finish(None, record(i)) for i in range(start + 1, min(n, start + 5) + 1)])
    assert await led.drain()     # spooled records (durability process) are in the chain before tampering
    return led


async def bad(led: Ledger) -> tuple[int | None, str]:
    result = await led.verify()
    assert not result.ok, result.describe()
    return result.first_bad_seq, result.reason or ""


async def test_intact_chain_verifies(store: Backend) -> None:
    led = await fill(store)
    try:
        result = await led.verify()
        assert result.ok and result.checked == 20 and result.head_seq == 20, result.describe()
    finally:
        await led.close()


async def test_edit_body(store: Backend, raw: Exec) -> None:
    led = await fill(store)
    try:
        body = raw("SELECT body FROM audit_log WHERE seq = 7")[0][0]
        raw("UPDATE audit_log SET body = ? WHERE seq = 7", (body.replace('"cost":0.001', '"cost":0.0'),))
        seq, reason = await bad(led)
        assert seq == 7 and "edited" in reason
    finally:
        await led.close()


async def test_edit_indexed_column(store: Backend, raw: Exec) -> None:
    led = await fill(store)
    try:
        raw("UPDATE audit_log SET team = 'other' WHERE seq = 12")
        assert await bad(led) == (12, "content was edited (indexed columns differ from the hashed body)")
    finally:
        await led.close()


async def test_delete_middle(store: Backend, raw: Exec) -> None:
    led = await fill(store)
    try:
        raw("DELETE FROM audit_log WHERE seq = 9")
        seq, reason = await bad(led)
        assert seq == 9 and "deleted" in reason
    finally:
        await led.close()


async def test_delete_first(store: Backend, raw: Exec) -> None:
    led = await fill(store)
    try:
        raw("DELETE FROM audit_log WHERE seq = 1")
        assert (await bad(led))[0] == 1
    finally:
        await led.close()


async def test_reorder(store: Backend, raw: Exec) -> None:
    led = await fill(store)
    try:
        raw("UPDATE audit_log SET seq = -1 WHERE seq = 4")
        raw("UPDATE audit_log SET seq = 4 WHERE seq = 5")
        raw("UPDATE audit_log SET seq = 5 WHERE seq = -1")
        seq, reason = await bad(led)
        assert seq == 4 and ("reordered" in reason or "edited" in reason)
    finally:
        await led.close()


async def test_reorder_bodies(store: Backend, raw: Exec) -> None:
    led = await fill(store)
    try:
        a = raw("SELECT body, hash, prev_hash FROM audit_log WHERE seq = 10")[0]
        b = raw("SELECT body, hash, prev_hash FROM audit_log WHERE seq = 11")[0]
        raw("UPDATE audit_log SET body = ?, hash = ?, prev_hash = ? WHERE seq = 10", b)
        raw("UPDATE audit_log SET body = ?, hash = ?, prev_hash = ? WHERE seq = 11", a)
        assert (await bad(led))[0] == 10
    finally:
        await led.close()


async def test_truncate_tail(store: Backend, raw: Exec) -> None:
    led = await fill(store)
    try:
        raw("DELETE FROM audit_log WHERE seq > 15")
        seq, reason = await bad(led)
        assert seq == 16 and "truncated" in reason
    finally:
        await led.close()


async def test_truncate_tail_and_rewrite_head(store: Backend, raw: Exec) -> None:
    """Moving the head back to the new last record needs the signing key: the signature fails."""
    led = await fill(store)
    try:
        last = raw("SELECT hash FROM audit_log WHERE seq = 15")[0][0]
        raw("DELETE FROM audit_log WHERE seq > 15")
        raw("UPDATE audit_head SET seq = 15, hash = ? WHERE id = 1", (last,))
        seq, reason = await bad(led)
        assert seq == 16 and "signature" in reason
    finally:
        await led.close()


async def test_truncate_everything(store: Backend, raw: Exec) -> None:
    led = await fill(store)
    try:
        raw("DELETE FROM audit_log")
        assert (await bad(led))[0] == 1
    finally:
        await led.close()


async def test_rewrite_with_recomputed_hashes_is_caught_by_signatures(store: Backend, raw: Exec) -> None:
    """Someone who knows the hash rule edits seq 8 and re-hashes everything after it: the signed
    head and the signed checkpoints no longer match."""
    led = await fill(store, 20, checkpoint_every=5)
    try:
        rows = raw("SELECT seq, prev_hash, body FROM audit_log WHERE seq >= 8 ORDER BY seq")
        prev = raw("SELECT hash FROM audit_log WHERE seq = 7")[0][0]
        for seq, _, body in rows:
            if seq == 8:
                body = body.replace('"team":"t"', '"team":"t"').replace('"cost":0.001', '"cost":0.5')
            digest = chain_hash(seq, prev, body)
            raw("UPDATE audit_log SET prev_hash = ?, hash = ?, body = ? WHERE seq = ?", (prev, digest, body, seq))
            prev = digest
        raw("UPDATE audit_head SET hash = ? WHERE id = 1", (prev,))
        seq, reason = await bad(led)
        cps = [r[0] for r in raw("SELECT seq FROM audit_checkpoint WHERE kind = 'checkpoint' ORDER BY seq")]
        first_cp_after = min(c for c in cps if c >= 8)
        assert seq == first_cp_after and "checkpoint" in reason
    finally:
        await led.close()


async def test_forged_checkpoint(store: Backend, raw: Exec) -> None:
    led = await fill(store, 10, checkpoint_every=3)
    try:
        cp = raw("SELECT seq FROM audit_checkpoint ORDER BY seq")[0][0]
        raw("UPDATE audit_checkpoint SET sig = ? WHERE seq = ?", ("0" * 64, cp))
        seq, reason = await bad(led)
        assert seq == cp and "signature" in reason
    finally:
        await led.close()


async def test_many_writers_one_contiguous_chain(store: Backend) -> None:
    writers = [await store.open() for _ in range(3)]
    try:
        await asyncio.gather(*[w.finish(None, record(i * 1000 + j)) for i, w in enumerate(writers)
                               for j in range(60)])
        assert all(await asyncio.gather(*[w.drain() for w in writers]))
        result = await writers[0].verify()
        assert result.ok and result.head_seq == 180 and result.checked == 180, result.describe()
        ids = await writers[1].db.run(lambda c: c.exec_driver_sql(
            "SELECT request_id FROM audit_log ORDER BY seq").scalars().all())
        assert sorted(ids) == sorted(f"req_{i * 1000 + j:04d}" for i in range(3) for j in range(60))
    finally:
        for w in writers:
            await w.close()


async def test_prune_leaves_a_verifiable_chain(store: Backend, raw: Exec) -> None:
    led = await fill(store, 10)
    try:
        raw("UPDATE audit_log SET time = '2000-01-01T00:00:00.000000Z' WHERE seq <= 4")
        # the edit itself breaks those records; prune removes exactly them and anchors seq 4
        dropped = await led.prune(30)
        assert dropped == 4
        result = await led.verify()
        assert result.ok and result.checked == 7, result.describe()   # 5..10 + the prune event
        raw("DELETE FROM audit_log WHERE seq = 5")
        assert (await bad(led))[0] == 5
    finally:
        await led.close()


async def test_body_holds_usage_fields(store: Backend) -> None:
    led = await fill(store, 2)
    try:
        body = await led.db.run(lambda c: c.exec_driver_sql("SELECT body FROM audit_log WHERE seq = 2").scalar())
        data = json.loads(body)
        for field in ("time", "request_id", "team", "key_id", "endpoint", "model_requested", "classification",
                      "entity_hashes", "action", "rule_ids", "deployment", "jurisdiction", "prompt_tokens",
                      "completion_tokens", "cost", "latency_ms", "status", "outcome", "error_code"):
            assert field in data
    finally:
        await led.close()


async def test_replicas_starting_together_migrate_once(store: Backend) -> None:
    ledgers = await asyncio.gather(*[store.open() for _ in range(3)])
    try:
        await asyncio.gather(*[led.finish(None, record(i)) for i, led in enumerate(ledgers)])
        assert all(await asyncio.gather(*[led.drain() for led in ledgers]))
        assert (await ledgers[0].verify()).head_seq == 3
    finally:
        for led in ledgers:
            await led.close()
