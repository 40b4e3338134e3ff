"""Any OpenAI-compatible HTTP upstream: vLLM, SGLang, TGI, llama.cpp server, Ollama, hosted APIs.

One keep-alive connection pool per deployment (`nuri.providers.http1`, a lean HTTP/1.1 client:
the gateway's latency budget leaves no room for a general-purpose one); connect, read and total
timeouts from the catalog; streams are relayed chunk by chunk as they arrive. Upstream failures
become `UpstreamError` with `retryable` set for the cases routing may retry elsewhere (5xx, 429,
timeouts, dropped connections), so fallback logic never has to look at HTTP details.

Replies are checked here (`replies.py`): a body over `options.max_reply_bytes` (default 16 MiB),
an SSE line or event over `options.max_event_bytes` (default 1 MiB), JSON that is not an object,
`choices` that is not a list of objects, a text that is not a string or a usage count that is not
a non-negative integer are all retryable `UpstreamError`s naming the field, never its content.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from nuri.errors import UpstreamError
from nuri.providers.base import Body
from nuri.providers.egress import credential_headers, describe
from nuri.providers.http1 import Response, ResponseTooLarge
from nuri.providers.pooled import PooledHttpProvider
from nuri.providers.replies import MAX_TOKENS, chunk_fault, reply_fault
from nuri.providers.sse import EventTooLarge, iter_sse_data

# The events that end a Responses stream (it has no `[DONE]`).
RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_RESPONSE_TEXTS = ("delta", "text", "arguments", "refusal")
_RESPONSE_USAGE = ("input_tokens", "output_tokens", "total_tokens")

# After `[DONE]` the upstream still has to end the HTTP message (e.g. the last empty chunk);
# giving it this long in the background keeps its connection reusable.
_DONE_LINGER = 1.0


def _error_message(status: int, raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
    except orjson.JSONDecodeError:
        pass
    return raw[:200].decode("utf-8", errors="replace") or f"HTTP {status}"


def response_fault(data: Any, where: str = "the reply") -> str | None:
    """The first field of a Response object that breaks its shape (`output` a list of objects,
    usage counts non-negative integers); None if it holds. Names the field, never its value."""
    if type(data) is not dict:
        return f"{where} (not a JSON object)"
    output = data.get("output")
    if output is not None and type(output) is not list:
        return "output"
    for i, item in enumerate(output or []):
        if type(item) is not dict:
            return f"output[{i}]"
    usage = data.get("usage")
    if usage is not None:
        if type(usage) is not dict:
            return "usage"
        for name in _RESPONSE_USAGE:
            value = usage.get(name)
            if value is not None and (type(value) is not int or not 0 <= value <= MAX_TOKENS):
                return f"usage.{name}"
    return None


def response_event_fault(event: Any) -> str | None:
    """The first field of one Responses stream event that breaks its shape; None if it holds."""
    if type(event) is not dict or type(event.get("type")) is not str:
        return "the event (not an object with a type)"
    for key in _RESPONSE_TEXTS:
        value = event.get(key)
        if value is not None and type(value) is not str:
            return key
    if "response" in event:
        return response_fault(event["response"], "response")
    return None


class OpenAICompatibleProvider(PooledHttpProvider):
    def __init__(self, deployment: Any) -> None:
        super().__init__(deployment, deployment.base_url or "",
                         {"Content-Type": "application/json", **credential_headers(deployment)})

    def _prepare(self, body: Body) -> bytes:
        payload = dict(body)
        payload["model"] = self.deployment.model or payload.get("model")
        return orjson.dumps(payload)

    async def _post(self, path: str, body: Body, endpoint: str) -> Body:
        await self.start()
        assert self._pool is not None
        with self._transport_errors(lambda exc: f"connection failed: {describe(exc)}"):
            resp = await self._pool.request("POST", path, self._prepare(body))
            if resp.status >= 400:
                raise self._status_error(resp.status, await self._error_body(resp), resp.headers.get("Retry-After"))
            try:
                raw = await resp.read(self._max_reply)   # releases the connection, or closes it on failure
            except ResponseTooLarge as exc:
                raise self._malformed(f"a reply body over {self._max_reply} bytes") from exc
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise self._malformed("invalid JSON") from exc
        fault = response_fault(data) if endpoint == "responses" else reply_fault(data, endpoint)
        if fault is not None:
            raise self._malformed(f"a malformed reply: {fault}")
        return data

    def _status_error(self, status: int, raw: bytes, retry_after: str | None = None) -> UpstreamError:
        retryable = status >= 500 or status in (408, 429)
        message = f"deployment {self.deployment.id} answered {status}: {_error_message(status, raw)}"
        if status == 429:
            err = UpstreamError(message, upstream_status=429, retryable=True, code="upstream_rate_limited")
            if retry_after:
                err.headers["retry-after"] = retry_after   # passed on to the client and to eval runs
            return err
        if status >= 500:
            return UpstreamError(message, upstream_status=status, retryable=True)
        return UpstreamError(message, upstream_status=status, retryable=retryable, code="upstream_rejected")

    async def _stream(self, path: str, body: Body, responses: bool = False) -> AsyncIterator[Body]:
        """Chat or completion chunks up to `[DONE]`; with `responses`, Responses events up to the
        one that ends the response (`response.completed`, `.incomplete`, `.failed`)."""
        await self.start()
        assert self._pool is not None
        resp: Response | None = None
        linger = 0.0
        try:
            with self._transport_errors(lambda _exc: "dropped the connection mid-stream"):
                resp = await self._pool.request("POST", path, self._prepare(body))
                if resp.status >= 400:
                    raise self._status_error(resp.status, await self._error_body(resp), resp.headers.get("Retry-After"))
                try:
                    async for data in iter_sse_data(resp, self._max_event):
                        if data.strip() == b"[DONE]":
                            linger = _DONE_LINGER
                            return
                        try:
                            event = orjson.loads(data)
                        except orjson.JSONDecodeError as exc:
                            raise self._malformed("a stream event that is not JSON") from exc
                        if isinstance(event, dict) and ("error" in event and "choices" not in event
                                                        or responses and event.get("type") == "error"):
                            raise UpstreamError(
                                f"deployment {self.deployment.id} failed mid-stream: "
                                f"{_error_message(502, data)}", retryable=True)
                        fault = response_event_fault(event) if responses else chunk_fault(event)
                        if fault is not None:
                            raise self._malformed(f"a malformed stream event: {fault}")
                        yield event
                        if responses and event["type"] in RESPONSES_TERMINAL:
                            linger = _DONE_LINGER
                            return
                except EventTooLarge as exc:
                    raise self._malformed(f"a stream line or event over {self._max_event} bytes") from exc
        finally:
            # Leaving early (client gone, bad event) closes the connection rather than pooling it
            # with unread bytes; closing is also how the upstream learns to stop generating.
            if resp is not None:
                resp.close(linger)
        end = "its final event" if responses else "[DONE]"
        raise UpstreamError(f"deployment {self.deployment.id} ended the stream without {end}", retryable=True)

    async def chat(self, body: Body) -> Body:
        return await self._post("/chat/completions", body, "chat")

    def stream_chat(self, body: Body) -> AsyncIterator[Body]:
        return self._stream("/chat/completions", body)

    async def complete(self, body: Body) -> Body:
        return await self._post("/completions", body, "completions")

    def stream_complete(self, body: Body) -> AsyncIterator[Body]:
        return self._stream("/completions", body)

    async def embed(self, body: Body) -> Body:
        return await self._post("/embeddings", body, "embeddings")

    async def responses(self, body: Body) -> Body:
        """A Responses request to an upstream that speaks the API (`responses: true`): a Response object."""
        return await self._post("/responses", body, "responses")

    def stream_responses(self, body: Body) -> AsyncIterator[Body]:
        """Its event stream: each event an object whose `type` is the SSE event's name."""
        return self._stream("/responses", body, responses=True)
