"""What policy decided for one request: per-deployment verdicts and the rules that made them.

These are plain dataclasses so the gateway, the router, explain and the audit record all read
the same object; nothing here holds a personal-data value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DecisionAction = Literal["allow", "pseudonymize", "block"]


@dataclass(frozen=True, slots=True)
class RuleMatch:
    id: str
    pack: str
    citation: str
    action: str
    message: str
    mask_types: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Verdict:
    """May this deployment see the request, and only after which entity types are masked?"""

    deployment_id: str
    eligible: bool
    mask_types: frozenset[str] = frozenset()   # empty: clear text allowed
    excluded_by: str | None = None             # rule id when not eligible
    reason: str = ""


@dataclass(slots=True)
class Decision:
    """`action`: block when no candidate is eligible; pseudonymize when some eligible candidate
    may only see masked data; otherwise allow. The action for one route step is
    `step_action(step.mask_types)`."""

    action: DecisionAction
    verdicts: list[Verdict]
    matched: list[RuleMatch] = field(default_factory=list)
    label: bool = False
    label_text: str | None = None
    flag: bool = False
    flag_reasons: list[str] = field(default_factory=list)
    block_message: str | None = None
    requested: str = ""
    overridden: list[str] = field(default_factory=list)

    @property
    def eligible(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.eligible]

    @property
    def rule_ids(self) -> list[str]:
        return [m.id for m in self.matched]

    def verdict(self, deployment_id: str) -> Verdict | None:
        for v in self.verdicts:
            if v.deployment_id == deployment_id:
                return v
        return None


def step_action(mask_types: frozenset[str]) -> DecisionAction:
    """The action one routed attempt carries (for the x-nuri-action header)."""
    return "pseudonymize" if mask_types else "allow"
