"""In-memory search over one collection: BM25 over terms (bm25s), cosine over unit vectors
(numpy), and reciprocal-rank fusion of the two. Built from the store's rows; holds no text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RRF_K = 60          # the constant of Cormack et al. (2009): damps the weight of the very top ranks


class LexicalIndex:
    """BM25 over each chunk's terms. Query terms the collection never saw are dropped first."""

    def __init__(self, term_lists: Sequence[list[str]]) -> None:
        import bm25s  # type: ignore[import-untyped]

        self.size = len(term_lists)
        self._bm25 = None
        self._vocab: set[str] = set()
        if self.size:
            self._bm25 = bm25s.BM25()
            self._bm25.index([terms or ["\x00"] for terms in term_lists], show_progress=False)
            self._vocab = set(self._bm25.vocab_dict)

    def scores(self, terms: list[str]) -> np.ndarray:
        known = [t for t in terms if t in self._vocab]
        if self._bm25 is None or not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def search(self, terms: list[str], k: int) -> list[tuple[int, float]]:
        return top(self.scores(terms), k)


class DenseIndex:
    """Cosine similarity over unit vectors; chunks without a vector never match."""

    def __init__(self, vectors: Sequence[bytes | None]) -> None:
        self.size = len(vectors)
        dims = next((len(v) // 4 for v in vectors if v), 0)
        self.matrix = np.zeros((self.size, dims), dtype=np.float32)
        self.present = np.zeros(self.size, dtype=bool)
        for i, v in enumerate(vectors):
            if v and len(v) // 4 == dims:
                self.matrix[i] = np.frombuffer(v, dtype=np.float32)
                self.present[i] = True

    @property
    def ready(self) -> bool:
        return bool(self.present.any())

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not self.ready or query.shape[0] != self.matrix.shape[1]:
            return []
        scores = self.matrix @ query
        scores[~self.present] = -np.inf
        return top(scores, k, positive=False)


def top(scores: np.ndarray, k: int, *, positive: bool = True) -> list[tuple[int, float]]:
    """The k best (index, score), best first: with a positive score, or any finite one."""
    if scores.size == 0 or k <= 0:
        return []
    k = min(k, scores.size)
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.argsort(-scores[best], kind="stable")]
    keep = scores[best] > 0 if positive else np.isfinite(scores[best])
    return [(int(i), float(scores[i])) for i in best[keep]]


def fuse(rankings: Sequence[list[tuple[int, float]]], k: int) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: each list adds 1/(60 + rank) for each chunk it ranks."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (i, _score) in enumerate(ranking, 1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])[:k]


def unit(vector: Sequence[float]) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v
