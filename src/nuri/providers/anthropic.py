"""Anthropic's Messages API as an upstream (`provider: anthropic`).

The gateway hands every adapter a chat-completions body, already masked for this deployment; this
adapter translates it into a Messages request (system messages → `system`, tool calls → `tool_use`
blocks, tool messages → `tool_result` blocks, images → image blocks), posts it to
`{base_url}/messages` with `x-api-key` and `anthropic-version`, and translates the Message, or
the event stream, back into chat completions. The gateway therefore restores, guards and records
the reply exactly as for any other deployment.

Options: `anthropic_version` (default 2023-06-01), `default_max_tokens` (when the request names
none; Messages requires it, default 4096), `max_reply_bytes`, `max_event_bytes`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from nuri.errors import InvalidRequest, UpstreamError
from nuri.providers.base import Body, text_of
from nuri.providers.egress import credential_headers, describe
from nuri.providers.http1 import Response, ResponseTooLarge
from nuri.providers.pooled import PooledHttpProvider
from nuri.providers.replies import chunk_fault, reply_fault
from nuri.providers.sse import EventTooLarge, iter_sse_data

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
           "refusal": "content_filter", "pause_turn": "stop"}


def _finish(reason: Any) -> str:
    """Chat's finish reason for a Messages stop reason; an unknown one, or one that is not a
    string at all, is a plain stop."""
    return _FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"


# --- chat completions → Messages request ------------------------------------------------------------


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """Chat content (a string or parts) as Messages content blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str):
                blocks.append(_image(url))
        elif kind == "file":
            data = (part.get("file") or {}).get("file_data")
            if isinstance(data, str) and data.startswith("data:") and ";base64," in data:
                media, payload = data[5:].split(";base64,", 1)
                blocks.append({"type": "document", "source": {"type": "base64", "media_type": media,
                                                              "data": payload}})
        else:
            raise InvalidRequest(f"content part type {kind!r} cannot be sent to a Messages deployment")
    return blocks


def _arguments(text: Any) -> Any:
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"arguments": text}
    return value if isinstance(value, dict) else {"value": value}


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Messages alternate user / assistant: consecutive turns of one role are joined."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _output_format(response_format: Any) -> dict[str, Any] | None:
    """Chat's `response_format` as a Messages `output_config.format`: a JSON schema is structured
    output there too; JSON without a schema has no counterpart."""
    if response_format in (None, {"type": "text"}):
        return None
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return {"type": "json_schema", "schema": schema}
    raise InvalidRequest("response_format: only a json_schema can be sent to a Messages deployment",
                         param="response_format")


def to_messages(body: Body, model: str, default_max_tokens: int) -> Body:
    """A chat-completions body as a Messages request."""
    if int(body.get("n") or 1) > 1:
        raise InvalidRequest("n > 1 cannot be sent to a Messages deployment", param="n")
    output_format = _output_format(body.get("response_format"))
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for msg in body.get("messages") or []:
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(text_of(msg.get("content")))
        elif role == "user":
            _append(messages, "user", _blocks(msg.get("content")))
        elif role == "assistant":
            blocks = _blocks(msg.get("content"))
            for call in msg.get("tool_calls") or []:
                fn = call.get("function") or {}
                blocks.append({"type": "tool_use", "id": call.get("id") or "toolu_" + secrets.token_hex(12),
                               "name": fn.get("name") or "", "input": _arguments(fn.get("arguments"))})
            _append(messages, "assistant", blocks)
        elif role in ("tool", "function"):
            _append(messages, "user", [{"type": "tool_result", "tool_use_id": msg.get("tool_call_id") or "",
                                        "content": text_of(msg.get("content"))}])
    out: Body = {"model": model, "messages": messages,
                 "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens}
    if system:
        out["system"] = "\n\n".join(system)
    if output_format is not None:
        out["output_config"] = {"format": output_format}
    if body.get("stop") is not None:
        out["stop_sequences"] = [body["stop"]] if isinstance(body["stop"], str) else list(body["stop"])
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)    # Messages takes 0..1
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("tools"):
        out["tools"] = [{"name": (t.get("function") or {}).get("name"),
                         "description": (t.get("function") or {}).get("description") or "",
                         "input_schema": (t.get("function") or {}).get("parameters") or {"type": "object"}}
                        for t in body["tools"] if isinstance(t, dict)]
    choice = body.get("tool_choice")
    if choice is not None and body.get("tools"):
        if isinstance(choice, dict):
            out["tool_choice"] = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
        else:
            out["tool_choice"] = {"type": {"required": "any"}.get(choice, choice)}
        if body.get("parallel_tool_calls") is False:
            out["tool_choice"]["disable_parallel_tool_use"] = True
    if body.get("user") is not None:
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


# --- Messages answer → chat completions ---------------------------------------------------------------


