"""Bounded work: how much one request, and one client, may make the gateway do.

- In-flight requests per key are capped (`server.max_concurrent_per_key`, 429 with Retry-After);
  a slot is held by the request's task, so it is released however the request ends: reply,
  error, end of a stream, or a client that went away.
- Large bodies are classified on a worker thread (`server.classify_inline_max_bytes`), so a scan
  of megabytes of text does not stall /healthz and every other request on the event loop.
- `n × max_tokens` is what a request may generate; it is reserved in admission and checked
  against each candidate's `max_output_tokens`.
- A request over the scan cap under `privacy.over_limit: keep_home` goes only to domestic
  deployments of the home jurisdiction, whatever the packs say: it was not scanned in full.
- `FairQueue` gives turns on a shared resource (the embedded model) round-robin between
  clients, first come first served within one, with a bounded number waiting.

Limits are per replica: they bound the work of this process, which is what they protect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from nuri.catalog import Deployment
from nuri.errors import InternalError, InvalidRequest, PermissionDenied, RateLimited, ServiceUnavailable
from nuri.principal import Principal
from nuri.privacy.classify import OVER_SCAN_LIMIT, classify_request
from nuri.privacy.types import Classification

DEFAULT_MAX_TOKENS = 256          # what a request that names no max_tokens is assumed to ask for
POLL_SECONDS = 0.25               # how often a waiting request checks that its client is still there

Probe = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Client:
    """Who a request's work is done for: the fair queue's key and a check that it still waits."""

    key: str
    gone: Probe | None = None


LOCAL = Client("local")
_client: ContextVar[Client] = ContextVar("nuri_client", default=LOCAL)


def current_client() -> Client:
    """The client of the request being served (LOCAL outside a gateway request)."""
    return _client.get()


def client_gone() -> InternalError:
    return InternalError("the client closed the connection", code="client_closed", status=499)


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

    _client.set(Client(key, gone))


# -- classification off the event loop -------------------------------------------------------
# One thread: the scanner is pure Python, so more threads would only share the GIL; one keeps
# large scans from piling up in parallel while the loop keeps its share of the interpreter.
_classify_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nuri-classify")


async def classifier_for(request: Request, body: dict[str, Any], endpoint: str, scanner: Any,
                         inline_max_bytes: int) -> Callable[[dict[str, Any], str, Any], Classification] | None:
    """None for a small body (classified inline: a thread hop costs more than its scan); for a
    large one, the classification done on a worker thread, as a classifier `evaluate` takes, so its
    failures still fail closed there."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) <= inline_max_bytes:
        return None
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(_classify_pool, classify_request, body, endpoint, scanner)
    except Exception as exc:
        failure = exc

        def failed(_body: dict[str, Any], _endpoint: str, _scanner: Any) -> Classification:
            raise failure
        return failed
    return lambda _body, _endpoint, _scanner: result


# -- output tokens ---------------------------------------------------------------------------
def requested_output(body: dict[str, Any]) -> int:
    """n × max_tokens: the tokens a request may make a model generate."""
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    tokens = value if type(value) is int and value > 0 else DEFAULT_MAX_TOKENS
    n = body.get("n")
    return tokens * (n if type(n) is int and n > 1 else 1)


def within_output_caps(candidates: list[Deployment], body: dict[str, Any]) -> list[Deployment]:
    """The candidates whose `max_output_tokens` allows this request; 400 naming the limit if none."""
    wanted = requested_output(body)
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


# -- a fair queue ----------------------------------------------------------------------------
class QueueFull(RateLimited):
    code = "queue_full"


class FairQueue:
    """One turn at a time on a shared resource. Waiting requests queue per client; when a turn
    ends the next one goes to the client after the last served, round-robin, so a burst from one
    client waits behind others' single requests instead of in front of them. At most `limit`
    requests wait in all and `per_client` per client (in-process callers, LOCAL, only the former);
    beyond that, 429 (503 when the whole queue is full)."""

    def __init__(self, limit: int = 32, per_client: int = 8) -> None:
        self.limit = limit
        self.per_client = per_client
        self._busy = False
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._count = 0
        self._last: str | None = None       # the client whose turn it is, or was last

    @property
    def waiting(self) -> int:
        return self._count

    @contextlib.asynccontextmanager
    async def turn(self, client: str, gone: Probe | None = None) -> AsyncIterator[None]:
        """Wait for this client's turn (leaving the queue if the client goes away), hold it."""
        if not self._busy and not self._count:
            self._busy, self._last = True, client
        else:
            await self._wait(client, gone)
        try:
            yield
        finally:
            self._pass_on()

    async def _wait(self, client: str, gone: Probe | None) -> None:
        mine = self._waiting.get(client)
        if mine is not None and len(mine) >= self.per_client and client != LOCAL.key:
            raise QueueFull(f"this key already has {self.per_client} requests waiting for the embedded "
                            "model; retry when one has finished", headers={"retry-after": "1"})
        if self._count >= self.limit:
            raise ServiceUnavailable(f"the embedded model's queue is full ({self.limit} waiting); retry shortly",
                                     code="queue_full", headers={"retry-after": "1"})
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, deque()).append(future)
        self._count += 1
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=POLL_SECONDS if gone is not None else None)
                if not future.done() and gone is not None and await gone():
                    raise client_gone()
        except BaseException:
            if future.done():            # the turn came as we left: hand it on
                self._pass_on()
            else:
                self._forget(client, future)
            raise

    def _forget(self, client: str, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(client)
        if queue is not None and future in queue:
            queue.remove(future)
            self._count -= 1
            if not queue:
                del self._waiting[client]

    def _pass_on(self) -> None:
        if self._last in self._waiting and len(self._waiting) > 1:
            self._waiting.move_to_end(self._last)        # others first after a client's turn
        while self._waiting:
            client, queue = next(iter(self._waiting.items()))
            future = queue.popleft()
            self._count -= 1
            if queue:
                self._waiting.move_to_end(client)
            else:
                del self._waiting[client]
            if not future.done():
                future.set_result(None)
                self._last = client
                return
        self._busy = False
