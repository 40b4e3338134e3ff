"""Residency property: engine + router + fallback never send data where its decision forbids.

Random entity mixes, markings, topics and domains × random catalogs (jurisdictions, hostings,
certifications, versions) × random pack sets × random failure patterns (5xx, 429, timeouts,
drops, 4xx). Every attempt is checked twice: against the Decision's verdict, and against an
oracle written from the pack texts (independent of the engine), on what the upstream would
receive in clear. Deliberately broken routers must be caught by the same check.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Coroutine
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from policy_factories import ALL_PACKS, CATEGORY, UNIQUE_IDS, classification, dep

from nuri.catalog import Deployment
from nuri.config import PolicySettings, RoutingSettings
from nuri.errors import NuriError, PermissionDenied, ServiceUnavailable, UpstreamError, UpstreamTimeout
from nuri.policy.decision import Decision
from nuri.policy.engine import PolicyEngine
from nuri.policy.model import KNOWN_ENTITY_TYPES
from nuri.principal import Principal
from nuri.routing.fallback import run_with_fallback
from nuri.routing.health import HealthBook
from nuri.routing.router import Router, RouteStep

APPROVED = "big@v1"
PERSONALISH = {t for t in KNOWN_ENTITY_TYPES if CATEGORY.get(t) is None} | {"CARD", "BANK_ACCOUNT"}


@dataclass
class Scenario:
    packs: tuple[str, ...]
    deployments: list[Deployment]
    types: tuple[str, ...]
    grade: str
    topics: tuple[str, ...]
    domains: tuple[str, ...]
    outcomes: list[str]
    strategy: str
    retries: int
    breaker_failures: int
    seed: int


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(1, 5))
    deployments = [
        dep(
            f"d{i}",
            draw(st.sampled_from(["KR", "KR", "US", "JP"])),
            draw(st.sampled_from(["on_prem", "domestic_cloud", "foreign_cloud"])),
            certifications=draw(st.sampled_from([[], ["CSAP-high"], ["CSAP-medium"], ["ISMS-P"]])),
            model="big",
            model_version=draw(st.sampled_from([None, "v1", "v2"])),
            weight=draw(st.sampled_from([0.0, 1.0, 3.0])),
        )
        for i in range(n)
    ]
    return Scenario(
        packs=tuple(sorted(draw(st.lists(st.sampled_from(ALL_PACKS), min_size=1, max_size=5, unique=True)))),
        deployments=deployments,
        types=tuple(draw(st.lists(st.sampled_from(sorted(KNOWN_ENTITY_TYPES)), max_size=5))),
        grade=draw(st.sampled_from(["O", "O", "S", "C"])),
        topics=tuple(draw(st.lists(st.sampled_from(["health", "beliefs", "union_party"]), max_size=2, unique=True))),
        domains=tuple(draw(st.lists(st.sampled_from(["hiring", "medical", "education"]), max_size=2, unique=True))),
        outcomes=draw(st.lists(st.sampled_from(["ok", "500", "429", "timeout", "drop", "400"]), max_size=8)),
        strategy=draw(st.sampled_from(["priority", "cost", "latency", "weighted"])),
        retries=draw(st.integers(0, 5)),
        breaker_failures=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2**16)),
    )


@lru_cache(maxsize=64)
def engine_for(packs: tuple[str, ...]) -> PolicyEngine:
    return PolicyEngine.load(PolicySettings(packs=list(packs), params={"approved_model_versions": [APPROVED]}), [])


def _error(outcome: str) -> Exception | None:
    return {
        "ok": None,
        "500": UpstreamError("500", upstream_status=500, retryable=True),
        "429": UpstreamError("429", upstream_status=429, retryable=True),
        "timeout": UpstreamTimeout("timeout"),
        "drop": UpstreamError("connection dropped", retryable=True),
        "400": UpstreamError("400", upstream_status=400, retryable=False),
    }[outcome]


# --- the oracle: what each pack's text says, written without the engine -----------------------

def _domestic(d: Deployment) -> bool:
    return d.jurisdiction == "KR" and d.hosting in ("on_prem", "domestic_cloud")


def _public_ok(d: Deployment) -> bool:
    return d.jurisdiction == "KR" and (
        d.hosting == "on_prem" or (d.hosting == "domestic_cloud" and {"CSAP-high", "CSAP-medium"} & set(d.certifications))
    )


def oracle(s: Scenario, d: Deployment, clear: set[str]) -> list[str]:
    """Violations of the pack texts by sending `clear` entity types unmasked to deployment d."""
    present = set(s.types)
    bad: list[str] = []
    if "kr-pipa" in s.packs:
        if present & UNIQUE_IDS and not _domestic(d):
            bad.append("unique identifier outside domestic hosting")
        if "SECRET" in present and d.hosting != "on_prem":
            bad.append("secret outside on-prem")
        if not _domestic(d) and clear & PERSONALISH:
            bad.append(f"personal data {sorted(clear & PERSONALISH)} abroad in clear")
        if s.topics and not _domestic(d) and clear & (PERSONALISH - {"CARD", "BANK_ACCOUNT"}):
            bad.append("identifiers with a sensitive topic abroad in clear")
    if "kr-public-n2sf" in s.packs:
        if s.grade == "C" and not (d.jurisdiction == "KR" and d.hosting == "on_prem"):
            bad.append("grade C outside on-prem")
        if s.grade == "S" and not _public_ok(d):
            bad.append("grade S outside on-prem / certified domestic cloud")
        if (present - {"SECRET"} or s.topics) and not _public_ok(d):
            bad.append("personal data to external AI under the public-sector pack")
    if "kr-finance" in s.packs:
        if present & {"CARD", "BANK_ACCOUNT"} and not _domestic(d):
            bad.append("credit data outside domestic hosting")
        if d.hosting != "on_prem" and f"{d.model}@{d.model_version}" != APPROVED:
            bad.append("unapproved external model version")
    if "kr-health" in s.packs and ("health" in s.topics or "medical" in s.domains) and not _domestic(d):
        bad.append("health data outside Korea")
    return bad


# --- routers under test --------------------------------------------------------------------------

class IgnoresPolicy(Router):
    """Broken on purpose: routes to every candidate, with the masks the verdicts happen to carry."""

    def plan(self, decision: Decision, deployments, estimated_tokens, strategy=None):
        return [RouteStep(deployments[v.deployment_id], v.mask_types) for v in decision.verdicts]


class DropsMasks(Router):
    """Broken on purpose: routes only eligible deployments, but forgets to mask."""

    def plan(self, decision, deployments, estimated_tokens, strategy=None):
        return [RouteStep(s.deployment) for s in super().plan(decision, deployments, estimated_tokens, strategy)]


class WidensOnFailure(Router):
    """Broken on purpose: appends excluded candidates as last-resort fallbacks."""

    def plan(self, decision, deployments, estimated_tokens, strategy=None):
        steps = super().plan(decision, deployments, estimated_tokens, strategy)
        extra = [RouteStep(deployments[v.deployment_id]) for v in decision.verdicts if not v.eligible]
        return steps + extra


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (no backoff, instant upstreams) without a loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("the fallback runner suspended unexpectedly")


def violations(s: Scenario, router_cls: type[Router] = Router) -> list[str]:
    """Run one request through decide → plan → fallback; list every residency violation."""
    cl = classification(*s.types, grade=s.grade, topics=s.topics, domains=s.domains)
    decision = engine_for(s.packs).decide(cl, Principal(team="t"), "alias", s.deployments, endpoint="chat")
    rs = RoutingSettings(strategy=s.strategy, retries=s.retries, backoff_seconds=0,
                         breaker_failures=s.breaker_failures)
    router = router_cls(rs, HealthBook(rs), rng=random.Random(s.seed))
    by_id = {d.id: d for d in s.deployments}
    try:
        steps = router.plan(decision, by_id, 100)
    except (PermissionDenied, ServiceUnavailable):
        return []
    outcomes = list(s.outcomes)
    received: list[tuple[Deployment, set[str], frozenset[str]]] = []

    async def attempt(step: RouteStep) -> str:
        # What the upstream would receive: the masked types as placeholders, the rest in clear.
        received.append((step.deployment, set(s.types) - step.mask_types, step.mask_types))
        error = _error(outcomes.pop(0)) if outcomes else None
        if error is not None:
            raise error
        return "ok"

    with contextlib.suppress(NuriError):
        run_now(run_with_fallback(steps, attempt, router.health, rs))
    found: list[str] = []
    for d, clear, masked in received:
        if d.id not in by_id:
            found.append(f"{d.id}: not a candidate")
        verdict = decision.verdict(d.id)
        if verdict is None or not verdict.eligible:
            found.append(f"{d.id}: attempted although excluded by {verdict and verdict.excluded_by}")
        elif not verdict.mask_types <= masked:
            found.append(f"{d.id}: {sorted(verdict.mask_types - masked)} sent in clear against its verdict")
        found.extend(f"{d.id} ({d.jurisdiction} {d.hosting}): {why}" for why in oracle(s, d, clear))
    return found


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_no_attempt_ever_holds_data_its_decision_forbids(s: Scenario) -> None:
    assert violations(s) == []


@pytest.mark.parametrize("broken", [IgnoresPolicy, DropsMasks, WidensOnFailure])
def test_the_property_catches_a_broken_router(broken: type[Router]) -> None:
    example = find(
        scenarios(), lambda s: bool(violations(s, broken)),
        settings=settings(max_examples=3000, deadline=None, database=None, phases=[Phase.generate], derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow]),
    )
    assert violations(example, broken)
    assert violations(example, Router) == []
