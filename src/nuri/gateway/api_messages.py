"""POST /v1/messages: the Messages API, served through the chat-completions pipeline.

A request is translated into one chat-completions request (`system` → a system message, text /
image / document blocks → content parts, `tool_use` → tool calls, `tool_result` → tool messages,
tools and `tool_choice`, `stop_sequences`), which goes through `pipeline.handle` like any other:
the same classification of every string, decision, routing, masking, restoring, guarding and
audit record. The chat answer comes back as a Message, or, streamed, as the Messages event
stream (`message_start`, `content_block_start/delta/stop`, `message_delta`, `message_stop`).
Clients may send their Nuri key as `x-api-key`. Errors are in the Messages error shape:
`{"type": "error", "error": {"type", "message"}}`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from nuri.errors import InvalidRequest, NuriError
from nuri.gateway import pipeline
from nuri.gateway.edge import (
    Edge,
    error_of,
    retranslate,
    sse,
    stream_error,
    with_api_key,
)
from nuri.gateway.labels import first_event_label
from nuri.gateway.responses import JSONResponse, json_body, with_headers_of
from nuri.privacy import fields
from nuri.tokens import estimate_many

log = logging.getLogger("nuri.gateway")

# Accepted and not acted on: sampling, caching and account hints a chat upstream has no use for.
# `inference_geo` too: where a request may be processed is the policy's decision, made on what it holds.
_IGNORED = frozenset({"top_k", "thinking", "service_tier", "anthropic_version", "cache_control", "speed",
                      "inference_geo", "diagnostics", "user_profile_id", "workspace_id"})
_HANDLED = frozenset({"model", "messages", "system", "max_tokens", "metadata", "stop_sequences", "stream",
                      "temperature", "top_p", "tools", "tool_choice", "output_config"})
_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
# the name chat completions requires for a JSON schema, which Messages does not give one
_OUTPUT_SCHEMA_NAME = "output"
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
         "content_filter": "refusal"}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                503: "overloaded_error", 529: "overloaded_error"}


def error_body(status: int, error: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-shaped error object in the Messages error shape (Nuri's code kept alongside)."""
    out = {"type": _ERROR_TYPES.get(status, "api_error"), "message": error.get("message") or "error"}
    if error.get("code"):
        out["code"] = error["code"]
    return {"type": "error", "error": out}


def error_response(error: NuriError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(error.status, error.to_dict()["error"]), status_code=error.status,
                        headers={**error.headers, **(headers or {})})


def _need(cond: bool, message: str, param: str) -> None:
    if not cond:
        raise InvalidRequest(f"{param}: {message}", param=param)


# --- request: Messages → chat completions -----------------------------------------------------------


def _source(block: dict[str, Any], where: str) -> str:
    """An image or document source as a URL (a data: URL for base64)."""
    src: Any = block.get("source")
    _need(isinstance(src, dict), "needs a source object", f"{where}.source")
    kind = src.get("type")
    if kind == "base64":
        _need(isinstance(src.get("media_type"), str) and isinstance(src.get("data"), str),
              "a base64 source needs media_type and data", f"{where}.source")
        return f"data:{src['media_type']};base64,{src['data']}"
    if kind == "url":
        _need(isinstance(src.get("url"), str), "a url source needs url", f"{where}.source.url")
        return str(src["url"])
    raise InvalidRequest(f"{where}.source: source type {kind!r} is not supported", param=f"{where}.source.type")


def _block(block: dict[str, Any], where: str) -> dict[str, Any] | None:
    """A user or assistant content block (not tool_use / tool_result) as a chat content part."""
    kind = block.get("type")
    if kind == "text":
        _need(isinstance(block.get("text"), str), "must be a string", f"{where}.text")
        return {"type": "text", "text": block["text"]}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _source(block, where)}}
    if kind == "document":
        src = block.get("source") or {}
        if isinstance(src, dict) and src.get("type") == "text":
            _need(isinstance(src.get("data"), str), "a text source needs data", f"{where}.source.data")
            return {"type": "text", "text": src["data"]}
        file: dict[str, Any] = {"file_data": _source(block, where)}
        if isinstance(block.get("title"), str):
            file["filename"] = block["title"]
        return {"type": "file", "file": file}
    if kind in ("thinking", "redacted_thinking"):
        return None               # never produced here; dropped rather than sent on
    raise InvalidRequest(f"{where}: content block type {kind!r} is not supported", param=f"{where}.type")


