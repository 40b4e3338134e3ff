"""classify → decide → route: the one sequence the gateway handler and `nuri explain` share.

Because the live request and explain call the same function, they agree by construction.
It fails closed: any exception while classifying or deciding becomes InternalError (500) and
nothing is forwarded; it never returns an "allow" it did not compute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nuri.catalog import Deployment
from nuri.errors import InternalError, ModelNotFound, NuriError
from nuri.ledger import tracing
from nuri.policy.decision import Decision, Verdict
from nuri.principal import Principal
from nuri.privacy.types import Classification
from nuri.routing.router import Router, RouteStep

if TYPE_CHECKING:
    from nuri.config import NuriConfig
    from nuri.policy.engine import PolicyEngine


@dataclass(slots=True)
class Evaluation:
    classification: Classification
    decision: Decision
    steps: list[RouteStep]
    strategy: str
    error: NuriError | None = None     # why no route exists (403 policy, 503 health, 400 strategy)


def resolve_candidates(config: NuriConfig, requested: str | None) -> list[Deployment]:
    """A deployment id → [it]; an alias → its deployments in alias order; else 404."""
    name = requested or "default"
    by_id = {d.id: d for d in config.deployments}
    if name in by_id:
        return [by_id[name]]
    if name in config.aliases:
        return [by_id[i] for i in config.aliases[name] if i in by_id]
    known = sorted([*by_id, *config.aliases])
    raise ModelNotFound(f"model {name!r} does not exist; available: {', '.join(known)}", param="model")


def policy_off(requested: str, candidates: list[Deployment]) -> Decision:
    """The decision when the operator switched policy off (policy.enabled: false): no rules."""
    verdicts = [Verdict(d.id, True, frozenset(), None, "policy disabled") for d in candidates]
    return Decision(action="allow" if verdicts else "block", verdicts=verdicts, requested=requested,
                    block_message=None if verdicts else f"no deployment serves {requested!r}")


def estimate_tokens(classification: Classification) -> int:
    """A rough prompt size for the cost strategy (Korean runs near 2-3 characters a token)."""
    return max(1, classification.chars // 3)


def evaluate(
    body: dict[str, Any],
    endpoint: str,
    principal: Principal,
    requested: str | None,
    *,
    scanner: Any,
    engine: PolicyEngine | None,
    router: Router,
    config: NuriConfig,
    latency_tier: str | None = None,
    strategy: str | None = None,
    candidates: list[Deployment] | None = None,
    classifier: Callable[[dict[str, Any], str, Any], Classification] | None = None,
) -> Evaluation:
    """Classify, decide and plan; a missing route is returned in `.error`, not raised."""
    requested = requested or "default"
    if candidates is None:
        candidates = resolve_candidates(config, requested)
    tier = latency_tier or principal.latency_tier
    try:
        if classifier is None:
            from nuri.privacy.classify import classify_request as classifier
        with tracing.span("nuri.classify", endpoint=endpoint):
            classification = classifier(body, endpoint, scanner)
    except NuriError:
        raise
    except Exception as exc:
        raise InternalError(
            f"classification failed ({type(exc).__name__}); the request was not forwarded",
            code="classification_failed",
        ) from exc
    try:
        if engine is None:
            if config.policy.enabled:
                raise RuntimeError("policy is enabled but no engine is loaded")
            decision = policy_off(requested, candidates)
        else:
            with tracing.span("nuri.decide", requested=requested):
                decision = engine.decide(classification, principal, requested, candidates, tier, endpoint=endpoint)
    except Exception as exc:
        raise InternalError(
            f"policy evaluation failed ({type(exc).__name__}); the request was not forwarded",
            code="policy_failed",
        ) from exc
    chosen = strategy or router.strategy_for(tier)
    deployments = {d.id: d for d in candidates}
    try:
        with tracing.span("nuri.route", strategy=chosen):
            steps = router.plan(decision, deployments, estimate_tokens(classification), chosen)
    except NuriError as exc:
        return Evaluation(classification, decision, [], chosen, exc)
    except Exception as exc:
        raise InternalError(f"routing failed ({type(exc).__name__}); the request was not forwarded") from exc
    return Evaluation(classification, decision, steps, chosen)


def evaluate_request(*args: Any, **kwargs: Any) -> tuple[Classification, Decision, list[RouteStep]]:
    """The gateway's call, with `evaluate`'s arguments: raises PermissionDenied (403),
    ServiceUnavailable (503) or InternalError (500); on success every step is eligible and
    carries its mask types."""
    result = evaluate(*args, **kwargs)
    if result.error is not None:
        raise result.error
    return result.classification, result.decision, result.steps
