"""Language fidelity, end to end: a Korean question answered in English is noticed.

Two recording upstreams behind a real `nuri serve`: `en` (tried first) always answers in English,
`ko` in Korean. A miss is flagged (header, metric, audit record); with `replies.language.retry`
a non-streamed reply is asked again, once, of the next eligible deployment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.processes import upstream_deployment
from support.upstream_server import RunningUpstream

ENGLISH = "Dokdo belongs to Ulleung County in North Gyeongsang Province."
KOREAN = "독도는 경상북도 울릉군에 속한 섬입니다."
ASK_KO = "독도는 어느 군에 속하나요?"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[RunningUpstream, RunningUpstream]]:
    with RunningUpstream() as en, RunningUpstream() as ko:
        en.state.reply, ko.state.reply = ENGLISH, KOREAN
        yield en, ko


def _gateway(module_gateway: Any, upstreams: tuple[RunningUpstream, RunningUpstream], retry: bool) -> Any:
    en, ko = upstreams
    return module_gateway({
        "deployments": [upstream_deployment(en, "en", jurisdiction="KR", hosting="domestic_cloud"),
                        upstream_deployment(ko, "ko", jurisdiction="KR", hosting="domestic_cloud")],
        "aliases": {"default": ["en", "ko"]},
        "policy": {"packs": ["kr-pipa"]},
        "ledger": {"enabled": True, "durability": "fsync"},
        "replies": {"language": {"retry": retry}},
    })


@pytest.fixture(scope="module")
def flagging(module_gateway: Any, upstreams: tuple[RunningUpstream, RunningUpstream]) -> Any:
    return _gateway(module_gateway, upstreams, retry=False)


@pytest.fixture(scope="module")
def retrying(module_gateway: Any, upstreams: tuple[RunningUpstream, RunningUpstream]) -> Any:
    return _gateway(module_gateway, upstreams, retry=True)


def _chat(gw: Any, question: str, **extra: Any) -> httpx.Response:
    return httpx.post(gw.base_url + "/chat/completions", timeout=30,
                      json={"model": "default", "messages": [{"role": "user", "content": question}], **extra})


def _audit(gw: Any, request_id: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "nuri", "audit", "export", "--format", "jsonl", "--data-dir",
                          str(gw.data_dir)], capture_output=True, text=True, timeout=60, env=gw.env)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    detail = [r for r in rows if r.get("request_id") == request_id and r.get("kind", "request") == "request"][-1]["detail"]
    return json.loads(detail) if isinstance(detail, str) else detail


def test_a_korean_question_answered_in_english_is_flagged(flagging: Any) -> None:
    resp = _chat(flagging, ASK_KO)
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == ENGLISH      # flagged, not changed
    assert resp.headers["x-nuri-language-mismatch"] == "ko->latin"
    assert _audit(flagging, resp.headers["x-nuri-request-id"])["reply"]["language"] == {
        "asked": {"ko": 1.0}, "replied": "latin", "miss": True}
    metrics = httpx.get(flagging.root_url + "/metrics", timeout=10).text
    assert 'nuri_reply_language_misses_total{asked="ko",deployment="en",replied="latin"}' in metrics


def test_an_answer_in_the_asked_language_is_not_flagged(flagging: Any) -> None:
    english = _chat(flagging, "Which county is Dokdo in?")
    assert "x-nuri-language-mismatch" not in english.headers
    asked_for_english = _chat(flagging, "독도가 속한 군을 영어로 알려 주세요.")
    assert "x-nuri-language-mismatch" not in asked_for_english.headers


def test_a_streamed_miss_is_flagged_in_the_record(flagging: Any) -> None:
    resp = _chat(flagging, ASK_KO, stream=True)
    assert resp.status_code == 200 and ENGLISH[:10] in resp.text
    language = _audit(flagging, resp.headers["x-nuri-request-id"])["reply"]["language"]
    assert language["miss"] is True and language["replied"] == "latin"


def test_a_miss_is_retried_once_on_the_next_eligible_deployment(retrying: Any,
                                                               upstreams: tuple[RunningUpstream, RunningUpstream]) -> None:
    en, ko = upstreams
    en.state.requests.clear()
    ko.state.requests.clear()
    resp = _chat(retrying, ASK_KO)
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == KOREAN
    assert resp.headers["x-nuri-deployment"] == "ko"
    assert resp.headers["x-nuri-language-retry"] == "en"
    assert "x-nuri-language-mismatch" not in resp.headers
    assert len(en.state.requests) == 1 and len(ko.state.requests) == 1
    language = _audit(retrying, resp.headers["x-nuri-request-id"])["reply"]["language"]
    assert language["retried_from"] == "en" and language["miss"] is False
