"""Chunks at rest: Nuri's own `rag_` tables in SQLite (default) or PostgreSQL.

A chunk row holds its text, where it came from (source, title, page, heading, offsets), what
the scanner found in it (N2SF grade, markings, PIPA categories, entity counts by type; never
the values outside the text itself), its search terms and, when dense retrieval is configured,
its vector. Each collection has a version, bumped by every ingest that changes it, so a gateway
rebuilds its in-memory index when (and only when) the store moved on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
    update,
)

from nuri.dburl import sqlite_pragmas, with_psycopg

metadata = MetaData()

collections = Table(
    "rag_collections", metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

sources = Table(
    "rag_sources", metadata,
    Column("collection", String(128), primary_key=True),
    Column("source", String(1024), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("pages", Integer, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

chunks = Table(
    "rag_chunks", metadata,
    Column("id", String(40), primary_key=True),
    Column("collection", String(128), nullable=False, index=True),
    Column("source", String(1024), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("heading", Text, nullable=False),
    Column("page", Integer),
    Column("start", Integer, nullable=False),
    Column("end", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("grade", String(1), nullable=False),
    Column("markings", JSON, nullable=False),
    Column("categories", JSON, nullable=False),
    Column("entities", JSON, nullable=False),      # type → count
    Column("terms", Text, nullable=False),         # Kiwi terms, tab-separated: the index rebuilds without Kiwi
    Column("vector", LargeBinary),                 # float32, unit length
)


@dataclass(slots=True)
class Chunk:
    id: str
    collection: str
    source: str
    ordinal: int
    title: str
    heading: str
    page: int | None
    start: int
    end: int
    text: str
    grade: str = "O"
    markings: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    entities: dict[str, int] = field(default_factory=dict)
    terms: list[str] = field(default_factory=list)
    vector: bytes | None = None

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "collection": self.collection, "source": self.source, "ordinal": self.ordinal,
                "title": self.title, "heading": self.heading, "page": self.page, "start": self.start,
                "end": self.end, "text": self.text, "grade": self.grade, "markings": self.markings,
                "categories": self.categories, "entities": self.entities, "terms": "\t".join(self.terms),
                "vector": self.vector}


def store_url(configured: str | None, ledger_url: str | None, data_directory: Path) -> str:
    """rag.database_url, else the ledger's PostgreSQL, else SQLite rag.db in the data directory
    (apart from the audit log: chunk text is document content, the ledger holds none)."""
    chosen = configured or (ledger_url if ledger_url and ledger_url.startswith("postgres") else None)
    if not chosen:
        return f"sqlite:///{data_directory / 'rag.db'}"
    return with_psycopg(chosen)



class ChunkStore:
    def __init__(self, url: str, schema: str | None = None) -> None:
        connect_args: dict[str, Any] = {}
        if schema and url.startswith("postgresql"):
            connect_args["options"] = f"-c search_path={schema}"
        self.engine: Engine = create_engine(url, future=True, connect_args=connect_args)
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database
            if database and database != ":memory:" and not Path(database).exists():
                Path(database).parent.mkdir(parents=True, exist_ok=True)
                Path(database).touch(mode=0o600)          # document text: owner only
                os.chmod(database, 0o600)
            event.listen(self.engine, "connect", sqlite_pragmas)
        elif schema:
            with self.engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- versions ----------------------------------------------------------------------------
    def version(self, collection: str) -> int:
        with self.engine.connect() as conn:
            row = conn.execute(select(collections.c.version).where(collections.c.name == collection)).first()
        return int(row[0]) if row else 0

    def _bump(self, conn: Any, collection: str) -> None:
        now = datetime.now(UTC)
        done = conn.execute(update(collections).where(collections.c.name == collection)
                            .values(version=collections.c.version + 1, updated_at=now))
        if not done.rowcount:
            conn.execute(insert(collections).values(name=collection, version=1, updated_at=now))

    # -- sources -----------------------------------------------------------------------------
    def source_hash(self, collection: str, source: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(sources.c.sha256).where(
                sources.c.collection == collection, sources.c.source == source)).first()
        return row[0] if row else None

    def replace_source(self, collection: str, source: str, sha256: str, title: str, pages: int,
                       new: list[Chunk]) -> None:
        """A file's chunks, all at once: the old ones go in the same transaction."""
        with self.engine.begin() as conn:
            conn.execute(delete(chunks).where(chunks.c.collection == collection, chunks.c.source == source))
            conn.execute(delete(sources).where(sources.c.collection == collection, sources.c.source == source))
            if new:
                conn.execute(insert(chunks), [c.row() for c in new])
            conn.execute(insert(sources).values(collection=collection, source=source, sha256=sha256, title=title,
                                                pages=pages, chunks=len(new), ingested_at=datetime.now(UTC)))
            self._bump(conn, collection)

    def remove_source(self, collection: str, source: str) -> int:
        with self.engine.begin() as conn:
            n = conn.execute(delete(chunks).where(chunks.c.collection == collection,
                                                  chunks.c.source == source)).rowcount
            conn.execute(delete(sources).where(sources.c.collection == collection, sources.c.source == source))
            self._bump(conn, collection)
        return n

    def sources(self, collection: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(sources).where(sources.c.collection == collection)
                                .order_by(sources.c.source)).mappings().all()
        return [dict(r) for r in rows]

    # -- chunks ------------------------------------------------------------------------------
    def chunks(self, collection: str) -> list[Chunk]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(chunks).where(chunks.c.collection == collection)
                                .order_by(chunks.c.source, chunks.c.ordinal)).mappings().all()
        return [_chunk(r) for r in rows]

    def chunk(self, chunk_id: str) -> Chunk | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(chunks).where(chunks.c.id == chunk_id)).mappings().first()
        return _chunk(row) if row else None

    def drop_collection(self, collection: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(chunks).where(chunks.c.collection == collection))
            conn.execute(delete(sources).where(sources.c.collection == collection))
            self._bump(conn, collection)


def _chunk(row: Any) -> Chunk:
    return Chunk(
        id=row["id"], collection=row["collection"], source=row["source"], ordinal=row["ordinal"],
        title=row["title"], heading=row["heading"], page=row["page"], start=row["start"], end=row["end"],
        text=row["text"], grade=row["grade"], markings=list(row["markings"] or []),
        categories=list(row["categories"] or []), entities=dict(row["entities"] or {}),
        terms=row["terms"].split("\t") if row["terms"] else [], vector=row["vector"],
    )
