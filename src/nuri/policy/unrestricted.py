"""The decision when policy is switched off (`policy.enabled: false`): every candidate, in clear.

Only an operator's explicit config gets here; it exists so benchmarks can measure what policy
costs and so a deployment without residency concerns can run lean. Routing, health and
fallback still apply.
"""

from __future__ import annotations

from nuri.catalog import Deployment
from nuri.policy.decision import Decision, Verdict


def unrestricted_decision(candidates: list[Deployment], requested: str) -> Decision:
    return Decision(
        action="allow",
        verdicts=[Verdict(d.id, True, reason="policy disabled") for d in candidates],
        requested=requested,
    )
