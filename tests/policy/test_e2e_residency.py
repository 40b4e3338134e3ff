"""End to end: the real OpenAI SDK → `nuri serve` → two upstream servers on 127.0.0.1.

The upstreams record every byte they receive; the assertions are on what they received, not on
what the gateway says it sent. `kr` is an on-premises deployment in Korea, `us` a foreign cloud.
The alias `default` prefers `us`, so anything that reaches `kr` instead was moved there by policy.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.processes import GatewayProcess, upstream_deployment
from support.upstream_server import RunningUpstream

RRN = "900101-1234568"
NAME, PHONE = "홍길동", "010-2345-6789"
INVENTED = "010-9876-5432"
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def received(server: RunningUpstream) -> str:
    """Everything the upstream received: raw bytes plus JSON-decoded strings (escapes undone)."""
    out = []
    for raw in server.received_bodies():
        out.append(raw)
        with contextlib.suppress(json.JSONDecodeError):
            out.extend(_strings(json.loads(raw)))
    return "\n".join(out)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[RunningUpstream, RunningUpstream]]:
    with RunningUpstream() as kr, RunningUpstream() as us:
        yield kr, us


def _config(kr: RunningUpstream, us: RunningUpstream, packs: list[str]) -> dict[str, Any]:
    return {
        "deployments": [
            upstream_deployment(us, "us", jurisdiction="US", hosting="foreign_cloud"),
            upstream_deployment(kr, "kr", jurisdiction="KR", hosting="on_prem"),
        ],
        "aliases": {"default": ["us", "kr"]},
        "policy": {"packs": packs},
        "routing": {"retries": 2, "backoff_seconds": 0, "breaker_reset_seconds": 0.2},
        "ledger": {"enabled": False},
    }


@pytest.fixture(scope="module")
def pipa_gateway(upstreams, tmp_path_factory) -> Iterator[GatewayProcess]:
    kr, us = upstreams
    workdir: Path = tmp_path_factory.mktemp("pipa")
    with GatewayProcess(workdir, _config(kr, us, ["kr-pipa", "ai-basic-act"])) as proc:
        yield proc


@pytest.fixture(scope="module")
def n2sf_gateway(upstreams, tmp_path_factory) -> Iterator[GatewayProcess]:
    kr, us = upstreams
    workdir: Path = tmp_path_factory.mktemp("n2sf")
    with GatewayProcess(workdir, _config(kr, us, ["kr-pipa", "kr-public-n2sf"])) as proc:
        yield proc


@pytest.fixture
def fresh(upstreams) -> tuple[RunningUpstream, RunningUpstream]:
    kr, us = upstreams
    for server in (kr, us):
        server.state.requests.clear()
        server.state.script.clear()
        server.state.echo, server.state.answers, server.state.chunk_chars = True, {}, 4
    return kr, us


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="sk-test", max_retries=0, timeout=20)


RRN_MESSAGES = {
    "user": [{"role": "user", "content": f"주민등록번호 {RRN} 인 고객의 가입 내역을 요약해 주세요."}],
    "system": [{"role": "system", "content": f"상담 대상 주민번호: {RRN}"}, {"role": "user", "content": "요약해 주세요."}],
    "assistant": [{"role": "user", "content": "다시 확인"},
                  {"role": "assistant", "content": f"확인한 주민등록번호는 {RRN} 입니다."},
                  {"role": "user", "content": "고마워요"}],
    "tool-call-arguments": [
        {"role": "user", "content": "고객 조회"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "lookup", "arguments": json.dumps({"주민등록번호": RRN}, ensure_ascii=False)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "조회 완료"},
    ],
    "tool-result": [
        {"role": "user", "content": "고객 조회"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": 7}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": f"이름: 김민수, 주민등록번호: {RRN}"},
    ],
}


@pytest.mark.parametrize("where", list(RRN_MESSAGES))
def test_rrn_in_any_part_never_reaches_the_foreign_upstream(pipa_gateway, fresh, where):
    kr, us = fresh
    raw = client(pipa_gateway).chat.completions.with_raw_response.create(
        model="default", messages=RRN_MESSAGES[where])
    assert raw.headers["x-nuri-deployment"] == "kr"
    assert "pipa-unique-id-domestic" in raw.headers["x-nuri-policy"]
    assert us.received_bodies() == []
    assert RRN in received(kr)          # the check above is not vacuous: the data did travel


def test_rrn_asked_of_the_foreign_deployment_is_refused_and_sent_nowhere(pipa_gateway, fresh):
    kr, us = fresh
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(pipa_gateway).chat.completions.create(model="us", messages=RRN_MESSAGES["user"])
    assert "pipa-unique-id-domestic" in str(info.value)
    assert us.received_bodies() == [] and kr.received_bodies() == []


def test_name_and_phone_arrive_masked_abroad_and_come_back_restored(pipa_gateway, fresh):
    kr, us = fresh
    text = f"{NAME} 고객님 연락처는 {PHONE} 입니다. 안내 문자를 작성해 주세요."
    raw = client(pipa_gateway).chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": text}])
    reply = raw.parse()
    assert raw.headers["x-nuri-deployment"] == "us" and raw.headers["x-nuri-action"] == "pseudonymize"
    seen = received(us)
    assert NAME not in seen and PHONE not in seen and "2345" not in seen
    assert PLACEHOLDER.search(seen)
    assert NAME in reply.choices[0].message.content and PHONE in reply.choices[0].message.content
    assert kr.received_bodies() == []


def test_streamed_reply_is_restored_across_split_placeholders(pipa_gateway, fresh):
    kr, us = fresh
    us.state.chunk_chars = 3
    text = f"{NAME}님 번호 {PHONE} 로 연락드릴게요."
    stream = client(pipa_gateway).chat.completions.create(
        model="default", messages=[{"role": "user", "content": text}], stream=True)
    out = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    seen = received(us)
    assert NAME not in seen and PHONE not in seen and PLACEHOLDER.search(seen)
    assert NAME in out and PHONE in out
    assert not PLACEHOLDER.search(out)


@pytest.mark.parametrize("stream", [False, True])
def test_a_phone_number_the_upstream_invents_is_masked(pipa_gateway, fresh, stream):
    kr, us = fresh
    us.state.echo = False
    us.state.reply = f"담당자 직통 번호는 {INVENTED} 입니다."
    c = client(pipa_gateway)
    messages = [{"role": "user", "content": "담당자 연락처 알려주세요"}]
    if stream:
        out = "".join((ch.choices[0].delta.content or "")
                      for ch in c.chat.completions.create(model="default", messages=messages, stream=True)
                      if ch.choices)
    else:
        out = c.chat.completions.create(model="default", messages=messages).choices[0].message.content
    assert INVENTED not in out and "9876" not in out
    assert "담당자 직통 번호는" in out


def test_classified_request_goes_only_on_prem_under_n2sf(n2sf_gateway, fresh):
    kr, us = fresh
    text = "[C] 다음 주 작전 계획 초안을 요약해 주세요."
    raw = client(n2sf_gateway).chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": text}])
    assert raw.headers["x-nuri-deployment"] == "kr"
    assert "n2sf-c-on-prem" in raw.headers["x-nuri-policy"]
    assert us.received_bodies() == [] and "작전 계획" in received(kr)


def test_fallback_after_failures_stays_domestic(pipa_gateway, fresh):
    kr, us = fresh
    kr.state.script = [{"fault": "status", "status": 500}, {"fault": "status", "status": 503}]
    reply = client(pipa_gateway).chat.completions.create(model="default", messages=RRN_MESSAGES["user"])
    assert reply.model == "kr"
    assert len(kr.received_bodies()) == 3 and us.received_bodies() == []


def test_explain_agrees_with_the_live_request(pipa_gateway, fresh):
    body = {"model": "default", "messages": [{"role": "user", "content": f"{NAME}님 {PHONE}, 주민번호 {RRN}"}]}
    view = httpx.post(pipa_gateway.base_url + "/nuri/explain", json=body, timeout=20).json()
    live = httpx.post(pipa_gateway.base_url + "/chat/completions", json=body, timeout=20)
    assert live.status_code == 200
    assert view["route"][0]["deployment"] == live.headers["x-nuri-deployment"]
    assert ",".join(m["id"] for m in view["matched"]) == live.headers["x-nuri-policy"]
    text = json.dumps(view, ensure_ascii=False)
    assert RRN not in text and PHONE not in text and NAME not in text


# --- property: random request shapes × upstream failures, judged on what the foreign one received ---

RRNS = ["900101-1234568", "850315-2345671", "010203-3456789"]
PHONES = ["010-2345-6789", "010-8765-4321", "02-555-0199"]
EMAILS = ["minsu.kim@example.co.kr", "hr-team@example.com"]
ENTITY = st.sampled_from(
    [("rrn", f"주민등록번호 {v}") for v in RRNS]
    + [("phone", f"연락처 {v}") for v in PHONES]
    + [("email", f"메일 {v}") for v in EMAILS]
    + [("plain", "배송 일정 문의드립니다")]
)
PLACES = st.sampled_from(["system", "user", "assistant", "tool-call-arguments", "tool-result", "multi-part"])
FAULTS = st.sampled_from([{"fault": "ok"}, {"fault": "status", "status": 500}, {"fault": "status", "status": 429},
                          {"fault": "drop", "after_chunks": 0}, {"fault": "malformed"}])


def _messages(parts: list[tuple[str, tuple[str, str]]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i, (place, (_, text)) in enumerate(parts):
        if place in ("system", "user", "assistant"):
            messages.append({"role": place, "content": text})
        elif place == "multi-part":
            messages.append({"role": "user", "content": [{"type": "text", "text": text}]})
        else:
            args = json.dumps({"note": text}, ensure_ascii=False) if place == "tool-call-arguments" else "{}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{i}", "type": "function", "function": {"name": "lookup", "arguments": args}}]})
            messages.append({"role": "tool", "tool_call_id": f"call_{i}",
                             "content": text if place == "tool-result" else "ok"})
    messages.append({"role": "user", "content": "위 내용을 정리해 주세요."})
    return messages


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(parts=st.lists(st.tuples(PLACES, ENTITY), min_size=1, max_size=4),
       us_faults=st.lists(FAULTS, max_size=3), kr_faults=st.lists(FAULTS, max_size=3), stream=st.booleans())
def test_property_the_foreign_upstream_never_holds_what_policy_forbade(
        pipa_gateway, upstreams, parts, us_faults, kr_faults, stream):
    kr, us = upstreams
    for server, script in ((kr, kr_faults), (us, us_faults)):
        server.state.requests.clear()
        server.state.script = list(script)
        server.state.echo, server.state.answers, server.state.chunk_chars = True, {}, 4
    body = {"model": "default", "messages": _messages(parts), "stream": stream}
    with httpx.Client(timeout=20) as http:
        http.post(pipa_gateway.base_url + "/chat/completions", json=body).read()
    seen = received(us)
    kinds = {kind for _, (kind, _) in parts}
    if "rrn" in kinds:
        assert us.received_bodies() == [], "a request with an RRN reached the foreign deployment"
    for value in PHONES + EMAILS + RRNS:
        assert value not in seen, f"{value} reached the foreign deployment in clear"
        assert value.replace("-", "") not in seen.replace("-", "")
