"""What routing reads and returns: a decision's eligible verdicts in, route steps out.

Kept apart from the router so that the strategies (router.py, eval_strategy.py) share these
shapes without importing each other. Policy's `Decision` and `Verdict` fit `Routable` and
`EligibleVerdict` as they are, so routing needs no import of policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from nuri.catalog import Deployment


class EligibleVerdict(Protocol):
    """One deployment policy allows, and the entity types it may only see masked."""

    @property
    def deployment_id(self) -> str: ...

    @property
    def mask_types(self) -> frozenset[str]: ...


class Routable(Protocol):
    """What the router reads of a policy decision (`nuri.policy.decision.Decision`)."""

    @property
    def eligible(self) -> Sequence[EligibleVerdict]: ...

    @property
    def block_message(self) -> str | None: ...

    @property
    def requested(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One deployment to try, with the entity types masked before the body goes to it."""

    deployment: Deployment
    mask_types: frozenset[str] = frozenset()

    @property
    def masked(self) -> bool:
        return bool(self.mask_types)
