"""A small OpenAI-compatible HTTP server for tests and benchmarks, able to fail on purpose.

It is a real server on 127.0.0.1 (aiohttp), so the gateway talks to it over real sockets. It
records every byte it receives, which lets residency tests assert on what an upstream actually
got rather than on what the gateway says it sent.

Behaviour is scripted over HTTP so a test in another process can steer it:
  POST /_nuri/config   {"reply": "...", "echo": bool, "answers": {substring: reply},
                        "latency_ms": n, "chunk_chars": n, "chunk_delay_ms": n, "model_name": ...,
                        "reply_fields": {...}, "cuts": [...], "cut_anchor": "...", "chunks": [...],
                        "plans": {marker: {...}}, "marker_pattern": "regex"}
  POST /_nuri/script   [{"fault": "status", "status": 500}, {"fault": "ok"}, ...]  consumed in order
  GET  /_nuri/requests every recorded request; DELETE /_nuri/requests clears them
Faults: ok | status (status, body) | slow (delay_ms) | drop (after_chunks: close mid-stream) |
        malformed (invalid SSE / JSON) | hang (never answers) |
        usage (usage: any JSON value, sent as the reply's or the last chunk's usage) |
        raw (status, body: text sent verbatim, content_type; whether or not a stream was asked for) |
        sse (events: JSON values, or strings sent verbatim after "data: "; raw: bytes-as-text written
             as they are; done: send [DONE] (default true); cut: close the connection at the end) |
        huge (bytes: a reply, or one SSE line, of that many bytes)

Responses API (POST /v1/responses, for deployments with `responses: true`): a Response object,
or streamed its named events (`response.created` … `response.output_text.delta` …
`response.completed`, no [DONE]); `reply_fields` content and tool_arguments become a message item
and a function_call item, cut as for chat.

Reply shapes (chat completions), so the reply direction can be probed field by field:
  reply_fields  {"content": t, "refusal": t, "tool_arguments": t, "logprobs": t, "<other key>": t}:
                each text goes to its carrier (message.content, message.refusal, the first tool
                call's arguments, choices[].logprobs.content[].token/bytes, or an unknown key at
                the top of the reply and of each chunk). Streamed, each text is cut into pieces
                and each piece sent as its own chunk.
  cuts          where texts are cut when streamed: a list of offsets, "each" (every character),
                or none (chunk_chars). With `cut_anchor`, offsets count from the anchor's first
                occurrence in the text, so a cut can fall at any position inside a value.
  chunks        chunk dicts streamed verbatim (id, object, created, model filled in when absent).
  "{{placeholders}}" in any of these is replaced by the placeholders (<TYPE_N>) found anywhere in
  the request, keys included, joined by " | ": the upstream echoes what the gateway sent it.
  plans         {marker: {"reply_fields": …, "cuts": …, "cut_anchor": …, "chunks": …}}: the plan
                whose marker (found in the request's strings with `marker_pattern`) the request
                carries, so concurrent requests can each get their own reply shape.

TLS: `RunningUpstream(tls=ssl_context)` serves HTTPS (a context that requires client certificates
makes it a mutual-TLS endpoint; each recorded request carries the client certificate's subject CN).
`RunningProxy` is a small HTTP proxy (CONNECT tunnels and absolute-form requests) that records what
it carried, resolves names of its own (`hosts`) and can demand Proxy-Authorization.

Run alone: python tests/support/upstream_server.py --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

PLACEHOLDER_RE = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
ECHO = "{{placeholders}}"
DEFAULT_MARKER_PATTERN = r"nurimark[a-z]+"
_CHANNELS = ("content", "refusal", "tool_arguments", "logprobs")
_PLAN_KEYS = ("reply_fields", "cuts", "cut_anchor", "chunks")


@dataclass
class UpstreamState:
    reply: str = "안녕하세요. Nuri test upstream reply."
    echo: bool = False
    answers: dict[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0
    chunk_chars: int = 8
    chunk_delay_ms: float = 0.0
    model_name: str | None = None
    tool_call: dict[str, Any] | None = None
    script: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    record: bool = True
    reply_fields: dict[str, str] | None = None
    cuts: list[int] | str | None = None
    cut_anchor: str | None = None
    chunks: list[dict[str, Any]] | None = None
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    marker_pattern: str = DEFAULT_MARKER_PATTERN

    def next_fault(self) -> dict[str, Any]:
        return self.script.pop(0) if self.script else {"fault": "ok"}


def _count_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def _prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        parts = []
        for m in body.get("messages") or []:
            c = m.get("content") if isinstance(m, dict) else None
            if isinstance(c, str):
                parts.append(c)
            elif isinstance(c, list):
                parts.extend(p.get("text", "") for p in c if isinstance(p, dict))
        return "\n".join(parts)
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)


def _input_text(body: dict[str, Any]) -> str:
    """A Responses request's instructions and input texts, for its usage."""
    items = body.get("input")
    texts = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    if isinstance(items, str):
        return "\n".join([*texts, items])
    for item in items or []:
        if not isinstance(item, dict):
            continue
        content = item.get("content", item.get("output"))
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    return "\n".join(texts)


