"""The Messages API (`POST /v1/messages`) end to end, with the real Anthropic SDK as a client.

Requests go through a real `nuri serve` to recording upstreams: `default` prefers the foreign `us`
over the domestic `kr` (support.boundary). A resident registration number in a `system`
block or a `tool_result` never reaches `us`; a phone number does only as a placeholder and the
client gets its own value back. The last tests run a deployment with `provider: anthropic`
against a small Messages-speaking upstream defined here, which records what it receives.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from aiohttp import web

from support.boundary import FAMILIES, Boundary, Seen, find_value, reset_upstream
from support.upstream_server import PLACEHOLDER_RE, RunningUpstream, free_port

RRN, PHONE = FAMILIES["KR_RRN"], FAMILIES["PHONE"]
TOOLS = [{"name": "lookup", "description": "고객 정보를 조회합니다.",
          "input_schema": {"type": "object", "properties": {"phone": {"type": "string"}}}}]



def client(gateway: Any) -> anthropic.Anthropic:
    # the SDK appends /v1/messages to the root URL and sends the key as x-api-key
    return anthropic.Anthropic(base_url=gateway.root_url, api_key="sk-test", max_retries=0, timeout=30)


def final_message(sdk: anthropic.Anthropic, stream: bool, **kwargs: Any) -> Any:
    """The Message the SDK ends with: whole, or rebuilt by its stream helper from the events."""
    if not stream:
        return sdk.messages.create(**kwargs)
    with sdk.messages.stream(**kwargs) as s:
        return s.get_final_message()


def seen_by(server: RunningUpstream, family: Any) -> str | None:
    raws = server.received_bodies()
    return find_value(Seen.of(raws, [json.loads(r) for r in raws]), family)


def tool_turns(result: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "고객을 조회해 주세요."},
        {"role": "assistant", "content": [{"type": "text", "text": "조회하겠습니다."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": result}]},
                                     {"type": "text", "text": "결과를 정리해 주세요."}]},
    ]


def test_a_message_is_answered_with_text_usage_and_stop_reason(fresh: Boundary) -> None:
    raw = client(fresh.gateway).messages.with_raw_response.create(
        model="default", max_tokens=64, system="짧게 답하세요.", messages=[{"role": "user", "content": "안녕하세요"}])
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant" and msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text" and msg.content[0].text.startswith("ECHO:")
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert raw.headers["x-nuri-deployment"] == "us"
    sent = json.loads(fresh.us.received_bodies()[-1])
    assert sent["messages"] == [{"role": "system", "content": "짧게 답하세요."},
                                {"role": "user", "content": "안녕하세요"}]
    assert sent["max_tokens"] == 64


@pytest.mark.parametrize("where", ["system", "tool_result", "output_schema"])
def test_an_rrn_never_reaches_the_foreign_upstream(fresh: Boundary, where: str) -> None:
    text = RRN.text(RRN.value)
    ask = [{"role": "user", "content": "고객 정보를 조회해 주세요."}]
    if where == "system":
        kwargs: dict[str, Any] = {"system": [{"type": "text", "text": "상담원입니다."}, {"type": "text", "text": text}],
                                  "messages": ask}
    elif where == "output_schema":      # a structured output's schema is the client's text like any other
        schema = {"type": "object", "properties": {"id": {"type": "string", "description": text}}}
        kwargs = {"messages": ask, "output_config": {"format": {"type": "json_schema", "schema": schema}}}
    else:
        kwargs = {"messages": tool_turns(text), "tools": TOOLS}
    raw = client(fresh.gateway).messages.with_raw_response.create(model="default", max_tokens=64, **kwargs)
    assert seen_by(fresh.us, RRN) is None, seen_by(fresh.us, RRN)
    assert raw.headers["x-nuri-deployment"] == "kr"
    assert "pipa-unique-id-domestic" in raw.headers["x-nuri-policy"]
    assert seen_by(fresh.kr, RRN) is not None
    if where == "tool_result":
        sent = json.loads(fresh.kr.received_bodies()[-1])["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
        assert sent[1]["tool_calls"][0]["id"] == "toolu_1" and sent[2]["tool_call_id"] == "toolu_1"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("where", ["system", "tool_result"])
def test_a_phone_number_goes_abroad_masked_and_comes_back_restored(fresh: Boundary, where: str,
                                                                  stream: bool) -> None:
    text = PHONE.text(PHONE.value)
    if where == "system":
        kwargs: dict[str, Any] = {"system": [{"type": "text", "text": text}],
                                  "messages": [{"role": "user", "content": "안내해 주세요."}]}
    else:
        kwargs = {"messages": tool_turns(text), "tools": TOOLS}
    sdk = client(fresh.gateway)
    if stream:
        with sdk.messages.stream(model="default", max_tokens=64, **kwargs) as s:
            kinds = [event.type for event in s]
            final = s.get_final_message()
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
        assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
        assert final.usage.output_tokens > 0
    else:
        final = sdk.messages.create(model="default", max_tokens=64, **kwargs)
    assert seen_by(fresh.us, PHONE) is None, seen_by(fresh.us, PHONE)
    assert "<PHONE_1>" in fresh.us.received_bodies()[-1]
    assert final.stop_reason == "end_turn"
    assert PHONE.value in final.content[0].text        # the client's own value, restored


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_use_answer_with_its_input_restored(fresh: Boundary, stream: bool) -> None:
    fresh.us.state.reply_fields = {"tool_arguments": '{"phone": "{{placeholders}}"}'}
    kwargs = {"model": "default", "max_tokens": 64, "tools": TOOLS,
              "messages": [{"role": "user", "content": PHONE.text(PHONE.value) + " 이 고객을 조회해 주세요."}]}
    final = final_message(client(fresh.gateway), stream, **kwargs)
    assert final.stop_reason == "tool_use"
    use = [b for b in final.content if b.type == "tool_use"]
    assert len(use) == 1 and use[0].name == "lookup" and use[0].input == {"phone": PHONE.value}
    sent = json.loads(fresh.us.received_bodies()[-1])
    assert sent["tools"][0]["function"] == {"name": "lookup", "parameters": TOOLS[0]["input_schema"],
                                            "description": TOOLS[0]["description"]}


def test_errors_are_in_the_messages_shape(fresh: Boundary) -> None:
    sdk = client(fresh.gateway)
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        sdk.messages.create(model="abroad", max_tokens=16, messages=[{"role": "user", "content": RRN.text(RRN.value)}])
    assert denied.value.body["type"] == "error"
    assert denied.value.body["error"]["type"] == "permission_error"
    assert "pipa-unique-id-domestic" in denied.value.body["error"]["message"]
    assert denied.value.response.headers["x-nuri-request-id"].startswith("req_")     # the pipeline's headers kept
    with pytest.raises(anthropic.NotFoundError) as missing:
        sdk.messages.create(model="nope", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["error"]["type"] == "not_found_error"
    r = httpx.post(fresh.gateway.root_url + "/v1/messages", json={"model": "default", "messages": []}, timeout=10)
    assert r.status_code == 400
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        sdk.messages.create(model="default", max_tokens=16, messages=[{"role": "user", "content": "hi"}],
                            tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert "tools[0]" in bad.value.body["error"]["message"]
    assert fresh.us.received_bodies() == []


SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def test_structured_output_and_the_newer_parameters_are_accepted(fresh: Boundary) -> None:
    """The SDK's newer top-level parameters: `output_config.format` becomes chat's JSON-schema
    `response_format`; caching, speed, region and effort hints are accepted and not sent on."""
    msg = client(fresh.gateway).messages.create(
        model="default", max_tokens=32, messages=[{"role": "user", "content": "답을 JSON으로 주세요."}],
        output_config={"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"},
        cache_control={"type": "ephemeral"}, speed="standard", inference_geo="us")
    assert msg.content[0].type == "text" and msg.stop_reason == "end_turn"
    sent = json.loads(fresh.us.received_bodies()[-1])
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}}
    assert not {"output_config", "cache_control", "speed", "inference_geo"} & set(sent)


@pytest.mark.parametrize(("config", "param"), [
    ({"format": {"type": "regex", "pattern": "x"}}, "output_config.format: type"),
    ({"format": {"type": "json_schema"}}, "output_config.format.schema"),
    ({"effort": "extreme"}, "output_config.effort"),
    ({"effort": {"level": "high"}}, "output_config.effort"),       # any JSON value: a 400, not a 500
    ({"verbosity": "low"}, "output_config.verbosity"),
])
def test_an_output_config_nuri_cannot_honour_is_refused(fresh: Boundary, config: dict[str, Any], param: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        client(fresh.gateway).messages.create(model="default", max_tokens=16, output_config=config,  # type: ignore[arg-type]
                                              messages=[{"role": "user", "content": "hi"}])
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    assert param in bad.value.body["error"]["message"]
    assert fresh.us.received_bodies() == [] and fresh.kr.received_bodies() == []


def test_count_tokens_estimates_without_sending_anything(fresh: Boundary) -> None:
    count = client(fresh.gateway).messages.count_tokens(
        model="default", messages=[{"role": "user", "content": "안녕하세요. " * 50}])
    assert count.input_tokens > 20
    assert fresh.us.received_bodies() == [] and fresh.kr.received_bodies() == []


# --- provider: anthropic -------------------------------------------------------------------------------


class MessagesUpstream:
    """A Messages-speaking upstream on 127.0.0.1: records bodies and headers; echoes placeholders."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[dict[str, Any]] = []
        self.tool = False
        self.stop_reason: Any = None        # sent instead of the usual one when set
        self.usage: Any = None              # likewise the usage
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> MessagesUpstream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        body = json.loads(raw)
        self.requests.append({"body": raw, "api_key": request.headers.get("x-api-key"),
                              "version": request.headers.get("anthropic-version")})
        echo = "ECHO: " + " | ".join(dict.fromkeys(PLACEHOLDER_RE.findall(raw)))
        block: dict[str, Any] = ({"type": "tool_use", "id": "toolu_up", "name": "lookup",
                                  "input": {"phone": echo[6:]}} if self.tool else {"type": "text", "text": echo})
        stop = self.stop_reason if self.stop_reason is not None else "tool_use" if self.tool else "end_turn"
        if not body.get("stream"):
            return web.json_response({"id": "msg_up", "type": "message", "role": "assistant", "model": body["model"],
                                      "content": [block], "stop_reason": stop, "stop_sequence": None,
                                      "usage": self.usage or {"input_tokens": 11, "output_tokens": 7}})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(kind: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode())

        await send("message_start", {"message": {"id": "msg_up", "type": "message", "role": "assistant",
                                                 "model": body["model"], "content": [],
                                                 "usage": self.usage or {"input_tokens": 11, "output_tokens": 1}}})
        await send("ping", {})
        if self.tool:
            args = json.dumps(block["input"])
            await send("content_block_start", {"index": 0, "content_block": {**block, "input": {}}})
            for i in range(0, len(args), 5):
                await send("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta",
                                                                         "partial_json": args[i:i + 5]}})
        else:
            await send("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            for i in range(0, len(echo), 3):
                await send("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": echo[i:i + 3]}})
        await send("content_block_stop", {"index": 0})
        await send("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": 7}})
        await send("message_stop", {})
        await resp.write_eof()
        return resp


