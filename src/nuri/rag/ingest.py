"""From files to stored chunks: read, chunk by structure, classify each chunk once, store.

Each chunk is classified by the same scanner as live traffic; its grade is the highest of the
collection's default, the grade given at ingest, and the markings in its own text. A file whose
bytes did not change since its last ingest is skipped; a changed one has its chunks replaced in
one transaction. A file that cannot be read is reported with its reason and the rest go on.
Nothing here logs chunk text: the report holds paths, counts and reasons only.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nuri.privacy import signals
from nuri.privacy.classify import classify_texts
from nuri.rag.chunking import chunk_document
from nuri.rag.readers import SUFFIXES, UnreadableDocument, read_document
from nuri.rag.store import Chunk, ChunkStore


@dataclass
class FileResult:
    path: str
    status: str                       # ingested | unchanged | failed
    chunks: int = 0
    pages: int = 0
    grade: str | None = None          # the highest grade among its chunks
    reason: str | None = None


@dataclass
class IngestReport:
    collection: str
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    def summary(self) -> dict[str, Any]:
        done = [f for f in self.files if f.status == "ingested"]
        return {"collection": self.collection, "ingested": len(done),
                "unchanged": sum(f.status == "unchanged" for f in self.files), "failed": len(self.failed),
                "chunks": sum(f.chunks for f in done), "pages": sum(f.pages for f in done),
                "seconds": round(self.seconds, 3),
                "files": [vars(f) for f in self.files]}


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given, and the supported files under directories, in a stable order."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            out.append(path)
    return out


def chunk_id(collection: str, source: str, ordinal: int, text: str) -> str:
    """Stable across re-ingests of the same content, so citations stay valid; names nothing."""
    digest = hashlib.sha256(f"{collection}\x00{source}\x00{ordinal}\x00{text}".encode()).hexdigest()
    return "c_" + digest[:16]


class Ingestor:
    def __init__(self, store: ChunkStore, scanner: Any, tokenizer: Any, *, chunk_chars: int,
                 embedder: Any = None) -> None:
        self.store = store
        self.scanner = scanner
        self.tokenizer = tokenizer
        self.chunk_chars = chunk_chars
        self.embedder = embedder

    async def ingest(self, paths: Iterable[Path], collection: str, *, default_grade: str = "O",
                     grade: str | None = None, force: bool = False) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport(collection)
        for path in expand(paths):
            report.files.append(await self._one(path, collection, signals.higher(default_grade, grade or "O"), force))
        report.seconds = time.perf_counter() - started
        return report

    async def _one(self, path: Path, collection: str, floor: str, force: bool) -> FileResult:
        source = str(path.resolve())
        try:
            data = path.read_bytes()
        except OSError as exc:
            return FileResult(str(path), "failed", reason=f"cannot read the file: {exc.strerror or type(exc).__name__}")
        sha = hashlib.sha256(data).hexdigest()
        if not force and self.store.source_hash(collection, source) == sha:
            return FileResult(str(path), "unchanged")
        try:
            doc = read_document(path)
        except UnreadableDocument as exc:
            return FileResult(str(path), "failed", reason=str(exc))
        pieces = chunk_document(doc, self.chunk_chars)
        terms = self.tokenizer.many(p.text for p in pieces)
        vectors = await self.embedder.embed([p.text for p in pieces]) if self.embedder is not None else None
        chunks: list[Chunk] = []
        for i, piece in enumerate(pieces):
            c = classify_texts([(("text",), piece.text)], [], self.scanner)
            chunks.append(Chunk(
                id=chunk_id(collection, source, i, piece.text), collection=collection, source=source, ordinal=i,
                title=doc.title, heading=piece.heading, page=piece.page, start=piece.start, end=piece.end,
                text=piece.text, grade=signals.higher(floor, c.n2sf_grade), markings=list(c.markings),
                categories=sorted(str(x) for x in c.categories),
                entities=dict(Counter(e.type for e in c.entities)), terms=terms[i],
                vector=vectors[i].tobytes() if vectors is not None else None,
            ))
        self.store.replace_source(collection, source, sha, doc.title, doc.pages, chunks)
        top = "O"
        for ch in chunks:
            top = signals.higher(top, ch.grade)
        return FileResult(str(path), "ingested", chunks=len(chunks), pages=doc.pages, grade=top)
