"""The gateway's request handler: one request through the steps of DESIGN.md, in order.

auth → parse → classify/decide/route → admit → transform/call (with fallback) → respond → record

Each step is a call into the module that owns it; no policy, privacy or metering logic lives
here. Errors at any step become OpenAI-shaped responses, and every outcome, success or not,
is recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple, cast

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from nuri.errors import NuriError, UpstreamError
from nuri.gateway import limits
from nuri.gateway.access import authenticate, candidates_for
from nuri.gateway.context import RequestContext
from nuri.gateway.recording import CLIENT_GONE, Trail
from nuri.gateway.replies import ReplyRules
from nuri.gateway.reply import ReplyPrivacy
from nuri.gateway.request import ParsedRequest, parse_request
from nuri.gateway.responses import JSONResponse, ObjectAnswer, error_event, error_response
from nuri.gateway.responses_relay import chat_usage, label_response, relay_responses
from nuri.gateway.state import Gateway
from nuri.gateway.wire import read_json_body
from nuri.observability import tracing
from nuri.policy.terminology import TermBlocked
from nuri.privacy import fields
from nuri.privacy.types import Classification
from nuri.providers.sse import DONE, encode_event
from nuri.rag.step import public_citations, rag_step
from nuri.routing.fallback import run_with_fallback
from nuri.tokens import estimate_many

log = logging.getLogger("nuri.gateway")
_CALLS = {"chat": "chat", "completions": "complete", "embeddings": "embed", "responses": "responses"}
_STREAMS = {"chat": "stream_chat", "completions": "stream_complete", "responses": "stream_responses"}


async def handle(request: Request, endpoint: str, body: dict[str, Any] | None = None, *,
                 trail: Trail | None = None,
                 on_classified: Callable[[ParsedRequest, Classification], None] | None = None,
                 as_objects: bool = False) -> Response:
    """One request through the pipeline. Another API (Responses, Messages) passes its request
    translated into this endpoint's wire format as `body`, and the `trail` it opened when the
    request came in: its context already names the API (what the audit record says) and holds
    the principal it authenticated, and its clock started then. Else both come from here.
    `on_classified` is handed the walked request and its classification once they are known, so
    the caller can reuse the scan (the Responses API redacts its stored state with it). With
    `as_objects`, for an API that translates the answer in process (the bytes would only be parsed
    back): a whole answer is an `ObjectAnswer`, its reply not rendered; a streamed chat answer's
    body yields each chunk as an object, None for `[DONE]` and the error object for a failure."""
    gw: Gateway = request.app.state.gateway
    authenticated = trail is not None
    if trail is None:
        trail = Trail(gw, RequestContext(endpoint=endpoint))
    ctx = trail.ctx
    reply: dict[str, Any] | None = None
    status: int = CLIENT_GONE.status                 # what stands if the task is cancelled
    error: NuriError | None = CLIENT_GONE
    try:
        if not authenticated:
            await authenticate(gw, request, ctx)                                  # auth
        if body is None:
            body = await read_json_body(request, gw.config.server.max_body_bytes)
        body, ctx.citations = await rag_step(gw, ctx.principal, body)             # RAG: passages join the body
        req = parse_request(body, endpoint)                                       # parse, walk once
        ctx.requested, ctx.stream = req.model, req.stream
        candidates = candidates_for(gw, request, req, ctx)                       # access, workload, resolve
        limits.enter(request, ctx.principal, gw.config.server.max_concurrent_per_key)   # in flight per key
        evaluation = await gw.evaluator.evaluate_live(request, req, ctx.principal, candidates)
        ctx.classification, ctx.decision = evaluation.classification, evaluation.decision
        if on_classified is not None:
            on_classified(req, evaluation.classification)
        steps = evaluation.raise_for_route()                                      # classify, decide, route
        if gw.ledger is not None:                                                # budgets, rate limits
            ctx.admission = await gw.ledger.admit(ctx.principal, req.prompt_tokens + req.output_tokens)
        if endpoint != "embeddings":                                             # terminology, label, language
            ctx.replies = ReplyRules.build(gw, ctx, req.texts)
        privacy = ReplyPrivacy(gw.scanner, ctx.classification, gw.config.privacy, guard=gw.config.policy.enabled,
                               terms=ctx.replies.terms if ctx.replies is not None else None)
        if ctx.stream:                                                            # its relay records
            return await _stream(gw, ctx, trail, req, steps, privacy, OBJECTS if as_objects else BYTES)
        reply = await _call(gw, ctx, trail, req, steps, privacy)                 # transform, call
        reply = await _respond(gw, ctx, trail, req, steps, privacy, reply)       # restore, guard, terms, label
        status, error = 200, None
    except NuriError as exc:
        status, error = exc.status, exc
    except Exception as exc:
        status, error = 500, trail.defect(exc)
    finally:
        # record, exactly once; a cancellation cannot cut it short: the writers shield their work
        if not trail.relayed:
            error = await trail.finish(status, error) or error
    if error is not None:
        return error_response(error, headers=ctx.headers())
    if as_objects and reply is not None:
        return ObjectAnswer(reply, ctx.headers(), trail)
    answer = JSONResponse(reply, headers=ctx.headers())
    answer.trail = trail
    return answer


def _upstream_body(req: ParsedRequest, privacy: ReplyPrivacy, step: Any, stream: bool) -> dict[str, Any]:
    out = privacy.mask(req.body, req.endpoint, step.mask_types, req.texts)       # transform
    if stream and req.endpoint == "responses":      # usage comes in the final event
        out = {**out, "stream": True}
    elif stream:
        out = {**out, "stream": True, "stream_options": {"include_usage": True}}
    return out


async def _call(gw: Gateway, ctx: RequestContext, trail: Trail, req: ParsedRequest,
                steps: list[Any], privacy: ReplyPrivacy) -> dict[str, Any]:
    async def attempt(step: Any) -> dict[str, Any]:
        provider = gw.providers[step.deployment.id]
        upstream_body = _upstream_body(req, privacy, step, False)
        await trail.forwarding(step)
        with tracing.span("nuri.upstream", deployment=step.deployment.id, masked=bool(step.mask_types)):
            return await getattr(provider, _CALLS[req.endpoint])(upstream_body)

    reply, ctx.step, ctx.attempts = await run_with_fallback(steps, attempt, gw.health, gw.config.routing)
    reply["model"] = ctx.step.deployment.id
    return reply


async def _stream(gw: Gateway, ctx: RequestContext, trail: Trail, req: ParsedRequest,
                  steps: list[Any], privacy: ReplyPrivacy, wire: Wire) -> Response:
    """Open the stream with fallback up to its first chunk; after that nothing is retried. A chat
    stream's events are written as `wire` says; a Responses pass-through's are always bytes."""

    async def attempt(step: Any) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]]:
        provider = gw.providers[step.deployment.id]
        upstream_body = _upstream_body(req, privacy, step, True)
        await trail.forwarding(step)
        iterator = getattr(provider, _STREAMS[req.endpoint])(upstream_body).__aiter__()
        with tracing.span("nuri.upstream.first_chunk", deployment=step.deployment.id, masked=bool(step.mask_types)):
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration as exc:
                raise UpstreamError(f"deployment {step.deployment.id} sent an empty stream", retryable=True) from exc
        return first, iterator

    if req.endpoint not in _STREAMS:
        raise NuriError("streaming is not available on this endpoint", status=400)
    (first, iterator), ctx.step, ctx.attempts = await run_with_fallback(
        steps, attempt, gw.health, gw.config.routing, stream=True
    )
    ctx.first_token_at = time.perf_counter()
    trail.relayed = True
    relay = (relay_responses(gw, ctx, trail, first, iterator, privacy, req) if req.endpoint == "responses"
             else _relay(gw, ctx, trail, first, iterator, privacy, req, wire))
    return _RecordedStream(
        trail, relay,
        media_type="text/event-stream",
        headers={**ctx.headers(), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class Wire(NamedTuple):
    """How a chat stream's relay writes its events: server-sent event bytes for a client, or the
    objects themselves for an API that translates them in process."""

    event: Callable[[dict[str, Any]], Any]
    done: Any
    error: Callable[[NuriError], Any]


BYTES = Wire(encode_event, DONE, error_event)
OBJECTS = Wire(lambda chunk: chunk, None, lambda error: error.to_dict())


def objects_of(response: StreamingResponse) -> AsyncIterator[dict[str, Any] | None]:
    """The body of a stream answer asked `as_objects`: its chunks as objects, None for `[DONE]`."""
    return cast(AsyncIterator[dict[str, Any] | None], response.body_iterator)


class _RecordedStream(StreamingResponse):
    """A stream whose request is recorded however the response ends. The relay records itself;
    this covers a client gone before the relay started or while it waits for the upstream: the
    relay is closed (its `finally` records) and, if it never ran, the record is written here."""

    def __init__(self, trail: Trail, content: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.trail = trail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with contextlib.suppress(Exception):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
            if not self.trail.done:
                await asyncio.shield(self.trail.finish(CLIENT_GONE.status, CLIENT_GONE))


async def _relay(gw: Gateway, ctx: RequestContext, trail: Trail, first: dict[str, Any],
                 iterator: AsyncIterator[dict[str, Any]], privacy: ReplyPrivacy,
                 req: ParsedRequest, wire: Wire = BYTES) -> AsyncIterator[Any]:
    """Relay chunks as they come, filtered; end with usage, the durable record, then [DONE]. On a
    failure the record is written and one error event ends the stream; a client that goes away
    (GeneratorExit or cancellation at a yield or an await) is recorded in the `finally`."""
    model = ctx.step.deployment.id
    emit = wire.event
    wants_usage = req.include_usage
    status: int = CLIENT_GONE.status                  # what stands if the client goes away
    error: NuriError | None = CLIENT_GONE
    completion_chars: list[str] = []
    chunk_filter = privacy.stream_filter()
    label = ctx.replies.stream_label(first, req.endpoint) if ctx.replies is not None else None
    try:
        try:
            if label is not None and (head := label.first(model)) is not None:   # the AI notice, first
                yield emit(head)
            chunk: dict[str, Any] | None = first
            while chunk is not None:
                if chunk.get("usage"):
                    ctx.usage = chunk["usage"]
                chunk["model"] = model
                if chunk_filter is not None:
                    chunk = chunk_filter.process(chunk, in_place=True)
                _count_text(chunk, completion_chars)
                if label is not None:
                    label.on_chunk(chunk)
                if chunk.get("choices") or (wants_usage and chunk.get("usage")):
                    if not wants_usage:
                        chunk.pop("usage", None)
                    yield emit(chunk)
                chunk = await anext(iterator, None)
            rest = chunk_filter.close() if chunk_filter is not None else None
            if rest is not None:
                _count_text(rest, completion_chars)
                yield emit({"object": first.get("object", "chat.completion.chunk"), "model": model, **rest})
            if label is not None and (tail := label.last(model)) is not None:     # the AI notice, last
                yield emit(tail)
            if ctx.replies is not None:
                ctx.replies.check_stream(completion_chars)
            if ctx.citations:                                 # RAG: the sources, in one last chunk
                yield emit({"object": first.get("object", "chat.completion.chunk"), "model": model,
                            "choices": [], "nuri": {"citations": public_citations(ctx.citations)}})
            if not ctx.usage:
                _estimate_usage(ctx, req, completion_chars)
                if wants_usage:
                    yield emit({"object": first.get("object"), "model": model, "choices": [],
                                "usage": ctx.usage})
            status, error = 200, None
        except NuriError as exc:
            status, error = exc.status, exc
            if not isinstance(exc, TermBlocked):           # the reply was refused, the deployment is fine
                gw.health.record_failure(model, "mid-stream")
        except Exception as exc:
            status, error = 500, trail.defect(exc)
        if error is not None and not ctx.usage and completion_chars:
            _estimate_usage(ctx, req, completion_chars)    # what was relayed was generated: charge it
        final = await trail.finish(status, error) or error   # the record before the last event
        yield wire.done if final is None else wire.error(final)
    finally:
        if not trail.done and not ctx.usage and completion_chars:    # the client went away mid-reply
            _estimate_usage(ctx, req, completion_chars)
        await trail.relay_closed(iterator, status, error)


def _estimate_usage(ctx: RequestContext, req: ParsedRequest, completion_chars: list[str]) -> None:
    """Usage from the texts when the upstream reported none."""
    prompt = req.prompt_tokens
    completion = estimate_many(completion_chars)
    ctx.usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _count_text(chunk: dict[str, Any], into: list[str]) -> None:
    """A chunk's content or legacy text, for the usage estimate when the upstream sends none."""
    for choice in chunk.get("choices") or []:
        text = choice.get("text") or (choice.get("delta") or {}).get("content")
        if text:
            into.append(text)


