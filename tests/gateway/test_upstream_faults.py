"""A faulty upstream against a real `nuri serve` with the ledger on: whatever the upstream sends,
the client gets a well-formed OpenAI error (or one SSE error event), the request has exactly one
audit record, and spend never goes down.

The SQLite gateway runs the default durability (`process`). The PostgreSQL cases run `fsync`
behind a TCP relay the test can cut, as when the database host goes away; they skip, saying
why, when no PostgreSQL server listens on 127.0.0.1:5432.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.processes import GatewayProcess, upstream_deployment
from support.upstream_server import RunningUpstream, free_port

ENV = {"NURI_AUDIT_HMAC_KEY": "faults-hmac", "NURI_AUDIT_SIGNING_KEY": "faults-sign", "NURI_ADMIN_KEY": "faults-admin"}
PG_URL = os.environ.get("NURI_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}     # a thousandth per token: spend is visible
GOOD_CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
              "choices": [{"index": 0, "delta": {"role": "assistant", "content": "안녕"}, "finish_reason": None}]}
SECRET_TEXT = "do-not-echo-this-value"


# --- reading what the client and the auditor see ------------------------------------------------


def error_of(resp: httpx.Response) -> dict[str, Any]:
    """The OpenAI error object of a JSON error response, checked for shape."""
    assert resp.headers["content-type"].startswith("application/json"), resp.text[:200]
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"] and isinstance(err["type"], str)
    return err


def sse_events(text: str) -> list[Any]:
    """Each event's data, JSON-decoded, with "[DONE]" kept as the string."""
    out: list[Any] = []
    for block in text.split("\n\n"):
        data = "\n".join(line[6:] for line in block.split("\n") if line.startswith("data: "))
        if data:
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def stream_error(resp: httpx.Response) -> dict[str, Any]:
    """A stream that started and failed: chunks, then exactly one error event, then nothing."""
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert events and "[DONE]" not in events, events
    *chunks, last = events
    assert all(isinstance(c, dict) and "error" not in c for c in chunks)
    assert set(last) == {"error"} and set(last["error"]) == {"message", "type", "param", "code"}, last
    return last["error"]


class Audit:
    """The audit chain as stored (SQLite file or a PostgreSQL schema), read the way `nuri audit
    export` reads it: one JSON body per row."""

    def __init__(self, rows: Callable[[], list[tuple[str, str, str]]]) -> None:
        self._rows = rows

    def records(self, request_id: str, kind: str = "request") -> list[dict[str, Any]]:
        return [json.loads(body) for k, rid, body in self._rows() if rid == request_id and k == kind]

    def one(self, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The request's record once it has landed; exactly one, also a moment later."""
        deadline = time.monotonic() + timeout
        while not (found := self.records(request_id)) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)        # a second record would be written in the same moment
        found = self.records(request_id)
        assert len(found) == 1, f"{len(found)} audit records for {request_id}"
        return found[0]

    def spend(self) -> int:
        return sum(json.loads(body)["cost"] * 1e9 for k, _, body in self._rows() if k == "request")


def sqlite_rows(path: Path) -> Callable[[], list[tuple[str, str, str]]]:
    def rows() -> list[tuple[str, str, str]]:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            return list(conn.execute("SELECT kind, request_id, body FROM audit_log ORDER BY seq"))
    return rows


def create_key(data: Path, team: str, budget: float, config: Path | None = None) -> str:
    cmd = [sys.executable, "-m", "nuri", "keys", "create", "--team", team, "--budget", str(budget), "--json",
           "--data-dir", str(data)]
    cmd += ["--config", str(config)] if config is not None else []
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ENV}, check=True)
    return json.loads(out.stdout)["key"]


# --- the SQLite gateway: two deployments on one faulty upstream -----------------------------------


class Rig:
    def __init__(self, upstream: RunningUpstream, gw: GatewayProcess, key: str, audit: Audit) -> None:
        self.upstream, self.gw, self.key, self.audit = upstream, gw, key, audit

    def post(self, body: dict[str, Any], path: str = "/chat/completions") -> httpx.Response:
        return httpx.post(self.gw.base_url + path, json=body, headers={"Authorization": f"Bearer {self.key}"},
                          timeout=30)

    def script(self, *faults: dict[str, Any]) -> None:
        self.upstream.state.script = list(faults)

    def budget_left(self, team: str) -> float:
        """What the budget counters say is left (the gauge admission sets)."""
        text = httpx.get(self.gw.root_url + "/metrics", headers={"Authorization": "Bearer faults-admin"},
                         timeout=10).text
        line = next(x for x in text.splitlines() if x.startswith(f'nuri_budget_remaining{{team="{team}"}}'))
        return float(line.split()[-1])


