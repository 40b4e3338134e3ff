"""Ledger backends for tests: SQLite in a temp dir, PostgreSQL in a fresh schema, Redis under a
random prefix. Each PostgreSQL test gets its own schema, dropped afterwards; Redis keys are
deleted afterwards. Tests skip, saying why, when a server is not running."""

from __future__ import annotations

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
