"""The audit's rule for ordering a workload's eligible deployments, and the recommendation.

Eligible first (policy for the workload's data, licence, procurement); among them, those that
meet the quality bar on every suite with confidence and the latency target come first, then
those that meet the quality bar only, then the rest; within a group the cheaper per month, then
the lower p95 latency, then the id. The recommendation is the first of the first group, or none,
with the reason. The eval routing strategy orders live requests by the same key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class SuiteCheck:
    suite: str
    bar: float
    score: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0

    @property
    def met(self) -> bool:
        return self.ci_low is not None and self.ci_low >= self.bar

    def describe(self) -> str:
        if self.score is None or self.ci_low is None:
            return f"{self.suite}: no results"
        verdict = "meets" if self.met else ("below" if self.score < self.bar else "not shown with confidence:")
        return (f"{self.suite}: {self.score:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] {verdict} "
                f"bar {self.bar:.2f}")


@dataclass(slots=True)
class Assessment:
    """One deployment as a candidate for one workload."""

    deployment: str
    jurisdiction: str
    hosting: str
    sovereign: bool
    monthly_cost: float
    policy_eligible: bool = True
    policy_reason: str = ""
    mask_types: list[str] = field(default_factory=list)
    excluded: str | None = None          # licence or procurement reason
    suites: list[SuiteCheck] = field(default_factory=list)
    p95_ms: float | None = None
    latency_target: float | None = None
    procurement_score: float | None = None

    @property
    def eligible(self) -> bool:
        return self.policy_eligible and self.excluded is None

    @property
    def meets_quality(self) -> bool:
        return all(s.met for s in self.suites)

    @property
    def meets_latency(self) -> bool:
        if self.latency_target is None:
            return True
        return self.p95_ms is not None and self.p95_ms <= self.latency_target

    @property
    def mean_score(self) -> float | None:
        scores = [s.score for s in self.suites if s.score is not None]
        return round(sum(scores) / len(scores), 4) if scores else None

    @property
    def min_ci_low(self) -> float | None:
        lows = [s.ci_low for s in self.suites if s.ci_low is not None]
        return min(lows) if len(lows) == len(self.suites) and lows else None

    def why_not(self) -> str:
        """Why this deployment is not recommended (for an eligible one: what it misses)."""
        if not self.policy_eligible:
            return "policy: " + " ".join(self.policy_reason.split())
        if self.excluded:
            return self.excluded
        misses = [s.describe() for s in self.suites if not s.met]
        if not self.meets_latency:
            seen = "unknown" if self.p95_ms is None else f"{self.p95_ms:.0f} ms"
            misses.append(f"p95 latency {seen} over the {self.latency_target:.0f} ms target")
        return "; ".join(misses)


def rank_key(a: Assessment) -> tuple[int, float, float, str]:
    group = 0 if a.meets_quality and a.meets_latency else (1 if a.meets_quality else 2)
    return (group, a.monthly_cost, a.p95_ms if a.p95_ms is not None else math.inf, a.deployment)


def recommend(assessments: list[Assessment]) -> tuple[list[Assessment], Assessment | None, str]:
    """(eligible in planned order, the recommendation or None, why)."""
    ordered = sorted((a for a in assessments if a.eligible), key=rank_key)
    if not ordered:
        return [], None, "no deployment is eligible: " + "; ".join(
            f"{a.deployment}: {a.why_not()}" for a in assessments) if assessments else "no deployments"
    best = ordered[0]
    if best.meets_quality and best.meets_latency:
        beaten = [a for a in ordered[1:] if a.meets_quality and a.meets_latency]
        why = f"{best.deployment}: the cheapest eligible deployment that meets the quality bar"
        why += " within the latency target" if best.latency_target is not None else ""
        why += f" ({best.monthly_cost:,.2f}/month"
        why += f"; next: {beaten[0].deployment} at {beaten[0].monthly_cost:,.2f})" if beaten else ")"
        return ordered, best, why
    why = "no eligible deployment meets the quality bar and latency target: " + "; ".join(
        f"{a.deployment}: {a.why_not()}" for a in ordered)
    return ordered, None, why
