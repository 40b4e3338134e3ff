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
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from nuri.errors import NuriError, PermissionDenied, UpstreamError
from nuri.gateway import limits
from nuri.gateway.context import RequestContext
from nuri.gateway.recording import CLIENT_GONE, Trail
from nuri.gateway.reply import ReplyPrivacy
from nuri.gateway.responses import JSONResponse, error_event, error_response
from nuri.gateway.state import Gateway
from nuri.gateway.wire import read_json_body, validate
from nuri.ledger import tracing
from nuri.policy.evaluate import evaluate_request, policy_off
from nuri.privacy import fields
from nuri.providers.sse import DONE, encode_event
from nuri.routing.fallback import run_with_fallback
from nuri.tokens import estimate_many

log = logging.getLogger("nuri.gateway")
_CALLS = {"chat": "chat", "completions": "complete", "embeddings": "embed"}
_STREAMS = {"chat": "stream_chat", "completions": "stream_complete"}


async def authenticate(gw: Gateway, request: Request, ctx: RequestContext) -> None:
    if gw.ledger is not None:
        client = request.client.host if request.client else None
        ctx.principal = await gw.ledger.authenticate(request.headers.get("authorization"), client)


def check_model_access(ctx: RequestContext, requested: str) -> None:
    allowed = ctx.principal.allowed_models
    if allowed is not None and requested not in allowed:
        raise PermissionDenied(
            f"this API key may not use model {requested!r}; allowed: {', '.join(sorted(allowed))}",
            code="model_not_allowed", param="model",
        )


async def handle(request: Request, endpoint: str) -> Response:
    gw: Gateway = request.app.state.gateway
    ctx = RequestContext(endpoint=endpoint)
    trail = Trail(gw, ctx)
    reply: dict[str, Any] | None = None
    status, error = CLIENT_GONE.status, CLIENT_GONE   # what stands if the task is cancelled
    try:
        await authenticate(gw, request, ctx)                                      # auth
        body = await read_json_body(request, gw.config.server.max_body_bytes)    # parse
        parsed = validate(body, endpoint)
        ctx.requested = parsed.model
        ctx.stream = bool(getattr(parsed, "stream", False))
        check_model_access(ctx, parsed.model)
        candidates = limits.within_output_caps(gw.catalog.resolve(parsed.model), body)   # n × max_tokens
        limits.enter(request, ctx.principal, gw.config.server.max_concurrent_per_key)    # in flight per key
        if gw.engine is not None:                                                 # classify, decide, route
            classifier = await limits.classifier_for(request, body, endpoint, gw.scanner,
                                                     gw.config.server.classify_inline_max_bytes)
            ctx.classification, ctx.decision, steps = evaluate_request(
                body, endpoint, ctx.principal, parsed.model, classifier=classifier,
                scanner=gw.scanner, engine=gw.engine, router=gw.router, config=gw.config, candidates=candidates,
            )
            steps = limits.keep_home(steps, ctx.classification, gw.config.policy.home_jurisdiction)
        else:
            ctx.decision = policy_off(parsed.model, candidates)   # operator switched policy off
            steps = gw.router.plan(ctx.decision, {d.id: d for d in candidates}, 0)
        prompt_tokens = estimate_many(t for _, t in fields.request_texts(body, endpoint))
        if gw.ledger is not None:                                                # budgets, rate limits
            ctx.admission = await gw.ledger.admit(ctx.principal, prompt_tokens + _max_tokens(body))
        privacy = ReplyPrivacy(gw.scanner, ctx.classification, gw.config.privacy, guard=gw.engine is not None)
        if ctx.stream:                                                            # its relay records
            return await _stream(gw, ctx, trail, body, endpoint, steps, privacy)
        reply = await _call(gw, ctx, trail, body, endpoint, steps, privacy)      # transform, call
        reply = privacy.reply(reply) if endpoint != "embeddings" else reply      # restore, guard
        _label(ctx, reply)
        ctx.usage = _usage(reply, prompt_tokens)
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
    return JSONResponse(reply, headers=ctx.headers())


def _max_tokens(body: dict[str, Any]) -> int:
    """Output tokens admission reserves: n × max_tokens, as each of n choices may use them all."""
    return limits.requested_output(body)


def _upstream_body(body: dict[str, Any], endpoint: str, privacy: ReplyPrivacy, step: Any,
                   stream: bool) -> dict[str, Any]:
    out = privacy.mask(body, endpoint, step.mask_types)                          # transform
    if stream:
        out = {**out, "stream": True, "stream_options": {"include_usage": True}}
    return out


async def _call(gw: Gateway, ctx: RequestContext, trail: Trail, body: dict[str, Any], endpoint: str,
                steps: list[Any], privacy: ReplyPrivacy) -> dict[str, Any]:
    async def attempt(step: Any) -> dict[str, Any]:
        provider = gw.providers[step.deployment.id]
        upstream_body = _upstream_body(body, endpoint, privacy, step, False)
        await trail.forwarding(step)
        with tracing.span("nuri.upstream", deployment=step.deployment.id, masked=bool(step.mask_types)):
            return await getattr(provider, _CALLS[endpoint])(upstream_body)

    reply, ctx.step, ctx.attempts = await run_with_fallback(steps, attempt, gw.health, gw.config.routing)
    reply["model"] = ctx.step.deployment.id
    return reply


