"""The Responses and Messages translations take any JSON (property test).

A request body of any shape is translated or refused with the API's own 400 (a `NuriError`),
never an exception of another kind (a 500). An upstream reply or stream the provider checks let
through is translated into a Response, a Message and their event streams without an exception;
a Messages upstream's reply or event of any shape is translated or is the provider's malformed
reply. Values that are not names (a `type` that is a list, an object where a string belongs)
are what the strategies lean on: such values answered 500 before.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nuri.errors import NuriError
from nuri.gateway import api_messages, api_responses
from nuri.providers import anthropic
from nuri.providers.replies import chunk_fault, reply_fault

KEYS = ["type", "role", "content", "text", "id", "name", "input", "output", "arguments", "call_id", "tool_use_id",
        "tool_calls", "function", "index", "finish_reason", "refusal", "message", "delta", "choices", "usage",
        "model", "effort", "format", "schema", "output_config", "tool_choice", "tools", "system", "messages",
        "max_tokens", "instructions", "max_output_tokens", "text", "source", "data", "media_type", "image_url",
        "stop_reason", "input_tokens", "output_tokens", "content_block", "partial_json", "prompt_tokens"]
WORDS = ["user", "assistant", "system", "developer", "tool", "message", "text", "input_text", "output_text",
         "function_call", "function_call_output", "function", "tool_use", "tool_result", "image", "document",
         "input_image", "auto", "any", "none", "json_schema", "stop", "length", "tool_calls", "end_turn",
         "message_start", "content_block_start", "content_block_delta", "message_delta", "message_stop",
         "text_delta", "input_json_delta", "base64", "low", "high"]
# values that are not names: where a string belongs, a list or an object
ODD = st.sampled_from([[], {}, ["string", "null"], {"type": {}}, [{}]])
leaves = st.one_of(st.none(), st.booleans(), st.integers(-3, 5), st.sampled_from(WORDS), st.text(max_size=4), ODD)
values = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
                      max_leaves=25)
objects = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)

# Whole valid requests, each drawn with one or two of its values (or a new key) replaced by any
# value: a body refused at its first wrong field would never reach the parts after it.
RESPONSES = {
    "model": "default", "instructions": "짧게 답하세요.", "max_output_tokens": 16, "metadata": {"k": "v"},
    "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "안녕하세요"}]},
              {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
              {"type": "function_call_output", "call_id": "c1", "output": "결과"}],
    "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}], "tool_choice": "auto",
    "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}}}
MESSAGES = {
    "model": "default", "max_tokens": 16, "system": [{"type": "text", "text": "짧게"}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "안녕하세요"}]},
                 {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                               "content": [{"type": "text", "text": "결과"}]}]}],
    "tools": [{"name": "lookup", "input_schema": {"type": "object"}}], "tool_choice": {"type": "auto"},
    "output_config": {"effort": "low"}, "stop_sequences": ["끝"], "metadata": {"user_id": "u"}}


def _places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and list position of `node`, and a new key in each object."""
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        out.append((*path, None))
        for key, value in node.items():
            out += [(*path, key), *_places(value, (*path, key))]
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += [(*path, i), *_places(value, (*path, i))]
    return out


def _replaced(body: dict[str, Any], changes: list[tuple[tuple[Any, ...], str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    for path, new_key, value in changes:
        node: Any = out
        for step in path[:-1]:       # an earlier change may have replaced a container on the way
            if isinstance(node, dict) and step in node or \
                    isinstance(node, list) and isinstance(step, int) and step < len(node):
                node = node[step]
            else:
                break
        else:
            last = path[-1]
            if isinstance(node, dict) and not isinstance(last, int):     # JSON keys are strings
                node[new_key if last is None else last] = value
            elif isinstance(node, list) and isinstance(last, int) and last < len(node):
                node[last] = value
    return out


def varied(body: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    change = st.tuples(st.sampled_from(_places(body)), st.sampled_from(KEYS), values)
    return st.lists(change, min_size=1, max_size=2).map(lambda changes: _replaced(body, changes))


chunks = st.fixed_dictionaries({"choices": st.lists(objects, max_size=2)}, optional={"usage": values, "model": values})
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
MORE = settings(SETTINGS, max_examples=500)      # requests: many places to vary, each rarely drawn


def _turn(stream: bool = False) -> api_responses.Turn:
    body = {"model": "default", "input": "안녕하세요", "stream": stream}
    return api_responses.Turn(body, api_responses.input_items(body["input"]), [], "team", None)


@MORE
@given(st.one_of(objects, varied(RESPONSES)))
def test_a_responses_request_is_translated_or_refused(body: dict[str, Any]) -> None:
    with contextlib.suppress(NuriError):
        api_responses.check_parameters(body)
        api_responses.to_chat(body, [], api_responses.input_items(body["input"]))


@MORE
@given(st.one_of(objects, varied(MESSAGES)))
def test_a_messages_request_is_translated_or_refused(body: dict[str, Any]) -> None:
    with contextlib.suppress(NuriError):
        api_messages.to_chat(body)


@SETTINGS
@given(st.fixed_dictionaries({"choices": st.lists(objects, max_size=2)}, optional={"usage": values}))
def test_a_reply_the_checks_let_through_is_translated(reply: dict[str, Any]) -> None:
    if reply_fault(reply, "chat") is not None:
        return
    _turn().from_chat(reply)
    api_messages.from_chat(reply)


@SETTINGS
@given(st.lists(chunks, max_size=4))
def test_a_stream_the_checks_let_through_is_translated(events: list[dict[str, Any]]) -> None:
    passed = [e for e in events if chunk_fault(e) is None]
    responses, messages = api_responses._StreamWriter(_turn(stream=True)), api_messages._StreamWriter()
    responses.start()
    messages.start("m")
    for event in passed:
        responses.chunk(event)
        messages.chunk(event)
    responses.completed(responses.finish())
    messages.end()


# what the Messages adapter turns into its malformed-reply error
MALFORMED = (AttributeError, TypeError, ValueError)


@SETTINGS
@given(st.fixed_dictionaries({"content": st.lists(values, max_size=3)},
                             optional={"usage": values, "stop_reason": values, "id": values}))
def test_a_messages_upstream_reply_is_translated_or_malformed(data: dict[str, Any]) -> None:
    try:
        reply = anthropic.from_message(data)
    except MALFORMED:
        return
    reply_fault(reply, "chat")


@SETTINGS
@given(st.lists(st.fixed_dictionaries({"type": st.sampled_from(WORDS)},
                                      optional={k: values for k in ("index", "message", "content_block", "delta",
                                                                    "usage")}), max_size=6))
def test_a_messages_upstream_stream_is_translated_or_malformed(events: list[dict[str, Any]]) -> None:
    chunker = anthropic._Chunks()
    for event in events:
        try:
            for chunk in chunker.event(event):
                chunk_fault(chunk)
        except MALFORMED:
            return
