"""Responses API state: what a request with `previous_response_id` continues from.

Each stored response holds its conversation's items up to and including its own output, so a
follow-up sends only its new input. Personal data is not kept: before anything is stored, every
string is scanned with Nuri's scanner and each value found becomes `<TYPE_REDACTED>` (the marker
the pseudonymiser uses for values it never restores), and images, audio and files are replaced by
a note. Stored state thus holds what Nuri holds elsewhere, entity types and never values; a
follow-up continues from the redacted history (a client that needs the values in later turns
sends the history itself, with `store: false`).

Where: the ledger's database (its SQLite file or PostgreSQL), in a table of its own created at
start-up; with the ledger disabled, process memory (lost on restart, not shared by replicas).
Either way a stored response belongs to the team whose key stored it and expires after
`conversations.retention_days`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import Column, Float, MetaData, String, Table, Text, create_engine, delete, event, select
from sqlalchemy.engine import Engine, make_url

from nuri.config import NuriConfig
from nuri.privacy import fields
from nuri.privacy.pseudonymizer import redacted

log = logging.getLogger("nuri.gateway")

PRUNE_EVERY_SECONDS = 60.0
NOT_KEPT = "[content not kept by Nuri]"
# content parts whose payload is not text: replaced by a note before storing
_BINARY_TYPES = frozenset({"input_image", "input_file", "input_audio", "image_url", "image", "file", "audio"})

METADATA = MetaData()
TABLE = Table(
    "nuri_conversations", METADATA,
    Column("id", String(128), primary_key=True),
    Column("team", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("body", Text, nullable=False),
)

_INSERT = TABLE.insert()          # built once: SQLAlchemy caches its compiled form


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored response: the conversation's items so far, and the response object as answered."""

    items: list[dict[str, Any]]
    response: dict[str, Any]


class Redactor:
    """Every string of a JSON value with personal data replaced by `<TYPE_REDACTED>`."""

    def __init__(self, scanner: Any) -> None:
        self.scanner = scanner
        self._memo: dict[str, str] = {}

    def text(self, value: str) -> str:
        hit = self._memo.get(value)
        if hit is not None:
            return hit
        out = value
        for e in sorted(self.scanner.scan(value), key=lambda e: e.start, reverse=True):
            out = out[:e.start] + redacted(e.type) + out[e.end:]
        self._memo[value] = out
        return out

    def value(self, node: Any) -> Any:
        node = _without_binary(node)
        if isinstance(node, str):
            return self.text(node)
        if not isinstance(node, dict | list):
            return node
        wrapped = {"v": node}
        texts, unscanned = fields.walk(wrapped)
        out = fields.rewrite(wrapped, texts, self.text)
        out = fields.apply(out, [(u.path, NOT_KEPT) for u in unscanned])
        return out["v"]


def _without_binary(node: Any) -> Any:
    """Images, audio and files cannot be scanned, so they are not kept: each becomes a text note."""
    if isinstance(node, list):
        return [_without_binary(v) for v in node]
    if isinstance(node, dict):
        if node.get("type") in _BINARY_TYPES:
            return {"type": "input_text", "text": NOT_KEPT}
        return {k: _without_binary(v) for k, v in node.items()}
    return node


class Store(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def save(self, response_id: str, team: str, stored: Stored) -> None: ...
    async def load(self, response_id: str, team: str) -> Stored | None: ...
    async def delete(self, response_id: str, team: str) -> bool: ...


class _Base:
    def __init__(self, retention_days: float, scanner: Any) -> None:
        self.retention = retention_days * 86400.0
        self.scanner = scanner

    def encode(self, stored: Stored) -> str:
        """The stored form: redacted, as JSON text."""
        redactor = Redactor(self.scanner)
        body = {"items": redactor.value(stored.items), "response": redactor.value(stored.response)}
        return orjson.dumps(body).decode()

    @staticmethod
    def decode(text: str) -> Stored:
        body = orjson.loads(text)
        return Stored(items=list(body.get("items") or []), response=dict(body.get("response") or {}))


class MemoryStore(_Base):
    """The fallback without a ledger: a bounded, expiring map in this process."""

    def __init__(self, retention_days: float, scanner: Any, max_entries: int) -> None:
        super().__init__(retention_days, scanner)
        self.max_entries = max_entries
        self._rows: OrderedDict[str, tuple[str, float, str]] = OrderedDict()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._rows.clear()

    async def save(self, response_id: str, team: str, stored: Stored) -> None:
        self._rows[response_id] = (team, time.time() + self.retention, self.encode(stored))
        while len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)

    async def load(self, response_id: str, team: str) -> Stored | None:
        row = self._rows.get(response_id)
        if row is None or row[0] != team:
            return None
        if row[1] < time.time():
            self._rows.pop(response_id, None)
            return None
        return self.decode(row[2])

    async def delete(self, response_id: str, team: str) -> bool:
        row = self._rows.get(response_id)
        if row is None or row[0] != team:
            return False
        del self._rows[response_id]
        return True


