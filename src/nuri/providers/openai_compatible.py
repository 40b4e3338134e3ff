"""Any OpenAI-compatible HTTP upstream: vLLM, SGLang, TGI, llama.cpp server, Ollama, hosted APIs.

One pooled aiohttp session per deployment; connect and read timeouts from the catalog; streams
are relayed chunk by chunk as they arrive. Upstream failures become `UpstreamError` with
`retryable` set for the cases routing may retry elsewhere (5xx, 429, timeouts, dropped
connections), so fallback logic never has to look at HTTP details.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from nuri.errors import UpstreamError, UpstreamTimeout
from nuri.providers.base import Body, Provider
from nuri.providers.sse import iter_sse_data


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


class OpenAICompatibleProvider(Provider):
    def __init__(self, deployment: Any) -> None:
        super().__init__(deployment)
        self._session: aiohttp.ClientSession | None = None
        self._base = (deployment.base_url or "").rstrip("/")
        headers = {"Content-Type": "application/json"}
        if deployment.api_key is not None:
            headers["Authorization"] = f"Bearer {deployment.api_key.get_secret_value()}"
        self._headers = headers
        t = deployment.timeouts
        self._timeout = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.read)

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.deployment.max_concurrency, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=self._headers,
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _prepare(self, body: Body) -> bytes:
        payload = dict(body)
        payload["model"] = self.deployment.model or payload.get("model")
        return orjson.dumps(payload)

    async def _post(self, path: str, body: Body) -> Body:
        await self.start()
        assert self._session is not None
        url = self._base + path
        try:
            async with self._session.post(url, data=self._prepare(body)) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise self._status_error(resp.status, raw, resp.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise UpstreamTimeout(f"deployment {self.deployment.id} timed out") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"deployment {self.deployment.id} connection failed: {type(exc).__name__}", retryable=True
            ) from exc
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"deployment {self.deployment.id} returned invalid JSON", retryable=True
            ) from exc
        if not isinstance(data, dict):
            raise UpstreamError(f"deployment {self.deployment.id} returned a non-object reply", retryable=True)
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

    async def _stream(self, path: str, body: Body) -> AsyncIterator[Body]:
        await self.start()
        assert self._session is not None
        url = self._base + path
        try:
            async with self._session.post(url, data=self._prepare(body)) as resp:
                if resp.status >= 400:
                    raise self._status_error(resp.status, await resp.read(), resp.headers.get("Retry-After"))
                async for data in iter_sse_data(resp.content.iter_any()):
                    if data.strip() == b"[DONE]":
                        return
                    try:
                        event = orjson.loads(data)
                    except orjson.JSONDecodeError as exc:
                        raise UpstreamError(
                            f"deployment {self.deployment.id} sent a malformed stream event", retryable=True
                        ) from exc
                    if isinstance(event, dict) and "error" in event and "choices" not in event:
                        raise UpstreamError(
                            f"deployment {self.deployment.id} failed mid-stream: "
                            f"{_error_message(502, data)}", retryable=True)
                    yield event
        except TimeoutError as exc:
            raise UpstreamTimeout(f"deployment {self.deployment.id} timed out") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"deployment {self.deployment.id} dropped the connection mid-stream", retryable=True
            ) from exc
        raise UpstreamError(f"deployment {self.deployment.id} ended the stream without [DONE]", retryable=True)

    async def chat(self, body: Body) -> Body:
        return await self._post("/chat/completions", body)

    def stream_chat(self, body: Body) -> AsyncIterator[Body]:
        return self._stream("/chat/completions", body)

    async def complete(self, body: Body) -> Body:
        return await self._post("/completions", body)

    def stream_complete(self, body: Body) -> AsyncIterator[Body]:
        return self._stream("/completions", body)

    async def embed(self, body: Body) -> Body:
        return await self._post("/embeddings", body)
