"""POST /v1/responses: the OpenAI Responses API, served through the chat-completions pipeline.

A request is translated into one chat-completions request (instructions → system message, input
items → messages, function tools, `text.format` → `response_format`, `max_output_tokens` →
`max_tokens`), which goes through `pipeline.handle` like any other: the same classification of
every string, decision, routing, masking, restoring, guarding and audit record. The chat answer
is translated back into a Response object, or, streamed, into the Responses event stream
(`response.created`, `response.output_text.delta`, `response.function_call_arguments.delta`,
`response.completed`, …). Conversation state for `previous_response_id` is kept by
`conversations.py`, redacted. Errors keep OpenAI's error shape.

A request whose candidate deployments all speak the Responses API themselves (`responses: true`)
is passed through instead: the same pipeline with endpoint `responses` (the same walk,
classification, decision, routing, masking per step, restoring and guarding of every field and
every streamed event, one record), the upstream called with `store: false` and the whole
redacted history as `input`, so conversation state stays Nuri's.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from nuri.catalog import Catalog
from nuri.errors import InvalidRequest, NuriError
from nuri.gateway import pipeline
from nuri.gateway.access import check_model_access
from nuri.gateway.conversations import Known, Store, Stored, kept_output
from nuri.gateway.edge import Edge, error_of, sse, stream_error
from nuri.gateway.labels import first_event_label, label_of
from nuri.gateway.reply_texts import reply_scans
from nuri.gateway.request import ParsedRequest
from nuri.gateway.responses import JSONResponse, error_response, json_body, with_headers_of
from nuri.gateway.state import Gateway
from nuri.planning.membership import routed_model, workload_for
from nuri.privacy.types import Classification, Entity
from nuri.providers.base import text_of

log = logging.getLogger("nuri.gateway")

# Parameters accepted and not acted on: they change nothing a chat upstream could do.
_IGNORED = frozenset({"include", "truncation", "reasoning", "service_tier", "prompt_cache_key",
                      "prompt_cache_retention", "prompt_cache_options", "context_management", "image",
                      "top_logprobs", "stream_options", "max_tool_calls"})
_HANDLED = frozenset({"model", "input", "instructions", "tools", "tool_choice", "text", "max_output_tokens",
                      "temperature", "top_p", "stream", "previous_response_id", "store", "metadata", "user",
                      "parallel_tool_calls", "safety_identifier", "background"})
_KNOWN = _HANDLED | _IGNORED
_ROLES: dict[str, str] = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(24)


def response_id() -> str:
    """A response id: the time in microseconds, then 136 random bits (unguessable). Ids that grow
    with time are inserted at the end of the stored responses' index, where a row costs about half
    what one at a random place does once the table is large."""
    return f"resp_{time.time_ns() // 1000:014x}{secrets.token_hex(17)}"


def not_found(response_id: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(f"no stored response with id {response_id!r} (it may have expired, been deleted, "
                          "belong to another team, or have been created with store: false)",
                          code="response_not_found", param=param, status=404)


# --- request: Responses → chat completions -----------------------------------------------------


def _need(cond: bool, message: str, param: str) -> None:
    if not cond:
        raise InvalidRequest(message, param=param)


def _part(part: Any, where: str) -> dict[str, Any]:
    """One input content part as a chat content part."""
    _need(isinstance(part, dict), f"{where}: a content part must be an object", where)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        _need(isinstance(part.get("text"), str), f"{where}.text: must be a string", f"{where}.text")
        return {"type": "text", "text": part["text"]}
    if kind == "refusal":
        _need(isinstance(part.get("refusal"), str), f"{where}.refusal: must be a string", f"{where}.refusal")
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image":
        url = part.get("image_url")
        _need(isinstance(url, str), f"{where}: input_image needs image_url (file_id is not supported)", where)
        image: dict[str, Any] = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        _need(isinstance(data, str), f"{where}: input_file needs file_data (file_id and file_url are not "
              "supported)", where)
        file: dict[str, Any] = {"file_data": data}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise InvalidRequest(f"{where}: content part type {kind!r} is not supported", param=where)


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    _need(isinstance(content, list), f"{where}: must be a string or a list of content parts", where)
    parts = [_part(p, f"{where}[{i}]") for i, p in enumerate(content)]
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _tool_output(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    _need(isinstance(output, list), f"{where}: must be a string or a list of text parts", where)
    texts = []
    for i, p in enumerate(output):
        part = _part(p, f"{where}[{i}]")
        _need(part["type"] == "text", f"{where}[{i}]: only text is supported in a function call output", where)
        texts.append(part["text"])
    return "".join(texts)


def items_to_messages(items: list[Any], param: str = "input") -> list[dict[str, Any]]:
    """Input items as chat messages: function calls join the assistant message before them."""
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("type", "message") == "message":
            # the common item, checked without naming its place unless it is wrong (a long
            # history holds dozens of them)
            role = item.get("role")
            role, content = _ROLES.get(role) if isinstance(role, str) else None, item.get("content")
            if role is None:
                raise InvalidRequest(f"{param}[{i}].role: must be user, assistant, system or developer",
                                     param=f"{param}[{i}].role")
            messages.append({"role": role, "content": content if isinstance(content, str) else
                             _content(content, f"{param}[{i}].content")})
            continue
        where = f"{param}[{i}]"
        _need(isinstance(item, dict), f"{where}: an input item must be an object", where)
        kind = item.get("type", "message")
        if kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                _need(isinstance(item.get(key), str), f"{where}.{key}: must be a string", f"{where}.{key}")
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                if isinstance(last.get("content"), str) and not last["content"]:
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            _need(isinstance(item.get("call_id"), str), f"{where}.call_id: must be a string", f"{where}.call_id")
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": _tool_output(item.get("output"), f"{where}.output")})
        elif kind == "reasoning":
            continue          # never produced here; its summary is the client's copy of model output
        else:
            raise InvalidRequest(f"{where}: input item type {kind!r} is not supported", param=f"{where}.type")
    return messages


def input_items(value: Any) -> list[dict[str, Any]]:
    """`input` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    _need(isinstance(value, list) and len(value) > 0, "input: must be a string or a non-empty list of items",
          "input")
    return list(value)


