"""The PostgreSQL + Redis hot path: one-statement audit commits while this process owns the chain
head, the locked path whenever another writer moved it, and the counters' Redis connection
(reloads its scripts, reconnects, fails closed)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nuri.config import LedgerSettings
from nuri.errors import RateLimited, ServiceUnavailable
from nuri.ledger import AuditRecord, Ledger
from nuri.ledger.audit import chain
from nuri.ledger.audit.records import GENESIS, canonical
from nuri.ledger.quota.counters import Ask, Scope
from nuri.ledger.quota.redis_counters import RedisCounters
from nuri.ledger.store.db import AsyncRawConn

from .conftest import PG_URL, REDIS_URL, RedisProxy

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def rec(i: int, team: str = "t") -> AuditRecord:
    return AuditRecord(request_id=f"req_{i:05d}", endpoint="chat", team=team, deployment="d",
                       prompt_tokens=10, completion_tokens=2, cost=0.001)


@pytest.fixture
def locks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the batches that took the locked (two round trip) path."""
    taken: list[int] = []
    original = AsyncRawConn.begin_locked

    async def counting(self: AsyncRawConn, sql: str) -> Any:
        taken.append(1)
        return await original(self, sql)

    monkeypatch.setattr(AsyncRawConn, "begin_locked", counting)
    yield taken


async def usage_requests(led: Ledger) -> int:
    rows = await led.usage()
    return sum(r["requests"] for r in rows)


async def test_one_statement_per_batch_while_the_head_is_ours(pg: str, tmp_path: Path, locks: list[int]) -> None:
    led = await Ledger.open(LedgerSettings(database_url=PG_URL, db_schema=pg, durability="fsync", checkpoint_every=7), tmp_path)
    try:
        for i in range(30):
            await led.finish(None, rec(i))
        assert len(locks) == 1            # only the first batch, before this writer knew the head
        result = await led.verify()
        assert result.ok and result.head_seq == 30 and result.checked == 30, result.describe()
        seqs = await led.db.run(lambda c: c.exec_driver_sql("SELECT seq FROM audit_checkpoint ORDER BY seq")
                                .scalars().all())
        assert list(seqs) == [1, 8, 15, 22, 29]   # all but the first written by the one-statement path
        assert await usage_requests(led) == 30
    finally:
        await led.close()


async def test_two_writers_on_one_chain_fall_back_and_write_each_record_once(
        pg: str, tmp_path: Path, locks: list[int]) -> None:
    settings = LedgerSettings(database_url=PG_URL, db_schema=pg, durability="fsync")
    a, b = await Ledger.open(settings, tmp_path), await Ledger.open(settings, tmp_path)
    try:
        for i in range(20):                       # alternate: every batch finds the head moved
            await (a if i % 2 else b).finish(None, rec(i))
        assert len(locks) >= 19
        await asyncio.gather(*[w.finish(None, rec(100 + 2 * j + k)) for j in range(80)
                               for k, w in enumerate((a, b))])
        result = await a.verify()
        assert result.ok and result.head_seq == 180 and result.checked == 180, result.describe()
        ids = await a.db.run(lambda c: c.exec_driver_sql("SELECT request_id FROM audit_log").scalars().all())
        assert sorted(ids) == sorted([f"req_{i:05d}" for i in range(20)] +
                                     [f"req_{i:05d}" for i in range(100, 260)])
        assert await usage_requests(a) == 180     # a fallback never applies usage twice
    finally:
        await a.close()
        await b.close()


async def test_a_stale_head_writes_nothing_then_the_batch_goes_through_locked(pg: str, tmp_path: Path) -> None:
    led = await Ledger.open(LedgerSettings(database_url=PG_URL, db_schema=pg, durability="fsync"), tmp_path)
    try:
        for i in range(3):
            await led.finish(None, rec(i))
        body = rec(99).to_body(led.keyed_hash)
        item = chain.Pending(canonical(body), body["time"], "request", body["request_id"], "t")
        for n, wrong in enumerate(("behind", "hash", "checkpoint"), start=4):
            async with led.db.aconn() as conn:
                real = chain.Head.of(await conn.one(chain._HEAD))
                head = {"behind": chain.Head(0, GENESIS, 0, 0.0),
                        "hash": chain.Head(real.seq, "0" * 64, real.checkpoint_seq, real.checkpoint_time),
                        "checkpoint": chain.Head(real.seq, real.hash, real.checkpoint_seq + 1, 0.0)}[wrong]
                new = await chain.append_async(conn, [item], [], led.secrets, head=head, checkpoint_every=1000,
                                               checkpoint_seconds=3600)
            assert new.seq == n and new.seq == real.seq + 1
        result = await led.verify()
        assert result.ok and result.head_seq == 6, result.describe()
    finally:
        await led.close()


