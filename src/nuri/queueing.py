"""Turns on a shared resource, fairly between clients, for as long as each client still waits.

The embedded model serves one generation at a time. `FairQueue` gives turns round-robin between
clients (first come first served within one) with a bounded number waiting, and a waiting
request leaves the queue when its client goes away. The gateway binds each request's client
(`bind_client`); providers read it (`current_client`), so neither imports the other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

from nuri.errors import InternalError, RateLimited, ServiceUnavailable

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


def bind_client(client: Client) -> None:
    """Make `client` the current request's client (the gateway does this per request)."""
    _client.set(client)


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
        if self._last is not None and self._last in self._waiting and len(self._waiting) > 1:
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
