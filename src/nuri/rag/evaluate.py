"""The retrieval suite: recall@k and MRR of each retrieval method on the shipped Korean set.

The documents are read and chunked exactly as ingest does, in memory; a chunk is relevant to a
question when it holds the question's evidence phrase. Kiwi-BM25, whitespace BM25, dense (when
an embedder is given) and hybrid (Kiwi-BM25 and dense, rank-fused) run over the same chunks in
one call, so the comparison is like for like. `export_grounded` turns what one method retrieved
into a `grounded` generation suite, so `nuri eval run` scores answer faithfulness over it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nuri.rag.chunking import Piece, chunk_document
from nuri.rag.index import DenseIndex, LexicalIndex, fuse
from nuri.rag.readers import read_document
from nuri.rag.tokens import KiwiTokenizer, WhitespaceTokenizer

SUITE = "rag-retrieval"
DEPTH = 10


@dataclass
class RetrievalSet:
    name: str
    definition: dict[str, Any]
    pieces: list[Piece]
    sources: list[str]                    # the document each piece came from
    items: list[dict[str, Any]]

    def relevant(self, item: dict[str, Any]) -> set[int]:
        return {i for i, p in enumerate(self.pieces) if item["evidence"] in p.text}


def shipped_set_dir() -> Path:
    from nuri.evals.suite import shipped_dir

    return shipped_dir() / SUITE


def load_set(directory: Path | None = None, chunk_chars: int = 700) -> RetrievalSet:
    directory = directory or shipped_set_dir()
    definition = yaml.safe_load((directory / "retrieval.yaml").read_text(encoding="utf-8"))
    pieces: list[Piece] = []
    sources: list[str] = []
    for path in sorted(directory.glob(definition.get("documents", "*.md"))):
        for piece in chunk_document(read_document(path), chunk_chars):
            pieces.append(piece)
            sources.append(path.stem)
    items = [json.loads(line) for line in (directory / definition.get("items", "items.jsonl"))
             .read_text(encoding="utf-8").splitlines() if line.strip()]
    return RetrievalSet(definition.get("name", directory.name), definition, pieces, sources, items)


def metrics(rankings: list[list[int]], relevant: list[set[int]], ks: list[int]) -> dict[str, float]:
    """recall@k (share of an item's relevant chunks in its top k, averaged) and MRR@10."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = float(np.mean([len(set(r[:k]) & rel) / len(rel) for r, rel in zip(rankings, relevant, strict=True)]))
    reciprocal = []
    for r, rel in zip(rankings, relevant, strict=True):
        rank = next((n for n, i in enumerate(r[:DEPTH], 1) if i in rel), None)
        reciprocal.append(1.0 / rank if rank else 0.0)
    out["mrr@10"] = float(np.mean(reciprocal))
    return {name: round(value, 4) for name, value in out.items()}


async def compare(data: RetrievalSet, embedder: Any = None, kiwi: KiwiTokenizer | None = None) -> dict[str, Any]:
    """Every method over the same chunks and questions: metrics and mean query time."""
    ks = [int(k) for k in data.definition.get("k", [1, 3, 5, 10])]
    relevant = [data.relevant(item) for item in data.items]
    missing = [item["id"] for item, rel in zip(data.items, relevant, strict=True) if not rel]
    if missing:
        raise ValueError(f"no chunk holds the evidence of {', '.join(missing)}")
    texts = [p.text for p in data.pieces]
    questions = [item["question"] for item in data.items]
    kiwi = kiwi or KiwiTokenizer()
    space = WhitespaceTokenizer()
    lexical: dict[str, tuple[Any, LexicalIndex]] = {"kiwi-bm25": (kiwi, LexicalIndex(kiwi.many(texts))),
               "whitespace-bm25": (space, LexicalIndex(space.many(texts)))}
    rankings: dict[str, list[list[int]]] = {}
    timings: dict[str, float] = {}
    for name, (tokenizer, index) in lexical.items():
        started = time.perf_counter()
        rankings[name] = [[i for i, _s in index.search(tokenizer.tokens(q), DEPTH)] for q in questions]
        timings[name] = (time.perf_counter() - started) * 1000 / len(questions)
    skipped: dict[str, str] = {}
    if embedder is None:
        skipped = {"dense": "no embedding model given (rag.embedding or --embed-model)",
                   "hybrid": "needs dense"}
    else:
        dense = DenseIndex([v.tobytes() for v in await embedder.embed(texts)])
        started = time.perf_counter()
        query_vectors = await embedder.embed(questions)
        embed_ms = (time.perf_counter() - started) * 1000 / len(questions)
        rankings["dense"] = [[i for i, _s in dense.search(v, DEPTH)] for v in query_vectors]
        timings["dense"] = embed_ms
        kiwi_index = lexical["kiwi-bm25"][1]
        rankings["hybrid"] = [[i for i, _s in fuse([kiwi_index.search(kiwi.tokens(q), 40), dense.search(v, 40)], DEPTH)]
                              for q, v in zip(questions, query_vectors, strict=True)]
        timings["hybrid"] = embed_ms + timings["kiwi-bm25"]
    return {
        "suite": data.name, "items": len(data.items), "chunks": len(data.pieces),
        "methods": {name: {**metrics(r, relevant, ks), "query_ms": round(timings[name], 3)}
                    for name, r in rankings.items()},
        "skipped": skipped,
    }


def export_grounded(data: RetrievalSet, method_rankings: list[list[int]], out_dir: Path, top_k: int = 3) -> Path:
    """A `grounded` suite of the retrieved passages: cite = the ranks holding the evidence; an
    item whose evidence was not retrieved must be answered "not in the documents"."""
    out_dir.mkdir(parents=True, exist_ok=True)
    suite = {
        "name": f"{data.name}-grounded", "license": data.definition.get("license"),
        "source": f"{data.name} passages as retrieved by Nuri", "tags": ["korean", "rag", "grounded"],
        "template": ("다음 사내 문서를 참고하여 질문에 한국어로 답하세요. 답의 근거가 된 문서 번호를 [1]처럼 표시하세요. "
                     "문서에 답이 없으면 \"문서에서 찾을 수 없습니다\"라고 답하세요.\n\n{passages_block}\n\n"
                     "질문: {question}\n답변:"),
        "scorer": {"name": "grounded"},
        "settings": {"temperature": 0.0, "max_tokens": 128, "requires_korean": True},
    }
    (out_dir / "suite.yaml").write_text(yaml.safe_dump(suite, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with (out_dir / "items.jsonl").open("w", encoding="utf-8") as fh:
        for item, ranking in zip(data.items, method_rankings, strict=True):
            top = ranking[:top_k]
            cite = [n for n, i in enumerate(top, 1) if item["evidence"] in data.pieces[i].text]
            row = {"id": item["id"], "question": item["question"], "passages": [data.pieces[i].text for i in top],
                   "cite": cite, "answerable": bool(cite)}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out_dir


def rankings_for(data: RetrievalSet, method: str = "kiwi-bm25") -> list[list[int]]:
    tokenizer: Any = KiwiTokenizer() if method == "kiwi-bm25" else WhitespaceTokenizer()
    index = LexicalIndex(tokenizer.many(p.text for p in data.pieces))
    return [[i for i, _s in index.search(tokenizer.tokens(item["question"]), DEPTH)] for item in data.items]