@pytest.fixture
def messages_upstream() -> Iterator[MessagesUpstream]:
    with MessagesUpstream() as server:
        yield server


@pytest.fixture
def via_adapter(gateway: Any, messages_upstream: MessagesUpstream) -> Any:
    config = {"deployments": [{"id": "claude-us", "provider": "anthropic", "model": "claude-test",
                               "base_url": messages_upstream.base_url, "api_key": "sk-ant-upstream",
                               "jurisdiction": "US", "hosting": "foreign_cloud"}],
              "aliases": {"default": ["claude-us"]}, "ledger": {"enabled": False}}
    return gateway(config)


@pytest.mark.parametrize("stream", [False, True])
def test_the_messages_adapter_masks_upstream_and_restores_for_the_client(
        via_adapter: Any, messages_upstream: MessagesUpstream, stream: bool) -> None:
    kwargs = {"model": "default", "max_tokens": 64, "system": PHONE.text(PHONE.value),
              "messages": [{"role": "user", "content": "안내해 주세요."}]}
    final = final_message(client(via_adapter), stream, **kwargs)
    sent = messages_upstream.requests[-1]
    assert sent["api_key"] == "sk-ant-upstream" and sent["version"] == "2023-06-01"
    body = json.loads(sent["body"])
    assert body["model"] == "claude-test" and body["max_tokens"] == 64
    assert "<PHONE_1>" in body["system"] and PHONE.value not in sent["body"]
    assert final.content[0].text == f"ECHO: {PHONE.value}"
    assert final.usage.input_tokens == 11 and final.usage.output_tokens == 7


