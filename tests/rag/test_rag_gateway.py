"""RAG through a real `nuri serve` in front of a domestic and a foreign recording upstream.

Documents are ingested by the real `nuri rag ingest` into the gateway's own store while it runs.
A passage of a grade-S collection keeps the request in Korea under kr-public-n2sf, a question that
retrieves only open passages may go abroad, a team outside a collection's ACL gets none of its
passages, replies and audit records cite the right chunks (ids only in the record), and the real
OpenAI SDK drives `model: rag:<collection>` streamed and not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from support.processes import create_key, upstream_deployment
from support.upstream_server import RunningUpstream

SECRET_DOC = """# 인수 협상 전략

## 일정
한빛데이터는 누리소프트 인수 협상을 4월 30일까지 마무리한다. 인수 가격의 상한은 120억 원으로 정했다.

## 협상단
협상단은 전략기획실장이 이끌고 법무팀과 재무팀이 한 명씩 참여한다.
"""
OPEN_DOC = """# 출장 및 여비 규정

## 출장 일비
국내 출장 일비는 하루 2만 원이다. 해외 출장 일비는 미화 60달러이다.

## 숙박비
숙박비는 서울 지역 1박 10만 원, 그 밖의 지역 1박 7만 원을 넘을 수 없다.
"""
SECRET_Q = "인수 협상은 언제까지 마무리하나요?"
OPEN_Q = "국내 출장 일비는 하루에 얼마인가요?"


@pytest.fixture(scope="module")
def upstreams() -> Any:
    with RunningUpstream() as kr, RunningUpstream() as us:
        yield kr, us


@pytest.fixture(scope="module")
def rag_gateway(module_gateway, upstreams, tmp_path_factory) -> Any:
    kr, us = upstreams
    config = {
        "deployments": [upstream_deployment(us, "us", jurisdiction="US", hosting="foreign_cloud"),
                        upstream_deployment(kr, "kr", jurisdiction="KR", hosting="on_prem")],
        "aliases": {"default": ["us", "kr"]},
        "policy": {"packs": ["kr-pipa", "kr-public-n2sf"]},
        "rag": {"collections": {
            "strategy": {"model": "default", "grade": "S", "teams": ["legal"]},
            "handbook": {"model": "default"},
        }},
    }
    gw = module_gateway(config)
    docs = tmp_path_factory.mktemp("docs")
    (docs / "strategy.md").write_text(SECRET_DOC, encoding="utf-8")
    (docs / "travel.md").write_text(OPEN_DOC, encoding="utf-8")
    _nuri(gw, "rag", "ingest", str(docs / "strategy.md"), "--collection", "strategy")
    _nuri(gw, "rag", "ingest", str(docs / "travel.md"), "--collection", "handbook")
    keys = {team: create_key(gw.data_dir, team) for team in ("legal", "sales")}
    return gw, keys


def _nuri(gw: Any, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "nuri", *args, "--config", str(gw.config_path),
                          "--data-dir", str(gw.data_dir)], capture_output=True, text=True, timeout=120,
                         env=gw.env)
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


def _chat(gw: Any, key: str, body: dict[str, Any], path: str = "/chat/completions") -> httpx.Response:
    return httpx.post(gw.base_url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=60)


def _sent(server: RunningUpstream) -> list[dict[str, Any]]:
    return [json.loads(r["body"]) for r in server.state.requests if r["path"].endswith("/chat/completions")]


def _clear(*servers: RunningUpstream) -> None:
    for s in servers:
        s.state.requests.clear()


def test_a_grade_s_passage_keeps_the_request_home_and_open_passages_may_go_abroad(rag_gateway, upstreams) -> None:
    gw, keys = rag_gateway
    kr, us = upstreams
    _clear(kr, us)
    secret = _chat(gw, keys["legal"], {"model": "rag:strategy", "messages": [{"role": "user", "content": SECRET_Q}]})
    assert secret.status_code == 200, secret.text
    assert secret.headers["x-nuri-deployment"] == "kr"
    assert "n2sf-s-domestic-certified" in secret.headers["x-nuri-policy"]
    assert _sent(us) == []                                   # nothing of it went abroad
    (forwarded,) = _sent(kr)
    system = forwarded["messages"][0]["content"]
    assert "4월 30일" in system and "[S]" in system and forwarded["model"] != "rag:strategy"
    assert "nuri_rag" not in forwarded

    _clear(kr, us)
    open_reply = _chat(gw, keys["sales"], {"model": "rag:handbook", "messages": [{"role": "user", "content": OPEN_Q}]})
    assert open_reply.status_code == 200, open_reply.text
    assert open_reply.headers["x-nuri-deployment"] == "us"   # only open passages: abroad is allowed
    (abroad,) = _sent(us)
    assert "2만 원" in abroad["messages"][0]["content"] and "[S]" not in abroad["messages"][0]["content"]
    assert "120억" not in json.dumps(abroad, ensure_ascii=False)

    # the nuri_rag field does the same with the model the client names; explain agrees
    _clear(kr, us)
    body = {"model": "default", "nuri_rag": {"collection": "strategy", "top_k": 2},
            "messages": [{"role": "user", "content": SECRET_Q}]}
    explained = _chat(gw, keys["legal"], body, "/nuri/explain").json()
    assert [step["deployment"] for step in explained["route"]] == ["kr"]
    assert explained["citations"] and explained["citations"][0]["grade"] == "S"
    live = _chat(gw, keys["legal"], body)
    assert live.headers["x-nuri-deployment"] == "kr" and _sent(us) == []


def test_a_team_without_access_never_sees_restricted_passages(rag_gateway, upstreams) -> None:
    gw, keys = rag_gateway
    kr, us = upstreams
    _clear(kr, us)
    for body in ({"model": "rag:strategy", "messages": [{"role": "user", "content": SECRET_Q}]},
                 {"model": "default", "nuri_rag": "strategy", "messages": [{"role": "user", "content": SECRET_Q}]}):
        refused = _chat(gw, keys["sales"], body)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "collection_not_allowed"
        assert "120억" not in refused.text and "4월 30일" not in refused.text
    retrieve = _chat(gw, keys["sales"], {"collection": "strategy", "query": SECRET_Q}, "/nuri/retrieve")
    assert retrieve.status_code == 403 and "4월 30일" not in retrieve.text
    assert _sent(kr) == [] and _sent(us) == []
    allowed = _chat(gw, keys["legal"], {"collection": "strategy", "query": SECRET_Q}, "/nuri/retrieve")
    assert allowed.status_code == 200 and "4월 30일" in allowed.json()["data"][0]["text"]


def test_citations_point_at_the_chunks_injected_and_the_audit_keeps_ids_only(rag_gateway, upstreams) -> None:
    gw, keys = rag_gateway
    kr, us = upstreams
    found = _chat(gw, keys["sales"], {"collection": "handbook", "query": OPEN_Q}, "/nuri/retrieve").json()["data"]
    answer = next(p for p in found if "하루 2만 원" in p["text"])
    _clear(kr, us)
    client = OpenAI(base_url=gw.base_url, api_key=keys["sales"], max_retries=0)
    completion = client.chat.completions.create(model="rag:handbook", messages=[{"role": "user", "content": OPEN_Q}])
    citations = completion.model_extra["nuri"]["citations"]
    assert citations[0]["id"] == answer["id"] and citations[0]["n"] == 1
    assert citations[0]["title"] == "출장 및 여비 규정" and citations[0]["heading"].endswith("출장 일비")
    assert citations[0]["source"] == "travel.md" and "text" not in citations[0]
    system = _sent(us)[0]["messages"][0]["content"]
    assert f"[1] 출장 및 여비 규정 · 출장 및 여비 규정 > 출장 일비 (chunk {answer['id']})\n{answer['text']}" in system
    records = _audit(gw, lambda r: r.get("detail", {}).get("citations"))
    assert records, "no audit record with citations"
    assert answer["id"] in records[-1]["detail"]["citations"]
    dumped = json.dumps(records, ensure_ascii=False)
    assert "하루 2만 원" not in dumped and "출장 일비" not in dumped


def test_the_openai_sdk_streams_a_rag_answer_with_its_citations_last(rag_gateway, upstreams) -> None:
    gw, keys = rag_gateway
    client = OpenAI(base_url=gw.base_url, api_key=keys["legal"], max_retries=0)
    chunks = list(client.chat.completions.create(model="rag:strategy", stream=True,
                                                 messages=[{"role": "user", "content": SECRET_Q}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == upstreams[0].state.reply
    last = [c for c in chunks if (c.model_extra or {}).get("nuri")]
    assert len(last) == 1 and last[0] is chunks[-1]
    citations = last[0].model_extra["nuri"]["citations"]
    assert citations[0]["grade"] == "S" and citations[0]["collection"] == "strategy"
    assert all(c.model == "kr" for c in chunks)


def _audit(gw: Any, keep: Any, wait: float = 10.0) -> list[dict[str, Any]]:
    """The exported audit records that `keep` accepts; the spool ships a moment after the reply."""
    deadline = time.monotonic() + wait
    while True:
        out = _nuri(gw, "audit", "export")
        records = [r for r in (json.loads(line) for line in out.splitlines() if line.strip()) if keep(r)]
        if records or time.monotonic() > deadline:
            return records
        time.sleep(0.3)


def test_unknown_collection_is_a_not_found_model(rag_gateway) -> None:
    gw, keys = rag_gateway
    reply = _chat(gw, keys["legal"], {"model": "rag:nope", "messages": [{"role": "user", "content": "?"}]})
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "collection_not_found"


def test_sources_are_relative_names_only(rag_gateway) -> None:
    gw, keys = rag_gateway
    data = _chat(gw, keys["legal"], {"collection": "strategy", "query": SECRET_Q}, "/nuri/retrieve").json()["data"]
    assert all("/" not in d["source"] and Path(d["source"]).suffix == ".md" for d in data)