async def test_large_batches_take_the_locked_path_and_keep_one_chain(pg: str, tmp_path: Path) -> None:
    led = await Ledger.open(LedgerSettings(database_url=PG_URL, db_schema=pg, durability="fsync"), tmp_path)
    try:
        await led.finish(None, rec(0))
        await asyncio.gather(*[led.finish(None, rec(i)) for i in range(1, chain.ONE_SHOT_MAX * 3)])
        await led.finish(None, rec(10_000))
        result = await led.verify()
        assert result.ok and result.head_seq == chain.ONE_SHOT_MAX * 3 + 1, result.describe()
    finally:
        await led.close()


# --- Redis ------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_admission_fails_closed_when_redis_is_unreachable(pg: str, tmp_path: Path) -> None:
    settings = LedgerSettings(database_url=PG_URL, db_schema=pg, redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    led = await Ledger.open(settings, tmp_path)
    try:
        new = await led.create_key("down", rpm=10)
        p = await led.authenticate(f"Bearer {new.key}")
        with pytest.raises(ServiceUnavailable):
            await led.admit(p, 10)
    finally:
        await led.close()


async def test_scripts_are_loaded_again_after_redis_forgets_them(pg: str, rprefix: str, tmp_path: Path) -> None:
    import redis

    settings = LedgerSettings(database_url=PG_URL, db_schema=pg, redis_url=REDIS_URL, redis_prefix=rprefix)
    led = await Ledger.open(settings, tmp_path)
    try:
        new = await led.create_key("s", rpm=3, tpm=1000)
        p = await led.authenticate(f"Bearer {new.key}")
        client = redis.Redis.from_url(REDIS_URL)
        for i in range(3):
            client.script_flush()
            adm = await led.admit(p, 100)
            client.script_flush()
            await led.finish(adm, AuditRecord(request_id=f"r{i}", endpoint="chat", team="s", key_id=new.key_id,
                                              prompt_tokens=5, completion_tokens=5))
            await led.drain()
        tokens = client.hgetall(f"{rprefix}rl:tok:key:{new.key_id}")
        assert sum(int(v) for v in tokens.values()) == 30       # every settle landed
        client.close()
        with pytest.raises(RateLimited):
            await led.admit(p, 100)
    finally:
        await led.close()


async def test_counters_reconnect_after_the_connections_drop(redis_proxy: RedisProxy, rprefix: str) -> None:
    counters = RedisCounters(redis_proxy.url, rprefix, _no_spend)
    try:
        scope = Scope("key:k", 100, None)
        assert (await counters.admit(_ask(scope))).ok
        redis_proxy.drop()                          # Redis hangs up on every connection
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append((await counters.admit(_ask(scope))).ok)
            except RedisConnectionError:
                outcomes.append(False)              # a call caught on a dead connection fails closed
        assert outcomes[-1] is True                 # ... and the next one connects afresh
    finally:
        await counters.close()


async def test_counters_give_up_on_a_redis_that_never_answers(rprefix: str) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)       # takes the command, never replies
        await reader.read()              # until the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    counters = RedisCounters(f"redis://127.0.0.1:{port}/0", rprefix, _no_spend, reply_timeout=0.2)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RedisTimeoutError):
            await counters.admit(_ask(Scope("key:k", 100, None)))
        assert loop.time() - started < 2
    finally:
        await counters.close()
        server.close()
        await server.wait_closed()


async def _no_spend(team: str, period: str) -> int:
    return 0


def _ask(scope: Scope) -> Ask:
    return Ask([scope], 10, "t", "2026-11", None, 0, int(time.time()))
