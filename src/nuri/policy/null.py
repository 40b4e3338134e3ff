"""The policy in force when the operator switches policy off (`policy.enabled: false`).

An engine like any other, so the gateway and explain run one sequence either way: it reads no
classification (the request is not scanned), matches no rule, and lets every candidate see the
request as sent.
"""

from __future__ import annotations

from typing import Any

from nuri.catalog import Deployment
from nuri.policy.decision import Decision, Verdict
from nuri.principal import Principal

REASON = "policy disabled"


class NullPolicy:
    """Every candidate eligible, unmasked; no rules, no labels."""

    enabled = False
    classifies = False          # nothing it decides depends on what the request carries
    rules: list[Any] = []

    def decide(self, classification: Any, principal: Principal, requested: str, candidates: list[Deployment],
               latency_tier: str | None = None, endpoint: str | None = None) -> Decision:
        verdicts = [Verdict(d.id, True, frozenset(), None, REASON) for d in candidates]
        return Decision(action="allow" if verdicts else "block", verdicts=verdicts, requested=requested,
                        block_message=None if verdicts else f"no deployment serves {requested!r}")
