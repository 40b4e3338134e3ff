"""Order the eligible deployments of a Decision into route steps.

The router only ever reorders and filters the eligible verdicts: it cannot add a deployment,
and each step carries the mask types its verdict demands. Strategies:

* priority: alias order (the order of the candidates).
* cost: catalog price × (estimated prompt tokens, expected completion tokens), converted into the
  budget currency (`money` in the config) so a KRW and a USD price compare; ties keep alias order.
* latency: EWMA of observed time to first token (or latency); deployments never measured go
  first, in alias order, so that every deployment gets measured (exploration).
* weighted: random order drawn by Deployment.weight (weight 0 goes last); the RNG is
  injectable for tests.
* eval: for a `workload:<name>` request, the audit's ranking from eval results
  (routing/eval_strategy.py); other requests keep alias order.

Routing sits below policy: it reads a decision through the `Routable` shape (steps.py; policy's
`Decision` is one) and knows nothing of HTTP; the gateway turns a refusal into its response headers.
"""

from __future__ import annotations

import math
import random

from nuri.catalog import Deployment
from nuri.config import RoutingSettings
from nuri.errors import InternalError, InvalidRequest, PermissionDenied, ServiceUnavailable
from nuri.routing.eval_strategy import EvalStrategy
from nuri.routing.health import HealthBook
from nuri.routing.steps import Routable, RouteStep

__all__ = ["STRATEGIES", "RouteStep", "Router"]   # RouteStep: where callers have always imported it

STRATEGIES = ("priority", "cost", "latency", "weighted", "eval")


class Router:
    def __init__(self, settings: RoutingSettings, health: HealthBook, rng: random.Random | None = None,
                 eval_strategy: EvalStrategy | None = None) -> None:
        if settings.strategy not in STRATEGIES:
            raise ValueError(f"routing.strategy must be one of {', '.join(STRATEGIES)}; got {settings.strategy!r}")
        for tier, name in settings.tier_strategies.items():
            if name not in STRATEGIES:
                raise ValueError(f"routing.tier_strategies.{tier} must be one of {', '.join(STRATEGIES)}")
        self.settings = settings
        self.health = health
        self.rng = rng or random.Random()
        self.eval = eval_strategy or EvalStrategy()   # eval: per-workload ranking (routing/eval_strategy.py)

    def strategy_for(self, latency_tier: str | None) -> str:
        if latency_tier and latency_tier in self.settings.tier_strategies:
            return self.settings.tier_strategies[latency_tier]
        return self.settings.strategy

    def plan(
        self,
        decision: Routable,
        deployments: dict[str, Deployment],
        estimated_tokens: int,
        strategy: str | None = None,
    ) -> list[RouteStep]:
        """Eligible, currently available steps in strategy order; raises when there are none."""
        strategy = strategy or self.settings.strategy
        if strategy not in STRATEGIES:
            raise InvalidRequest(f"unknown routing strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
        eligible = decision.eligible
        if not eligible:   # the gateway's x-nuri-action/x-nuri-policy headers come from the decision
            raise PermissionDenied(decision.block_message or "no deployment is allowed by policy")
        steps: list[RouteStep] = []
        for verdict in eligible:
            dep = deployments.get(verdict.deployment_id)
            if dep is None:
                raise InternalError(f"policy verdict names unknown deployment {verdict.deployment_id!r}")
            steps.append(RouteStep(dep, verdict.mask_types))
        healthy = [s for s in steps if self.health.available(s.deployment.id)]
        if not healthy:
            why = "; ".join(f"{s.deployment.id}: {self.health.describe(s.deployment.id)}" for s in steps)
            raise ServiceUnavailable(
                f"no healthy deployment among those policy allows for {decision.requested!r} ({why}); "
                "the request was not sent elsewhere"
            )
        return self._order(healthy, estimated_tokens, strategy, decision.requested)

    def _order(self, steps: list[RouteStep], tokens: int, strategy: str, requested: str = "") -> list[RouteStep]:
        if strategy == "priority" or len(steps) < 2:
            return steps
        if strategy == "eval":
            return self.eval.order(steps, requested, self.health)
        if strategy == "cost":
            out_tokens = self.settings.expected_completion_tokens
            return sorted(steps, key=lambda s: s.deployment.price.converted(tokens, out_tokens))
        if strategy == "latency":
            def key(s: RouteStep) -> tuple[int, float]:
                seen = self.health.latency(s.deployment.id)
                return (0, 0.0) if seen is None else (1, seen)
            return sorted(steps, key=key)
        # weighted: Efraimidis–Spirakis keys u^(1/w) give an order drawn by weight.
        def draw(s: RouteStep) -> float:
            w = s.deployment.weight
            return -math.inf if w <= 0 else math.log(self.rng.random() or 1e-300) / w
        return sorted(steps, key=draw, reverse=True)
