"""Acceptance tests for the request boundary, written with the real OpenAI SDK as a client would.

A resident registration number anywhere in a request (a tool definition, a `response_format`
schema, a key the SDK does not know) must never reach the foreign upstream; content Nuri cannot
read (an image) stays in the home jurisdiction under kr-pipa unless the operator tagged the
deployment `unscanned-content-abroad`. Assertions are on the bytes the recording upstreams got.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from support.boundary import FAMILIES, Boundary, Seen, find_value
from support.upstream_server import RunningUpstream

RRN = FAMILIES["KR_RRN"].value
# a 1×1 transparent PNG
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
IMAGE = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
ASK = [{"role": "user", "content": "고객 정보를 조회해 주세요."}]



def client(setup: Boundary) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup.gateway.base_url, api_key="sk-test", max_retries=0, timeout=20)


def rrn_seen_by(server: RunningUpstream) -> str | None:
    """Where the RRN can be recovered from everything the server received (None: nowhere)."""
    raws = server.received_bodies()
    docs = [json.loads(r) for r in raws]
    return find_value(Seen.of(raws, docs), FAMILIES["KR_RRN"])


def assert_kept_at_home(raw: Any, setup: Boundary) -> None:
    assert rrn_seen_by(setup.us) is None, f"the foreign upstream received the RRN: {rrn_seen_by(setup.us)}"
    assert raw.headers["x-nuri-deployment"] == "kr"
    assert "pipa-unique-id-domestic" in raw.headers["x-nuri-policy"]
    assert rrn_seen_by(setup.kr) is not None      # not vacuous: the request did travel, at home


TOOLS = {
    "description": [{"type": "function", "function": {
        "name": "lookup_customer", "description": f"주민등록번호 {RRN} 인 고객의 가입 내역을 조회합니다.",
        "parameters": {"type": "object", "properties": {"plan": {"type": "string"}}}}}],
    "parameters": [{"type": "function", "function": {
        "name": "lookup_customer", "description": "고객의 가입 내역을 조회합니다.",
        "parameters": {"type": "object", "properties": {"rrn": {
            "type": "string", "description": f"주민등록번호 (예: {RRN})", "enum": [RRN], "default": RRN,
            "examples": [RRN]}}}}}],
}


@pytest.mark.parametrize("where", list(TOOLS))
def test_rrn_in_a_tool_definition_never_reaches_the_foreign_upstream(fresh: Boundary, where: str) -> None:
    raw = client(fresh).chat.completions.with_raw_response.create(model="default", messages=ASK, tools=TOOLS[where])
    assert_kept_at_home(raw, fresh)


def test_rrn_in_a_response_format_schema_never_reaches_the_foreign_upstream(fresh: Boundary) -> None:
    schema = {"type": "object", "description": f"주민등록번호 {RRN} 인 고객의 요약",
              "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
    raw = client(fresh).chat.completions.with_raw_response.create(
        model="default", messages=ASK,
        response_format={"type": "json_schema", "json_schema": {"name": "customer", "schema": schema}})
    assert_kept_at_home(raw, fresh)


def test_rrn_in_an_unknown_key_never_reaches_the_foreign_upstream(fresh: Boundary) -> None:
    raw = client(fresh).chat.completions.with_raw_response.create(
        model="default", messages=ASK, extra_body={"x_customer": {"note": f"주민등록번호 {RRN}"}})
    assert_kept_at_home(raw, fresh)


IMAGE_MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "이 사진을 설명해 주세요."}, IMAGE]}]


def test_an_image_to_a_foreign_only_alias_is_refused_naming_the_rule(fresh: Boundary) -> None:
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(fresh).chat.completions.create(model="abroad", messages=IMAGE_MESSAGES)
    assert info.value.status_code == 403
    assert "pipa-unscanned-content-domestic" in str(info.value)
    assert fresh.us.received_bodies() == [] and fresh.kr.received_bodies() == []


def test_an_image_with_a_domestic_fallback_is_served_at_home(fresh: Boundary) -> None:
    raw = client(fresh).chat.completions.with_raw_response.create(model="default", messages=IMAGE_MESSAGES)
    assert raw.headers["x-nuri-deployment"] == "kr"
    assert "image/png" in raw.headers["x-nuri-unscanned"]
    assert fresh.us.received_bodies() == []
    assert any(PNG in body for body in fresh.kr.received_bodies())


def test_an_image_may_go_abroad_to_a_deployment_the_operator_tagged(fresh: Boundary) -> None:
    raw = client(fresh).chat.completions.with_raw_response.create(model="open", messages=IMAGE_MESSAGES)
    assert raw.headers["x-nuri-deployment"] == "us-open"
    assert "image/png" in raw.headers["x-nuri-unscanned"]
    assert any(PNG in body for body in fresh.us.received_bodies())
    assert fresh.kr.received_bodies() == []
