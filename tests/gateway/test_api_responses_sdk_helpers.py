"""The OpenAI SDK's Responses helpers against Nuri: `responses.stream()` (which rebuilds the
response from the events and fails on any event out of order), `responses.parse()` with a
pydantic `text_format`, `retrieve` of what was answered, and a follow-up to a turn whose tool
has the schema agent SDKs generate for optional fields."""

from __future__ import annotations

import json

import openai
import pydantic

from support.boundary import FAMILIES, Boundary

PHONE = FAMILIES["PHONE"]


class Branch(pydantic.BaseModel):
    city: str
    counters: int


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=30)


def test_the_stream_helper_rebuilds_the_response_nuri_stored(fresh: Boundary) -> None:
    oa = client(fresh.gateway.base_url)
    with oa.responses.stream(model="default", input=PHONE.text(PHONE.value)) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "".join(texts)
    assert PHONE.value in final.output_text                  # restored for the client
    again = oa.responses.retrieve(final.id)
    assert again.id == final.id and again.status == "completed"
    assert PHONE.value not in again.output_text              # what is kept is redacted


def test_parse_reads_a_structured_reply_into_the_model(fresh: Boundary) -> None:
    reply = json.dumps({"city": "부산", "counters": 3}, ensure_ascii=False)
    for server in (fresh.us, fresh.kr):
        server.state.reply_fields = {"content": reply}
    oa = client(fresh.gateway.base_url)
    parsed = oa.responses.parse(model="default", input="지점 정보를 JSON으로 주세요.", text_format=Branch)
    assert parsed.output_parsed == Branch(city="부산", counters=3)
    sent = json.loads(fresh.us.received_bodies()[-1])
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "Branch"


def test_a_turn_whose_tool_schema_allows_null_is_kept_for_its_follow_up(fresh: Boundary) -> None:
    """Strict schemas for optional fields say `"type": ["string", "null"]` (the Agents SDK writes
    them so). The stored copy's check must read such a `type` as the schema it is."""
    tool = {"type": "function", "name": "lookup", "strict": True, "description": "지점을 찾습니다.",
            "parameters": {"type": "object", "additionalProperties": False, "required": ["city"],
                           "properties": {"city": {"type": ["string", "null"]}}}}
    oa = client(fresh.gateway.base_url)
    first = oa.responses.create(model="default", input="부산 지점을 찾아 주세요.", tools=[tool])  # type: ignore[list-item]
    assert oa.responses.retrieve(first.id).tools[0].parameters == tool["parameters"]
    second = oa.responses.create(model="default", input="고맙습니다.", previous_response_id=first.id, tools=[tool])  # type: ignore[list-item]
    assert second.status == "completed"
    sent = json.loads(fresh.us.received_bodies()[-1])["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
