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

from nuri.errors import InternalError, NuriError, PermissionDenied, UpstreamError
from nuri.gateway.context import RequestContext
from nuri.gateway.recording import record
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
        ctx.principal = await gw.ledger.authenticate(request.headers.get("authorization"))


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
    try:
        await authenticate(gw, request, ctx)                                      # auth
        body = await read_json_body(request, gw.config.server.max_body_bytes)    # parse
        parsed = validate(body, endpoint)
        ctx.requested = parsed.model
        ctx.stream = bool(getattr(parsed, "stream", False))
        check_model_access(ctx, parsed.model)
        candidates = gw.catalog.resolve(parsed.model)
        if gw.engine is not None:                                                 # classify, decide, route
            ctx.classification, ctx.decision, steps = evaluate_request(
                body, endpoint, ctx.principal, parsed.model,
                scanner=gw.scanner, engine=gw.engine, router=gw.router, config=gw.config, candidates=candidates,
            )
        else:
            ctx.decision = policy_off(parsed.model, candidates)   # operator switched policy off
            steps = gw.router.plan(ctx.decision, {d.id: d for d in candidates}, 0)
        prompt_tokens = estimate_many(t for _, t in fields.request_texts(body, endpoint))
        if gw.ledger is not None:                                                # budgets, rate limits
            ctx.admission = await gw.ledger.admit(ctx.principal, prompt_tokens + _max_tokens(body))
        privacy = ReplyPrivacy(gw.scanner, ctx.classification, gw.config.privacy, guard=gw.engine is not None)
        if ctx.stream:
            return await _stream(gw, ctx, body, endpoint, steps, privacy)
        reply = await _call(gw, ctx, body, endpoint, steps, privacy)             # transform, call
        reply = privacy.reply(reply) if endpoint != "embeddings" else reply      # restore, guard
        _label(ctx, reply)
        ctx.usage = _usage(reply, prompt_tokens)
        await record(gw, ctx, status=200)                                         # record
        return JSONResponse(reply, headers=ctx.headers())
    except NuriError as exc:
        await record(gw, ctx, status=exc.status, error=exc)
        return error_response(exc, headers=ctx.headers())
    except Exception as exc:
        # A defect, not a refusal: still one audit record. Only the exception's type is logged, as
        # its message or traceback could quote the request.
        log.error("request %s failed: %s", ctx.request_id, type(exc).__name__)
        failure = InternalError("internal error; the request was not completed", code="internal_error")
        await record(gw, ctx, status=500, error=failure)
        return error_response(failure, headers=ctx.headers())


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens") or 256
    return value if isinstance(value, int) else 256


def _upstream_body(body: dict[str, Any], endpoint: str, privacy: ReplyPrivacy, step: Any,
                   stream: bool) -> dict[str, Any]:
    out = privacy.mask(body, endpoint, step.mask_types)                          # transform
    if stream:
        out = {**out, "stream": True, "stream_options": {"include_usage": True}}
    return out


async def _call(gw: Gateway, ctx: RequestContext, body: dict[str, Any], endpoint: str, steps: list[Any],
                privacy: ReplyPrivacy) -> dict[str, Any]:
    async def attempt(step: Any) -> dict[str, Any]:
        provider = gw.providers[step.deployment.id]
        upstream_body = _upstream_body(body, endpoint, privacy, step, False)
        with tracing.span("nuri.upstream", deployment=step.deployment.id, masked=bool(step.mask_types)):
            return await getattr(provider, _CALLS[endpoint])(upstream_body)

    reply, ctx.step, ctx.attempts = await run_with_fallback(steps, attempt, gw.health, gw.config.routing)
    reply["model"] = ctx.step.deployment.id
    return reply


async def _stream(gw: Gateway, ctx: RequestContext, body: dict[str, Any], endpoint: str, steps: list[Any],
                  privacy: ReplyPrivacy) -> Response:
    """Open the stream with fallback up to its first chunk; after that nothing is retried."""

    async def attempt(step: Any) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]]:
        provider = gw.providers[step.deployment.id]
        iterator = getattr(provider, _STREAMS[endpoint])(_upstream_body(body, endpoint, privacy, step, True))
        iterator = iterator.__aiter__()
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
    return StreamingResponse(
        _relay(gw, ctx, first, iterator, privacy, wants_usage, body),
        media_type="text/event-stream",
        headers={**ctx.headers(), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _relay(gw: Gateway, ctx: RequestContext, first: dict[str, Any], iterator: AsyncIterator[dict[str, Any]],
                 privacy: ReplyPrivacy, wants_usage: bool, body: dict[str, Any]) -> AsyncIterator[bytes]:
    """Relay chunks as they come, filtered; end with usage, a durable record, then [DONE]."""
    model = ctx.step.deployment.id
    status, error = 200, None
    completion_chars: list[str] = []
    chunk_filter = privacy.stream_filter()
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
            prompt = estimate_many(t for _, t in fields.request_texts(body, ctx.endpoint))
            completion = estimate_many(completion_chars)
            ctx.usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                         "total_tokens": prompt + completion}
            if wants_usage:
                yield encode_event({"object": first.get("object"), "model": model, "choices": [],
                                    "usage": ctx.usage})
    except NuriError as exc:
        status, error = exc.status, exc
        gw.health.record_failure(model, "mid-stream")
        yield error_event(exc)
        return
    except asyncio.CancelledError:
        status, error = 499, InternalError("client closed the stream", code="client_closed")
        raise
    finally:
        with contextlib.suppress(Exception):
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        if status != 200 or error is not None:
            await asyncio.shield(record(gw, ctx, status=status, error=error))
    await record(gw, ctx, status=200)
    yield DONE


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
