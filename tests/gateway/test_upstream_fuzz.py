"""Random upstream behaviour against one real `nuri serve` with the ledger on (property test).

Hypothesis draws what the upstream does on each attempt — an HTTP status, a body of any JSON
shape or none, usage counts of any type and sign, stream events of any shape, a cut mid-stream —
and whether the client hangs up after the first chunk. Whatever it draws: the client gets a
well-formed reply, OpenAI error or SSE stream (chunks, then `[DONE]` or one error event); the
request ends with exactly one audit record; no record has a negative cost and spend never goes
down.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.processes import GatewayProcess, upstream_deployment
from support.upstream_server import RunningUpstream

ENV = {"NURI_AUDIT_HMAC_KEY": "fuzz-hmac", "NURI_AUDIT_SIGNING_KEY": "fuzz-sign"}
GOOD = {"choices": [{"index": 0, "delta": {"content": "안녕"}, "finish_reason": None}]}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
counts = st.integers(-(10**12), 10**12) | st.sampled_from([0, 1, 7, 2**31, 2**63]) | json_values
usages = st.none() | json_values | st.fixed_dictionaries(
    {}, optional={"prompt_tokens": counts, "completion_tokens": counts, "total_tokens": counts})
choices = json_values | st.lists(json_values | st.fixed_dictionaries(
    {"index": st.integers(0, 1)},
    optional={"delta": json_values | st.fixed_dictionaries({}, optional={"content": st.text(max_size=6) | json_values,
                                                                         "role": st.just("assistant")}),
              "text": st.text(max_size=6) | json_values, "finish_reason": st.sampled_from([None, "stop"])}),
    max_size=2)
chunks = json_values | st.just(GOOD) | st.fixed_dictionaries({}, optional={"choices": choices, "usage": usages})
faults = st.one_of(
    st.just({"fault": "ok"}),
    st.builds(lambda s, b: {"fault": "status", "status": s, **({"body": b} if b is not None else {})},
              st.sampled_from([400, 404, 408, 422, 429, 500, 502, 503]), st.none() | json_values),
    st.builds(lambda u: {"fault": "usage", "usage": u}, usages),
    st.builds(lambda v: {"fault": "raw", "body": json.dumps(v)}, json_values | choices.map(lambda c: {"choices": c})),
    st.builds(lambda t: {"fault": "raw", "body": t}, st.text(max_size=20)),
    st.builds(lambda e, cut, done: {"fault": "sse", "events": e, "cut": cut, "done": done},
              st.lists(chunks, max_size=4), st.booleans(), st.booleans()),
    st.builds(lambda n: {"fault": "drop", "after_chunks": n}, st.integers(0, 3)),
    st.just({"fault": "malformed"}),
)


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningUpstream, GatewayProcess, str]]:
    workdir = tmp_path_factory.mktemp("fuzz")
    with RunningUpstream() as upstream:
        price = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}
        config = {
            "deployments": [upstream_deployment(upstream, d, jurisdiction="KR", hosting="domestic_cloud", price=price)
                            for d in ("a", "b")],
            "aliases": {"default": ["a", "b"]},
            "policy": {"packs": ["kr-pipa"]},
            "routing": {"retries": 1, "backoff_seconds": 0, "breaker_failures": 100000},
        }
        data = workdir / "data"
        out = subprocess.run([sys.executable, "-m", "nuri", "keys", "create", "--team", "fuzz", "--budget", "1e9",
                              "--json", "--data-dir", str(data)],
                             capture_output=True, text=True, env={**os.environ, **ENV}, check=True)
        with GatewayProcess(workdir, config, env=ENV, data_dir=data) as gw:
            yield upstream, gw, json.loads(out.stdout)["key"]


def _records(db: Path) -> list[tuple[str, dict[str, Any]]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return [(rid, json.loads(body)) for rid, body in
                conn.execute("SELECT request_id, body FROM audit_log WHERE kind = 'request' ORDER BY seq")]


def _check_error(err: Any) -> None:
    assert isinstance(err, dict) and set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"] and isinstance(err["type"], str)


def _check_stream(text: str) -> None:
    events = []
    for block in text.split("\n\n"):
        data = "\n".join(line[6:] for line in block.split("\n") if line.startswith("data: "))
        if data:
            events.append(data if data == "[DONE]" else json.loads(data))
    assert events, "a stream that started says how it ended"
    *body, last = events
    for event in body:
        assert isinstance(event, dict) and "error" not in event and isinstance(event.get("choices", []), list), event
    if last != "[DONE]":
        assert set(last) == {"error"}, last
        _check_error(last["error"])


def test_random_upstream_behaviour(fuzz_gateway: tuple[RunningUpstream, GatewayProcess, str]) -> None:
    upstream, gw, key = fuzz_gateway
    db = gw.data_dir / "nuri.db"
    sent: list[str] = []
    spend = [0.0]
    client = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    @settings(max_examples=120, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(attempts=st.lists(faults, min_size=1, max_size=2), stream=st.booleans(),
           completions=st.booleans(), hang_up=st.booleans())
    def one_request(attempts: list[dict[str, Any]], stream: bool, completions: bool, hang_up: bool) -> None:
        upstream.state.script = list(attempts)
        path = "/completions" if completions else "/chat/completions"
        body: dict[str, Any] = {"model": "default", "max_tokens": 8, "stream": stream}
        if completions:
            body["prompt"] = "안녕하세요"
        else:
            body["messages"] = [{"role": "user", "content": "안녕하세요"}]
        with client.stream("POST", path, json=body) as resp:
            request_id = resp.headers["x-nuri-request-id"]
            sent.append(request_id)
            kind = resp.headers.get("content-type", "")
            if hang_up and kind.startswith("text/event-stream"):
                next(resp.iter_raw(), None)
                return                       # the client goes away; the record must still come
            resp.read()
        if kind.startswith("text/event-stream"):
            assert resp.status_code == 200
            _check_stream(resp.text)
        else:
            assert kind.startswith("application/json"), kind
            data = resp.json()
            if resp.status_code == 200:
                assert isinstance(data.get("choices"), list)
                usage = data.get("usage") or {}
                assert all(type(usage.get(k, 0)) is int and usage.get(k, 0) >= 0
                           for k in ("prompt_tokens", "completion_tokens"))
            else:
                assert 400 <= resp.status_code < 600
                _check_error(data.get("error"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            mine = [r for rid, r in _records(db) if rid == request_id]
            if mine:
                break
            time.sleep(0.01)
        assert len(mine) == 1, f"{len(mine)} records for {request_id}"
        assert mine[0]["cost"] >= 0
        total = sum(r["cost"] for _, r in _records(db))
        assert total >= spend[0] - 1e-9, "spend went down"
        spend[0] = total

    try:
        one_request()
    finally:
        client.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = _records(db)
        if len(records) >= len(sent):
            break
        time.sleep(0.05)
    time.sleep(0.2)
    records = _records(db)
    ids = [rid for rid, _ in records]
    assert sorted(ids) == sorted(sent), "every request exactly one record, and no other"
    assert all(r["cost"] >= 0 and r["prompt_tokens"] >= 0 and r["completion_tokens"] >= 0 for _, r in records)
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        assert all(c >= 0 for (c,) in conn.execute("SELECT cost_nanos FROM usage_daily"))
