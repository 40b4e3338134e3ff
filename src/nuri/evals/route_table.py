"""Router feed: leaderboard results → a suggested route table per workload (suite).

For each suite, deployments whose score is not significantly below the best (their interval
reaches the best one's lower bound) form the quality tier; within it the cheaper and faster one
comes first. The result is a suggestion for the routing config, ordered primary then fallbacks.
"""

from __future__ import annotations

from typing import Any


def suggest_routes(board: list[dict[str, Any]], min_score: float = 0.0) -> dict[str, dict[str, Any]]:
    routes: dict[str, dict[str, Any]] = {}
    for suite in sorted({e["suite"] for e in board}):
        entries = [e for e in board if e["suite"] == suite and e["score"] >= min_score]
        if not entries:
            continue
        best = max(entries, key=lambda e: e["score"])
        tier = [e for e in entries if e["ci_high"] >= best["ci_low"]]
        rest = [e for e in entries if e not in tier]

        def cheap_fast(e: dict[str, Any]) -> tuple[float, float, float]:
            return (e["cost_per_correct"] if e["cost_per_correct"] is not None else 0.0,
                    e["latency_p50_ms"] if e["latency_p50_ms"] is not None else float("inf"), -e["score"])

        ordered = sorted(tier, key=cheap_fast) + sorted(rest, key=lambda e: -e["score"])
        routes[suite] = {
            "deployments": [e["model"] for e in ordered],
            "why": [f"{e['model']}: score {e['score']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}], "
                    f"cost/correct {e['cost_per_correct']}, p50 {e['latency_p50_ms']} ms" for e in ordered],
        }
    return routes
