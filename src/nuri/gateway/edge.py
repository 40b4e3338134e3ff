"""What the Responses and Messages endpoints share at the edge, around the one pipeline.

Both endpoints translate their wire format into a chat-completions request and hand it to
`pipeline.handle(..., body=...)`, which authenticates, classifies, decides, routes, masks,
restores, guards and records exactly as for chat completions. This module holds the pieces on
either side of that call: authenticating before translation (a bad key gets 401, not a 400
about a field), recording a request refused during translation (so every request still has
exactly one audit record), and reading back the pipeline's answer, whole or streamed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from nuri.errors import InternalError, NuriError
from nuri.gateway import pipeline
from nuri.gateway.context import RequestContext
from nuri.gateway.recording import Trail
from nuri.gateway.state import Gateway
from nuri.gateway.wire import read_json_body


@dataclass(slots=True)
class Edge:
    """One request of a translated API: its gateway, context and audit trail, opened when it came
    in and handed to the pipeline (`pipeline.handle(trail=...)`), so the request has one id, one
    clock and one record whether it is refused here or answered there."""

    request: Request
    gw: Gateway
    ctx: RequestContext
    trail: Trail

    @classmethod
    def of(cls, request: Request, endpoint: str) -> Edge:
        gw: Gateway = request.app.state.gateway
        ctx = RequestContext(endpoint=endpoint)
        return cls(request, gw, ctx, Trail(gw, ctx))

    async def authenticate(self) -> None:
        """The key is checked before the body is read or translated; the pipeline takes the principal."""
        await pipeline.authenticate(self.gw, self.request, self.ctx)

    async def read_body(self) -> dict[str, Any]:
        return await read_json_body(self.request, self.gw.config.server.max_body_bytes)

    async def refuse(self, exc: Exception) -> NuriError:
        """Record a request that ends before the pipeline (exactly one record); the error to send."""
        error = exc if isinstance(exc, NuriError) else self.trail.defect(exc)
        return await self.trail.finish(error.status, error) or error

    def headers(self) -> dict[str, str]:
        return self.ctx.headers()


def with_api_key(request: Request) -> Request:
    """The request with `x-api-key` presented as `Authorization: Bearer`, which the pipeline reads.

    Only when no Authorization header is present; the key itself is compared by the ledger as
    any other (constant time), so accepting it weakens nothing."""
    if "authorization" in request.headers:
        return request
    key = request.headers.get("x-api-key")
    if key is None:
        return request
    scope = dict(request.scope)
    scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"x-api-key"]
    scope["headers"].append((b"authorization", b"Bearer " + key.encode("latin-1", "replace")))
    return Request(scope, request.receive)


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    """The `error` object of a pipeline error answer or error event (message, type, code, param)."""
    err = body.get("error")
    return err if isinstance(err, dict) else {"message": str(err or "error"), "type": "server_error"}


def retranslate(response: StreamingResponse,
                translate: Callable[[AsyncIterator[dict[str, Any] | None]], AsyncIterator[bytes]]) -> Response:
    """The pipeline's stream response (asked `as_objects`: each chat chunk, or `{"error": …}`, then
    None for `[DONE]`), its body now the translated events. The response object is kept, so its
    own guarantee holds: however the client leaves, the request is recorded."""
    source = pipeline.objects_of(response)
    response.body_iterator = _closing(translate(source), source)
    return response


async def _closing(events: AsyncIterator[bytes], source: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """Relay the translated events; on any end (client gone included) close both generators, the
    source last, so the pipeline's relay runs its `finally` and records."""
    try:
        async for event in events:
            yield event
    finally:
        for gen in (events, source):
            aclose = getattr(gen, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()


def sse(event: str, payload: dict[str, Any]) -> bytes:
    """One named server-sent event, as the Responses and Messages streams send them."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def stream_error(exc: BaseException) -> dict[str, Any]:
    """A failure inside a translated stream, as an error object (the type only: no message text)."""
    if isinstance(exc, NuriError):
        return exc.to_dict()["error"]
    return InternalError("internal error while translating the stream").to_dict()["error"]
