"""The gateway in front of an OpenAI-compatible upstream, driven with the real OpenAI SDK."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from support.processes import upstream_deployment


@pytest.fixture(scope="module")
def _proxy(module_upstream, module_gateway):
    config = {"deployments": [upstream_deployment(module_upstream, "up", jurisdiction="KR",
                                                  hosting="domestic_cloud")],
              "aliases": {"default": ["up"]}, "ledger": {"enabled": False},
              "routing": {"retries": 2, "backoff_seconds": 0.01, "breaker_failures": 50}}
    gw = module_gateway(config)
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=20)
    return module_upstream, gw, client


@pytest.fixture
def proxied(_proxy):
    upstream, gw, client = _proxy
    upstream.reset()
    return upstream, gw, client


def test_non_stream_chat_passes_fields_and_returns_usage(proxied):
    upstream, gw, client = proxied
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    resp = client.chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "서울 날씨 알려줘"}],
        temperature=0.3, top_p=0.9, max_tokens=32, n=1, seed=7, user="u-1", stop=["\n\n"],
        tools=tools, response_format={"type": "text"},
    )
    reply = resp.parse()
    assert reply.choices[0].message.content == upstream.state.reply
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert resp.headers["x-nuri-deployment"] == "up"
    sent = json.loads(upstream.received_bodies()[-1])
    for key, value in {"temperature": 0.3, "top_p": 0.9, "max_tokens": 32, "seed": 7, "user": "u-1",
                       "stop": ["\n\n"], "tools": tools, "response_format": {"type": "text"}}.items():
        assert sent[key] == value, key
    assert sent["model"] == "test-model"  # the upstream's own model name
    assert upstream.state.requests[-1]["authorization"] == "Bearer sk-upstream-secret-value"


def test_tool_calls_come_back(proxied):
    upstream, gw, client = proxied
    upstream.state.tool_call = {"id": "call_1", "type": "function",
                                "function": {"name": "lookup", "arguments": "{\"city\": \"부산\"}"}}
    reply = client.chat.completions.create(
        model="up", messages=[{"role": "user", "content": "부산 날씨"}],
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
    )
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"city": "부산"}


def test_stream_relays_chunks_and_usage(proxied):
    upstream, gw, client = proxied
    upstream.state.chunk_chars = 3
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == upstream.state.reply
    assert len([c for c in chunks if c.choices]) > 5  # relayed piece by piece, not buffered whole
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_stream_without_include_usage_sends_no_usage_chunk(proxied):
    upstream, gw, client = proxied
    chunks = list(client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    assert all(c.choices for c in chunks)


def test_legacy_completions_and_embeddings(proxied):
    upstream, gw, client = proxied
    comp = client.completions.create(model="default", prompt="Once upon a time", max_tokens=8)
    assert comp.choices[0].text == upstream.state.reply and comp.usage.total_tokens > 0
    emb = client.embeddings.create(model="default", input=["가나다", "abc"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8


def test_models_lists_deployments_and_aliases(proxied):
    upstream, gw, client = proxied
    ids = {m.id for m in client.models.list()}
    assert ids == {"up", "default"}
    raw = httpx.get(gw.base_url + "/models").text
    assert "sk-upstream-secret-value" not in raw and upstream.base_url not in raw


@pytest.mark.parametrize("status,expected", [(500, 502), (503, 502), (429, 429), (400, 400)])
def test_upstream_errors_are_openai_errors(proxied, status, expected):
    upstream, gw, client = proxied
    upstream.state.script = [{"fault": "status", "status": status}] * 3
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == expected
    body = info.value.response.json()
    assert set(body["error"]) >= {"message", "type", "code"}
    assert "up" in body["error"]["message"]
    if status == 429:
        assert info.value.response.headers["retry-after"] == "0"  # the upstream's wait, passed on
    upstream.state.script = []
    assert client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}]).choices


def test_retry_recovers_from_one_failure(proxied):
    upstream, gw, client = proxied
    upstream.state.script = [{"fault": "status", "status": 500}]
    reply = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == upstream.state.reply
    assert len(upstream.state.requests) == 2


def test_upstream_timeout_is_504(proxied):
    upstream, gw, client = proxied
    upstream.state.script = [{"fault": "slow", "delay_ms": 5000}] * 3
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 504
    assert info.value.response.json()["error"]["code"] == "upstream_timeout"
    upstream.state.script = []
    assert client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}]).choices


@pytest.mark.parametrize("fault", [{"fault": "drop", "after_chunks": 2}, {"fault": "malformed"}])
def test_mid_stream_failure_ends_with_error_event(proxied, fault):
    upstream, gw, client = proxied
    upstream.state.chunk_chars = 2
    upstream.state.script = [fault]
    stream = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}],
                                            stream=True)
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "up" in str(info.value)
    assert "".join(got) != upstream.state.reply
    # no retry after the first byte reached the client
    assert len(upstream.state.requests) == 1
    assert client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}]).choices


def test_nuri_chat_one_shot(proxied):
    import subprocess
    import sys

    upstream, gw, client = proxied
    out = subprocess.run([sys.executable, "-m", "nuri", "chat", "안녕하세요?", "--url", gw.base_url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert upstream.state.reply in out.stdout
    assert "up" in out.stderr  # which deployment served it
    assert json.loads(upstream.received_bodies()[-1])["messages"] == [{"role": "user", "content": "안녕하세요?"}]
