"""Bootstrap confidence intervals and paired tests for comparing models on the same items.

Scores on a few hundred items move by several points by chance; an interval and a paired test
tell a real difference from noise. Seeds are fixed so a report is reproducible.
"""

from __future__ import annotations

import math

import numpy as np

RESAMPLES = 2000


def mean_ci(values: list[float], resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap 95% interval."""
    if not values:
        return math.nan, math.nan, math.nan
    arr = np.asarray(values, dtype=float)
    if len(arr) == 1:
        return float(arr[0]), float(arr[0]), float(arr[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(arr), size=(resamples, len(arr)))
    means = arr[idx].mean(axis=1)
    return float(arr.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_bootstrap(a: list[float], b: list[float], resamples: int = RESAMPLES,
                     seed: int = 0) -> dict[str, float]:
    """Difference b − a over the same items: mean, 95% interval and a two-sided p-value."""
    if len(a) != len(b):
        raise ValueError("paired scores need the same items on both sides")
    if not a:
        return {"diff": math.nan, "low": math.nan, "high": math.nan, "p": math.nan, "n": 0}
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(resamples, len(d)))
    means = d[idx].mean(axis=1)
    observed = float(d.mean())
    # two-sided: the share of resamples on the other side of zero, doubled
    tail = min(float(np.mean(means <= 0)), float(np.mean(means >= 0)))
    p = 1.0 if np.all(d == 0) else min(1.0, 2 * tail)
    return {"diff": observed, "low": float(np.percentile(means, 2.5)), "high": float(np.percentile(means, 97.5)),
            "p": p, "n": len(d)}


def mcnemar(a: list[bool], b: list[bool]) -> dict[str, float]:
    """Exact McNemar test on paired pass/fail outcomes (binomial on the discordant pairs)."""
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = only_a + only_b
    if n == 0:
        return {"only_a": 0, "only_b": 0, "p": 1.0}
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return {"only_a": only_a, "only_b": only_b, "p": min(1.0, 2 * tail)}
