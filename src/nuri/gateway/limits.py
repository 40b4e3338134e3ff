"""Bounded work: how much one request, and one client, may make the gateway do.

- In-flight requests per key are capped (`server.max_concurrent_per_key`, 429 with Retry-After);
  a slot is held by the request's task, so it is released however the request ends: reply,
  error, end of a stream, or a client that went away.
- Large bodies are classified on a worker thread (`server.classify_inline_max_bytes`, done by
  the evaluator), so a scan of megabytes does not stall /healthz and every other request.
- `n × max_tokens` is what a request may generate; it is reserved in admission and checked
  against each candidate's `max_output_tokens`.
- A request over the scan cap under `privacy.over_limit: keep_home` goes only to domestic
  deployments of the home jurisdiction, whatever the packs say: it was not scanned in full.
- The request's client is bound for the fair queue on shared resources (`nuri.queueing`).

Limits are per replica: they bound the work of this process, which is what they protect.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from nuri.catalog import Deployment
from nuri.errors import InvalidRequest, PermissionDenied, RateLimited
from nuri.principal import Principal
from nuri.privacy.classify import OVER_SCAN_LIMIT
from nuri.privacy.types import Classification
from nuri.queueing import Client, bind_client

DEFAULT_MAX_TOKENS = 256          # what a request that names no max_tokens is assumed to ask for
# -- concurrency per key ---------------------------------------------------------------------
class Concurrency:
    """Requests in flight per key on this replica."""

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}

    def acquire(self, key: str, limit: int, task: asyncio.Task[Any] | None) -> None:
        """Take a slot for the life of `task`, or raise 429."""
        held = self.in_flight.get(key, 0)
        if limit and held >= limit:
            raise RateLimited(
                f"too many concurrent requests for this key: the limit is {limit} in flight "
                "(server.max_concurrent_per_key); retry when one has finished",
                code="concurrency_limit_exceeded", headers={"retry-after": "1"},
            )
        if task is None:        # no task to outlive: nothing would release the slot
            return
        self.in_flight[key] = held + 1
        task.add_done_callback(lambda _t: self._release(key))

    def _release(self, key: str) -> None:
        left = self.in_flight.get(key, 1) - 1
        if left > 0:
            self.in_flight[key] = left
        else:
            self.in_flight.pop(key, None)


def client_key(principal: Principal) -> str:
    return principal.key_id or f"team:{principal.team}"


def enter(request: Request, principal: Principal, max_concurrent: int) -> None:
    """Count the request against its key's concurrency limit and bind its client for the fair
    queue and disconnect checks. The slot is released when the request's task ends, which is
    after the last byte of a stream, or when the server cancels it for a client gone."""
    state = request.app.state
    concurrency: Concurrency | None = getattr(state, "nuri_concurrency", None)
    if concurrency is None:
        concurrency = state.nuri_concurrency = Concurrency()
    key = client_key(principal)
    concurrency.acquire(key, max_concurrent, asyncio.current_task())

    async def gone() -> bool:
        try:
            return await request.is_disconnected()
        except Exception:        # the connection's state cannot be read: assume the client waits
            return False

    bind_client(Client(key, gone))


# -- output tokens ---------------------------------------------------------------------------
def requested_output(body: dict[str, Any]) -> int:
    """n × max_tokens: the tokens a request may make a model generate."""
    value = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    tokens = value if type(value) is int and value > 0 else DEFAULT_MAX_TOKENS
    n = body.get("n")
    return tokens * (n if type(n) is int and n > 1 else 1)


def within_output_caps(candidates: list[Deployment], wanted: int) -> list[Deployment]:
    """The candidates whose `max_output_tokens` allows `wanted` (n × max_tokens) output tokens;
    400 naming the limit if none."""
    fitting = [d for d in candidates if d.max_output_tokens is None or wanted <= d.max_output_tokens]
    if fitting or not candidates:
        return fitting
    caps = ", ".join(f"{d.id}: {d.max_output_tokens}" for d in candidates)
    raise InvalidRequest(
        f"n × max_tokens is {wanted} output tokens; the most this model takes per request is "
        f"{max(d.max_output_tokens or 0 for d in candidates)} (max_output_tokens, {caps})",
        code="max_output_tokens_exceeded", param="max_tokens",
    )


# -- text over the scan cap ------------------------------------------------------------------
def keep_home(steps: list[Any], classification: Classification | None, home: str) -> list[Any]:
    """With text over the scan cap (keep_home), only domestic steps in `home`; 403 if none."""
    if classification is None or OVER_SCAN_LIMIT not in classification.unscanned:
        return steps
    kept = [s for s in steps if s.deployment.jurisdiction == home and s.deployment.is_domestic]
    if not kept:
        raise PermissionDenied(
            f"the request's text is over the scan limit (privacy.max_scan_chars) and was not scanned "
            f"in full; it may only go to a domestic deployment in {home}, and none is eligible",
            code="scan_limit_exceeded",
        )
    return kept
