"""The stored responses' store on each backend: a row written, then read back by another store on
the same database (as a restarted gateway or another replica would), redacted and whole; the
body column holds text, as anyone reading the table expects."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from nuri.config import NuriConfig
from nuri.dburl import with_psycopg
from nuri.gateway.conversations import DatabaseStore, MemoryStore, Store, Stored
from nuri.privacy.scanner import Scanner

RRN = "900101-1234568"
PG_URL = os.environ.get("NURI_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_running() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
        return True
    return False


def _turn() -> Stored:
    output = [{"id": "msg_" + "b2" * 24, "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": "확인했습니다.", "annotations": []}]}]
    items = [{"type": "message", "role": "user", "content": f"주민등록번호는 {RRN} 입니다. 배송 문의드립니다."},
             *output]
    return Stored(items, {"id": "resp_1", "object": "response", "status": "completed", "output": output})


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(NuriConfig().privacy)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nuri.db'}"
        return
    if not _pg_running():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    schema = f"nuri_test_{secrets.token_hex(5)}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{with_psycopg(PG_URL)}#{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _open(url: str, scanner: Scanner) -> DatabaseStore:
    base, _, schema = url.partition("#")
    return DatabaseStore(base, 30, scanner, schema or None)


async def _round_trip(url: str, scanner: Scanner) -> Stored | None:
    writer = _open(url, scanner)
    await writer.start()
    await writer.save("resp_1", "team-a", _turn())
    await writer.close()                               # written at close, not left pending
    reader = _open(url, scanner)
    await reader.start()
    try:
        assert await reader.load("resp_1", "team-b") is None      # another team's id is not found
        return await reader.load("resp_1", "team-a")
    finally:
        await reader.close()


def test_a_row_comes_back_redacted_and_whole_from_the_database(url: str, scanner: Scanner) -> None:
    loaded = asyncio.run(_round_trip(url, scanner))
    assert loaded is not None
    assert loaded.items[0]["content"] == "주민등록번호는 <KR_RRN_REDACTED> 입니다. 배송 문의드립니다."
    assert loaded.items[1:] == loaded.response["output"] == _turn().response["output"]
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            (kind, body), = db.execute("SELECT typeof(body), body FROM nuri_conversations").fetchall()
        assert kind == "text" and isinstance(body, str)
        assert "<KR_RRN_REDACTED>" in body and RRN not in body


def test_the_memory_store_keeps_the_same_redacted_form(scanner: Scanner) -> None:
    async def run() -> Stored | None:
        store: Store = MemoryStore(30, scanner, 10)
        await store.start()
        await store.save("resp_1", "team-a", _turn())
        return await store.load("resp_1", "team-a")

    loaded = asyncio.run(run())
    assert loaded is not None and RRN not in str(loaded)
    assert loaded.items[1:] == loaded.response["output"]


def test_gateways_starting_together_each_find_or_create_the_table(url: str, scanner: Scanner) -> None:
    """Workers and replicas start at the same moment on one database: each store creates the table
    if it is missing, and none fails its gateway's start-up because another created it first (a
    check followed by a creation let two of them both see it missing)."""
    async def start_and_close() -> None:
        store = _open(url, scanner)
        await store.start()
        await store.close()

    if url.startswith("sqlite"):        # as the ledger leaves the file before the store starts
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            db.execute("PRAGMA journal_mode=WAL")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: asyncio.run(start_and_close()), range(8)))    # a start that fails raises
    assert asyncio.run(_round_trip(url, scanner)) is not None