def _tools(tools: Any) -> list[dict[str, Any]]:
    _need(isinstance(tools, list), "tools: must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        _need(isinstance(tool, dict), f"{where}: must be an object", where)
        _need(tool.get("type") == "function", f"{where}: tool type {tool.get('type')!r} is not supported "
              "(function tools only)", f"{where}.type")
        _need(isinstance(tool.get("name"), str), f"{where}.name: must be a string", f"{where}.name")
        fn: dict[str, Any] = {"name": tool["name"]}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                fn[key] = tool[key]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        _need(choice in ("auto", "none", "required"), "tool_choice: must be auto, none, required or a function",
              "tool_choice")
        return choice
    _need(isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str),
          "tool_choice: only {type: function, name} is supported besides auto, none and required", "tool_choice")
    return {"type": "function", "function": {"name": choice["name"]}}


def _response_format(text: Any) -> dict[str, Any] | None:
    _need(isinstance(text, dict), "text: must be an object", "text")
    fmt = text.get("format")
    if fmt is None:
        return None
    _need(isinstance(fmt, dict), "text.format: must be an object", "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        _need(isinstance(fmt.get("name"), str), "text.format.name: must be a string", "text.format.name")
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(f"text.format: type {kind!r} is not supported", param="text.format.type")


def check_parameters(body: dict[str, Any]) -> None:
    unknown = sorted(body.keys() - _KNOWN)
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: parameter not supported by Nuri's Responses API", param=unknown[0],
                             code="unsupported_parameter")
    _need(not body.get("background"), "background: background responses are not supported", "background")
    _need("input" in body, "input: required field is missing", "input")
    _need(isinstance(body.get("model", "default"), str), "model: must be a string", "model")
    _need(isinstance(body.get("stream", False), bool), "stream: must be a boolean", "stream")
    _need(isinstance(body.get("store", True), bool), "store: must be a boolean", "store")
    if body.get("instructions") is not None:
        _need(isinstance(body["instructions"], str), "instructions: must be a string", "instructions")
    mot = body.get("max_output_tokens")
    if mot is not None:
        _need(type(mot) is int and mot >= 1, "max_output_tokens: must be an integer >= 1", "max_output_tokens")
    prev = body.get("previous_response_id")
    if prev is not None:
        _need(isinstance(prev, str) and 0 < len(prev) <= 128, "previous_response_id: must be a response id",
              "previous_response_id")


