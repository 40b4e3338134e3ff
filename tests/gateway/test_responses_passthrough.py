"""The Responses API passed through to deployments that speak it (`responses: true`).

A real `nuri serve` (kr-pipa policy, SQLite ledger) in front of two recording upstreams that
serve `/v1/responses` themselves: `default` prefers the foreign `us` over the domestic `kr`, both
`responses: true`; `mixed` has a candidate that does not speak Responses, so it is translated.
What the upstreams received is the evidence: a resident registration number in an input item or
in `instructions` never reaches `us`; a phone number does only as a placeholder, and the client
gets its own value back in `output_text`, streamed (every delta, every `*.done`,
`response.completed`) and not. Conversation state stays Nuri's: the upstream is called with
`store: false` and the whole redacted history. Each request has exactly one audit record.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from support.boundary import FAMILIES, Seen, find_value, reset_upstream
from support.processes import GatewayProcess, upstream_deployment
from support.upstream_server import RunningUpstream

RRN, PHONE = FAMILIES["KR_RRN"], FAMILIES["PHONE"]
TOOLS = [{"type": "function", "name": "lookup", "description": "고객 정보를 조회합니다.",
          "parameters": {"type": "object", "properties": {"phone": {"type": "string"}}}}]


class Setup:
    def __init__(self, gateway: GatewayProcess, kr: RunningUpstream, us: RunningUpstream) -> None:
        self.gateway, self.kr, self.us = gateway, kr, us

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway.base_url, api_key="sk-test", max_retries=0, timeout=30)

    def audit_records(self, request_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The request's audit records once one has landed (and a moment more, for a second)."""
        deadline = time.monotonic() + timeout
        while not self._records(request_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        return self._records(request_id)

    def _records(self, request_id: str) -> list[dict[str, Any]]:
        db = self.gateway.data_dir / "nuri.db"
        if not db.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            try:
                rows = conn.execute("SELECT kind, request_id, body FROM audit_log").fetchall()
            except sqlite3.OperationalError:
                return []
        return [json.loads(body) for kind, rid, body in rows if rid == request_id and kind == "request"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir: Path = tmp_path_factory.mktemp("responses_passthrough")
    with RunningUpstream() as kr, RunningUpstream() as us:
        config = {
            "deployments": [
                upstream_deployment(us, "us", jurisdiction="US", hosting="foreign_cloud", responses=True),
                upstream_deployment(kr, "kr", jurisdiction="KR", hosting="on_prem", responses=True),
                upstream_deployment(us, "us-chat", jurisdiction="US", hosting="foreign_cloud"),
            ],
            "aliases": {"default": ["us", "kr"], "abroad": ["us"], "mixed": ["us-chat", "kr"]},
            "policy": {"packs": ["kr-pipa", "ai-basic-act"]},
            "routing": {"retries": 1, "backoff_seconds": 0, "breaker_failures": 1000, "breaker_reset_seconds": 0.2},
            "ledger": {"enabled": True},
        }
        with GatewayProcess(workdir, config) as gw:
            yield Setup(gw, kr, us)


@pytest.fixture
def fresh(setup: Setup) -> Setup:
    for server in (setup.kr, setup.us):
        reset_upstream(server)
    return setup


def seen_by(server: RunningUpstream, family: Any) -> str | None:
    raws = server.received_bodies()
    return find_value(Seen.of(raws, [json.loads(r) for r in raws]), family)


def received(server: RunningUpstream) -> dict[str, Any]:
    """The last request the upstream received, checked to be a Responses request."""
    last = server.state.requests[-1]
    assert last["path"] == "/v1/responses", last["path"]
    return json.loads(last["body"])


def one_record(setup: Setup, request_id: str) -> dict[str, Any]:
    records = setup.audit_records(request_id)
    assert len(records) == 1, f"{len(records)} audit records for {request_id}"
    assert records[0]["endpoint"] == "responses"
    return records[0]


def streamed(setup: Setup, **kwargs: Any) -> tuple[list[Any], str]:
    """The events of a streamed response, checked for order and agreement, and its request id:
    the deltas of each text joined equal that text in its `.done` event, its content part, its
    output item and the final Response."""
    raw = setup.client().responses.with_raw_response.create(stream=True, **kwargs)
    events = list(raw.parse())
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"], kinds
    assert kinds[-1] == "response.completed", kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    texts: dict[tuple[int, int], str] = {}
    args: dict[int, str] = {}
    for e in events:
        if e.type == "response.output_text.delta":
            texts[(e.output_index, e.content_index)] = texts.get((e.output_index, e.content_index), "") + e.delta
        elif e.type == "response.function_call_arguments.delta":
            args[e.output_index] = args.get(e.output_index, "") + e.delta
        elif e.type == "response.output_text.done":
            assert e.text == texts[(e.output_index, e.content_index)]
        elif e.type == "response.content_part.done":
            assert e.part.text == texts[(e.output_index, e.content_index)]
        elif e.type == "response.function_call_arguments.done":
            assert e.arguments == args[e.output_index]
        elif e.type == "response.output_item.done" and e.item.type == "function_call":
            assert e.item.arguments == args[e.output_index]
    for (i, j), text in texts.items():
        assert final.output[i].content[j].text == text
    for i, text in args.items():
        assert final.output[i].arguments == text
    return events, raw.headers["x-nuri-request-id"]


def test_a_request_is_passed_through_statelessly_and_recorded_once(fresh: Setup) -> None:
    raw = fresh.client().responses.with_raw_response.create(model="default", input="안녕하세요",
                                                            instructions="짧게 답하세요.", max_output_tokens=32)
    resp = raw.parse()
    assert resp.status == "completed" and resp.id.startswith("resp_") and resp.id != "resp_up1"
    assert resp.output_text.startswith("ECHO:") and resp.store is True
    assert resp.usage.input_tokens > 0 and resp.model == "us"
    assert raw.headers["x-nuri-deployment"] == "us"
    sent = received(fresh.us)
    assert sent["store"] is False and "previous_response_id" not in sent
    assert sent["instructions"] == "짧게 답하세요." and sent["max_output_tokens"] == 32
    assert sent["input"] == [{"type": "message", "role": "user", "content": "안녕하세요"}]
    record = one_record(fresh, raw.headers["x-nuri-request-id"])
    assert record["prompt_tokens"] == resp.usage.input_tokens and record["deployment"] == "us"
    # decided as chat: the AI Basic Act's label rule (endpoints: [chat, completions]) applies
    assert "aibasic-label-generative" in record["rule_ids"] and raw.headers["x-nuri-ai-generated"] == "true"
    assert resp.model_extra["nuri"]["ai_generated"] is True


def test_a_streamed_response_carries_the_ai_notice_and_is_recorded_once(fresh: Setup) -> None:
    events, request_id = streamed(fresh, model="default", input="안녕하세요")
    assert events[-1].response.model_extra["nuri"]["ai_generated"] is True
    assert events[-1].response.output_text.startswith("ECHO:")
    assert "aibasic-label-generative" in one_record(fresh, request_id)["rule_ids"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("where", ["input_item", "instructions"])
def test_an_rrn_never_reaches_the_foreign_upstream(fresh: Setup, where: str, stream: bool) -> None:
    text = RRN.text(RRN.value)
    items: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "input_text", "text": "고객 정보를 조회해 주세요."}]}]
    kwargs: dict[str, Any] = {"instructions": text} if where == "instructions" else {}
    if where == "input_item":
        items[0]["content"].append({"type": "input_text", "text": text})
    if stream:
        events, request_id = streamed(fresh, model="default", input=items, **kwargs)
        assert events[-1].response.model == "kr"
    else:
        raw = fresh.client().responses.with_raw_response.create(model="default", input=items, **kwargs)
        assert raw.headers["x-nuri-deployment"] == "kr"
        assert "pipa-unique-id-domestic" in raw.headers["x-nuri-policy"]
        assert raw.parse().status == "completed"
        request_id = raw.headers["x-nuri-request-id"]
    assert fresh.us.received_bodies() == [], seen_by(fresh.us, RRN)
    assert seen_by(fresh.kr, RRN) is not None                  # not vacuous: it travelled, at home
    assert received(fresh.kr)["store"] is False
    one_record(fresh, request_id)