@pytest.mark.parametrize("stream", [False, True])
def test_the_messages_adapter_relays_tool_use_to_a_chat_client(
        via_adapter: Any, messages_upstream: MessagesUpstream, stream: bool) -> None:
    import openai

    messages_upstream.tool = True
    oa = openai.OpenAI(base_url=via_adapter.base_url, api_key="sk-test", max_retries=0, timeout=30)
    ask = [{"role": "user", "content": PHONE.text(PHONE.value)}]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": TOOLS[0]["input_schema"]}}]
    if stream:
        args, name = "", None
        for chunk in oa.chat.completions.create(model="default", messages=ask, tools=tools, stream=True):
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                name = name or call.function.name
                args += call.function.arguments or ""
    else:
        call = oa.chat.completions.create(model="default", messages=ask, tools=tools).choices[0].message.tool_calls[0]
        name, args = call.function.name, call.function.arguments
    assert name == "lookup" and json.loads(args) == {"phone": PHONE.value}
    body = json.loads(messages_upstream.requests[-1]["body"])
    assert body["tools"][0]["name"] == "lookup" and PHONE.value not in messages_upstream.requests[-1]["body"]


def test_the_messages_adapter_sends_a_json_schema_as_structured_output(
        via_adapter: Any, messages_upstream: MessagesUpstream) -> None:
    import openai

    client(via_adapter).messages.create(
        model="default", max_tokens=32, messages=[{"role": "user", "content": "안내해 주세요."}],
        output_config={"format": {"type": "json_schema", "schema": SCHEMA}})
    assert json.loads(messages_upstream.requests[-1]["body"])["output_config"] == {
        "format": {"type": "json_schema", "schema": SCHEMA}}
    oa = openai.OpenAI(base_url=via_adapter.base_url, api_key="sk-test", max_retries=0, timeout=30)
    ask = [{"role": "user", "content": "안내해 주세요."}]
    oa.chat.completions.create(model="default", messages=ask, response_format={
        "type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True}})
    assert json.loads(messages_upstream.requests[-1]["body"])["output_config"] == {
        "format": {"type": "json_schema", "schema": SCHEMA}}
    sent = len(messages_upstream.requests)
    with pytest.raises(openai.BadRequestError) as bad:
        oa.chat.completions.create(model="default", messages=ask, response_format={"type": "json_object"})
    assert "response_format" in str(bad.value)
    assert len(messages_upstream.requests) == sent


@pytest.mark.model
def test_the_embedded_model_answers_a_message(embedded_gateway: Any) -> None:
    sdk = client(embedded_gateway)
    raw = sdk.messages.with_raw_response.create(
        model="default", max_tokens=12, system=[{"type": "text", "text": "짧게 답하세요."}],
        messages=[{"role": "user", "content": "대한민국의 수도는?"}])
    msg = raw.parse()
    assert raw.headers["x-nuri-deployment"] == "local-gemma"
    assert msg.content and msg.content[0].text.strip()
    assert msg.stop_reason in ("end_turn", "max_tokens") and 1 <= msg.usage.output_tokens <= 12


def test_keys_by_x_api_key_and_state_bound_to_the_team(tmp_path: Any, upstream: RunningUpstream) -> None:
    import openai

    from support.processes import GatewayProcess, create_key, upstream_deployment

    reset_upstream(upstream)
    data = tmp_path / "data"
    keys = {team: create_key(data, team) for team in ("a", "b")}
    config = {"deployments": [upstream_deployment(upstream, "kr", jurisdiction="KR", hosting="on_prem")],
              "aliases": {"default": ["kr"]}}
    with GatewayProcess(tmp_path, config, data_dir=data) as gw:
        ask = {"model": "default", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
        sdk = anthropic.Anthropic(base_url=gw.root_url, api_key=keys["a"], max_retries=0, timeout=30)
        assert sdk.messages.create(**ask).content[0].text.startswith("ECHO:")
        wrong = anthropic.Anthropic(base_url=gw.root_url, api_key=keys["a"] + "x", max_retries=0, timeout=30)
        with pytest.raises(anthropic.AuthenticationError) as info:
            wrong.messages.create(**ask)
        assert info.value.body["error"]["type"] == "authentication_error"
        r = httpx.post(gw.root_url + "/v1/messages", json={"messages": []}, timeout=10)
        assert r.status_code == 401                 # the key is checked before the body is judged
        assert len(upstream.received_bodies()) == 1

        a, b = (openai.OpenAI(base_url=gw.base_url, api_key=keys[t], max_retries=0, timeout=30) for t in "ab")
        first = a.responses.create(model="default", input="hi")
        with pytest.raises(openai.NotFoundError):
            b.responses.create(model="default", input="again", previous_response_id=first.id)
        assert a.responses.create(model="default", input="again", previous_response_id=first.id).status == "completed"


@pytest.mark.parametrize("stream", [False, True])
def test_a_stop_reason_that_is_not_a_name_reads_as_a_plain_stop(
        via_adapter: Any, messages_upstream: MessagesUpstream, stream: bool) -> None:
    messages_upstream.stop_reason = {"reason": "odd"}      # any JSON value: not a 500
    kwargs = {"model": "default", "max_tokens": 64, "messages": [{"role": "user", "content": "안녕하세요"}]}
    final = final_message(client(via_adapter), stream, **kwargs)
    assert final.stop_reason == "end_turn" and final.content[0].type == "text"


@pytest.mark.parametrize("stream", [False, True])
def test_usage_that_is_no_count_is_the_upstream_fault_not_ours(
        via_adapter: Any, messages_upstream: MessagesUpstream, stream: bool) -> None:
    messages_upstream.usage = {"input_tokens": ["eleven"], "output_tokens": 7}
    kwargs = {"model": "default", "max_tokens": 64, "messages": [{"role": "user", "content": "안녕하세요"}]}
    with pytest.raises(anthropic.APIStatusError) as info:
        final_message(client(via_adapter), stream, **kwargs)
    assert info.value.status_code == 502          # found before the first event, streamed or not
    assert "eleven" not in str(info.value.body)