def _tool_result(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tool_result block: the tool message, and the images it carried (sent as a user turn)."""
    _need(isinstance(block.get("tool_use_id"), str), "must be a string", f"{where}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for i, inner in enumerate(content):
            _need(isinstance(inner, dict), "must be an object", f"{where}.content[{i}]")
            part = _block(inner, f"{where}.content[{i}]")
            if part is None:
                continue
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                images.append(part)
    elif content is not None:
        raise InvalidRequest(f"{where}.content: must be a string or a list of blocks", param=f"{where}.content")
    text = "\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}, images


def _message(msg: Any, where: str) -> list[dict[str, Any]]:
    """One Messages message as chat messages (tool results become tool messages first)."""
    _need(isinstance(msg, dict), "must be an object", where)
    role = msg.get("role")
    _need(role in ("user", "assistant"), "must be user or assistant", f"{where}.role")
    content = msg.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    _need(isinstance(content, list), "must be a string or a list of content blocks", f"{where}.content")
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    late_images: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        at = f"{where}.content[{i}]"
        _need(isinstance(block, dict), "must be an object", at)
        kind = block.get("type")
        if kind == "tool_use" and role == "assistant":
            _need(isinstance(block.get("id"), str) and isinstance(block.get("name"), str),
                  "tool_use needs id and name", at)
            arguments = orjson.dumps(block.get("input") if block.get("input") is not None else {}).decode()
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": arguments}})
        elif kind == "tool_result" and role == "user":
            tool_msg, images = _tool_result(block, at)
            out.append(tool_msg)
            late_images += images
        else:
            part = _block(block, at)
            if part is not None:
                parts.append(part)
    parts = late_images + parts
    if role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        if text or calls:
            out.append(message)
    elif parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "\n".join(p["text"] for p in parts)
                    if only_text and len(parts) == 1 else parts})
    return out


def _system(system: Any) -> str | list[dict[str, Any]]:
    if isinstance(system, str):
        return system
    _need(isinstance(system, list), "must be a string or a list of text blocks", "system")
    parts = []
    for i, block in enumerate(system):
        _need(isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str),
              "must be a text block", f"system[{i}]")
        parts.append({"type": "text", "text": block["text"]})
    return parts[0]["text"] if len(parts) == 1 else parts


def _tools(tools: Any) -> list[dict[str, Any]]:
    _need(isinstance(tools, list), "must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        _need(isinstance(tool, dict), "must be an object", where)
        _need(tool.get("type") in (None, "custom"),
              f"tool type {tool.get('type')!r} is not supported (client tools with input_schema only)", where)
        _need(isinstance(tool.get("name"), str), "must be a string", f"{where}.name")
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
        if tool.get("description") is not None:
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any, chat: dict[str, Any]) -> None:
    _need(isinstance(choice, dict), "must be an object", "tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool":
        _need(isinstance(choice.get("name"), str), "must be a string", "tool_choice.name")
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise InvalidRequest(f"tool_choice: type {kind!r} is not supported", param="tool_choice.type")
    if choice.get("disable_parallel_tool_use") and chat.get("tools"):
        chat["parallel_tool_calls"] = False


def _refuse_unknown(obj: dict[str, Any], known: frozenset[str], prefix: str = "") -> None:
    """400 naming the first parameter (in sorted order) that is not in `known`."""
    unknown = sorted(k for k in obj if k not in known)
    if unknown:
        raise InvalidRequest(f"{prefix}{unknown[0]}: parameter not supported by Nuri's Messages API",
                             param=f"{prefix}{unknown[0]}", code="unsupported_parameter")


def _output_config(config: Any, chat: dict[str, Any]) -> None:
    """`output_config`: a JSON-schema `format` becomes chat's `response_format` (structured output);
    `effort` is checked and has no effect on a chat upstream."""
    _need(isinstance(config, dict), "must be an object", "output_config")
    _refuse_unknown(config, frozenset({"format", "effort"}), "output_config.")
    effort = config.get("effort")
    _need(effort is None or isinstance(effort, str) and effort in _EFFORTS,
          f"must be one of {', '.join(sorted(_EFFORTS))}", "output_config.effort")
    fmt = config.get("format")
    if fmt is None:
        return
    _need(isinstance(fmt, dict), "must be an object", "output_config.format")
    if fmt.get("type") != "json_schema":
        raise InvalidRequest(f"output_config.format: type {fmt.get('type')!r} is not supported (json_schema only)",
                             param="output_config.format.type")
    _need(isinstance(fmt.get("schema"), dict), "must be an object", "output_config.format.schema")
    chat["response_format"] = {"type": "json_schema",
                               "json_schema": {"name": _OUTPUT_SCHEMA_NAME, "schema": fmt["schema"]}}


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions request for a Messages request."""
    _refuse_unknown(body, _HANDLED | _IGNORED)
    _need(isinstance(body.get("model"), str), "required string", "model")
    mt = body.get("max_tokens")
    _need(type(mt) is int and mt >= 1, "required integer >= 1", "max_tokens")
    _need(isinstance(body.get("stream", False), bool), "must be a boolean", "stream")
    msgs: Any = body.get("messages")
    _need(isinstance(msgs, list) and len(msgs) > 0, "required non-empty list", "messages")
    messages: list[dict[str, Any]] = []
    if body.get("system") is not None:
        messages.append({"role": "system", "content": _system(body["system"])})
    for i, msg in enumerate(msgs):
        messages += _message(msg, f"messages[{i}]")
    _need(len(messages) > 0, "holds no content", "messages")
    chat: dict[str, Any] = {"model": body["model"], "messages": messages, "max_tokens": mt}
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], chat)
    if body.get("stop_sequences") is not None:
        stops = body["stop_sequences"]
        _need(isinstance(stops, list) and all(isinstance(s, str) for s in stops), "must be a list of strings",
              "stop_sequences")
        if stops:
            chat["stop"] = stops
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("output_config") is not None:
        _output_config(body["output_config"], chat)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id") is not None:
        chat["user"] = metadata["user_id"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


# --- answer: chat completion → Message ---------------------------------------------------------------


def _message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def _input(arguments: Any) -> Any:
    """Tool-call arguments as a tool_use `input` object."""
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _usage(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, dict) else {}
    return {"input_tokens": int(usage.get("prompt_tokens") or 0), "output_tokens": int(usage.get("completion_tokens")
                                                                                        or 0),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def from_chat(reply: dict[str, Any]) -> dict[str, Any]:
    choices = reply.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict) and isinstance(p.get("text"), str))
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        content.append({"type": "text", "text": message["refusal"]})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or "toolu_" + secrets.token_hex(12),
                        "name": fn.get("name") or "", "input": _input(fn.get("arguments"))})
    out = {"id": _message_id(), "type": "message", "role": "assistant", "model": reply.get("model"),
           "content": content, "stop_reason": _STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
           "stop_sequence": None, "usage": _usage(reply.get("usage"))}
    if isinstance(reply.get("nuri"), dict):
        out["nuri"] = reply["nuri"]
    return out


