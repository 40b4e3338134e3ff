"""Strategies over the eligible set; never a non-eligible deployment; 403 vs 503."""

from __future__ import annotations

import random

import pytest
from policy_factories import catalog, classification, dep, engine

from nuri.catalog import Price
from nuri.config import RoutingSettings
from nuri.errors import InvalidRequest, PermissionDenied, ServiceUnavailable
from nuri.policy.decision import Decision, Verdict
from nuri.principal import Principal
from nuri.routing.health import HealthBook
from nuri.routing.router import Router


def decision_for(ids: list[str], masks: dict[str, frozenset[str]] | None = None,
                 excluded: tuple[str, ...] = ()) -> Decision:
    masks = masks or {}
    verdicts = [Verdict(i, i not in excluded, masks.get(i, frozenset()), "r" if i in excluded else None)
                for i in ids]
    return Decision(action="allow", verdicts=verdicts, requested="alias")


def deps(*items):
    return {d.id: d for d in items}


def router(**kw) -> Router:
    settings = RoutingSettings(**kw)
    return Router(settings, HealthBook(settings), rng=random.Random(7))


def ids(steps):
    return [s.deployment.id for s in steps]


def test_priority_keeps_alias_order_and_drops_excluded():
    d = deps(dep("a"), dep("b"), dep("c"))
    steps = router().plan(decision_for(["c", "a", "b"], excluded=("a",)), d, 100)
    assert ids(steps) == ["c", "b"]


def test_steps_carry_mask_types_from_verdicts():
    d = deps(dep("a"), dep("b", "US", "foreign_cloud"))
    steps = router().plan(decision_for(["a", "b"], {"b": frozenset({"PHONE"})}), d, 100)
    assert [s.mask_types for s in steps] == [frozenset(), frozenset({"PHONE"})]


def test_cost_orders_by_price_times_tokens():
    d = deps(
        dep("dear", price=Price(input_per_mtok=3, output_per_mtok=15)),
        dep("cheap-in", price=Price(input_per_mtok=0.1, output_per_mtok=10)),
        dep("cheap-out", price=Price(input_per_mtok=1, output_per_mtok=1)),
    )
    r = router(expected_completion_tokens=100)
    assert ids(r.plan(decision_for(["dear", "cheap-in", "cheap-out"]), d, 10_000, "cost")) == [
        "cheap-in", "cheap-out", "dear"]
    r = router(expected_completion_tokens=10_000)
    assert ids(r.plan(decision_for(["dear", "cheap-in", "cheap-out"]), d, 100, "cost")) == [
        "cheap-out", "cheap-in", "dear"]


def test_latency_unknown_first_then_fastest():
    r = router()
    d = deps(dep("slow"), dep("fast"), dep("new"))
    r.health.record_success("slow", 2.0)
    r.health.record_success("fast", 0.1)
    assert ids(r.plan(decision_for(["slow", "fast", "new"]), d, 10, "latency")) == ["new", "fast", "slow"]


def test_weighted_follows_weights_and_is_seeded():
    d = deps(dep("heavy", weight=9), dep("light", weight=1), dep("off", weight=0))
    r = router()
    firsts = [ids(r.plan(decision_for(["light", "heavy", "off"]), d, 10, "weighted"))[0] for _ in range(2000)]
    share = firsts.count("heavy") / len(firsts)
    assert 0.85 < share < 0.95
    assert "off" not in firsts
    a = [ids(Router(RoutingSettings(), HealthBook(RoutingSettings()), random.Random(1)).plan(
        decision_for(["light", "heavy"]), d, 10, "weighted")) for _ in range(5)]
    b = [ids(Router(RoutingSettings(), HealthBook(RoutingSettings()), random.Random(1)).plan(
        decision_for(["light", "heavy"]), d, 10, "weighted")) for _ in range(5)]
    assert a == b


def test_open_breakers_are_left_out_and_all_open_is_503_not_wider():
    r = router(breaker_failures=1)
    d = deps(dep("a"), dep("b"), dep("c", "US", "foreign_cloud"))
    r.health.record_failure("a", "500")
    decision = decision_for(["a", "b", "c"], excluded=("c",))
    assert ids(r.plan(decision, d, 10)) == ["b"]
    r.health.record_failure("b", "timeout")
    with pytest.raises(ServiceUnavailable) as info:
        r.plan(decision, d, 10)
    assert "a: circuit open" in info.value.message and "b: circuit open" in info.value.message
    assert "c:" not in info.value.message


def test_nothing_eligible_is_403_naming_the_rules():
    deployments = catalog()
    e = engine(deployments=deployments)
    decision = e.decide(classification("KR_RRN"), Principal(), "global", [deployments[2]])
    with pytest.raises(PermissionDenied) as info:
        router().plan(decision, {d.id: d for d in deployments}, 10)
    assert "pipa-unique-id-domestic" in info.value.message
    assert info.value.headers == {}      # HTTP headers are the gateway's (tests/routing/test_routing_refusal_headers.py)


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError, match="routing.strategy"):
        router(strategy="fastest")
    with pytest.raises(InvalidRequest):
        router().plan(decision_for(["a"]), deps(dep("a")), 10, "fastest")


def test_tier_strategies():
    r = router(tier_strategies={"interactive": "latency"})
    assert r.strategy_for("interactive") == "latency" and r.strategy_for("batch") == "priority"
