"""What every HTTP upstream adapter shares: a connection pool per deployment opened on first use,
reply size caps, and transport failures as the retryable errors routing knows.

The adapters (`openai_compatible.py`, `anthropic.py`) differ only in their wire format.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from nuri.catalog import Deployment
from nuri.errors import UpstreamError, UpstreamTimeout
from nuri.providers.base import Provider
from nuri.providers.egress import route
from nuri.providers.http1 import ConnectionPool, Response, ResponseTooLarge

MAX_REPLY_BYTES = 16 << 20       # a whole reply body (options.max_reply_bytes)
MAX_EVENT_BYTES = 1 << 20        # one SSE line or event (options.max_event_bytes)
ERROR_BODY_BYTES = 64 << 10      # an error reply is read this far for its message


class PooledHttpProvider(Provider):
    def __init__(self, deployment: Deployment, base_url: str, headers: dict[str, str]) -> None:
        super().__init__(deployment)
        self._pool: ConnectionPool | None = None
        self._route = route(deployment, base_url.rstrip("/"))
        self._headers = headers
        options = deployment.options or {}
        self._max_reply = int(options.get("max_reply_bytes", MAX_REPLY_BYTES))
        self._max_event = int(options.get("max_event_bytes", MAX_EVENT_BYTES))

    async def start(self) -> None:
        if self._pool is None:
            self._pool = self._route.pool(self._headers)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _malformed(self, what: str) -> UpstreamError:
        """A reply the gateway cannot use; another deployment may do better, so it is retryable."""
        return UpstreamError(f"deployment {self.deployment.id} sent {what}", retryable=True,
                             code="upstream_malformed")

    @staticmethod
    async def _error_body(resp: Response) -> bytes:
        """Enough of an error reply for its message; an oversized one is cut off, not buffered."""
        try:
            return await resp.read(ERROR_BODY_BYTES)
        except ResponseTooLarge:
            return b""

    @contextlib.contextmanager
    def _transport_errors(self, what: Callable[[ConnectionError], str]) -> Iterator[None]:
        """Timeouts and connection failures inside the block as the retryable errors routing knows."""
        try:
            yield
        except TimeoutError as exc:
            raise UpstreamTimeout(f"deployment {self.deployment.id} timed out") from exc
        except ConnectionError as exc:
            raise UpstreamError(f"deployment {self.deployment.id} {what(exc)}", retryable=True) from exc
