"""Retrieval for the gateway and the CLI: collections, who may read them, and search.

Each collection's index lives in memory and is rebuilt from the store whenever the store's
version of the collection moved on (at a process's first query, and after any ingest, by this
process or another). A collection a caller may not read is refused before any search runs, so
its passages are never retrieved for that caller.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nuri.errors import ModelNotFound, PermissionDenied
from nuri.principal import Principal
from nuri.rag.embedder import EmbeddingError, GatewayEmbedder, check_in_country
from nuri.rag.index import DenseIndex, LexicalIndex, fuse
from nuri.rag.settings import CollectionSettings, RagSettings
from nuri.rag.store import Chunk, ChunkStore, store_url
from nuri.rag.tokens import KiwiTokenizer

log = logging.getLogger("nuri.rag")
MODES = ("lexical", "dense", "hybrid")


@dataclass(slots=True)
class Hit:
    n: int                 # 1-based rank: the [n] a reply cites
    chunk: Chunk
    score: float

    def citation(self) -> dict[str, Any]:
        """What a reply and the retrieve endpoint show of a passage's origin (no server paths)."""
        c = self.chunk
        return {"n": self.n, "id": c.id, "collection": c.collection, "title": c.title,
                "source": Path(c.source).name, "page": c.page, "heading": c.heading,
                "start": c.start, "end": c.end, "grade": c.grade, "score": round(self.score, 4)}


@dataclass(slots=True)
class CollectionIndex:
    version: int
    chunks: list[Chunk]
    lexical: LexicalIndex
    dense: DenseIndex


class RagService:
    def __init__(self, settings: RagSettings, store: ChunkStore, tokenizer: Any = None, embedder: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.tokenizer = tokenizer or KiwiTokenizer()
        self.embedder = embedder
        self._indexes: dict[str, CollectionIndex] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def open(cls, config: Any, data_dir: Path) -> RagService:
        settings: RagSettings = config.rag
        store = ChunkStore(store_url(settings.database_url, config.ledger.database_url, data_dir), settings.db_schema)
        embedder = None
        if settings.embedding is not None:
            check_in_country(settings.embedding, config)
            embedder = GatewayEmbedder(settings.embedding)
        return cls(settings, store, embedder=embedder)

    def close(self) -> None:
        self.store.close()

    # -- access ------------------------------------------------------------------------------
    def collection(self, name: str) -> CollectionSettings:
        found = self.settings.collections.get(name)
        if found is None:
            raise ModelNotFound(f"no RAG collection {name!r}; configured: {', '.join(sorted(self.settings.collections)) or 'none'}",
                                code="collection_not_found", param="model")
        return found

    @staticmethod
    def may_read(principal: Principal, settings: CollectionSettings) -> bool:
        if not settings.teams and not settings.tags:
            return True
        return principal.team in settings.teams or bool(principal.tags & set(settings.tags))

    def require(self, principal: Principal, name: str) -> CollectionSettings:
        """The collection, if this caller's team (or one of its tags) may read it; else 403."""
        settings = self.collection(name)
        if not self.may_read(principal, settings):
            raise PermissionDenied(f"team {principal.team!r} may not read collection {name!r}",
                                   code="collection_not_allowed", param="model")
        return settings

    # -- search ------------------------------------------------------------------------------
    async def index(self, name: str) -> CollectionIndex:
        version = await asyncio.to_thread(self.store.version, name)
        current = self._indexes.get(name)
        if current is not None and current.version == version:
            return current
        async with self._locks.setdefault(name, asyncio.Lock()):
            current = self._indexes.get(name)
            if current is None or current.version != version:
                current = await asyncio.to_thread(self._build, name)
                self._indexes[name] = current
        return current

    def _build(self, name: str) -> CollectionIndex:
        version = self.store.version(name)
        chunks = self.store.chunks(name)
        return CollectionIndex(version, chunks, LexicalIndex([c.terms for c in chunks]),
                               DenseIndex([c.vector for c in chunks]))

    async def retrieve(self, principal: Principal, name: str, query: str, k: int | None = None,
                       mode: str | None = None) -> list[Hit]:
        self.require(principal, name)
        return await self.search(name, query, k, mode)

    async def search(self, name: str, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]:
        """Search without an ACL check: for `retrieve` after its check, and the operator's CLI."""
        settings = self.collection(name)
        k = k or settings.top_k
        mode = mode or settings.retrieval
        index = await self.index(name)
        terms = await asyncio.to_thread(self.tokenizer.tokens, query)
        query_vector = await self._query_vector(query, mode, index)
        ranked = search(index.lexical, index.dense, terms, query_vector, k, mode)
        return [Hit(n, index.chunks[i], score) for n, (i, score) in enumerate(ranked, 1)]

    async def _query_vector(self, query: str, mode: str, index: CollectionIndex) -> np.ndarray | None:
        if mode == "lexical" or self.embedder is None or not index.dense.ready:
            return None
        try:
            return (await self.embedder.embed([query]))[0]
        except EmbeddingError as exc:
            log.warning("rag: %s; lexical search only", exc.message)
            return None


def search(lexical: LexicalIndex, dense: DenseIndex, terms: list[str], query_vector: np.ndarray | None,
           k: int, mode: str) -> list[tuple[int, float]]:
    """Ranked (chunk index, score): BM25, cosine, or their rank fusion; lexical when no vector."""
    if mode == "lexical" or query_vector is None:
        return lexical.search(terms, k)
    if mode == "dense":
        return dense.search(query_vector, k)
    pool = max(k * 4, 20)
    return fuse([lexical.search(terms, pool), dense.search(query_vector, pool)], k)