async def _stream(gw: Gateway, ctx: RequestContext, trail: Trail, body: dict[str, Any], endpoint: str,
                  steps: list[Any], privacy: ReplyPrivacy) -> Response:
    """Open the stream with fallback up to its first chunk; after that nothing is retried."""

    async def attempt(step: Any) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]]:
        provider = gw.providers[step.deployment.id]
        upstream_body = _upstream_body(body, endpoint, privacy, step, True)
        await trail.forwarding(step)
        iterator = getattr(provider, _STREAMS[endpoint])(upstream_body).__aiter__()
        with tracing.span("nuri.upstream.first_chunk", deployment=step.deployment.id, masked=bool(step.mask_types)):
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration as exc:
                raise UpstreamError(f"deployment {step.deployment.id} sent an empty stream", retryable=True) from exc
        return first, iterator

    if endpoint not in _STREAMS:
        raise NuriError("streaming is not available on this endpoint", status=400)
    (first, iterator), ctx.step, ctx.attempts = await run_with_fallback(
        steps, attempt, gw.health, gw.config.routing, stream=True
    )
    ctx.first_token_at = time.perf_counter()
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    trail.relayed = True
    return _RecordedStream(
        trail, _relay(gw, ctx, trail, first, iterator, privacy, wants_usage, body),
        media_type="text/event-stream",
        headers={**ctx.headers(), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


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
                 iterator: AsyncIterator[dict[str, Any]], privacy: ReplyPrivacy, wants_usage: bool,
                 body: dict[str, Any]) -> AsyncIterator[bytes]:
    """Relay chunks as they come, filtered; end with usage, the durable record, then [DONE]. On a
    failure the record is written and one error event ends the stream; a client that goes away
    (GeneratorExit or cancellation at a yield or an await) is recorded in the `finally`."""
    model = ctx.step.deployment.id
    status, error = CLIENT_GONE.status, CLIENT_GONE    # what stands if the client goes away
    completion_chars: list[str] = []
    chunk_filter = privacy.stream_filter()
    try:
        try:
            chunk: dict[str, Any] | None = first
            while chunk is not None:
                if chunk.get("usage"):
                    ctx.usage = chunk["usage"]
                chunk["model"] = model
                if chunk_filter is not None:
                    chunk = chunk_filter.process(chunk, in_place=True)
                _count_text(chunk, completion_chars)
                if chunk.get("choices") or (wants_usage and chunk.get("usage")):
                    if not wants_usage:
                        chunk.pop("usage", None)
                    yield encode_event(chunk)
                chunk = await anext(iterator, None)
            rest = chunk_filter.close() if chunk_filter is not None else None
            if rest is not None:
                _count_text(rest, completion_chars)
                yield encode_event({"object": first.get("object", "chat.completion.chunk"), "model": model, **rest})
            if not ctx.usage:
                _estimate_usage(ctx, body, completion_chars)
                if wants_usage:
                    yield encode_event({"object": first.get("object"), "model": model, "choices": [],
                                        "usage": ctx.usage})
            status, error = 200, None
        except NuriError as exc:
            status, error = exc.status, exc
            gw.health.record_failure(model, "mid-stream")
        except Exception as exc:
            status, error = 500, trail.defect(exc)
        if error is not None and not ctx.usage and completion_chars:
            _estimate_usage(ctx, body, completion_chars)    # what was relayed was generated: charge it
        final = await trail.finish(status, error) or error   # the record before the last event
        yield DONE if final is None else error_event(final)
    finally:
        with contextlib.suppress(Exception):
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        if not trail.done:                                   # the client went away
            if not ctx.usage and completion_chars:
                _estimate_usage(ctx, body, completion_chars)
            await asyncio.shield(trail.finish(status, error))


def _estimate_usage(ctx: RequestContext, body: dict[str, Any], completion_chars: list[str]) -> None:
    """Usage from the texts when the upstream reported none."""
    prompt = estimate_many(t for _, t in fields.request_texts(body, ctx.endpoint))
    completion = estimate_many(completion_chars)
    ctx.usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _count_text(chunk: dict[str, Any], into: list[str]) -> None:
    """A chunk's content or legacy text, for the usage estimate when the upstream sends none."""
    for choice in chunk.get("choices") or []:
        text = choice.get("text") or (choice.get("delta") or {}).get("content")
        if text:
            into.append(text)


def _label(ctx: RequestContext, reply: dict[str, Any]) -> None:
    decision = ctx.decision
    if decision is not None and decision.label:
        reply["nuri"] = {"ai_generated": True, "notice": decision.label_text}


def _usage(reply: dict[str, Any], prompt_estimate: int) -> dict[str, int]:
    usage = reply.get("usage")
    if isinstance(usage, dict) and "prompt_tokens" in usage:
        return usage
    # logprobs tokens repeat the content: counted once
    completion = estimate_many(t for path, t in fields.reply_texts(reply) if "logprobs" not in path)
    usage = {"prompt_tokens": prompt_estimate, "completion_tokens": completion,
             "total_tokens": prompt_estimate + completion}
    reply["usage"] = usage
    return usage