@pytest.fixture(scope="module")
def _rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp("faults")
    with RunningUpstream() as upstream:
        options = {"max_reply_bytes": 64 << 10, "max_event_bytes": 16 << 10}
        config = {
            "deployments": [upstream_deployment(upstream, d, jurisdiction="KR", hosting="domestic_cloud",
                                                price=PRICE, options=options) for d in ("a", "b")],
            "aliases": {"default": ["a", "b"]},
            "policy": {"packs": ["kr-pipa"]},
            "routing": {"retries": 1, "backoff_seconds": 0, "breaker_failures": 1000},
        }
        data = workdir / "data"
        key = create_key(data, "faults", 1000.0)
        with GatewayProcess(workdir, config, env=ENV, data_dir=data) as gw:
            yield Rig(upstream, gw, key, Audit(sqlite_rows(data / "nuri.db")))


@pytest.fixture
def rig(_rig: Rig) -> Rig:
    _rig.upstream.reset()
    return _rig


def chat(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": "default", "messages": [{"role": "user", "content": "안녕하세요"}], "max_tokens": 16,
            "stream": stream, **extra}


BAD_REPLIES = {
    "usage-string": ({"fault": "usage", "usage": {"prompt_tokens": SECRET_TEXT, "completion_tokens": 1}},
                     "usage.prompt_tokens"),
    "usage-negative": ({"fault": "usage", "usage": {"prompt_tokens": -299_990_000, "completion_tokens": 1,
                                                    "total_tokens": -299_989_999}}, "usage.prompt_tokens"),
    "usage-float": ({"fault": "usage", "usage": {"prompt_tokens": 1.5, "completion_tokens": 1}},
                    "usage.prompt_tokens"),
    "usage-not-object": ({"fault": "usage", "usage": [SECRET_TEXT]}, "usage"),
    "json-array": ({"fault": "raw", "body": "[1,2,3]"}, "not a JSON object"),
    "choices-number": ({"fault": "raw", "body": '{"choices": 5}'}, "choices"),
    "choice-string": ({"fault": "raw", "body": json.dumps({"choices": [SECRET_TEXT]})}, "choices[0]"),
    "content-number": ({"fault": "raw", "body": '{"choices": [{"message": {"content": 7}}]}'},
                       "choices[0].message.content"),
    "not-json": ({"fault": "raw", "body": '{"choices": [' + SECRET_TEXT}, "invalid JSON"),
    "huge-body": ({"fault": "huge", "bytes": 200_000}, "over 65536 bytes"),
}


@pytest.mark.parametrize("name", list(BAD_REPLIES))
def test_malformed_reply_is_a_clean_502_with_one_record(rig: Rig, name: str) -> None:
    fault, field = BAD_REPLIES[name]
    spend = rig.audit.spend()
    rig.script(fault, fault)                  # the retry on deployment b gets the same
    resp = rig.post(chat())
    assert resp.status_code == 502, resp.text
    err = error_of(resp)
    assert err["code"] == "upstream_malformed" and field in err["message"], err
    assert SECRET_TEXT not in resp.text and "not forwarded" not in err["message"]
    rec = rig.audit.one(resp.headers["x-nuri-request-id"])
    assert rec["status"] == 502 and rec["outcome"] == "error" and rec["cost"] >= 0
    assert rig.audit.spend() >= spend


def test_malformed_first_reply_falls_back(rig: Rig) -> None:
    rig.script({"fault": "usage", "usage": {"prompt_tokens": "abc"}})
    resp = rig.post(chat())
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["prompt_tokens"] >= 0
    rec = rig.audit.one(resp.headers["x-nuri-request-id"])
    assert rec["status"] == 200 and rec["detail"]["attempts"] == ["a", "b"] and rec["cost"] > 0


def test_negative_usage_never_gives_budget_back(rig: Rig) -> None:
    assert rig.post(chat()).status_code == 200
    time.sleep(0.2)                           # counter corrections run beside the request
    before = rig.budget_left("faults")
    bad = {"fault": "usage", "usage": {"prompt_tokens": -299_990_000, "completion_tokens": 0}}
    rig.script(bad, bad)
    assert rig.post(chat()).status_code == 502
    rig.script({"fault": "usage", "usage": {"prompt_tokens": -5, "completion_tokens": -5}})
    stream_error(rig.post(chat(stream=True)))          # usage comes last: after the first chunk
    rig.script({"fault": "sse", "events": [GOOD_CHUNK, {"choices": [], "usage": {"prompt_tokens": -299_990_000}}]})
    stream_error(rig.post(chat(stream=True)))
    time.sleep(0.2)
    assert rig.post(chat()).status_code == 200
    assert rig.budget_left("faults") <= before
    assert all(json.loads(b)["cost"] >= 0 for k, _, b in rig.audit._rows() if k == "request")