def _last_user(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    return _prompt_text(body)


def _strings(node: Any) -> list[str]:
    """Every string of a JSON value, object keys included, in document order."""
    out: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            for k, v in reversed(list(item.items())):
                stack.append(v)
                stack.append(k)
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return out


def found_placeholders(body: Any) -> list[str]:
    """Placeholders the gateway put anywhere in a request, first occurrence first."""
    seen: dict[str, None] = {}
    for text in _strings(body):
        for m in PLACEHOLDER_RE.finditer(text):
            seen.setdefault(m.group(0), None)
    return list(seen)


def _render(node: Any, echo: str) -> Any:
    if isinstance(node, str):
        return node.replace(ECHO, echo)
    if isinstance(node, dict):
        return {_render(k, echo): _render(v, echo) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, echo) for v in node]
    return node


def cut_text(text: str, cuts: list[int] | str | None, anchor: str | None, chunk_chars: int) -> list[str]:
    """Pieces of `text` for streaming: at explicit offsets (from `anchor` when given), at every
    character ("each"), or every `chunk_chars`; never an empty piece."""
    if not text:
        return [""]
    if cuts == "each":
        return list(text)
    if isinstance(cuts, list) and cuts:
        base = 0
        if anchor:
            base = text.find(anchor)
            if base < 0:
                return cut_text(text, None, None, chunk_chars)
        points = sorted({min(max(0, base + int(c)), len(text)) for c in cuts} | {0, len(text)})
        return [text[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]
    size = max(1, int(chunk_chars))
    return [text[i:i + size] for i in range(0, len(text), size)]


def _logprob(token: str) -> dict[str, Any]:
    return {"token": token, "logprob": -0.01, "bytes": list(token.encode()), "top_logprobs": []}


def _client_cn(request: web.Request) -> str | None:
    """The subject CN of the client certificate the TLS peer presented, if any."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class UpstreamServer:
    """The server's handlers and state; `serve_in_thread` runs it for in-process tests."""

    def __init__(self, state: UpstreamState | None = None) -> None:
        self.state = state or UpstreamState()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        r = self.app.router
        r.add_post("/v1/chat/completions", self.chat)
        r.add_post("/v1/completions", self.completions)
        r.add_post("/v1/embeddings", self.embeddings)
        r.add_post("/v1/responses", self.responses)
        r.add_get("/v1/models", self.models)
        r.add_post("/_nuri/config", self.configure)
        r.add_post("/_nuri/script", self.set_script)
        r.add_get("/_nuri/requests", self.list_requests)
        r.add_delete("/_nuri/requests", self.clear_requests)

    # -- control --------------------------------------------------------------------------
    async def configure(self, request: web.Request) -> web.Response:
        data = await request.json()
        for key, value in data.items():
            if not hasattr(self.state, key) or key in {"requests", "script"}:
                return web.json_response({"error": f"unknown setting {key}"}, status=400)
            setattr(self.state, key, value)
        return web.json_response({"ok": True})

    async def set_script(self, request: web.Request) -> web.Response:
        self.state.script = list(await request.json())
        return web.json_response({"ok": True, "script": len(self.state.script)})

    async def list_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.requests)

    async def clear_requests(self, request: web.Request) -> web.Response:
        self.state.requests.clear()
        return web.json_response({"ok": True})

    # -- OpenAI surface ---------------------------------------------------------------------
    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "test-model", "object": "model"}]})

    async def _receive(self, request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
        raw = await request.read()
        if self.state.record:
            self.state.requests.append(
                {
                    "path": request.path,
                    "headers": {k: v for k, v in request.headers.items() if k.lower() != "authorization"},
                    "authorization": request.headers.get("Authorization"),
                    "client_cert": _client_cn(request),
                    "body": raw.decode("utf-8", errors="replace"),
                    "time": time.time(),
                }
            )
        fault = self.state.next_fault()
        return json.loads(raw or b"{}"), fault

    def _reply_for(self, body: dict[str, Any]) -> str:
        prompt = _prompt_text(body)
        for needle, answer in self.state.answers.items():
            if needle in prompt:
                return answer
        return _last_user(body) if self.state.echo else self.state.reply

    async def _apply_fault(self, fault: dict[str, Any]) -> web.Response | None:
        kind = fault.get("fault", "ok")
        if self.state.latency_ms:
            await asyncio.sleep(self.state.latency_ms / 1000)
        if kind == "status":
            status = int(fault.get("status", 500))
            body = fault.get("body") or {"error": {"message": f"injected {status}", "type": "server_error"}}
            headers = {"Retry-After": "0"} if status == 429 else None
            return web.json_response(body, status=status, headers=headers)
        if kind == "slow":
            await asyncio.sleep(float(fault.get("delay_ms", 1000)) / 1000)
        if kind == "hang":
            await asyncio.sleep(3600)
        return None

    async def _faulty(self, request: web.Request, body: dict[str, Any],
                      fault: dict[str, Any]) -> web.StreamResponse | None:
        """The faults that replace the reply with bytes a real upstream should never send."""
        kind = fault.get("fault")
        if kind == "raw":
            return web.Response(body=str(fault.get("body", "")).encode(), status=int(fault.get("status", 200)),
                                content_type=fault.get("content_type", "application/json"))
        if kind == "huge":
            size = int(fault.get("bytes", 1 << 20))
            if not body.get("stream"):
                head = b'{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"'
                return web.Response(body=head + b"a" * size + b'"},"finish_reason":"stop"}]}',
                                    content_type="application/json")
            fault = {"fault": "sse", "raw": 'data: {"choices":[{"index":0,"delta":{"content":"' + "a" * size
                     + '"}}]}\n\n'}
            kind = "sse"
        if kind != "sse":
            return None
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        if "raw" in fault:
            await resp.write(str(fault["raw"]).encode())
        for event in fault.get("events") or []:
            data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
            await resp.write(b"data: " + data.encode() + b"\n\n")
        if fault.get("cut"):
            if request.transport is not None:
                request.transport.close()
            return resp
        if fault.get("done", True):
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._receive(request)
        failed = await self._apply_fault(fault) or await self._faulty(request, body, fault)
        if failed is not None:
            return failed
        plan = self._plan_for(body)
        if plan is not None:
            return await self._shaped(request, body, plan)
        text = self._reply_for(body)
        model = self.state.model_name or body.get("model", "test-model")
        prompt_tokens = _count_tokens(_prompt_text(body))
        completion_tokens = _count_tokens(text)
        usage: Any = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}
        if fault.get("fault") == "usage":
            usage = fault.get("usage")
        created = int(time.time())
        if fault.get("fault") == "malformed" and not body.get("stream"):
            return web.Response(text="{not json", content_type="application/json")
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text}
            finish = "stop"
            if self.state.tool_call and body.get("tools"):
                message = {"role": "assistant", "content": None, "tool_calls": [self.state.tool_call]}
                finish = "tool_calls"
            n = int(body.get("n") or 1)
            return web.json_response({
                "id": "chatcmpl-test", "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": i, "message": message, "finish_reason": finish} for i in range(n)],
                "usage": usage,
            })
        return await self._stream(request, body, fault, text, model, created, usage, chat=True)

    # -- scripted reply shapes ------------------------------------------------------------------
    def _plan_for(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The reply shape for this request: its marker's plan, else the state's, else None."""
        state = self.state
        if state.plans:
            pattern = re.compile(state.marker_pattern)
            for text in _strings(body):
                m = pattern.search(text)
                if m and m.group(0) in state.plans:
                    return state.plans[m.group(0)]
        if state.reply_fields is not None or state.chunks is not None:
            return {key: getattr(state, key) for key in _PLAN_KEYS}
        return None

    async def _shaped(self, request: web.Request, body: dict[str, Any], plan: dict[str, Any]) -> web.StreamResponse:
        echo = " | ".join(found_placeholders(body))
        fields: dict[str, str] = _render(dict(plan.get("reply_fields") or {}), echo)
        model = self.state.model_name or body.get("model", "test-model")
        created = int(time.time())
        prompt_tokens = _count_tokens(_prompt_text(body))
        completion_tokens = sum(_count_tokens(t) for t in fields.values())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        head = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": created, "model": model}
        anchor = _render(plan.get("cut_anchor"), echo)

        def pieces(text: str) -> list[str]:
            return cut_text(text, plan.get("cuts"), anchor, self.state.chunk_chars)

        if not body.get("stream"):
            return web.json_response(self._shaped_reply(fields, pieces, model, created, usage))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        async def send(chunk: dict[str, Any]) -> None:
            await resp.write(b"data: " + json.dumps({**head, **chunk}, ensure_ascii=False).encode() + b"\n\n")
            if self.state.chunk_delay_ms:
                await asyncio.sleep(self.state.chunk_delay_ms / 1000)

        if plan.get("chunks") is not None:
            for chunk in _render(plan["chunks"], echo):
                await send(chunk)
        else:
            await send({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                     "finish_reason": None}]})
            for chunk in self._shaped_chunks(fields, pieces):
                await send(chunk)
            finish = "tool_calls" if "tool_arguments" in fields else "stop"
            await send({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({"choices": [], "usage": usage})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    @staticmethod
    def _shaped_reply(fields: dict[str, str], pieces: Any, model: str, created: int,
                      usage: dict[str, int]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": fields.get("content")}
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "stop"}
        if "refusal" in fields:
            message["refusal"] = fields["refusal"]
        if "tool_arguments" in fields:
            message["tool_calls"] = [{"id": "call_nuri_1", "type": "function",
                                      "function": {"name": "lookup", "arguments": fields["tool_arguments"]}}]
            choice["finish_reason"] = "tool_calls"
        if "logprobs" in fields:
            choice["logprobs"] = {"content": [_logprob(p) for p in pieces(fields["logprobs"])], "refusal": None}
        reply: dict[str, Any] = {"id": "chatcmpl-test", "object": "chat.completion", "created": created,
                                 "model": model, "choices": [choice], "usage": usage}
        for key, text in fields.items():
            if key not in _CHANNELS:
                reply[key] = text
        return reply

    @staticmethod
    def _shaped_chunks(fields: dict[str, str], pieces: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key, text in fields.items():
            for i, piece in enumerate(pieces(text)):
                choice: dict[str, Any] = {"index": 0, "delta": {}, "finish_reason": None}
                chunk: dict[str, Any] = {"choices": [choice]}
                if key == "content":
                    choice["delta"] = {"content": piece}
                elif key == "refusal":
                    choice["delta"] = {"refusal": piece}
                elif key == "tool_arguments":
                    call: dict[str, Any] = {"index": 0, "function": {"arguments": piece}}
                    if i == 0:
                        call = {"index": 0, "id": "call_nuri_1", "type": "function",
                                "function": {"name": "lookup", "arguments": piece}}
                    choice["delta"] = {"tool_calls": [call]}
                elif key == "logprobs":
                    choice["delta"] = {"content": ""}
                    choice["logprobs"] = {"content": [_logprob(piece)], "refusal": None}
                else:
                    chunk[key] = piece
                out.append(chunk)
        return out

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._receive(request)
        failed = await self._apply_fault(fault) or await self._faulty(request, body, fault)
        if failed is not None:
            return failed
        text = self._reply_for(body)
        model = self.state.model_name or body.get("model", "test-model")
        prompt_tokens = _count_tokens(_prompt_text(body))
        usage: Any = {"prompt_tokens": prompt_tokens, "completion_tokens": _count_tokens(text),
                      "total_tokens": prompt_tokens + _count_tokens(text)}
        if fault.get("fault") == "usage":
            usage = fault.get("usage")
        created = int(time.time())
        if not body.get("stream"):
            return web.json_response({
                "id": "cmpl-test", "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                "usage": usage,
            })
        return await self._stream(request, body, fault, text, model, created, usage, chat=False)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._receive(request)
        failed = await self._apply_fault(fault) or await self._faulty(request, body, fault)
        if failed is not None:
            return failed
        plan = self._plan_for(body) or {}
        echo = " | ".join(found_placeholders(body))
        fields: dict[str, str] = _render(dict(plan.get("reply_fields") or {}), echo)
        if not fields:
            fields = {"content": self.state.reply}
        model = self.state.model_name or body.get("model", "test-model")
        n_in = _count_tokens(_input_text(body))
        n_out = sum(_count_tokens(t) for t in fields.values())
        usage = {"input_tokens": n_in, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": n_out,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": n_in + n_out}
        items: list[dict[str, Any]] = []
        if "content" in fields:
            items.append({"id": "msg_up1", "type": "message", "status": "completed", "role": "assistant",
                          "content": [{"type": "output_text", "text": fields["content"], "annotations": []}]})
        if "tool_arguments" in fields:
            items.append({"id": "fc_up1", "type": "function_call", "status": "completed", "call_id": "call_up_1",
                          "name": "lookup", "arguments": fields["tool_arguments"]})

        def response(status: str, output: list[dict[str, Any]], use: Any) -> dict[str, Any]:
            return {"id": "resp_up1", "object": "response", "created_at": int(time.time()), "status": status,
                    "model": model, "output": output, "instructions": body.get("instructions"),
                    "tools": body.get("tools") or [], "store": body.get("store", True),
                    "previous_response_id": body.get("previous_response_id"), "usage": use,
                    "metadata": body.get("metadata") or {}}

        if not body.get("stream"):
            return web.json_response(response("completed", items, usage))
        anchor = _render(plan.get("cut_anchor"), echo)

        def pieces(text: str) -> list[str]:
            return cut_text(text, plan.get("cuts"), anchor, self.state.chunk_chars)

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        seq = 0

        async def send(kind: str, payload: dict[str, Any]) -> None:
            nonlocal seq
            event = {"type": kind, "sequence_number": seq, **payload}
            seq += 1
            await resp.write(b"event: " + kind.encode() + b"\ndata: "
                             + json.dumps(event, ensure_ascii=False).encode() + b"\n\n")
            if self.state.chunk_delay_ms:
                await asyncio.sleep(self.state.chunk_delay_ms / 1000)

        await send("response.created", {"response": response("in_progress", [], None)})
        await send("response.in_progress", {"response": response("in_progress", [], None)})
        for i, item in enumerate(items):
            at = {"output_index": i}
            if item["type"] == "message":
                text = item["content"][0]["text"]
                await send("response.output_item.added", {**at, "item": {**item, "status": "in_progress",
                                                                         "content": []}})
                where = {"item_id": item["id"], **at, "content_index": 0}
                await send("response.content_part.added", {**where, "part": {"type": "output_text", "text": "",
                                                                             "annotations": []}})
                for piece in pieces(text):
                    await send("response.output_text.delta", {**where, "delta": piece, "logprobs": []})
                await send("response.output_text.done", {**where, "text": text, "logprobs": []})
                await send("response.content_part.done", {**where, "part": item["content"][0]})
            else:
                await send("response.output_item.added", {**at, "item": {**item, "status": "in_progress",
                                                                         "arguments": ""}})
                for piece in pieces(item["arguments"]):
                    await send("response.function_call_arguments.delta", {"item_id": item["id"], **at,
                                                                          "delta": piece})
                await send("response.function_call_arguments.done", {"item_id": item["id"], **at,
                                                                     "arguments": item["arguments"]})
            await send("response.output_item.done", {**at, "item": item})
        await send("response.completed", {"response": response("completed", items, usage)})
        await resp.write_eof()
        return resp

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._receive(request)
        failed = await self._apply_fault(fault) or await self._faulty(request, body, fault)
        if failed is not None:
            return failed
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for i, item in enumerate(items):
            seed = sum(ord(c) for c in str(item))
            data.append({"object": "embedding", "index": i,
                         "embedding": [((seed * (k + 1)) % 97) / 97.0 for k in range(8)]})
        tokens = sum(_count_tokens(str(x)) for x in items)
        usage: Any = {"prompt_tokens": tokens, "total_tokens": tokens}
        if fault.get("fault") == "usage":
            usage = fault.get("usage")
        return web.json_response({"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    async def _stream(self, request: web.Request, body: dict[str, Any], fault: dict[str, Any], text: str,
                      model: str, created: int, usage: Any, *, chat: bool) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"
        size = max(1, int(self.state.chunk_chars))
        pieces = [text[i:i + size] for i in range(0, len(text), size)] or [""]
        drop_after = int(fault.get("after_chunks", 1)) if fault.get("fault") == "drop" else None

        async def send(payload: dict[str, Any]) -> None:
            await resp.write(b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")

        if chat:
            await send({"id": "chatcmpl-test", "object": obj, "created": created, "model": model,
                        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                     "finish_reason": None}]})
        for i, piece in enumerate(pieces):
            if drop_after is not None and i >= drop_after:
                transport = request.transport
                if transport is not None:
                    transport.close()
                return resp
            if fault.get("fault") == "malformed" and i == 1:
                await resp.write(b"data: {this is not json\n\n")
                continue
            choice = ({"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat
                      else {"index": 0, "text": piece, "finish_reason": None, "logprobs": None})
            await send({"id": "chatcmpl-test", "object": obj, "created": created, "model": model,
                        "choices": [choice]})
            if self.state.chunk_delay_ms:
                await asyncio.sleep(self.state.chunk_delay_ms / 1000)
        final = ({"index": 0, "delta": {}, "finish_reason": "stop"} if chat
                 else {"index": 0, "text": "", "finish_reason": "stop", "logprobs": None})
        await send({"id": "chatcmpl-test", "object": obj, "created": created, "model": model, "choices": [final]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({"id": "chatcmpl-test", "object": obj, "created": created, "model": model,
                        "choices": [], "usage": usage})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningUpstream:
    """An UpstreamServer serving on 127.0.0.1 in a background thread (for in-process tests)."""

    def __init__(self, state: UpstreamState | None = None, port: int | None = None, *,
                 tls: ssl.SSLContext | None = None, host_name: str = "127.0.0.1") -> None:
        self.server = UpstreamServer(state)
        self.port = port or free_port()
        self.tls = tls
        self.host_name = host_name    # the host base_url names (a name only a test proxy resolves, say)
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()

    @property
    def state(self) -> UpstreamState:
        return self.server.state

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host_name}:{self.port}/v1"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.server.app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.tls)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()

    def start(self) -> RunningUpstream:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("upstream test server did not start")
        return self

    def stop(self) -> None:
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            with contextlib.suppress(Exception):
                fut.result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()          # its selector and wake-up sockets, now rather than at a collection

    def reset(self) -> RunningUpstream:
        """Back to default behaviour with an empty request log (for servers shared by tests)."""
        fresh = UpstreamState()
        for name in ("reply", "echo", "answers", "latency_ms", "chunk_chars", "chunk_delay_ms", "model_name",
                     "tool_call", "script", "reply_fields", "cuts", "cut_anchor", "chunks", "plans",
                     "marker_pattern"):
            setattr(self.state, name, getattr(fresh, name))
        self.state.requests.clear()
        return self

    def received_bodies(self) -> list[str]:
        return [r["body"] for r in list(self.state.requests)]

    def __enter__(self) -> RunningUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RunningProxy:
    """An HTTP proxy on 127.0.0.1 in a background thread, for egress tests.

    CONNECT opens a tunnel (recorded in `tunnels` as host:port); an absolute-form request is
    forwarded once, with `Connection: close` (recorded in `forwarded`). `hosts` maps names to the
    addresses the proxy dials, so a test can name an upstream only the proxy can resolve;
    `credentials` ("user:password") makes it answer 407 without the matching Proxy-Authorization.
    """

    def __init__(self, hosts: dict[str, str] | None = None, credentials: str | None = None) -> None:
        self.hosts = dict(hosts or {})
        self._expected = "Basic " + base64.b64encode(credentials.encode()).decode() if credentials else None
        self.port = free_port()
        self.tunnels: list[str] = []
        self.forwarded: list[str] = []
        self.refused = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._started.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = (lines[0].split(" ", 2) + ["", ""])[:3]
        fields = [line.split(":", 1) for line in lines[1:] if ":" in line]
        auth = next((v.strip() for k, v in fields if k.strip().lower() == "proxy-authorization"), None)
        if self._expected is not None and auth != self._expected:
            self.refused += 1
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            writer.close()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            self.tunnels.append(target)
            first = b"HTTP/1.1 200 Connection established\r\n\r\n"
        else:
            url = urlsplit(target)
            host, port = url.hostname or "", str(url.port or 80)
            self.forwarded.append(target)
            kept = [f"{k}:{v}" for k, v in fields if k.strip().lower() not in ("proxy-authorization", "connection")]
            origin = (url.path or "/") + (f"?{url.query}" if url.query else "")
            first = None
            head = "\r\n".join([f"{method} {origin} {version}", *kept, "Connection: close", "", ""]).encode("latin-1")
        try:
            up_reader, up_writer = await asyncio.open_connection(self.hosts.get(host.strip("[]"), host.strip("[]")),
                                                                 int(port))
        except (OSError, ValueError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            writer.close()
            return
        if first is not None:
            writer.write(first)
        else:
            up_writer.write(head)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def start(self) -> RunningProxy:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("test proxy did not start")
        return self

    def stop(self) -> None:
        """Close the listener and every tunnel still open, then the loop."""
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> RunningProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes one way until either side closes."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--no-record", action="store_true", help="keep no request log (benchmarks)")
    parser.add_argument("--reply", default=None)
    args = parser.parse_args()
    state = UpstreamState(latency_ms=args.latency_ms, record=not args.no_record)
    if args.reply is not None:
        state.reply = args.reply
    port = args.port or free_port()
    server = UpstreamServer(state)
    print(f"listening on http://{args.host}:{port}", flush=True)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(server.app, host=args.host, port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
