"""The Responses API (`POST /v1/responses`) end to end, with the real OpenAI SDK as a client.

Requests go through a real `nuri serve` to recording upstreams: `default` prefers the foreign `us`
over the domestic `kr` (support.boundary). What the upstreams received is the evidence: a
resident registration number in an input item or in `instructions` never reaches `us`; a phone
number does only as a placeholder, and the client gets its own value back.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from support.boundary import FAMILIES, Boundary, Seen, find_value, reset_upstream
from support.upstream_server import RunningUpstream

RRN, PHONE = FAMILIES["KR_RRN"], FAMILIES["PHONE"]
TOOLS = [{"type": "function", "name": "lookup", "description": "고객 정보를 조회합니다.",
          "parameters": {"type": "object", "properties": {"phone": {"type": "string"}}}}]



def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=30)


def seen_by(server: RunningUpstream, family: Any) -> str | None:
    raws = server.received_bodies()
    return find_value(Seen.of(raws, [json.loads(r) for r in raws]), family)


def sent_messages(server: RunningUpstream) -> list[dict[str, Any]]:
    return json.loads(server.received_bodies()[-1])["messages"]


def test_a_string_input_is_answered_with_output_text_and_usage(fresh: Boundary) -> None:
    raw = client(fresh.gateway.base_url).responses.with_raw_response.create(
        model="default", input="안녕하세요", instructions="짧게 답하세요.", max_output_tokens=32)
    resp = raw.parse()
    assert resp.status == "completed" and resp.id.startswith("resp_")
    assert resp.output_text.startswith("ECHO:")
    assert resp.usage.input_tokens > 0 and resp.usage.total_tokens >= resp.usage.input_tokens
    assert raw.headers["x-nuri-deployment"] == "us"
    sent = json.loads(fresh.us.received_bodies()[-1])
    assert sent["messages"] == [{"role": "system", "content": "짧게 답하세요."},
                                {"role": "user", "content": "안녕하세요"}]
    assert sent["max_tokens"] == 32


@pytest.mark.parametrize("where", ["input_item", "instructions"])
def test_an_rrn_never_reaches_the_foreign_upstream(fresh: Boundary, where: str) -> None:
    text = RRN.text(RRN.value)
    items = [{"role": "user", "content": [{"type": "input_text", "text": "고객 정보를 조회해 주세요."}]}]
    kwargs: dict[str, Any] = {"instructions": text} if where == "instructions" else {}
    if where == "input_item":
        items[0]["content"].append({"type": "input_text", "text": text})
    raw = client(fresh.gateway.base_url).responses.with_raw_response.create(model="default", input=items, **kwargs)
    assert seen_by(fresh.us, RRN) is None, seen_by(fresh.us, RRN)
    assert raw.headers["x-nuri-deployment"] == "kr"
    assert "pipa-unique-id-domestic" in raw.headers["x-nuri-policy"]
    assert seen_by(fresh.kr, RRN) is not None        # not vacuous: it travelled, at home
    assert raw.parse().status == "completed"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("where", ["input_item", "instructions"])
def test_a_phone_number_goes_abroad_masked_and_comes_back_restored(fresh: Boundary, where: str,
                                                                  stream: bool) -> None:
    text = PHONE.text(PHONE.value)
    items = [{"type": "message", "role": "user", "content": text if where == "input_item" else "안내해 주세요."}]
    kwargs: dict[str, Any] = {"instructions": text} if where == "instructions" else {}
    oa = client(fresh.gateway.base_url)
    if stream:
        events = list(oa.responses.create(model="default", input=items, stream=True, **kwargs))
        kinds = [e.type for e in events]
        assert kinds[:2] == ["response.created", "response.in_progress"]
        assert kinds[-1] == "response.completed" and "response.output_text.delta" in kinds
        assert [e.sequence_number for e in events] == list(range(len(events)))
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        final = events[-1].response
        assert final.output_text == deltas
        assert final.usage is not None and final.usage.output_tokens > 0
    else:
        final = oa.responses.create(model="default", input=items, **kwargs)
    assert seen_by(fresh.us, PHONE) is None, seen_by(fresh.us, PHONE)
    assert "<PHONE_1>" in fresh.us.received_bodies()[-1]
    assert PHONE.value in final.output_text          # the client's own value, restored


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_tool_call_then_its_output_with_previous_response_id(fresh: Boundary, stream: bool) -> None:
    fresh.us.state.reply_fields = {"tool_arguments": '{"phone": "{{placeholders}}"}'}
    oa = client(fresh.gateway.base_url)
    ask = PHONE.text(PHONE.value) + " 이 번호로 고객을 조회해 주세요."
    if stream:
        events = list(oa.responses.create(model="default", input=ask, tools=TOOLS, stream=True))
        kinds = [e.type for e in events]
        assert "response.function_call_arguments.delta" in kinds
        assert "response.function_call_arguments.done" in kinds
        first = events[-1].response
    else:
        first = oa.responses.create(model="default", input=ask, tools=TOOLS)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "lookup"
    assert json.loads(calls[0].arguments) == {"phone": PHONE.value}       # restored inside the arguments
    sent_tools = json.loads(fresh.us.received_bodies()[-1])["tools"]
    assert sent_tools[0]["function"]["name"] == "lookup"

    reset_upstream(fresh.us)
    second = oa.responses.create(model="default", previous_response_id=first.id, tools=TOOLS, input=[
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "가입 상품: 기본 요금제"}])
    assert second.previous_response_id == first.id and second.status == "completed"
    history = sent_messages(fresh.us)
    assert [m["role"] for m in history] == ["user", "assistant", "tool"]
    assert history[1]["tool_calls"][0]["id"] == calls[0].call_id
    assert history[2] == {"role": "tool", "tool_call_id": calls[0].call_id, "content": "가입 상품: 기본 요금제"}
    # the stored history keeps no personal data: the earlier phone number was redacted, not masked
    assert "<PHONE_REDACTED>" in history[0]["content"] and seen_by(fresh.us, PHONE) is None


def test_json_schema_text_format_becomes_response_format(fresh: Boundary) -> None:
    schema = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
    client(fresh.gateway.base_url).responses.create(
        model="default", input="요약해 주세요.",
        text={"format": {"type": "json_schema", "name": "summary", "schema": schema, "strict": True}})
    sent = json.loads(fresh.us.received_bodies()[-1])
    assert sent["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "summary", "schema": schema, "strict": True}}


def test_caching_and_context_hints_are_accepted_and_not_sent_on(fresh: Boundary) -> None:
    """Parameters the SDK sends for OpenAI's own caching and compaction change nothing a chat
    upstream could do: the request is answered, and they are not forwarded."""
    response = client(fresh.gateway.base_url).responses.create(
        model="default", input="안녕하세요", prompt_cache_key="team-a", prompt_cache_retention="24h",
        prompt_cache_options={"ttl": "30m"}, context_management=[{"type": "compaction", "compact_threshold": 100000}])
    assert response.status == "completed" and response.output_text.startswith("ECHO:")
    sent = json.loads(fresh.us.received_bodies()[-1])
    assert not {"prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "context_management"} & set(sent)


def test_an_unknown_previous_response_id_is_a_404_in_openai_shape(fresh: Boundary) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(fresh.gateway.base_url).responses.create(model="default", input="hi",
                                                        previous_response_id="resp_does_not_exist")
    assert info.value.body["code"] == "response_not_found"
    assert fresh.us.received_bodies() == [] and fresh.kr.received_bodies() == []


def test_unsupported_tools_and_parameters_are_refused_naming_them(fresh: Boundary) -> None:
    oa = client(fresh.gateway.base_url)
    with pytest.raises(openai.BadRequestError) as info:
        oa.responses.create(model="default", input="hi", tools=[{"type": "web_search"}])
    assert info.value.body["param"] == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as info:
        oa.responses.create(model="default", input="hi", extra_body={"conversation": "conv_1"})
    assert info.value.body["param"] == "conversation"
    with pytest.raises(openai.BadRequestError) as info:      # a role that is no name: a 400, not a 500
        oa.responses.create(model="default", input=[{"type": "message", "role": {"name": "user"}, "content": "hi"}])  # type: ignore[list-item]
    assert info.value.body["param"] == "input[0].role"
    assert fresh.us.received_bodies() == []


def test_a_policy_block_keeps_its_status_and_rule(fresh: Boundary) -> None:
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(fresh.gateway.base_url).responses.create(model="abroad", input=RRN.text(RRN.value))
    assert "pipa-unique-id-domestic" in str(info.value)
    assert fresh.us.received_bodies() == []


def test_store_false_is_not_kept(fresh: Boundary) -> None:
    oa = client(fresh.gateway.base_url)
    first = oa.responses.create(model="default", input="hi", store=False)
    with pytest.raises(openai.NotFoundError):
        oa.responses.create(model="default", input="again", previous_response_id=first.id)
    with pytest.raises(openai.NotFoundError):
        oa.responses.retrieve(first.id)


def test_models_by_id(fresh: Boundary) -> None:
    oa = client(fresh.gateway.base_url)
    assert oa.models.retrieve("kr").id == "kr"
    assert oa.models.retrieve("default").id == "default"
    with pytest.raises(openai.NotFoundError):
        oa.models.retrieve("nope")


@pytest.mark.model
def test_the_embedded_model_answers_a_streamed_response(embedded_gateway: Any) -> None:
    oa = openai.OpenAI(base_url=embedded_gateway.base_url, api_key="unused", max_retries=0, timeout=120)
    events = list(oa.responses.create(model="default", input="대한민국의 수도는?", instructions="짧게 답하세요.",
                                      max_output_tokens=12, temperature=0, stream=True))
    final = events[-1].response
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.status in ("completed", "incomplete") and deltas.strip() and final.output_text == deltas
    assert final.model == "local-gemma" and 1 <= final.usage.output_tokens <= 12