def to_chat(body: dict[str, Any], history: list[dict[str, Any]], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat-completions request for a Responses request continuing `history`."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    messages += items_to_messages(history, "previous_response_id") if history else []
    messages += items_to_messages(items)
    chat: dict[str, Any] = {"model": body.get("model", "default"), "messages": messages}
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("parallel_tool_calls") is not None and chat.get("tools"):
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("text") is not None and (fmt := _response_format(body["text"])) is not None:
        chat["response_format"] = fmt
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            chat[key] = body[key]
    user = body.get("user") or body.get("safety_identifier")
    if user is not None:
        chat["user"] = user
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


# --- answer: chat completion → Response -----------------------------------------------------------


def _usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    p, c = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"input_tokens": p, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": c,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": p + c}


def output_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat reply message as Responses output items: a message, then one item per tool call."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    text = text_of(message.get("content"))
    if text:
        parts.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        out.append({"id": _id("msg_"), "type": "message", "status": "completed", "role": "assistant",
                     "content": parts})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        out.append({"id": _id("fc_"), "type": "function_call", "status": "completed",
                    "call_id": call.get("id") or _id("call_"), "name": fn.get("name") or "",
                    "arguments": fn.get("arguments") or ""})
    return out


_is_str = str.__instancecheck__           # as a filter: the strings of a tuple, in C
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# The keys of a translated turn's Response object (`Turn.response`) whose values Nuri builds: fixed
# fields, status words, token counts, and numbers (`max_output_tokens` is checked to be one; the
# walk keeps numbers anyway). The check before storing does not walk them (`Redactor.clean_form`);
# a passed-through response is the upstream's, and is walked whole.
MADE_FIELDS = frozenset({"object", "created_at", "status", "background", "incomplete_details", "max_output_tokens",
                         "reasoning", "service_tier", "store", "truncation", "usage"})
# The request parameters a translated turn's Response object repeats. One the client did not send
# holds Nuri's default there (`Turn._parameters`), and is not walked either; one it sent is.
DEFAULTED_FIELDS = frozenset({"instructions", "parallel_tool_calls", "previous_response_id", "temperature", "text",
                              "tool_choice", "tools", "top_p", "user", "metadata"})


