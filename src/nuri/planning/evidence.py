"""Eval evidence for planning: per suite and deployment, the score with its 95% interval and p95 latency.

Computed from stored item rows (the eval store's latest results, or JSONL files of the same
rows), with the leaderboard's own bootstrap, so a plan and `nuri eval leaderboard` agree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nuri.evals.leaderboard import entry, group

Row = dict[str, Any]
ROW_DEFAULTS: Row = {"suite_version": "", "passed": None, "cost": None, "latency_ms": None, "ttft_ms": None,
                     "error": None}


@dataclass(frozen=True, slots=True)
class SuiteEvidence:
    suite: str
    deployment: str
    n: int
    score: float
    ci_low: float
    ci_high: float
    p95_ms: float | None

    def meets(self, bar: float) -> bool:
        """Met with confidence: the interval's lower bound reaches the bar."""
        return self.ci_low >= bar

    def describe(self) -> str:
        return f"{self.score:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] n={self.n}"


class Evidence:
    """Look-ups by (suite, deployment) over the results given."""

    def __init__(self, entries: list[SuiteEvidence]) -> None:
        self._by = {(e.suite, e.deployment): e for e in entries}

    def get(self, suite: str, deployment: str) -> SuiteEvidence | None:
        return self._by.get((suite, deployment))

    def __len__(self) -> int:
        return len(self._by)

    @property
    def entries(self) -> list[SuiteEvidence]:
        return list(self._by.values())

    def p95(self, deployment: str, suites: list[str]) -> float | None:
        """The worst p95 latency over the suites given (all suites when none), milliseconds."""
        values = [e.p95_ms for (s, d), e in self._by.items()
                  if d == deployment and e.p95_ms is not None and (not suites or s in suites)]
        return max(values) if values else None

    @classmethod
    def from_rows(cls, rows: list[Row]) -> Evidence:
        out = []
        for (suite, model), rs in group([ROW_DEFAULTS | r for r in rows]).items():
            e = entry(suite, model, rs)
            latencies = sorted(float(r["latency_ms"]) for r in rs if r.get("latency_ms") is not None)
            out.append(SuiteEvidence(suite, model, e["n"], e["score"], e["ci_low"], e["ci_high"], _p95(latencies)))
        return cls(out)


def _p95(sorted_values: list[float]) -> float | None:
    if not sorted_values:
        return None
    rank = max(0, math.ceil(0.95 * len(sorted_values)) - 1)   # nearest rank
    return round(sorted_values[rank], 1)


def read_rows(path: str | Path) -> list[Row]:
    """Item rows from a JSONL file: suite, model, item_id, score (and optionally passed, latency_ms, cost)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc.msg}") from exc
        missing = [k for k in ("suite", "model", "item_id", "score") if k not in row]
        if missing:
            raise ValueError(f"{path}:{number}: missing {', '.join(missing)}")
        rows.append(row)
    return rows


def store_rows(database_url: str) -> list[Row]:
    """The latest stored result of every (suite, version, model), from the eval store."""
    from nuri.evals.store import ResultStore

    store = ResultStore(database_url)
    try:
        return store.latest_items()
    finally:
        store.close()
