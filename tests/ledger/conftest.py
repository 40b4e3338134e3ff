"""Ledger backends for tests: SQLite in a temp dir, PostgreSQL in a fresh schema, Redis under a
random prefix. Each PostgreSQL test gets its own schema, dropped afterwards; Redis keys are
deleted afterwards. Tests skip, saying why, when a server is not running."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nuri.config import LedgerSettings
from nuri.ledger import Ledger

PG_URL = os.environ.get("NURI_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("NURI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


HAS_PG = _port_open(5432)
HAS_REDIS = _port_open(6379)


def pg_schema() -> Iterator[str]:
    """A new schema name; the schema (created by Ledger.open) is dropped at the end."""
    if not HAS_PG:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    name = f"nuri_test_{secrets.token_hex(5)}"
    yield name
    with psycopg.connect(PG_URL.replace("postgresql://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def redis_prefix() -> Iterator[str]:
    if not HAS_REDIS:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    import redis

    prefix = f"nuri_test_{secrets.token_hex(5)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@dataclass
class Backend:
    name: str
    settings: LedgerSettings
    data_dir: Path

    async def open(self, **overrides: object) -> Ledger:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return await Ledger.open(settings, self.data_dir)


@pytest.fixture
def pg() -> Iterator[str]:
    yield from pg_schema()


@pytest.fixture
def rprefix() -> Iterator[str]:
    yield from redis_prefix()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each storage backend in turn (counters at their default for it)."""
    if request.param == "sqlite":
        yield Backend("sqlite", LedgerSettings(), tmp_path)
        return
    for schema in pg_schema():
        yield Backend("postgres", LedgerSettings(database_url=PG_URL, db_schema=schema), tmp_path)


@pytest.fixture(params=["memory", "sqlite-db", "postgres-db", "postgres-redis"])
def counters(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each counter implementation in turn, on the store it runs with."""
    kind = request.param
    if kind == "memory":
        yield Backend(kind, LedgerSettings(counters="memory"), tmp_path)
    elif kind == "sqlite-db":
        yield Backend(kind, LedgerSettings(counters="database", durability="process"), tmp_path)
    elif kind == "postgres-db":
        for schema in pg_schema():
            yield Backend(kind, LedgerSettings(database_url=PG_URL, db_schema=schema, counters="database"), tmp_path)
    else:
        for schema in pg_schema():
            for prefix in redis_prefix():
                yield Backend(kind, LedgerSettings(database_url=PG_URL, db_schema=schema, redis_url=REDIS_URL,
                                                   redis_prefix=prefix), tmp_path)


@pytest.fixture
async def ledger(store: Backend) -> AsyncIterator[Ledger]:
    led = await store.open()
    yield led
    await led.close()


class RedisProxy:
    """A TCP relay in front of the test Redis, so a test can take Redis away from one client
    (`cut`: every connection dropped, new ones refused) without touching the server others use,
    or drop the live connections only (`drop`) and let the client reconnect. `open` counts the
    client's connections not yet closed."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.open = 0
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> RedisProxy:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        self.open += 1
        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        finally:
            self.open -= 1

    def drop(self) -> None:
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        self.drop()


@pytest.fixture
async def redis_proxy() -> AsyncIterator[RedisProxy]:
    if not HAS_REDIS:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    proxy = await RedisProxy().start()
    yield proxy
    await proxy.cut()