STREAM_BEFORE_FIRST = {
    "array-event": {"fault": "sse", "events": [[1, 2, 3]]},
    "choices-number": {"fault": "sse", "events": [{"choices": 5}]},
    "usage-string": {"fault": "sse", "events": [{"choices": [], "usage": SECRET_TEXT}]},
    "not-json": {"fault": "sse", "events": ["{" + SECRET_TEXT]},
    "line-over-cap": {"fault": "huge", "bytes": 40_000},
    "no-newline-ever": {"fault": "sse", "raw": "data: " + "x" * 40_000, "done": False},
    "empty": {"fault": "sse", "events": []},
    "html-body": {"fault": "raw", "body": "<html>" + SECRET_TEXT, "content_type": "text/html"},
}


@pytest.mark.parametrize("name", list(STREAM_BEFORE_FIRST))
def test_stream_fault_before_the_first_chunk_is_retried_then_a_json_error(rig: Rig, name: str) -> None:
    fault = STREAM_BEFORE_FIRST[name]
    rig.script(fault, fault)
    resp = rig.post(chat(stream=True))
    assert resp.status_code == 502, resp.text[:300]
    err = error_of(resp)
    assert err["type"] == "upstream_error" and SECRET_TEXT not in resp.text
    rec = rig.audit.one(resp.headers["x-nuri-request-id"])
    assert rec["status"] == 502 and len(rec["detail"]["attempts"]) == 2
    rig.script(fault)                          # once: deployment b answers
    ok = rig.post(chat(stream=True))
    assert ok.status_code == 200 and sse_events(ok.text)[-1] == "[DONE]"
    assert rig.audit.one(ok.headers["x-nuri-request-id"])["status"] == 200


STREAM_AFTER_FIRST = {
    "array-event": ([GOOD_CHUNK, [1, 2, 3]], False),
    "choices-number": ([GOOD_CHUNK, {"choices": 5}], False),
    "usage-string": ([GOOD_CHUNK, {"choices": [], "usage": SECRET_TEXT}], False),
    "usage-negative": ([GOOD_CHUNK, {"choices": [], "usage": {"prompt_tokens": -1, "completion_tokens": 3}}], False),
    "delta-string": ([GOOD_CHUNK, {"choices": [{"index": 0, "delta": SECRET_TEXT}]}], False),
    "cut": ([GOOD_CHUNK], True),
    "no-done": ([GOOD_CHUNK], False),
    "upstream-error-event": ([GOOD_CHUNK, {"error": {"message": "overloaded"}}], False),
}


@pytest.mark.parametrize("name", list(STREAM_AFTER_FIRST))
def test_stream_fault_after_the_first_chunk_ends_with_one_error_event(rig: Rig, name: str) -> None:
    events, cut = STREAM_AFTER_FIRST[name]
    rig.script({"fault": "sse", "events": events, "cut": cut, "done": name != "no-done"})
    resp = rig.post(chat(stream=True))
    err = stream_error(resp)
    assert err["type"] == "upstream_error" and SECRET_TEXT not in resp.text
    assert len(sse_events(resp.text)) >= 2      # the chunk before the fault reached the client
    rec = rig.audit.one(resp.headers["x-nuri-request-id"])
    assert rec["status"] == 502 and rec["stream"] and rec["cost"] >= 0


def test_completions_and_embeddings_malformed(rig: Rig) -> None:
    bad = {"fault": "raw", "body": '{"choices": [{"text": 5}]}'}
    rig.script(bad, bad)
    resp = rig.post({"model": "default", "prompt": "hi", "max_tokens": 4}, "/completions")
    assert resp.status_code == 502 and "choices[0].text" in error_of(resp)["message"]
    rig.audit.one(resp.headers["x-nuri-request-id"])
    bad = {"fault": "usage", "usage": {"prompt_tokens": -4, "total_tokens": -4}}
    rig.script(bad, bad)
    resp = rig.post({"model": "default", "input": ["hi"]}, "/embeddings")
    assert resp.status_code == 502 and "usage.prompt_tokens" in error_of(resp)["message"]
    rig.audit.one(resp.headers["x-nuri-request-id"])


