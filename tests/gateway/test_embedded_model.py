"""The embedded Gemma 3 270M through a live gateway, with the real OpenAI SDK."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def client(embedded_gateway):
    return openai.OpenAI(base_url=embedded_gateway.base_url, api_key="unused", max_retries=0, timeout=120)


def test_chat_generates_real_tokens_with_usage(client):
    resp = client.chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "system", "content": "Answer briefly."},
                                   {"role": "user", "content": "대한민국의 수도는?"}],
        max_tokens=12, temperature=0, seed=1,
    )
    reply = resp.parse()
    text = reply.choices[0].message.content
    assert text and text.strip()
    assert resp.headers["x-nuri-deployment"] == "local-gemma"
    assert resp.headers["x-nuri-jurisdiction"] == "KR"
    assert 5 < reply.usage.prompt_tokens < 60
    assert 1 <= reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_same_seed_same_answer(client):
    def ask() -> str:
        return client.chat.completions.create(
            model="local-gemma", messages=[{"role": "user", "content": "Name a fruit."}],
            max_tokens=8, temperature=0.8, seed=42).choices[0].message.content

    assert ask() == ask()


def test_stream_yields_tokens_as_produced_with_usage(client):
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Count from one to ten."}],
        max_tokens=24, temperature=0, stream=True, stream_options={"include_usage": True},
    )
    arrivals, pieces, usage = [], [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            arrivals.append(time.perf_counter())
        if chunk.usage:
            usage = chunk.usage
    assert len(pieces) >= 3 and "".join(pieces).strip()
    assert arrivals[-1] - arrivals[0] > 0.01  # tokens arrive over time, not in one burst
    # the reply guard may join a few tokens into one event; usage counts tokens, not events
    assert usage is not None and len(pieces) <= usage.completion_tokens <= 24 and usage.prompt_tokens > 5


def test_legacy_completion_and_embeddings(client):
    comp = client.completions.create(model="default", prompt="The capital of France is", max_tokens=5,
                                     temperature=0)
    assert comp.choices[0].text and comp.usage.completion_tokens >= 1
    emb = client.embeddings.create(model="default", input=["안녕하세요", "hello"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) > 100
    assert emb.data[0].embedding != emb.data[1].embedding


def test_concurrent_requests_share_the_model(client):
    results: list[str] = []

    def ask(i: int) -> None:
        r = client.chat.completions.create(model="default", messages=[{"role": "user", "content": f"Say {i}"}],
                                           max_tokens=6, temperature=0)
        results.append(r.choices[0].message.content or "")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 3


def test_cancelled_stream_stops_generation(client, embedded_gateway):
    """A client that goes away frees the model: the next request does not wait for 2,000 tokens."""
    with httpx.stream("POST", embedded_gateway.base_url + "/chat/completions", timeout=60, json={
        "model": "default", "stream": True, "max_tokens": 2000, "temperature": 1.0,
        "messages": [{"role": "user", "content": "Write a very long story about the sea."}],
    }) as resp:
        lines = resp.iter_lines()
        for _ in range(6):
            next(lines)
    started = time.perf_counter()
    reply = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=4)
    assert reply.choices[0].message.content is not None
    assert time.perf_counter() - started < 15  # 2,000 tokens would take well over a minute here
