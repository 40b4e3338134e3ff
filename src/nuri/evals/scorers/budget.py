"""Latency and cost as pass/fail scores, for suites that state a service level: a reply that
arrives too late or costs too much is a failure for that workload however good it is."""

from __future__ import annotations

from typing import Any

from nuri.evals.scorers.base import Score, ScoreContext, Scorer


class LatencyScorer(Scorer):
    """1 when total latency is within `max_ms` and time to first token within `max_ttft_ms`."""

    name = "latency"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        max_ms = item.get("max_ms", self.options.get("max_ms"))
        max_ttft = item.get("max_ttft_ms", self.options.get("max_ttft_ms"))
        ok = True
        if max_ms is not None:
            ok = ok and ctx.latency_ms is not None and ctx.latency_ms <= float(max_ms)
        if max_ttft is not None:
            ok = ok and ctx.ttft_ms is not None and ctx.ttft_ms <= float(max_ttft)
        return Score(float(ok), {"latency_ms": ctx.latency_ms, "ttft_ms": ctx.ttft_ms})


class CostScorer(Scorer):
    """1 when the item's cost is known and at most `max_cost` (catalog currency)."""

    name = "cost"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        limit = float(item.get("max_cost", self.options.get("max_cost", 0.0)))
        return Score(float(ctx.cost is not None and ctx.cost <= limit), {"cost": ctx.cost})
