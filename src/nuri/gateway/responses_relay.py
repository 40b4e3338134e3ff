"""The relay of a Responses API stream passed through to a deployment that speaks it.

The chat relay (`pipeline._relay`) reads chat chunks; a deployment with `responses: true` sends
Responses events instead (`response.created`, `response.output_text.delta`, …,
`response.completed`). This relay is the same step for them: every event restored and guarded
(`stream_privacy.ResponsesEventFilter`), the AI notice as the label asks, usage taken from the
final event, and the request recorded exactly once, before the final event is sent, or when the
client goes away.

The notice in `text` mode goes where a translated reply has it: after a blank line at the end of
the answer's text, that is the last `output_text` part of the last output item, when the
response ends with one (a response that ends in a function call gets none, as a chat choice that
finishes with tool calls gets none); whole (`label_response`) or streamed (`TextNotice`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from nuri.errors import NuriError, UpstreamError
from nuri.gateway.context import RequestContext
from nuri.gateway.labels import Label
from nuri.gateway.recording import CLIENT_GONE, Trail
from nuri.gateway.reply import STREAM_MIN_EMIT, ReplyPrivacy
from nuri.gateway.request import ParsedRequest
from nuri.gateway.state import Gateway
from nuri.gateway.stream_privacy import RESPONSE_SNAPSHOTS, ResponsesEventFilter
from nuri.policy.terminology import TermBlocked
from nuri.tokens import estimate_many

_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_SEPARATOR = "\n\n"


def _last_text(output: Any) -> dict[str, Any] | None:
    """The content part the answer's text ends in: the last part of the last output item, when
    that item is a message and that part `output_text`."""
    item = output[-1] if isinstance(output, list) and output else None
    content = item.get("content") if isinstance(item, dict) and item.get("type") == "message" else None
    part = content[-1] if isinstance(content, list) and content else None
    return part if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(
        part.get("text"), str) else None


def label_response(label: Label, response: dict[str, Any]) -> None:
    """A whole Response object with the notice appended to its text, when the label asks for `text`."""
    if "text" in label.modes and (part := _last_text(response.get("output"))) is not None:
        part["text"] += _SEPARATOR + label.notice


class TextNotice:
    """The notice in `text` mode on a Responses event stream, after privacy filtering.

    The last text is only known to be last when the response ends, so from a text's
    `response.output_text.done` on the events are held: if the response then ends (its content
    part and output item closing on the way), the notice goes out as one more delta and is added
    to the text of every event held and of the final Response; if anything else comes first (a
    new part or output item), they are sent as they were. Sequence numbers after the added delta
    move up by one."""

    __slots__ = ("_held", "_shift", "_text")

    def __init__(self, notice: str) -> None:
        self._text = _SEPARATOR + notice
        self._held: list[dict[str, Any]] = []
        self._shift = 0

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The events to send now for one filtered event."""
        kind = event.get("type")
        if self._held:
            first = self._held[0]
            if kind in ("response.completed", "response.incomplete"):
                return self._ending(event)
            if kind in ("response.content_part.done", "response.output_item.done") and \
                    event.get("output_index") == first.get("output_index"):
                self._held.append(event)
                return []
            out = self.release()
        else:
            out = []
        if kind == "response.output_text.done":
            self._held = [event]
            return out
        return [*out, self.renumbered(event)]

    def release(self) -> list[dict[str, Any]]:
        """The events held, as they were (the stream went on, or ended without a final event)."""
        held, self._held = self._held, []
        return [self.renumbered(e) for e in held]

    def renumbered(self, event: dict[str, Any]) -> dict[str, Any]:
        if self._shift and isinstance(event.get("sequence_number"), int):
            event["sequence_number"] += self._shift
        return event

    def _ending(self, final: dict[str, Any]) -> list[dict[str, Any]]:
        held, self._held = self._held, []
        done = held[0]
        response = final.get("response")
        part = _last_text(response.get("output")) if isinstance(response, dict) else None
        if part is None or part.get("text") != done.get("text"):
            return [self.renumbered(e) for e in [*held, final]]     # not the text the response ends in
        delta: dict[str, Any] = {
            "type": "response.output_text.delta", "sequence_number": done.get("sequence_number"),
            "item_id": done.get("item_id"), "output_index": done.get("output_index"),
            "content_index": done.get("content_index"), "delta": self._text, "logprobs": []}
        self.renumbered(delta)
        self._shift += 1
        for event in held:
            if event["type"] == "response.output_text.done" and isinstance(event.get("text"), str):
                event["text"] += self._text
            elif event["type"] == "response.content_part.done":
                closing = event.get("part")
                if isinstance(closing, dict) and isinstance(closing.get("text"), str):
                    closing["text"] += self._text
            elif event["type"] == "response.output_item.done":
                closing = _last_text([event.get("item")])
                if closing is not None:
                    closing["text"] += self._text
        part["text"] += self._text
        return [delta, *(self.renumbered(e) for e in held), self.renumbered(final)]


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
    notice = TextNotice(label.notice) if label is not None and "text" in label.modes else None
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
                for filtered in filt.process(event) if filt is not None else [event]:
                    if filtered.get("type") == "response.output_text.delta":
                        texts.append(filtered["delta"])
                    for out in notice.feed(filtered) if notice is not None else [filtered]:
                        seq = int(out.get("sequence_number") or seq) + 1
                        if out.get("type") in _FINAL:
                            held.append(encode(out))
                        else:
                            yield encode(out)
                if kind in _FINAL:
                    failed = kind == "response.failed"
                    break
                event = await anext(iterator, None)
            rest = filt.close() if filt is not None else []
            if notice is not None:
                rest = [*notice.release(), *(notice.renumbered(e) for e in rest)]
            for out in rest:
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
        await trail.relay_closed(iterator, status, error)
