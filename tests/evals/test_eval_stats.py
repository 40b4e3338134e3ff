"""Bootstrap intervals, paired tests and the route table on constructed scores."""

from __future__ import annotations

import math

from nuri.evals.route_table import suggest_routes
from nuri.evals.stats import mcnemar, mean_ci, paired_bootstrap


def test_mean_ci_brackets_the_mean() -> None:
    mean, low, high = mean_ci([1.0] * 30 + [0.0] * 70)
    assert mean == 0.3 and low < 0.3 < high and high - low < 0.25
    assert mean_ci([1.0]) == (1.0, 1.0, 1.0)
    assert all(math.isnan(v) for v in mean_ci([]))


def test_paired_bootstrap_and_mcnemar() -> None:
    a = [1.0] * 50 + [0.0] * 50
    b = [1.0] * 80 + [0.0] * 20
    result = paired_bootstrap(a, b)
    assert result["diff"] == 0.3 and result["low"] > 0 and result["p"] < 0.01
    same = paired_bootstrap(a, a)
    assert same["p"] == 1.0 and same["diff"] == 0.0
    exact = mcnemar([True, True, False, False, True], [False, False, False, True, True])
    assert exact["only_a"] == 2 and exact["only_b"] == 1 and exact["p"] == 1.0
    strong = mcnemar([False] * 20, [True] * 20)
    assert strong["p"] == 2 * 0.5 ** 20


def test_route_table_prefers_cheaper_model_of_equal_quality() -> None:
    board = [
        {"suite": "s", "model": "global", "score": 0.82, "ci_low": 0.75, "ci_high": 0.88, "cost_per_correct": 0.01,
         "latency_p50_ms": 900.0},
        {"suite": "s", "model": "sovereign", "score": 0.80, "ci_low": 0.72, "ci_high": 0.86, "cost_per_correct": 0.0,
         "latency_p50_ms": 300.0},
        {"suite": "s", "model": "tiny", "score": 0.20, "ci_low": 0.12, "ci_high": 0.28, "cost_per_correct": 0.0,
         "latency_p50_ms": 50.0},
    ]
    assert suggest_routes(board)["s"]["deployments"] == ["sovereign", "global", "tiny"]
    assert suggest_routes(board, min_score=0.5)["s"]["deployments"] == ["sovereign", "global"]