@dataclass
class Turn:
    """One Responses request: its parameters, the history it continues, and how it ends."""

    body: dict[str, Any]
    items: list[dict[str, Any]]
    history: list[dict[str, Any]]
    team: str
    store: Store | None
    id: str = field(default_factory=response_id)
    created_at: int = field(default_factory=lambda: int(time.time()))
    nuri: dict[str, Any] | None = None     # Nuri's additions (AI notice, citations) on every snapshot
    known: Known | None = None             # the request's classification, reused to redact what is stored
    classifies: bool = False               # whether the pipeline classifies (policy on)
    scans: dict[str, list[Entity]] | None = None   # the reply guard's scans of a whole reply, reused likewise
    native: bool = False                   # passed through to a deployment that speaks Responses
    notice: str | None = None              # the AI notice the pipeline labelled the reply with
    _shape: dict[str, Any] | None = field(default=None, repr=False)   # see `_parameters`

    @property
    def stored(self) -> bool:
        return self.store is not None and bool(self.body.get("store", True))

    def classified(self, req: ParsedRequest, classification: Classification) -> None:
        """The pipeline's scan of the request, kept to redact the stored state without a second one."""
        if self.classifies:
            self.known = Known.of(req.texts, classification)

    def response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
                 model: str | None = None, finish: str | None = None,
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
        """The Response object as it stands: the request's parameters (built once per turn, as a
        stream's first and last snapshots share them) with this snapshot's status and output."""
        reason = _INCOMPLETE.get(finish or "")
        if reason is not None and status == "completed":
            status = "incomplete"
        out = (self._shape or self._parameters()).copy()
        out["status"] = status
        out["error"] = error
        if status == "incomplete":
            out["incomplete_details"] = {"reason": reason}
        if model:
            out["model"] = model
        out["output"] = output
        out["usage"] = usage
        if self.nuri:
            out["nuri"] = dict(self.nuri)
        return out

    def _parameters(self) -> dict[str, Any]:
        """Every key of the Response object in the API's order, the request's parameters filled in."""
        get = self.body.get
        text = get("text")
        fmt = text.get("format") if type(text) is dict else None
        self._shape = {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": None,
            "background": False, "error": None, "incomplete_details": None,
            "instructions": get("instructions"), "max_output_tokens": get("max_output_tokens"),
            "model": get("model", "default"), "output": [],
            "parallel_tool_calls": get("parallel_tool_calls", True),
            "previous_response_id": get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
            "store": bool(get("store", True)), "temperature": get("temperature", 1.0),
            "text": {"format": fmt or {"type": "text"}},
            "tool_choice": get("tool_choice", "auto"), "tools": get("tools") or [],
            "top_p": get("top_p", 1.0), "truncation": "disabled", "usage": None,
            "user": get("user"), "metadata": get("metadata") or {},
        }
        return self._shape

    def from_chat(self, reply: dict[str, Any]) -> dict[str, Any]:
        choices = reply.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message") or {}
        obj = self.response("completed", output_items(message), _usage(reply.get("usage")), reply.get("model"),
                            choice.get("finish_reason"))
        if isinstance(reply.get("nuri"), dict):
            obj["nuri"] = reply["nuri"]
        return obj

    async def save(self, response: dict[str, Any]) -> None:
        """Keep the conversation for a follow-up (redacted); a failure to store is logged, not fatal."""
        if self.store is None or not self.stored:
            return
        output = kept_output(response)
        # the ids Nuri made and the deployment's id (set by the pipeline) are not personal data:
        # kept without a scan (an upstream's ids are scanned)
        made_ids = [] if self.native else [i.get("id") for i in output]
        # so is the AI notice: policy's words (an upstream's `nuri` would not be the same string);
        # and so are the stored response this turn continues and its items' ids, as they were stored
        # (redacted then; they are not sent upstream, so the request's classification never saw
        # them): without them every follow-up turn would be copied and scanned for nothing
        earlier = ([self.body.get("previous_response_id"), *(i.get("id") for i in self.history)]
                   if self.history else ())
        own = frozenset(filter(_is_str, (self.id, response.get("model"), self.notice, *made_ids, *earlier)))
        built = frozenset() if self.native else MADE_FIELDS.union(DEFAULTED_FIELDS.difference(self.body))
        try:
            await self.store.save(self.id, self.team,
                                  Stored([*self.history, *self.items, *output], response, len(self.history)),
                                  self.known, self.scans, own, built)
        except Exception as exc:
            log.error("response %s not stored: %s", self.id, type(exc).__name__)

    async def call(self, request: Request, edge: Edge, endpoint: str, body: dict[str, Any]) -> Response:
        """The pipeline, for this turn: a stored one keeps the request's classification and the
        reply guard's scans of a whole reply, to redact what it stores without scanning again."""
        as_objects = endpoint == "chat"              # a chat stream is translated here, not sent as it is
        if not self.stored:
            return await pipeline.handle(request, endpoint, body=body, trail=edge.trail, as_objects=as_objects)
        token = reply_scans.set({})
        try:
            answer = await pipeline.handle(request, endpoint, body=body, trail=edge.trail,
                                           on_classified=self.classified, as_objects=as_objects)
            label = label_of(answer)
            self.notice = label.notice if label is not None else None
            return answer
        finally:
            self.scans = reply_scans.get()
            reply_scans.reset(token)

    def keep_stream_scans(self) -> None:
        """For a stored turn, in the task that runs its stream: the pipeline's stream filters,
        built there when the stream starts, hand each channel's findings to `scans`, so the output
        is redacted from what the reply guard found in it (stream_privacy.keep_findings). Set in
        this task's context only, which ends with the stream."""
        if self.scans is not None:
            reply_scans.set(self.scans)

    # -- pass-through to a deployment that speaks the Responses API ------------------------------
    def upstream_body(self) -> dict[str, Any]:
        """The Responses request for the upstream: stateless (`store: false`, no
        `previous_response_id`), the whole history as `input`. History items lose the ids Nuri or
        another upstream gave them (this upstream never stored them); reasoning items, the client's
        included, are dropped as in translation (model output, never sent on)."""
        body = {k: v for k, v in self.body.items() if k not in ("previous_response_id", "store", "background")}
        history = [{k: v for k, v in item.items() if k != "id"} for item in self.history
                   if isinstance(item, dict) and item.get("type") != "reasoning"]
        items = [item for item in self.items if item.get("type") != "reasoning"]
        body["input"] = [*history, *items]
        body["store"] = False
        return body

    def adopt(self, response: dict[str, Any]) -> dict[str, Any]:
        """The upstream's Response object (already restored and guarded) as this request's: Nuri's
        id, the client's `previous_response_id` and `store`, Nuri's additions."""
        response["id"] = self.id
        response["object"] = "response"
        response["previous_response_id"] = self.body.get("previous_response_id")
        response["store"] = bool(self.body.get("store", True))
        if self.nuri:
            nuri = response.get("nuri")
            response["nuri"] = {**self.nuri, **(nuri if isinstance(nuri, dict) else {})}
        return response

    async def passed_through(self, events: AsyncIterable[Any]) -> AsyncIterator[bytes]:
        """The pipeline's Responses events with each Response object adopted; the final one is
        stored before it is sent, so a follow-up never misses it. Other events pass as bytes."""
        self.keep_stream_scans()
        buffer = b""
        try:
            async for piece in events:
                buffer += piece if isinstance(piece, bytes) else str(piece).encode()
                while (end := buffer.find(b"\n\n")) >= 0:
                    raw, buffer = buffer[:end + 2], buffer[end + 2:]
                    name = raw[7:raw.find(b"\n")] if raw.startswith(b"event: ") else b""
                    if name not in _SNAPSHOT_EVENTS:
                        yield raw
                        continue
                    event = orjson.loads(raw[raw.find(b"data: ") + 6:-2])
                    response = self.adopt(event["response"])
                    if name in _FINAL_EVENTS:
                        await self.save(response)
                    yield sse(name.decode(), event)
            if buffer:
                yield buffer
        finally:                   # however it ends, the pipeline's relay is closed: it records
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def stream(self, source: AsyncIterable[dict[str, Any] | None]) -> AsyncIterator[bytes]:
        """The pipeline's chat-completion stream, handed over as objects (`as_objects`: each chunk
        or `{"error": …}`, then None for `[DONE]`), as the Responses event stream, translated in
        one pass (each layer of generators costs every event its own hop). However it ends, the
        pipeline's relay is closed, so it records."""
        self.keep_stream_scans()
        writer = _StreamWriter(self)
        try:
            yield writer.start()
            async for chunk in source:
                if chunk is None:
                    response = writer.finish()
                    await self.save(response)
                    yield writer.completed(response)
                    return
                if "error" in chunk and "choices" not in chunk:
                    yield writer.failed(error_of(chunk))
                    return
                out = writer.chunk(chunk)
                if out:
                    yield out
            yield writer.failed({"code": "stream_ended", "message": "the stream ended before it was complete"})
        except Exception as exc:       # a defect here: the client gets a failed response, not a cut
            log.error("response stream %s failed: %s", self.id, type(exc).__name__)
            yield writer.failed(stream_error(exc))
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()