def test_an_rrn_bound_abroad_only_is_refused_and_recorded(fresh: Setup) -> None:
    with pytest.raises(openai.PermissionDeniedError) as info:
        fresh.client().responses.create(model="abroad", input=RRN.text(RRN.value))
    assert "pipa-unique-id-domestic" in str(info.value)
    assert fresh.us.received_bodies() == []
    one_record(fresh, info.value.response.headers["x-nuri-request-id"])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("where", ["input_item", "instructions"])
def test_a_phone_number_goes_abroad_masked_and_comes_back_restored(fresh: Setup, where: str, stream: bool) -> None:
    text = PHONE.text(PHONE.value)
    items = [{"type": "message", "role": "user", "content": text if where == "input_item" else "안내해 주세요."}]
    kwargs: dict[str, Any] = {"instructions": text} if where == "instructions" else {}
    # every character its own delta: the placeholder arrives in nine pieces
    fresh.us.state.cuts = "each"
    if stream:
        events, request_id = streamed(fresh, model="default", input=items, **kwargs)
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        assert not any("<PHONE" in d or "PHONE_1" in d for d in deltas), deltas
        final = events[-1].response
        assert final.output_text == "".join(deltas)
        for e in events:                      # the echo of instructions in every snapshot, restored
            if e.type in ("response.created", "response.in_progress", "response.completed") and where == "instructions":
                assert e.response.instructions == text
    else:
        raw = fresh.client().responses.with_raw_response.create(model="default", input=items, **kwargs)
        final = raw.parse()
        request_id = raw.headers["x-nuri-request-id"]
        if where == "instructions":
            assert final.instructions == text
    assert seen_by(fresh.us, PHONE) is None, seen_by(fresh.us, PHONE)
    assert "<PHONE_1>" in fresh.us.received_bodies()[-1]
    assert final.output_text == f"ECHO: {PHONE.value}"        # the client's own value, restored
    assert final.model == "us"
    one_record(fresh, request_id)


