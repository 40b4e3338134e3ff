"""The AI notice in `text` mode on Responses passed through to a deployment that speaks them.

A real `nuri serve` with ai-basic-act and every label mode, in front of a recording upstream that
serves `/v1/responses` itself (`responses: true`). The notice goes where a translated reply has it:
after a blank line at the end of the answer's text, in the whole Response object, and, streamed, as
one more `response.output_text.delta` whose text every closing event and the final Response repeat,
sequence numbers kept consecutive. A response that ends in a function call gets none (as a chat
choice that finishes with tool calls gets none).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from support.processes import upstream_deployment
from support.upstream_server import RunningUpstream

EN = "Written by AI."
REPLY = "독도는 울릉군에 속한 대한민국의 섬입니다."
TAIL = "\n\n"
TOOLS = [{"type": "function", "name": "lookup", "description": "조회합니다.",
          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]


@pytest.fixture(scope="module")
def rig(module_gateway: Any) -> Iterator[tuple[Any, RunningUpstream]]:
    with RunningUpstream() as upstream:
        config = {
            "deployments": [upstream_deployment(upstream, "kr", jurisdiction="KR", hosting="domestic_cloud",
                                                responses=True)],
            "aliases": {"default": ["kr"]},
            "policy": {"packs": ["ai-basic-act"]},
            "ledger": {"enabled": True},
            "replies": {"label": {"modes": ["header", "event", "text", "field"], "language": "en",
                                  "text": {"ko": "AI가 작성했습니다.", "en": EN}}},
        }
        yield module_gateway(config), upstream


@pytest.fixture
def fresh(rig: tuple[Any, RunningUpstream]) -> tuple[Any, RunningUpstream]:
    gw, upstream = rig
    upstream.reset()
    upstream.state.reply = REPLY
    return gw, upstream


def client(gw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="sk-test", max_retries=0, timeout=30)


def test_a_whole_response_ends_with_the_notice(fresh: tuple[Any, RunningUpstream]) -> None:
    gw, upstream = fresh
    resp = client(gw).responses.create(model="default", input="독도는?")
    assert resp.output_text == REPLY + TAIL + EN
    assert resp.model_extra["nuri"] == {"ai_generated": True, "notice": EN}
    assert upstream.state.requests[-1]["path"] == "/v1/responses"          # passed through, not translated


def test_a_streamed_response_sends_the_notice_as_its_last_delta(fresh: tuple[Any, RunningUpstream]) -> None:
    gw, upstream = fresh
    events = list(client(gw).responses.create(model="default", input="독도는?", stream=True))
    assert upstream.state.requests[-1]["path"] == "/v1/responses"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert deltas[-1].delta == TAIL + EN
    assert "".join(d.delta for d in deltas) == REPLY + TAIL + EN
    by_type = {e.type: e for e in events}
    assert by_type["response.output_text.done"].text == REPLY + TAIL + EN
    assert by_type["response.content_part.done"].part.text == REPLY + TAIL + EN
    assert by_type["response.output_item.done"].item.content[0].text == REPLY + TAIL + EN
    final = events[-1]
    assert final.type == "response.completed" and final.response.output_text == REPLY + TAIL + EN
    assert final.response.model_extra["nuri"]["notice"] == EN
    kinds = [e.type for e in events]
    assert kinds.index("response.output_text.delta") < kinds.index("response.output_text.done")
    assert kinds.index("response.output_text.done") > max(i for i, k in enumerate(kinds)
                                                          if k == "response.output_text.delta")


@pytest.mark.parametrize("stream", [False, True])
def test_a_response_that_ends_in_a_function_call_gets_no_text_notice(fresh: tuple[Any, RunningUpstream],
                                                                      stream: bool) -> None:
    gw, upstream = fresh
    upstream.state.reply_fields = {"content": REPLY, "tool_arguments": json.dumps({"q": "독도"})}
    if stream:
        events = list(client(gw).responses.create(model="default", input="독도는?", tools=TOOLS, stream=True))
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == REPLY
        response = events[-1].response
    else:
        response = client(gw).responses.create(model="default", input="독도는?", tools=TOOLS)
    assert response.output_text == REPLY
    assert [item.type for item in response.output] == ["message", "function_call"]
    assert response.model_extra["nuri"]["notice"] == EN                   # the field still says so
