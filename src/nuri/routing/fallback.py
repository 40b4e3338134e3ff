"""Try route steps in order, with retries and backoff, never outside the given steps.

Contract with the caller (the gateway):

* `steps` come from `Router.plan`, so every one is eligible and carries its mask types; this
  runner never adds a deployment and passes each step unchanged to `attempt`.
* Attempts budget: 1 + settings.retries in total, across the steps. Steps are tried in order;
  after the last step the runner comes back to the first (with exponential backoff before a
  deployment is tried again). A step whose breaker is open is skipped.
* Retryable errors (UpstreamError.retryable: 5xx, 429, timeout, dropped connection) move on;
  any other error is raised at once. Client-side 4xx errors do not count against a breaker.
* Streams: `attempt` must return only after the first chunk has arrived from the upstream and
  before anything has been sent to the client. Once it returns, the runner is done: nothing is
  retried after the first streamed byte has reached the client; a later failure is the
  stream's own error event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from nuri.config import RoutingSettings
from nuri.errors import ServiceUnavailable, UpstreamError
from nuri.routing.health import HealthBook
from nuri.routing.router import RouteStep

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One try, for the audit record and metrics (no request data)."""

    deployment_id: str
    mask_types: frozenset[str]
    ok: bool
    latency_s: float
    error: str | None = None
    status: int | None = None
    retryable: bool = False


async def run_with_fallback(
    steps: list[RouteStep],
    attempt: Callable[[RouteStep], Awaitable[T]],
    health: HealthBook,
    settings: RoutingSettings,
    *,
    stream: bool = False,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[T, RouteStep, list[AttemptRecord]]:
    """Return (result, the step that served it, every attempt); raise the last error otherwise.

    With `stream=True` the attempt's duration is recorded as time to first token.
    """
    if not steps:
        raise ServiceUnavailable("no route to try")
    records: list[AttemptRecord] = []
    budget = 1 + settings.retries
    tried: dict[str, int] = {}
    last_error: UpstreamError | None = None
    index = 0
    skipped_in_a_row = 0
    while len(records) < budget:
        step = steps[index % len(steps)]
        index += 1
        dep_id = step.deployment.id
        if not health.allow(dep_id):
            skipped_in_a_row += 1
            if skipped_in_a_row >= len(steps):
                break      # every step's breaker is open: do not spin, and do not widen
            continue
        skipped_in_a_row = 0
        rounds = tried.get(dep_id, 0)
        if rounds and settings.backoff_seconds > 0:
            await sleep(settings.backoff_seconds * (2 ** (rounds - 1)))
        tried[dep_id] = rounds + 1
        started = clock()
        try:
            result = await attempt(step)
        except UpstreamError as exc:
            elapsed = clock() - started
            records.append(
                AttemptRecord(dep_id, step.mask_types, False, elapsed, exc.message, exc.upstream_status, exc.retryable)
            )
            if not exc.retryable:
                health.release(dep_id)
                raise
            health.record_failure(dep_id, exc.code or "upstream_error")
            last_error = exc
            continue
        except BaseException:
            health.abandon(dep_id)   # cancelled or a local error: says nothing about the upstream
            raise
        elapsed = clock() - started
        health.record_success(dep_id, elapsed, elapsed if stream else None)
        records.append(AttemptRecord(dep_id, step.mask_types, True, elapsed))
        return result, step, records
    if last_error is not None:
        raise last_error
    why = "; ".join(f"{s.deployment.id}: {health.describe(s.deployment.id)}" for s in steps)
    raise ServiceUnavailable(f"no healthy deployment among those policy allows ({why})")