def test_refusal_and_unknown_model_have_one_record(rig: Rig) -> None:
    resp = rig.post({**chat(), "model": "nope"})
    assert resp.status_code == 404 and error_of(resp)["code"] == "model_not_found"
    rig.audit.one(resp.headers["x-nuri-request-id"])
    resp = rig.post({**chat(), "messages": []})
    assert resp.status_code == 400
    rig.audit.one(resp.headers["x-nuri-request-id"])


def test_client_gone_mid_stream_has_one_record(rig: Rig) -> None:
    rig.upstream.state.chunk_chars, rig.upstream.state.chunk_delay_ms = 1, 100
    with httpx.stream("POST", rig.gw.base_url + "/chat/completions", json=chat(stream=True),
                      headers={"Authorization": f"Bearer {rig.key}"}, timeout=30) as resp:
        request_id = resp.headers["x-nuri-request-id"]
        next(resp.iter_raw())                  # the first chunk, then hang up
    rec = rig.audit.one(request_id)
    assert rec["status"] == 499 and rec["outcome"] == "cancelled"


@pytest.mark.parametrize("stream", [False, True])
def test_client_gone_before_the_reply_has_one_record(rig: Rig, stream: bool) -> None:
    before = len([1 for k, _, _ in rig.audit._rows() if k == "request"])
    rig.script({"fault": "slow", "delay_ms": 600})
    with contextlib.suppress(httpx.ReadTimeout):
        httpx.post(rig.gw.base_url + "/chat/completions", json=chat(stream=stream),
                   headers={"Authorization": f"Bearer {rig.key}"}, timeout=0.2)
    time.sleep(1.0)
    assert len(rig.upstream.state.requests) == 1
    rows = [json.loads(b) for k, _, b in rig.audit._rows() if k == "request"]
    assert len(rows) == before + 1
    assert rows[-1]["stream"] is stream and rows[-1]["status"] in (200, 499)


def test_chain_verifies_and_no_request_has_two_records(_rig: Rig) -> None:
    rows = _rig.audit._rows()
    ids = [rid for k, rid, _ in rows if k == "request"]
    assert len(ids) == len(set(ids)) and len(ids) > 20
    out = subprocess.run([sys.executable, "-m", "nuri", "audit", "verify", "--data-dir", str(_rig.gw.data_dir)],
                         capture_output=True, text=True, env={**os.environ, **ENV})
    assert out.returncode == 0, out.stdout + out.stderr


# --- PostgreSQL with durability fsync, through a relay the test cuts -------------------------------


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