@pytest.mark.parametrize("stream", [False, True])
def test_a_value_the_client_never_sent_is_masked(fresh: Setup, stream: bool) -> None:
    fresh.us.state.reply_fields = {"content": f"고객의 주민등록번호는 {RRN.value} 입니다."}
    fresh.us.state.cuts = [3, 9]
    fresh.us.state.cut_anchor = RRN.value
    if stream:
        events, _ = streamed(fresh, model="default", input="안내해 주세요.")
        text = events[-1].response.output_text
        joined = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert RRN.value[:6] not in joined and RRN.value[-7:] not in joined
    else:
        text = fresh.client().responses.create(model="default", input="안내해 주세요.").output_text
    assert RRN.value not in text and "<KR_RRN_REDACTED>" in text


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_tool_call_then_its_output_with_previous_response_id(fresh: Setup, stream: bool) -> None:
    fresh.us.state.reply_fields = {"tool_arguments": '{"phone": "{{placeholders}}"}'}
    fresh.us.state.cuts = "each"
    ask = PHONE.text(PHONE.value) + " 이 번호로 고객을 조회해 주세요."
    if stream:
        events, request_id = streamed(fresh, model="default", input=ask, tools=TOOLS)
        assert "response.function_call_arguments.delta" in [e.type for e in events]
        first = events[-1].response
    else:
        raw = fresh.client().responses.with_raw_response.create(model="default", input=ask, tools=TOOLS)
        first, request_id = raw.parse(), raw.headers["x-nuri-request-id"]
    one_record(fresh, request_id)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "lookup"
    assert json.loads(calls[0].arguments) == {"phone": PHONE.value}       # restored inside the arguments
    assert received(fresh.us)["tools"][0]["name"] == "lookup"

    reset_upstream(fresh.us)
    raw = fresh.client().responses.with_raw_response.create(
        model="default", previous_response_id=first.id, tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "가입 상품: 기본 요금제"}])
    second = raw.parse()
    assert second.previous_response_id == first.id and second.status == "completed"
    one_record(fresh, raw.headers["x-nuri-request-id"])
    sent = received(fresh.us)
    assert sent["store"] is False and "previous_response_id" not in sent
    history = sent["input"]
    assert [i.get("type", "message") for i in history] == ["message", "function_call", "function_call_output"]
    assert history[1]["call_id"] == calls[0].call_id and "id" not in history[1]
    assert history[2] == {"type": "function_call_output", "call_id": calls[0].call_id, "output": "가입 상품: 기본 요금제"}
    # the stored history keeps no personal data: the earlier phone number was redacted, not masked
    assert "<PHONE_REDACTED>" in json.dumps(history[0], ensure_ascii=False)
    assert seen_by(fresh.us, PHONE) is None


def test_an_alias_with_a_candidate_that_does_not_speak_responses_is_translated(fresh: Setup) -> None:
    resp = fresh.client().responses.create(model="mixed", input="안녕하세요")
    assert resp.output_text.startswith("ECHO:")
    assert fresh.us.state.requests[-1]["path"] == "/v1/chat/completions"
