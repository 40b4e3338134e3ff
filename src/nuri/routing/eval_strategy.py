"""Routing strategy `eval`: order a workload's steps by the audit's rule, from eval results.

For a request routed as `workload:<name>`, the steps (already eligible and healthy: the router
filtered them) are ordered by: quality bar met with confidence first, then monthly cost, then p95
latency (from the eval results; the live latency average when there is none), then their order
in the plan. Deployments the ranking does not know keep their plan order after the known ones.
It only reorders: it never adds a step, so residency and procurement exclusions, which removed
deployments before the router saw them, hold.

The ranking table is routing-level data (deployment ids and numbers). It starts from the routing
file and, given a `source`, is rebuilt when `stamp()` changes (new eval results landed), checked
at most every `check_seconds`. Health changes count at once: unhealthy steps never reach here,
and the live latency is read per request.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nuri.routing.health import HealthBook

if TYPE_CHECKING:
    from nuri.routing.steps import RouteStep

WORKLOAD_PREFIX = "workload:"


@dataclass(frozen=True, slots=True)
class CandidateScore:
    deployment_id: str
    meets_bar: bool
    monthly_cost: float | None = None
    p95_ms: float | None = None
    score: float | None = None
    ci_low: float | None = None
    note: str = ""


Table = Mapping[str, list[CandidateScore]]


def workload_name(requested: str | None) -> str | None:
    if requested and requested.startswith(WORKLOAD_PREFIX):
        return requested[len(WORKLOAD_PREFIX):]
    return None


class EvalStrategy:
    """Per-workload ranking table and the order it gives; thread-safe refresh."""

    def __init__(self, table: Table | None = None, *, source: Callable[[], Table] | None = None,
                 stamp: Callable[[], Any] | None = None, check_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._table: dict[str, list[CandidateScore]] = {k: list(v) for k, v in (table or {}).items()}
        self._source, self._stamp, self._every, self._clock = source, stamp, check_seconds, clock
        self._seen: Any = None
        self._checked = -math.inf
        self._lock = threading.Lock()

    def table(self) -> dict[str, list[CandidateScore]]:
        """The current table, rebuilt first when the stamp moved since the last look."""
        if self._source is not None and self._clock() - self._checked >= self._every:
            with self._lock:
                now = self._clock()
                if now - self._checked >= self._every:
                    self._checked = now
                    mark = self._stamp() if self._stamp is not None else now
                    if mark != self._seen:
                        self._table = {k: list(v) for k, v in self._source().items()}
                        self._seen = mark
        return self._table

    def replace(self, table: Table) -> None:
        with self._lock:
            self._table = {k: list(v) for k, v in table.items()}

    def _key(self, scores: dict[str, tuple[int, CandidateScore]], health: HealthBook,
             index: int, dep_id: str) -> tuple[int, int, float, float, int]:
        found = scores.get(dep_id)
        if found is None:
            return (1, 1, math.inf, math.inf, index)
        _, s = found
        latency = s.p95_ms
        if latency is None:
            seen = health.latency(dep_id)
            latency = seen * 1000 if seen is not None else math.inf
        cost = s.monthly_cost if s.monthly_cost is not None else math.inf
        return (0, 0 if s.meets_bar else 1, cost, latency, index)

    def order(self, steps: list[RouteStep], requested: str | None, health: HealthBook) -> list[RouteStep]:
        name = workload_name(requested)
        ranking = self.table().get(name) if name else None
        if not ranking:
            return steps                       # not a planned workload: the plan's (alias) order
        scores = {s.deployment_id: (i, s) for i, s in enumerate(ranking)}
        keyed = [(self._key(scores, health, i, st.deployment.id), st) for i, st in enumerate(steps)]
        return [st for _, st in sorted(keyed, key=lambda pair: pair[0])]

    def explain(self, requested: str | None, steps: list[RouteStep], health: HealthBook) -> list[dict[str, Any]]:
        """Each step's scores and why it won or lost against the one before it, in routed order."""
        name = workload_name(requested)
        ranking = {s.deployment_id: s for s in (self.table().get(name) or [])} if name else {}
        out: list[dict[str, Any]] = []
        ordered = self.order(steps, requested, health)
        for rank, step in enumerate(ordered):
            s = ranking.get(step.deployment.id)
            row: dict[str, Any] = {"deployment": step.deployment.id, "rank": rank + 1}
            if s is None:
                row["why"] = "no eval ranking for this deployment: kept in plan order"
            else:
                row.update(meets_bar=s.meets_bar, score=s.score, ci_low=s.ci_low, monthly_cost=s.monthly_cost,
                           p95_ms=s.p95_ms, note=s.note)
                row["why"] = _why(s, ranking.get(ordered[0].deployment.id) if rank else None)
            out.append(row)
        return out


def _why(s: CandidateScore, winner: CandidateScore | None) -> str:
    if winner is None:
        return "first: " + ("meets the quality bar" if s.meets_bar else "no candidate meets the quality bar") + \
            (f", cheapest at {s.monthly_cost:,.2f}/month" if s.monthly_cost is not None else "")
    if winner.meets_bar and not s.meets_bar:
        return f"behind {winner.deployment_id}: does not meet the quality bar" + (f" ({s.note})" if s.note else "")
    if (winner.monthly_cost or 0) < (s.monthly_cost or 0):
        return f"behind {winner.deployment_id}: costs more ({s.monthly_cost:,.2f} vs {winner.monthly_cost:,.2f}/month)"
    return f"behind {winner.deployment_id}: slower or later in the plan"


def table_from_plan(workloads: Mapping[str, Any]) -> dict[str, list[CandidateScore]]:
    """A routing file's `workloads` (PlannedWorkload objects or plain dicts) → the ranking table."""
    out: dict[str, list[CandidateScore]] = {}
    for name, planned in workloads.items():
        scores = planned["scores"] if isinstance(planned, Mapping) else planned.scores
        rows = []
        for s in scores:
            d = s if isinstance(s, Mapping) else s.model_dump()
            rows.append(CandidateScore(d["deployment"], bool(d["meets_bar"]), d.get("monthly_cost"),
                                       d.get("p95_ms"), d.get("score"), d.get("ci_low"), d.get("note", "")))
        out[name] = rows
    return out
