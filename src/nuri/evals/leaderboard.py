"""Leaderboard, run comparison and the CI regression check, computed from stored item rows."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

from nuri.evals.stats import mcnemar, mean_ci, paired_bootstrap
from nuri.gateway.language import asked_for, check
from nuri.policy.terminology import contested_in, shipped_terms
from nuri.privacy import signals

Row = dict[str, Any]


def _score(r: Row) -> float:
    return float(r["score"]) if r["score"] is not None else 0.0  # a failed call counts as wrong


def group(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    out: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        out[(r["suite"], r["model"])].append(r)
    return dict(out)


def reply_rates(rs: list[Row]) -> tuple[float | None, float | None]:
    """(share of replies the kr-terminology pack would correct or flag, share of replies in a
    language the prompt is not written in and does not ask for), over the rows with a reply: the
    same checks the gateway runs on live traffic (nuri_replies_flagged / nuri_replies_checked)."""
    replies = [r for r in rs if r.get("reply")]
    if not replies:
        return None, None
    terms = shipped_terms()
    corrected = sum(1 for r in replies if contested_in(terms, r["reply"]))
    judged = misses = 0
    for r in replies:
        prompt = str(r.get("prompt") or "")
        result = check(signals.shares(signals.script_counts(prompt)), asked_for([prompt]), r["reply"],
                       min_share=0.2, min_letters=12)
        if result is not None:
            judged += 1
            misses += result.miss
    return round(corrected / len(replies), 4), (round(misses / judged, 4) if judged else None)


def entry(suite: str, model: str, rs: list[Row]) -> dict[str, Any]:
    scores = [_score(r) for r in rs]
    mean, low, high = mean_ci(scores)
    correct = sum(1 for r in rs if r["passed"])
    costs = [r["cost"] for r in rs if r["cost"] is not None]
    latencies = [r["latency_ms"] for r in rs if r["latency_ms"] is not None]
    ttfts = [r["ttft_ms"] for r in rs if r["ttft_ms"] is not None]
    total_cost = sum(costs) if costs else None
    term_rate, language_miss_rate = reply_rates(rs)
    return {
        "suite": suite, "model": model, "version": rs[0]["suite_version"], "n": len(rs),
        "score": round(mean, 4), "ci_low": round(low, 4), "ci_high": round(high, 4),
        "correct": correct, "errors": sum(1 for r in rs if r["error"]),
        "cost_total": total_cost,
        "cost_per_correct": (total_cost / correct) if (total_cost is not None and correct) else None,
        "latency_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "ttft_p50_ms": round(statistics.median(ttfts), 1) if ttfts else None,
        "latency_per_correct_s": round(sum(latencies) / 1000 / correct, 3) if latencies and correct else None,
        "term_rate": term_rate, "language_miss_rate": language_miss_rate,
    }


def leaderboard(rows: list[Row]) -> list[dict[str, Any]]:
    table = [entry(s, m, rs) for (s, m), rs in group(rows).items()]
    return sorted(table, key=lambda e: (e["suite"], -e["score"], e["model"]))


def paired(rows_a: list[Row], rows_b: list[Row]) -> dict[str, Any]:
    """Significance of b − a on the items both sides scored."""
    a_by = {r["item_id"]: r for r in rows_a}
    b_by = {r["item_id"]: r for r in rows_b}
    common = sorted(set(a_by) & set(b_by))
    a = [_score(a_by[i]) for i in common]
    b = [_score(b_by[i]) for i in common]
    boot = paired_bootstrap(a, b)
    test = mcnemar([bool(a_by[i]["passed"]) for i in common], [bool(b_by[i]["passed"]) for i in common])
    return {"n": len(common), "a": sum(a) / len(a) if a else math.nan, "b": sum(b) / len(b) if b else math.nan,
            "diff": boot["diff"], "diff_low": boot["low"], "diff_high": boot["high"], "p_bootstrap": boot["p"],
            "p_mcnemar": test["p"], "only_a": test["only_a"], "only_b": test["only_b"]}


def model_pairs(rows: list[Row]) -> list[dict[str, Any]]:
    """For each suite, the top two models compared item by item."""
    out = []
    board = leaderboard(rows)
    groups = group(rows)
    for suite in sorted({e["suite"] for e in board}):
        ranked = [e["model"] for e in board if e["suite"] == suite]
        if len(ranked) >= 2:
            first, second = ranked[0], ranked[1]
            out.append({"suite": suite, "model_a": second, "model_b": first}
                       | paired(groups[(suite, second)], groups[(suite, first)]))
    return out


def compare(rows_a: list[Row], rows_b: list[Row]) -> list[dict[str, Any]]:
    """Per (suite, model) present in both runs: run A's score, run B's and the paired test."""
    ga, gb = group(rows_a), group(rows_b)
    out = []
    for key in sorted(set(ga) & set(gb)):
        if ga[key][0]["suite_version"] != gb[key][0]["suite_version"]:
            out.append({"suite": key[0], "model": key[1], "note": "dataset version differs; not compared"})
            continue
        out.append({"suite": key[0], "model": key[1]} | paired(ga[key], gb[key]))
    return out


def regressions(rows_base: list[Row], rows_cand: list[Row], alpha: float = 0.05,
                tolerance: float = 0.0) -> list[dict[str, Any]]:
    """Comparisons where the candidate is significantly worse than the baseline (beyond tolerance)."""
    bad = []
    for c in compare(rows_base, rows_cand):
        if "diff" not in c:
            continue
        if c["diff"] < -tolerance and c["diff_high"] < 0 and c["p_bootstrap"] < alpha:
            bad.append(c)
    return bad