def _usage(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, dict) else {}
    prompt = sum(int(usage.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                                   "cache_read_input_tokens"))
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def from_message(data: Body) -> Body:
    """A Message as a chat completion."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"),
                                       "arguments": orjson.dumps(block.get("input") or {}).decode()}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return {"id": data.get("id") or "msg", "object": "chat.completion", "created": int(time.time()),
            "model": data.get("model"),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": _finish(data.get("stop_reason"))}],
            "usage": _usage(data.get("usage"))}


class _Chunks:
    """Messages stream events → chat-completion chunks."""

    def __init__(self) -> None:
        self.id = "msg"
        self.model: str | None = None
        self.created = int(time.time())
        self.tools: dict[int, int] = {}        # block index → tool-call index
        self.usage: dict[str, Any] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Body:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def event(self, event: Body) -> list[Body]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id, self.model = message.get("id") or self.id, message.get("model")
            self.usage.update(message.get("usage") or {})
            _usage(self.usage)          # counts that are no numbers fail here, before the first chunk
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self.tools)
                self.tools[int(event.get("index", 0))] = index
                return [self._chunk({"tool_calls": [{"index": index, "id": block.get("id"), "type": "function",
                                                     "function": {"name": block.get("name"), "arguments": ""}}]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text") or ""})]
            if delta.get("type") == "input_json_delta":
                index = self.tools.get(int(event.get("index", 0)), 0)
                return [self._chunk({"tool_calls": [{"index": index,
                                                     "function": {"arguments": delta.get("partial_json") or ""}}]})]
            return []                                         # thinking and signatures are not relayed
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            reason = (event.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, _finish(reason))]
        if kind == "message_stop":
            return [{"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                     "choices": [], "usage": _usage(self.usage)}]
        return []                                             # ping and unknown events


def _error_message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
    except orjson.JSONDecodeError:
        pass
    return raw[:200].decode("utf-8", errors="replace")


class AnthropicProvider(PooledHttpProvider):
    def __init__(self, deployment: Any) -> None:
        options = deployment.options or {}
        super().__init__(deployment, deployment.base_url or DEFAULT_BASE_URL, {
            "Content-Type": "application/json",
            "anthropic-version": str(options.get("anthropic_version", DEFAULT_VERSION)),
            **credential_headers(deployment, native=("x-api-key", "")),
        })
        self._max_tokens = int(options.get("default_max_tokens", DEFAULT_MAX_TOKENS))

    def _payload(self, body: Body) -> bytes:
        model = self.deployment.model or str(body.get("model") or "")
        return orjson.dumps(to_messages(body, model, self._max_tokens))

    async def _status_error(self, resp: Response) -> UpstreamError:
        raw = await self._error_body(resp)
        status = resp.status
        message = f"deployment {self.deployment.id} answered {status}: {_error_message(raw)}"
        if status == 429:
            err = UpstreamError(message, upstream_status=429, retryable=True, code="upstream_rate_limited")
            if resp.headers.get("Retry-After"):
                err.headers["retry-after"] = str(resp.headers.get("Retry-After"))
            return err
        if status >= 500:                                  # 529: overloaded
            return UpstreamError(message, upstream_status=status, retryable=True)
        return UpstreamError(message, upstream_status=status, retryable=status == 408, code="upstream_rejected")

    async def chat(self, body: Body) -> Body:
        await self.start()
        assert self._pool is not None
        with self._transport_errors(lambda exc: f"connection failed: {describe(exc)}"):
            resp = await self._pool.request("POST", "/messages", self._payload(body))
            if resp.status >= 400:
                raise await self._status_error(resp)
            try:
                raw = await resp.read(self._max_reply)
            except ResponseTooLarge as exc:
                raise self._malformed(f"a reply body over {self._max_reply} bytes") from exc
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise self._malformed("invalid JSON") from exc
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise self._malformed("a reply without a content list")
        try:
            reply = from_message(data)
        except (AttributeError, TypeError, ValueError) as exc:     # a part of the wrong shape
            raise self._malformed("a malformed reply") from exc
        fault = reply_fault(reply, "chat")
        if fault is not None:
            raise self._malformed(f"a malformed reply: {fault}")
        return reply

    async def stream_chat(self, body: Body) -> AsyncIterator[Body]:
        await self.start()
        assert self._pool is not None
        resp: Response | None = None
        linger = 0.0
        chunks = _Chunks()
        try:
            with self._transport_errors(lambda _exc: "dropped the connection mid-stream"):
                resp = await self._pool.request("POST", "/messages", self._payload({**body, "stream": True}))
                if resp.status >= 400:
                    raise await self._status_error(resp)
                try:
                    async for data in iter_sse_data(resp, self._max_event):
                        try:
                            event = orjson.loads(data)
                        except orjson.JSONDecodeError as exc:
                            raise self._malformed("a stream event that is not JSON") from exc
                        if not isinstance(event, dict):
                            raise self._malformed("a stream event that is not an object")
                        if event.get("type") == "error":
                            raise UpstreamError(f"deployment {self.deployment.id} failed mid-stream: "
                                                f"{_error_message(data)}", retryable=True)
                        try:
                            translated = chunks.event(event)
                        except (AttributeError, TypeError, ValueError) as exc:   # a part of the wrong shape
                            raise self._malformed("a malformed stream event") from exc
                        for chunk in translated:
                            fault = chunk_fault(chunk)
                            if fault is not None:
                                raise self._malformed(f"a malformed stream event: {fault}")
                            yield chunk
                        if event.get("type") == "message_stop":
                            linger = 1.0          # let the upstream end its message: the connection is reused
                            return
                except EventTooLarge as exc:
                    raise self._malformed(f"a stream line or event over {self._max_event} bytes") from exc
        finally:
            if resp is not None:
                resp.close(linger)
        raise UpstreamError(f"deployment {self.deployment.id} ended the stream without message_stop", retryable=True)