_SNAPSHOT_EVENTS = frozenset({b"response.created", b"response.in_progress", b"response.queued",
                              b"response.completed", b"response.incomplete", b"response.failed"})
_FINAL_EVENTS = frozenset({b"response.completed", b"response.incomplete"})


class _StreamWriter:
    """Builds the Responses events from chat chunks, tracking output items as they open and close."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self.message: int | None = None           # output index of the open message item
        self.part: dict[str, Any] | None = None   # its open content part
        self.calls: dict[int, int] = {}           # chat tool-call index → output index
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.model: str | None = None
        self._closing: list[bytes] = []
        self._where: tuple[str, int, int] = ("", 0, 0)   # the open part: its item's id, output and content index

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        body = {"type": kind, "sequence_number": self.seq, **payload}
        self.seq += 1
        return sse(kind, body)

    def start(self) -> bytes:
        """`response.created` and `response.in_progress`, the same snapshot serialised once."""
        snapshot = orjson.dumps(self.turn.response("in_progress", []))
        out = b""
        for kind in (b"response.created", b"response.in_progress"):
            out += (b"event: " + kind + b'\ndata: {"type":"' + kind + b'","sequence_number":'
                    + str(self.seq).encode() + b',"response":' + snapshot + b"}\n\n")
            self.seq += 1
        return out

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        """The events one chat chunk makes (most chunks: one text delta)."""
        get = chunk.get
        if usage := get("usage"):
            self.usage = _usage(usage)
        nuri = get("nuri")
        if type(nuri) is dict:
            self.turn.nuri = {**(self.turn.nuri or {}), **nuri}
        model = get("model")
        if type(model) is str:
            self.model = model
        out: list[bytes] = []
        for choice in get("choices") or ():
            if type(choice) is not dict or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content and type(content) is str:
                out += self._text("output_text", content)
            refusal = delta.get("refusal")
            if refusal and type(refusal) is str:
                out += self._text("refusal", refusal)
            for call in delta.get("tool_calls") or ():
                if type(call) is dict:
                    out += self._call(call)
            if finish := choice.get("finish_reason"):
                self.finish_reason = finish
        return b"".join(out)

    def _text(self, kind: str, delta: str) -> list[bytes]:
        out: list[bytes] = []
        part = self.part
        if part is None or part["type"] != kind:
            part = self._open_part(kind, out)
        part["text" if kind == "output_text" else "refusal"] += delta
        out.append(self._delta(kind, delta))
        return out

    def _open_part(self, kind: str, out: list[bytes]) -> dict[str, Any]:
        """A new content part of `kind`, in the open message item (opened first if there is none);
        the events that open them go to `out`."""
        if self.message is None:
            self.message = len(self.output)
            item: dict[str, Any] = {"id": _id("msg_"), "type": "message", "status": "in_progress",
                                    "role": "assistant", "content": []}
            self.output.append(item)
            out.append(self._event("response.output_item.added", {"output_index": self.message, "item": item}))
        item = self.output[self.message]
        out += self._close_part()
        part = ({"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                if kind == "output_text" else {"type": "refusal", "refusal": ""})
        item["content"].append(part)
        self.part = part
        item_id, output_index, content_index = self._where = (item["id"], self.message, len(item["content"]) - 1)
        out.append(self._event("response.content_part.added", {
            "item_id": item_id, "output_index": output_index, "content_index": content_index, "part": part}))
        return part

    def _delta(self, kind: str, delta: str) -> bytes:
        """A text or refusal delta of the open part: the event a stream sends most, built in one step."""
        item_id, output_index, content_index = self._where
        seq = self.seq
        self.seq = seq + 1
        if kind == "output_text":
            return sse("response.output_text.delta", {
                "type": "response.output_text.delta", "sequence_number": seq, "item_id": item_id,
                "output_index": output_index, "content_index": content_index, "delta": delta, "logprobs": []})
        return sse("response.refusal.delta", {
            "type": "response.refusal.delta", "sequence_number": seq, "item_id": item_id,
            "output_index": output_index, "content_index": content_index, "delta": delta})

    def _close_part(self) -> list[bytes]:
        if self.part is None or self.message is None:
            return []
        item = self.output[self.message]
        where = {"item_id": item["id"], "output_index": self.message, "content_index": len(item["content"]) - 1}
        part, self.part = self.part, None
        done = (self._event("response.output_text.done", {**where, "text": part["text"], "logprobs": []})
                if part["type"] == "output_text" else
                self._event("response.refusal.done", {**where, "refusal": part["refusal"]}))
        return [done, self._event("response.content_part.done", {**where, "part": part})]

    def _close_message(self) -> list[bytes]:
        if self.message is None:
            return []
        out = self._close_part()
        item = self.output[self.message]
        item["status"] = "completed"
        out.append(self._event("response.output_item.done", {"output_index": self.message, "item": item}))
        self.message = None
        return out

    def _call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = call.get("index", 0)
        fn = call.get("function") or {}
        if index not in self.calls:
            out += self._close_message()
            self.calls[index] = len(self.output)
            item = {"id": _id("fc_"), "type": "function_call", "status": "in_progress",
                    "call_id": call.get("id") or _id("call_"), "name": fn.get("name") or "", "arguments": ""}
            self.output.append(item)
            out.append(self._event("response.output_item.added", {"output_index": self.calls[index], "item": item}))
        else:
            item = self.output[self.calls[index]]
            if fn.get("name") and not item["name"]:
                item["name"] = fn["name"]
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            item["arguments"] += args
            out.append(self._event("response.function_call_arguments.delta", {
                "item_id": item["id"], "output_index": self.calls[index], "delta": args}))
        return out

    def finish(self) -> dict[str, Any]:
        """Close every open item; the final Response object."""
        self._closing = self._close_message()
        for index in self.calls.values():
            item = self.output[index]
            item["status"] = "completed"
            self._closing.append(self._event("response.function_call_arguments.done", {
                "item_id": item["id"], "output_index": index, "arguments": item["arguments"], "name": item["name"]}))
            self._closing.append(self._event("response.output_item.done", {"output_index": index, "item": item}))
        return self.turn.response("completed", self.output, self.usage, self.model, self.finish_reason)

    def completed(self, response: dict[str, Any]) -> bytes:
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        return b"".join([*self._closing, self._event(kind, {"response": response})])

    def failed(self, error: dict[str, Any]) -> bytes:
        err = {"code": error.get("code") or "server_error", "message": error.get("message") or "error"}
        return self._event("response.failed", {"response": self.turn.response("failed", self.output, self.usage,
                                                                                self.model, error=err)})


# --- endpoints ------------------------------------------------------------------------------------


def store_of(request: Request) -> Store | None:
    return getattr(request.app.state, "conversations", None)


_SPEAKS: dict[int, tuple[Catalog, bool]] = {}


def _speaks_responses(catalog: Catalog) -> bool:
    """Whether any deployment of this catalog (one per config generation) is `responses: true`."""
    hit = _SPEAKS.get(id(catalog))
    if hit is None or hit[0] is not catalog:
        if len(_SPEAKS) > 8:
            _SPEAKS.clear()
        hit = _SPEAKS[id(catalog)] = (catalog, any(d.responses for d in catalog.deployments.values()))
    return hit[1]


def passes_through(gw: Gateway, request: Request, edge: Edge, body: dict[str, Any]) -> bool:
    """Whether every candidate for the request's model speaks the Responses API itself, so a
    fallback never has to switch wire formats mid-request. Anything that fails here (an unknown
    model, a model the key may not use) is left to the pipeline, which answers it as for chat."""
    catalog = gw.catalog
    if not _speaks_responses(catalog):
        return False
    model = body.get("model", "default")
    try:
        check_model_access(edge.ctx, model)
        workload = workload_for(gw.config, model, request.headers, edge.ctx.principal)
        candidates = catalog.resolve(routed_model(model, workload) or model)
    except NuriError:
        return False
    return bool(candidates) and all(d.responses for d in candidates)


async def create_response(request: Request) -> Response:
    edge = Edge.of(request, "responses")
    try:
        await edge.authenticate()
        body = await edge.read_body()
        check_parameters(body)
        store = store_of(request)
        team = edge.ctx.principal.team
        history: list[dict[str, Any]] = []
        if body.get("previous_response_id") is not None:
            previous = await store.load(body["previous_response_id"], team) if store is not None else None
            if previous is None:
                raise not_found(body["previous_response_id"], "previous_response_id")
            history = previous.items
        turn = Turn(body, input_items(body["input"]), history, team, store,
                    classifies=edge.gw.evaluator.engine.classifies)
        chat = to_chat(body, history, turn.items)          # checks items and tools on either path
        native = passes_through(edge.gw, request, edge, body)
    except Exception as exc:
        error = await edge.refuse(exc)
        return error_response(error, headers=edge.headers())
    if native:
        return await _pass_through(request, edge, turn)
    answer = await turn.call(request, edge, "chat", chat)
    if isinstance(answer, StreamingResponse):
        turn.nuri = first_event_label(answer)          # the AI notice from the first event on, if asked
        answer.body_iterator = turn.stream(pipeline.objects_of(answer))   # the response object records however it ends
        return answer
    if answer.status_code != 200:
        return answer                                  # already in OpenAI's error shape
    response = turn.from_chat(json_body(answer))
    await turn.save(response)
    return with_headers_of(JSONResponse(response), answer)


async def _pass_through(request: Request, edge: Edge, turn: Turn) -> Response:
    turn.native = True
    answer = await turn.call(request, edge, "responses", turn.upstream_body())
    if isinstance(answer, StreamingResponse):
        turn.nuri = first_event_label(answer)
        answer.body_iterator = turn.passed_through(answer.body_iterator)
        return answer
    if answer.status_code != 200:
        return answer
    response = turn.adopt(json_body(answer))
    await turn.save(response)
    return with_headers_of(JSONResponse(response), answer)


async def stored_request(request: Request) -> tuple[Store | None, str, str]:
    """(the store, the path's response id, the caller's team) for a request about a stored response."""
    edge = Edge.of(request, "responses")
    await edge.authenticate()
    return store_of(request), request.path_params["response_id"], edge.ctx.principal.team


async def get_response(request: Request) -> Response:
    """GET /v1/responses/{id}: the stored Response object, as redacted when it was stored."""
    try:
        store, response_id, team = await stored_request(request)
        stored = await store.load(response_id, team) if store is not None else None
        if stored is None:
            raise not_found(response_id)
    except NuriError as exc:
        return error_response(exc)
    return JSONResponse(stored.response)


async def delete_response(request: Request) -> Response:
    """DELETE /v1/responses/{id}: forget a stored response before its retention ends."""
    try:
        store, response_id, team = await stored_request(request)
        if store is None or not await store.delete(response_id, team):
            raise not_found(response_id)
    except NuriError as exc:
        return error_response(exc)
    return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})