class Relay:
    """TCP relay to PostgreSQL. `cut()` closes every open connection and refuses new ones, as
    when the database host goes away; `restore()` listens again on the same port."""

    def __init__(self, target: int = 5432) -> None:
        self.target = target
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.restore()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def restore(self) -> None:
        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self._call(start())

    def cut(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            self._writers.clear()
        self._call(stop())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def pg_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Rig, Relay, str]]:
    if not _pg_up():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 (set NURI_TEST_PG_URL to use another)")
    import psycopg

    workdir = tmp_path_factory.mktemp("faults-pg")
    schema = f"nuri_faults_{secrets.token_hex(4)}"
    relay = Relay()
    url = PG_URL.replace(":5432/", f":{relay.port}/")
    with RunningUpstream() as upstream:
        config = {
            "deployments": [upstream_deployment(upstream, "a", jurisdiction="KR", hosting="domestic_cloud",
                                                price=PRICE)],
            "aliases": {"default": ["a"]},
            "routing": {"retries": 0, "breaker_failures": 1000},
            "ledger": {"database_url": url, "db_schema": schema, "durability": "fsync",
                       "key_cache_lease_seconds": 5},
        }
        path = workdir / "nuri.yaml"
        path.write_text(json.dumps(config), encoding="utf-8")
        key = create_key(workdir / "data", "pg", 1000.0, config=path)

        def rows() -> list[tuple[str, str, str]]:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                return [tuple(r) for r in conn.execute(   # type: ignore[misc]
                    f'SELECT kind, request_id, body FROM "{schema}".audit_log ORDER BY seq')]

        try:
            with GatewayProcess(workdir, config, env=ENV, data_dir=workdir / "data") as gw:
                yield Rig(upstream, gw, key, Audit(rows)), relay, schema
        finally:
            relay.close()
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def recovered(rig: Rig) -> bool:
    """Whether requests succeed again after an outage. A pooled database connection that was open
    at the cut fails the one request that takes it next (503) and is then replaced."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if rig.post(chat()).status_code == 200:
            return True
        time.sleep(0.05)
    return False


def test_fsync_database_lost_during_the_upstream_call(pg_rig: tuple[Rig, Relay, str]) -> None:
    rig, relay, _ = pg_rig
    rig.upstream.reset()
    assert recovered(rig)                                 # warm: keys cached, connections open
    rig.upstream.state.requests.clear()
    rig.script({"fault": "slow", "delay_ms": 800})
    result: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", rig.post(chat())))
    thread.start()
    deadline = time.monotonic() + 10
    while not rig.upstream.state.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    relay.cut()                                           # the upstream has the body now
    thread.join(30)
    resp = result["r"]
    try:
        assert resp.status_code == 503, resp.text
        err = error_of(resp)
        assert err["code"] == "ledger_unavailable"
        assert "sent to deployment a" in err["message"] and "not forwarded" not in err["message"]
    finally:
        relay.restore()
    request_id = resp.headers["x-nuri-request-id"]
    assert len(rig.audit.records(request_id, "attempt")) == 1   # committed before the body left
    rec = rig.audit.one(request_id)                              # written once the database is back
    assert rec["status"] == 503 and rec["error_code"] == "ledger_unavailable"


def test_fsync_database_down_while_idle_is_503_and_nothing_leaves(pg_rig: tuple[Rig, Relay, str]) -> None:
    rig, relay, _ = pg_rig
    rig.upstream.reset()
    assert recovered(rig)
    rig.upstream.state.requests.clear()
    relay.cut()
    try:
        time.sleep(0.2)
        for stream in (False, True):
            resp = rig.post(chat(stream=stream))
            assert resp.status_code == 503, resp.text
            err = error_of(resp)
            # refused at the key lookup when the key cache's lease ran out, else before forwarding
            assert err["code"] == "ledger_unavailable", err
            assert "not forwarded" in err["message"] or "request refused" in err["message"], err
        assert rig.upstream.state.requests == []                # nothing left while the ledger was down
    finally:
        relay.restore()
    rec = rig.audit.one(resp.headers["x-nuri-request-id"])
    assert rec["status"] == 503
    assert recovered(rig)


# Fields the Responses and Messages APIs translate: each of these shapes used to reach their
# translation and answer 500 after the record said 200. Checked at the provider boundary now, they
# are an upstream's fault as any other (retried on the next deployment, 502 when all fail).
TRANSLATED_FAULTS = {
    "finish-reason-list": {"finish_reason": ["stop"]},
    "tool-calls-object": {"message": {"role": "assistant", "content": None, "tool_calls": {"id": "c1"}}},
    "tool-call-string": {"message": {"role": "assistant", "content": None, "tool_calls": [SECRET_TEXT]}},
    "tool-arguments-object": {"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"q": SECRET_TEXT}}}]}},
}
API_BODIES = {
    "/chat/completions": chat(),
    "/responses": {"model": "default", "input": "안녕하세요", "max_output_tokens": 16},
    "/messages": {"model": "default", "max_tokens": 16, "messages": [{"role": "user", "content": "안녕하세요"}]},
}


@pytest.mark.parametrize("path", list(API_BODIES))
@pytest.mark.parametrize("name", list(TRANSLATED_FAULTS))
def test_a_reply_field_the_apis_translate_is_checked_at_the_boundary(rig: Rig, name: str, path: str) -> None:
    choice = {"index": 0, "message": {"role": "assistant", "content": "안녕"}, "finish_reason": "stop",
              **TRANSLATED_FAULTS[name]}
    body = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]})
    rig.script({"fault": "raw", "body": body}, {"fault": "raw", "body": body})
    resp = rig.post(API_BODIES[path], path)
    assert resp.status_code == 502, resp.text[:300]
    assert SECRET_TEXT not in resp.text
    assert "upstream" in resp.json()["error"]["type"] or resp.json()["error"]["type"] == "api_error"
    assert rig.audit.one(resp.headers["x-nuri-request-id"])["status"] == 502


@pytest.mark.parametrize("path", list(API_BODIES))
def test_a_chunk_field_the_apis_translate_is_checked_at_the_boundary(rig: Rig, path: str) -> None:
    bad = {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": [0], "function": {"name": "f"}}]},
                        "finish_reason": None}]}
    rig.script({"fault": "sse", "events": [GOOD_CHUNK, bad]})
    with httpx.stream("POST", rig.gw.base_url + path, json={**API_BODIES[path], "stream": True},
                      headers={"Authorization": f"Bearer {rig.key}"}, timeout=30) as resp:
        text = resp.read().decode()
        request_id = resp.headers["x-nuri-request-id"]
    assert resp.status_code == 200 and "error" in text.rsplit("\n\n", 2)[-2], text[-400:]
    assert rig.audit.one(request_id)["status"] == 502