async def _respond(gw: Gateway, ctx: RequestContext, trail: Trail, req: ParsedRequest, steps: list[Any],
                   privacy: ReplyPrivacy, reply: dict[str, Any]) -> dict[str, Any]:
    """A whole reply restored, guarded and held to the terms; retried once elsewhere when it is
    not in the language asked; labelled and with its sources cited. What was generated is charged
    before anything may refuse the reply (a blocked term, a retry)."""
    ctx.usage = _usage(reply, req.prompt_tokens)
    if req.endpoint != "embeddings":
        reply = privacy.reply(reply)
        if ctx.replies is not None and (rest := ctx.replies.language_retry(reply, steps, ctx.step)):
            again = await _call(gw, ctx, trail, req, rest, privacy)          # asked in ko, answered in en
            ctx.usage = _sum_usage(ctx.usage, _usage(again, req.prompt_tokens))
            reply = privacy.reply(again)
            reply["usage"] = ctx.usage
            ctx.replies.language_retry(reply, steps, ctx.step)
    _label(ctx, reply, req.endpoint)
    if ctx.citations:                                                         # RAG: the sources
        reply.setdefault("nuri", {})["citations"] = public_citations(ctx.citations)
    return reply


def _sum_usage(first: dict[str, Any], second: dict[str, Any]) -> dict[str, int]:
    """Both calls' tokens: a retried request generated twice and is charged for both."""
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {k: int(first.get(k) or 0) + int(second.get(k) or 0) for k in keys}


def _label(ctx: RequestContext, reply: dict[str, Any], endpoint: str) -> None:
    """The AI notice on a whole reply, as `replies.label` says (gateway/labels.py); a Response
    object passed through takes the text notice where a translated one has it."""
    if ctx.replies is not None:
        ctx.replies.label_reply(reply)
        if endpoint == "responses" and ctx.replies.label is not None:
            label_response(ctx.replies.label, reply)


def _usage(reply: dict[str, Any], prompt_estimate: int) -> dict[str, int]:
    usage = reply.get("usage")
    if isinstance(usage, dict) and "prompt_tokens" in usage:
        return usage
    if isinstance(usage, dict) and "input_tokens" in usage:        # a Response object's
        return chat_usage(usage)
    # logprobs tokens repeat the content: counted once
    completion = estimate_many(t for path, t in fields.reply_texts(reply) if "logprobs" not in path)
    usage = {"prompt_tokens": prompt_estimate, "completion_tokens": completion,
             "total_tokens": prompt_estimate + completion}
    reply["usage"] = usage
    return usage