class DatabaseStore(_Base):
    """The ledger's database, in a table of its own (created if missing at start-up)."""

    def __init__(self, url: str, retention_days: float, scanner: Any, schema: str | None = None) -> None:
        super().__init__(retention_days, scanner)
        self.url = url
        self.schema = schema
        self.engine: Engine | None = None
        self._pruned = 0.0

    def _make_engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30},
                                   pool_size=4, max_overflow=4)

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                # WAL without a flush per commit: a crash of the host may lose the last stored
                # responses (a follow-up then gets 404), never corrupt the file or the audit chain
                dbapi_conn.execute("PRAGMA synchronous=NORMAL")

            return engine
        connect_args = {"options": f"-c search_path={self.schema}"} if self.schema else {}
        return create_engine(self.url, connect_args=connect_args, pool_size=4, max_overflow=4)

    async def start(self) -> None:
        self.engine = self._make_engine()
        await asyncio.to_thread(METADATA.create_all, self.engine)
        await asyncio.to_thread(self._prune)

    async def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def _prune(self) -> None:
        assert self.engine is not None
        with self.engine.begin() as conn:
            conn.execute(delete(TABLE).where(TABLE.c.expires_at < time.time()))
        self._pruned = time.monotonic()

    def _save(self, response_id: str, team: str, stored: Stored) -> None:
        assert self.engine is not None
        body = self.encode(stored)               # the scan runs on this worker thread, off the loop
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(_INSERT, {"id": response_id, "team": team, "created_at": now,
                                   "expires_at": now + self.retention, "body": body})
        if time.monotonic() - self._pruned > PRUNE_EVERY_SECONDS:
            self._prune()

    async def save(self, response_id: str, team: str, stored: Stored) -> None:
        await asyncio.to_thread(self._save, response_id, team, stored)

    def _load(self, response_id: str, team: str) -> Stored | None:
        assert self.engine is not None
        query = select(TABLE.c.body).where(TABLE.c.id == response_id, TABLE.c.team == team,
                                           TABLE.c.expires_at >= time.time())
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else self.decode(row[0])

    async def load(self, response_id: str, team: str) -> Stored | None:
        return await asyncio.to_thread(self._load, response_id, team)

    def _delete(self, response_id: str, team: str) -> bool:
        assert self.engine is not None
        with self.engine.begin() as conn:
            result = conn.execute(delete(TABLE).where(TABLE.c.id == response_id, TABLE.c.team == team))
        return bool(result.rowcount)

    async def delete(self, response_id: str, team: str) -> bool:
        return await asyncio.to_thread(self._delete, response_id, team)


def open_store(config: NuriConfig, data_dir: Path, scanner: Any = None) -> Store:
    """The store for this gateway: the ledger's database, or memory when the ledger is disabled.

    `scanner` is the gateway's; with policy off there is none, and one is built here, since
    stored state is redacted whether or not requests are classified."""
    if scanner is None:
        from nuri.privacy.scanner import Scanner

        scanner = Scanner(config.privacy)
    settings = config.conversations
    if not config.ledger.enabled:
        return MemoryStore(settings.retention_days, scanner, settings.memory_max_entries)
    from nuri.ledger.store.db import database_url, private_sqlite_file

    url = database_url(config.ledger, data_dir)
    if url.startswith("sqlite"):
        data_dir.mkdir(parents=True, exist_ok=True)
        private_sqlite_file(Path(make_url(url).database or data_dir / "nuri.db"))
    return DatabaseStore(url, settings.retention_days, scanner, config.ledger.db_schema)
