"""The relay of a Responses API stream passed through to a deployment that speaks it.

The chat relay (`pipeline._relay`) reads chat chunks; a deployment with `responses: true` sends
Responses events instead (`response.created`, `response.output_text.delta`, …,
`response.completed`). This relay is the same step for them: every event restored and guarded
(`stream_privacy.ResponsesEventFilter`), usage taken from the final event, and the request
recorded exactly once, before the final event is sent, or when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from nuri.errors import NuriError, UpstreamError
from nuri.gateway.context import RequestContext
from nuri.gateway.recording import CLIENT_GONE, Trail
from nuri.gateway.reply import STREAM_MIN_EMIT, ReplyPrivacy
from nuri.gateway.request import ParsedRequest
from nuri.gateway.state import Gateway
from nuri.gateway.stream_privacy import RESPONSE_SNAPSHOTS, ResponsesEventFilter
from nuri.policy.terminology import TermBlocked
from nuri.tokens import estimate_many

_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def chat_usage(usage: dict[str, Any]) -> dict[str, int]:
    """A Response object's usage in the chat shape the ledger and the record read."""
    p, c = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def encode(event: dict[str, Any]) -> bytes:
    """One named server-sent event, as the Responses API streams them."""
    kind = event.get("type")
    name = kind.encode() if isinstance(kind, str) and kind.isascii() and "\n" not in kind else b"message"
    return b"event: " + name + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def event_filter(privacy: ReplyPrivacy) -> ResponsesEventFilter | None:
    """The request's restorer and guard for Responses events; None when there is nothing to do."""
    if not privacy.active:
        return None
    settings = privacy.settings
    return ResponsesEventFilter(privacy.pseudonymizer, privacy.scanner, sent_values=privacy.sent,
                                hold_chars=settings.guard_hold_chars, min_emit=STREAM_MIN_EMIT,
                                min_score=settings.guard_min_score, terms=privacy.terms)


def _error_event(error: NuriError, seq: int) -> bytes:
    err = error.to_dict()["error"]
    return encode({"type": "error", "code": err.get("code") or err.get("type"), "message": err.get("message"),
                   "param": err.get("param"), "sequence_number": seq})


async def relay_responses(gw: Gateway, ctx: RequestContext, trail: Trail, first: dict[str, Any],
                          iterator: AsyncIterator[dict[str, Any]], privacy: ReplyPrivacy,
                          req: ParsedRequest) -> AsyncIterator[bytes]:
    """Relay the events as they come, filtered; the record is written before the final event
    (`response.completed` and its kin) goes out. A failure ends the stream with one `error` event."""
    model = ctx.step.deployment.id
    status: int = CLIENT_GONE.status
    error: NuriError | None = CLIENT_GONE
    texts: list[str] = []
    filt = event_filter(privacy)
    label = ctx.replies.label if ctx.replies is not None else None
    held: list[bytes] = []          # the final event, sent once the request is recorded
    failed = False
    seq = 0
    try:
        try:
            event: dict[str, Any] | None = first
            while event is not None:
                kind = event.get("type")
                if kind in RESPONSE_SNAPSHOTS and isinstance(event.get("response"), dict):
                    event["response"]["model"] = model
                    usage = event["response"].get("usage")
                    if isinstance(usage, dict) and kind in _FINAL:
                        ctx.usage = chat_usage(usage)
                    if kind in _FINAL and label is not None and "field" in label.modes:   # the AI notice
                        nuri = event["response"].get("nuri")
                        event["response"]["nuri"] = {**(nuri if isinstance(nuri, dict) else {}), **label.body()}
                for out in filt.process(event) if filt is not None else [event]:
                    if out.get("type") == "response.output_text.delta":
                        texts.append(out["delta"])
                    seq = int(out.get("sequence_number") or seq) + 1
                    if out.get("type") in _FINAL:
                        held.append(encode(out))
                    else:
                        yield encode(out)
                if kind in _FINAL:
                    failed = kind == "response.failed"
                    break
                event = await anext(iterator, None)
            for out in filt.close() if filt is not None else []:
                yield encode(out)
            if ctx.replies is not None:
                ctx.replies.check_stream(texts)
            if not ctx.usage:
                completion = estimate_many(texts)
                ctx.usage = {"prompt_tokens": req.prompt_tokens, "completion_tokens": completion,
                             "total_tokens": req.prompt_tokens + completion}
            status, error = 200, None
            if failed:                  # the upstream's own `response.failed`: sent on, recorded as its failure
                status, error = 502, UpstreamError(f"deployment {model} answered response.failed", retryable=True)
                gw.health.record_failure(model, "mid-stream")
        except NuriError as exc:
            status, error = exc.status, exc
            if not isinstance(exc, TermBlocked):
                gw.health.record_failure(model, "mid-stream")
        except Exception as exc:
            status, error = 500, trail.defect(exc)
        if error is not None and not ctx.usage and texts:
            completion = estimate_many(texts)       # what was relayed was generated: charge it
            ctx.usage = {"prompt_tokens": req.prompt_tokens, "completion_tokens": completion,
                         "total_tokens": req.prompt_tokens + completion}
        final = await trail.finish(status, error) or error     # the record before the last event
        if final is None or failed:
            for raw in held:
                yield raw
        else:
            yield _error_event(final, seq)
    finally:
        with contextlib.suppress(Exception):
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        if not trail.done:                                   # the client went away
            await asyncio.shield(trail.finish(status, error))
