"""Upstream replies checked at the provider boundary, before anything in them reaches the gateway.

Why here: the record, budget and privacy steps rely on a few facts about a reply — it is a JSON
object, `choices` is a list of objects, a text is a string, a usage count is a non-negative
integer. An upstream that breaks one is faulty, and failing at the boundary as a retryable
`UpstreamError` lets routing fall back before the first chunk and the stream end with a clean error
event after it, instead of a crash deep in the pipeline with no record. Only what the gateway
reads is checked; unknown keys pass through to the privacy filter untouched.

The checks return the dotted name of the first field at fault (or None), never its value: an
upstream may echo the prompt, so error messages must not quote what it sent.

Hand checks rather than pydantic: a stream delivers a chunk per token; on a typical chunk these
take about 0.4 µs where a strict pydantic model of the same fields takes about 2.6 µs.
"""

from __future__ import annotations

from typing import Any

# A usage count above this is not a plausible reply; it would also overflow the 64-bit counters
# once turned into cost in nanos.
MAX_TOKENS = 1 << 31
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")
_TEXTS = ("content", "refusal", "text", "reasoning_content")
_FINISH = ("finish_reason",)           # translated by the Responses and Messages APIs, as are calls
_CALL_TEXTS = ("name", "arguments")


def usage_fault(usage: Any, where: str = "usage") -> str | None:
    """The first count in `usage` that is not an integer in [0, MAX_TOKENS]; None if all are.

    Absent keys are fine (the gateway estimates what is missing); `usage: null` counts as absent,
    as OpenAI sends it on every chunk but the last when usage is asked for.
    """
    if usage is None:
        return None
    if type(usage) is not dict:
        return where
    for name in USAGE_FIELDS:
        if name in usage:
            value = usage[name]
            if type(value) is not int or value < 0 or value > MAX_TOKENS:
                return f"{where}.{name}"
    return None


def _text_fault(node: dict[str, Any], where: str, keys: tuple[str, ...] = _TEXTS) -> str | None:
    """The first of `keys` in `node` that holds something other than a string or null."""
    for key in keys:
        value = node.get(key)
        if value is not None and type(value) is not str:
            return f"{where}.{key}"
    return None


def _calls_fault(calls: Any, where: str) -> str | None:
    """Tool calls, which the Responses and Messages APIs translate: a list of objects whose index
    is an integer, whose id is a string and whose function's name and arguments are strings."""
    if calls is None:
        return None
    if type(calls) is not list:
        return where
    for call in calls:
        if type(call) is not dict:
            return f"{where}[]"
        index, call_id, fn = call.get("index"), call.get("id"), call.get("function")
        if index is not None and type(index) is not int:
            return f"{where}[].index"
        if call_id is not None and type(call_id) is not str:
            return f"{where}[].id"
        if fn is not None:
            if type(fn) is not dict:
                return f"{where}[].function"
            fault = _text_fault(fn, f"{where}[].function", _CALL_TEXTS)
            if fault is not None:
                return fault
    return None


def reply_fault(data: Any, endpoint: str) -> str | None:
    """The first field of a whole (non-stream) reply that breaks the shape; None if it holds."""
    if type(data) is not dict:
        return "the reply (not a JSON object)"
    if endpoint == "embeddings":
        items = data.get("data")
        if type(items) is not list:
            return "data"
        for i, item in enumerate(items):
            if type(item) is not dict:
                return f"data[{i}]"
        return usage_fault(data.get("usage"))
    choices = data.get("choices")
    if type(choices) is not list:
        return "choices"
    for i, choice in enumerate(choices):
        if type(choice) is not dict:
            return f"choices[{i}]"
        fault = _text_fault(choice, f"choices[{i}]", _FINISH)
        if fault is not None:
            return fault
        message = choice.get("message")
        if message is not None:
            if type(message) is not dict:
                return f"choices[{i}].message"
            fault = (_text_fault(message, f"choices[{i}].message")
                     or _calls_fault(message.get("tool_calls"), f"choices[{i}].message.tool_calls"))
            if fault is not None:
                return fault
        text = choice.get("text")
        if text is not None and type(text) is not str:
            return f"choices[{i}].text"
    return usage_fault(data.get("usage"))


def chunk_fault(event: Any) -> str | None:
    """The first field of one stream event that breaks the chunk shape; None if it holds."""
    if type(event) is not dict:
        return "the event (not a JSON object)"
    choices = event.get("choices")
    if choices is not None:
        if type(choices) is not list:
            return "choices"
        for choice in choices:
            if type(choice) is not dict:
                return "choices[]"
            fault = _text_fault(choice, "choices[]", _FINISH)
            if fault is not None:
                return fault
            delta = choice.get("delta")
            if delta is not None:
                if type(delta) is not dict:
                    return "choices[].delta"
                fault = _text_fault(delta, "choices[].delta") or _calls_fault(delta.get("tool_calls"),
                                                                               "choices[].delta.tool_calls")
                if fault is not None:
                    return fault
            text = choice.get("text")
            if text is not None and type(text) is not str:
                return "choices[].text"
    usage = event.get("usage")
    return None if usage is None else usage_fault(usage)
