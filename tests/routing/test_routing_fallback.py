"""Fallback runner: retries only inside the given steps, backoff, breakers, non-retryable errors."""

from __future__ import annotations

import asyncio

import pytest
from policy_factories import dep

from nuri.config import RoutingSettings
from nuri.errors import InvalidRequest, ServiceUnavailable, UpstreamError, UpstreamTimeout
from nuri.routing.fallback import run_with_fallback
from nuri.routing.health import HealthBook
from nuri.routing.router import RouteStep


def steps(*ids: str) -> list[RouteStep]:
    return [RouteStep(dep(i), frozenset({"PHONE"}) if i.startswith("m") else frozenset()) for i in ids]


class Upstreams:
    """attempt() that fails per a script: {dep_id: [exception or None, ...]}."""

    def __init__(self, script: dict[str, list[Exception | None]]) -> None:
        self.script = script
        self.calls: list[tuple[str, frozenset[str]]] = []

    async def __call__(self, step: RouteStep) -> str:
        self.calls.append((step.deployment.id, step.mask_types))
        outcomes = self.script.get(step.deployment.id, [])
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is not None:
            raise outcome
        return f"reply from {step.deployment.id}"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def settings(**kw) -> RoutingSettings:
    return RoutingSettings(**{"retries": 2, "backoff_seconds": 0.1, "breaker_failures": 5, **kw})


def e500() -> UpstreamError:
    return UpstreamError("boom", upstream_status=500, retryable=True)


async def test_first_step_serves():
    up = Upstreams({})
    s = settings()
    result, step, records = await run_with_fallback(steps("a", "b"), up, HealthBook(s), s)
    assert result == "reply from a" and step.deployment.id == "a" and len(records) == 1


async def test_falls_back_in_order_on_retryable_errors_and_records():
    up = Upstreams({"a": [e500()], "b": [UpstreamTimeout("slow")]})
    s = settings()
    health = HealthBook(s)
    result, step, records = await run_with_fallback(steps("a", "b", "mc"), up, health, s, sleep=Sleeps())
    assert result == "reply from mc" and step.mask_types == frozenset({"PHONE"})
    assert [r.deployment_id for r in records] == ["a", "b", "mc"]
    assert [r.ok for r in records] == [False, False, True]
    assert up.calls[2] == ("mc", frozenset({"PHONE"}))        # the step's mask travels with it
    assert health.snapshot()["a"]["consecutive_failures"] == 1


async def test_retry_same_single_step_with_exponential_backoff():
    up = Upstreams({"a": [e500(), UpstreamError("429", upstream_status=429, retryable=True)]})
    s = settings(retries=3)
    sleeps = Sleeps()
    result, _, records = await run_with_fallback(steps("a"), up, HealthBook(s), s, sleep=sleeps)
    assert result == "reply from a" and len(records) == 3
    assert sleeps.delays == [0.1, 0.2]


async def test_budget_exhausted_raises_last_error_without_leaving_steps():
    up = Upstreams({"a": [e500()] * 5, "b": [e500()] * 5})
    s = settings(retries=3)
    with pytest.raises(UpstreamError):
        await run_with_fallback(steps("a", "b"), up, HealthBook(s), s, sleep=Sleeps())
    assert [c[0] for c in up.calls] == ["a", "b", "a", "b"]


async def test_non_retryable_error_is_raised_at_once():
    up = Upstreams({"a": [UpstreamError("bad request", upstream_status=400, retryable=False)]})
    s = settings()
    health = HealthBook(s)
    with pytest.raises(UpstreamError) as info:
        await run_with_fallback(steps("a", "b"), up, health, s)
    assert info.value.status == 400
    assert [c[0] for c in up.calls] == ["a"]
    assert health.state("a") == "closed" and health.snapshot()["a"]["consecutive_failures"] == 0


async def test_other_exceptions_propagate_unretried():
    up = Upstreams({"a": [InvalidRequest("no")]})
    s = settings()
    with pytest.raises(InvalidRequest):
        await run_with_fallback(steps("a", "b"), up, HealthBook(s), s)
    assert len(up.calls) == 1


async def test_open_breakers_are_skipped_and_all_open_is_503():
    s = settings(breaker_failures=1)
    health = HealthBook(s)
    health.record_failure("a", "500")
    up = Upstreams({})
    _, step, _ = await run_with_fallback(steps("a", "b"), up, health, s)
    assert step.deployment.id == "b" and [c[0] for c in up.calls] == ["b"]
    health.record_failure("b", "500")
    with pytest.raises(ServiceUnavailable, match="circuit open"):
        await run_with_fallback(steps("a", "b"), up, health, s)


async def test_breaker_opens_during_the_run_and_is_not_retried():
    s = settings(breaker_failures=1, retries=5)
    up = Upstreams({"a": [e500()] * 9, "b": [e500()] * 9})
    with pytest.raises(UpstreamError):
        await run_with_fallback(steps("a", "b"), up, HealthBook(s), s, sleep=Sleeps())
    assert [c[0] for c in up.calls] == ["a", "b"]


async def test_cancellation_frees_a_half_open_probe():
    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    s = settings(breaker_failures=1, breaker_reset_seconds=5)
    health = HealthBook(s, clock=clock)
    health.record_failure("a", "500")
    clock.now = 6

    async def hang(step: RouteStep) -> str:
        await asyncio.sleep(10)
        return "never"

    task = asyncio.create_task(run_with_fallback(steps("a"), hang, health, s))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert health.allow("a")


async def test_stream_records_ttft():
    s = settings()
    health = HealthBook(s)
    await run_with_fallback(steps("a"), Upstreams({}), health, s, stream=True)
    assert health.snapshot()["a"]["ttft_s"] is not None