class _StreamWriter:
    """Builds the Messages events from chat chunks: one content block open at a time."""

    def __init__(self) -> None:
        self.id = _message_id()
        self.index = -1                          # the open block's index, -1 for none
        self.kind: str | None = None             # "text" or "tool_use"
        self.calls: dict[int, int] = {}          # chat tool-call index → block index
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.nuri: dict[str, Any] | None = None   # Nuri's additions (AI notice, citations)

    def start(self, model: str | None, nuri: dict[str, Any] | None = None) -> bytes:
        message: dict[str, Any] = {"id": self.id, "type": "message", "role": "assistant", "model": model,
                                   "content": [], "stop_reason": None, "stop_sequence": None,
                                   "usage": {"input_tokens": 0, "output_tokens": 0}}
        if nuri:
            message["nuri"] = nuri
        return sse("message_start", {"type": "message_start", "message": message})

    def _open(self, block: dict[str, Any], kind: str) -> list[bytes]:
        out = self._close()
        self.index += 1
        self.kind = kind
        out.append(sse("content_block_start", {"type": "content_block_start", "index": self.index,
                                               "content_block": block}))
        return out

    def _close(self) -> list[bytes]:
        if self.kind is None:
            return []
        self.kind = None
        return [sse("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        out: list[bytes] = []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("nuri"), dict):
            self.nuri = {**(self.nuri or {}), **chunk["nuri"]}
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    if self.kind != "text":
                        out += self._open({"type": "text", "text": ""}, "text")
                    out.append(sse("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                           "delta": {"type": "text_delta", "text": text}}))
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    out += self._call(call)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return b"".join(out)

    def _call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        fn = call.get("function") or {}
        index = call.get("index", 0)
        if index not in self.calls:
            block: dict[str, Any] = {"type": "tool_use", "id": call.get("id") or "toolu_" + secrets.token_hex(12),
                     "name": fn.get("name") or "", "input": {}}
            out += self._open(block, "tool_use")
            self.calls[index] = self.index
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            out.append(sse("content_block_delta", {"type": "content_block_delta", "index": self.calls[index],
                                                   "delta": {"type": "input_json_delta", "partial_json": args}}))
        return out

    def end(self) -> bytes:
        usage = _usage(self.usage)
        out = self._close()
        delta: dict[str, Any] = {
            "type": "message_delta", "delta": {"stop_reason": _STOP.get(self.finish or "stop", "end_turn"),
                                               "stop_sequence": None},
            "usage": {"input_tokens": usage["input_tokens"], "output_tokens": usage["output_tokens"]}}
        if self.nuri:
            delta["nuri"] = self.nuri
        out.append(sse("message_delta", delta))
        out.append(sse("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    @staticmethod
    def error(status: int, error: dict[str, Any]) -> bytes:
        return sse("error", error_body(status, error))


async def _stream(chunks: AsyncIterator[dict[str, Any] | None], model: str | None,
                  nuri: dict[str, Any] | None = None) -> AsyncIterator[bytes]:
    writer = _StreamWriter()
    yield writer.start(model, nuri)
    try:
        async for chunk in chunks:
            if chunk is None:
                yield writer.end()
                return
            if "error" in chunk and "choices" not in chunk:
                yield writer.error(500, error_of(chunk))
                return
            out = writer.chunk(chunk)
            if out:
                yield out
        yield writer.error(500, {"message": "the stream ended before it was complete", "code": "stream_ended"})
    except Exception as exc:
        log.error("message stream failed: %s", type(exc).__name__)
        yield writer.error(500, stream_error(exc))


# --- endpoints ------------------------------------------------------------------------------------------


async def _translated(request: Request, edge: Edge) -> dict[str, Any]:
    await edge.authenticate()
    return to_chat(await edge.read_body())


async def create_message(request: Request) -> Response:
    request = with_api_key(request)
    edge = Edge.of(request, "messages")
    try:
        chat = await _translated(request, edge)
    except Exception as exc:
        error = await edge.refuse(exc)
        return error_response(error, headers=edge.headers())
    answer = await pipeline.handle(request, "chat", body=chat, trail=edge.trail, as_objects=True)
    if isinstance(answer, StreamingResponse):
        model = answer.headers.get("x-nuri-deployment") or chat["model"]
        nuri = first_event_label(answer)                # the AI notice in message_start, if asked
        return retranslate(answer, lambda chunks: _stream(chunks, model, nuri))
    if answer.status_code != 200:
        body = json_body(answer)
        return with_headers_of(JSONResponse(error_body(answer.status_code, error_of(body)),
                                            status_code=answer.status_code), answer)
    return with_headers_of(JSONResponse(from_chat(json_body(answer))), answer)


async def count_tokens(request: Request) -> Response:
    """POST /v1/messages/count_tokens: Nuri's estimate of the prompt (nothing is sent anywhere)."""
    request = with_api_key(request)
    edge = Edge.of(request, "messages")
    try:
        await edge.authenticate()
        body = await edge.read_body()
        chat = to_chat({**body, "max_tokens": body.get("max_tokens") or 1})
    except NuriError as exc:
        return error_response(exc)
    return JSONResponse({"input_tokens": estimate_many(t for _, t in fields.request_texts(chat))})
