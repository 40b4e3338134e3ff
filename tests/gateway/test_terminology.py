"""Terminology in replies, end to end: a recording upstream answers with contested names in Korean,
English and Japanese, through a real `nuri serve` with the kr-terminology pack set to each action.

Each reply is asked for whole and streamed with the term split at every position (and one
character per chunk): the streamed text must equal the whole reply, and both what the action says.
A text without contested names comes back byte-identical however it is cut.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from support.processes import upstream_deployment
from support.upstream_server import RunningUpstream

TEXTS = {
    "en": "The Sea of Japan lies east of Korea; Takeshima sits in it.",
    "ko": "일본해에는 다케시마가 있고, 창바이산은 북쪽에 있다.",
    "ja": "日本海には竹島があります。",
}
EXPECTED = {
    "annotate": {
        "en": "The East Sea (Sea of Japan) lies east of Korea; Dokdo (Takeshima) sits in it.",
        "ko": "동해(일본해)에는 독도(다케시마)가 있고, 백두산(창바이산)은 북쪽에 있다.",
        "ja": "東海（日本海）には独島（竹島）があります。",
    },
    "rewrite": {
        "en": "The East Sea lies east of Korea; Dokdo sits in it.",
        "ko": "동해에는 독도가 있고, 백두산은 북쪽에 있다.",
        "ja": "東海には独島があります。",
    },
    "flag": TEXTS,
}
HITS = {"en": "dokdo={a},east-sea={a}", "ko": "dokdo={a},east-sea={a},mount-baekdu={a}", "ja": "dokdo={a},east-sea={a}"}
# Look-alikes that are not the contested names: never touched, whatever the action.
CLEAN = "Sea of Japanese studies, the 일본해군 and 日本海軍 archives, Takeshimaya stores and Inchonese."
# The agreed dual naming: already annotated; rewrite keeps the preferred name, block refuses it.
PAIRED = "East Sea (Sea of Japan) and 독도(다케시마) and Sea of Japan (East Sea)."
PAIRED_AFTER = {"annotate": PAIRED, "flag": PAIRED, "rewrite": "East Sea and 독도 and East Sea."}
GLOSSARY = {"pack": "acme-glossary", "description": "the organisation's own names",
            "terms": [{"id": "ministry-name", "preferred": {"ko": "행정안전부"}, "contested": {"ko": ["안행부", "행자부"]},
                       "action": "rewrite"}]}
ACTIONS = ["annotate", "rewrite", "flag", "block"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[RunningUpstream]:
    with RunningUpstream() as server:
        yield server


@pytest.fixture(scope="module", params=ACTIONS)
def rig(request: pytest.FixtureRequest, upstream: RunningUpstream, module_gateway: Any,
        tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Any]:
    action = request.param
    glossary = tmp_path_factory.mktemp("glossary") / "glossary.yaml"
    glossary.write_text(yaml.safe_dump(GLOSSARY, allow_unicode=True), encoding="utf-8")
    config = {
        "deployments": [upstream_deployment(upstream, "kr", jurisdiction="KR", hosting="domestic_cloud")],
        "aliases": {"default": ["kr"]},
        "policy": {"packs": ["kr-terminology"], "files": [str(glossary)],
                   "params": {"geo_names_action": action}},
        "ledger": {"enabled": True, "durability": "fsync"},
    }
    return action, module_gateway(config)


def _ask(gw: Any, upstream: RunningUpstream, text: str, **extra: Any) -> httpx.Response:
    upstream.state.reply_fields = {"content": text}
    upstream.state.cuts = extra.pop("cuts", None)
    body = {"model": "default", "messages": [{"role": "user", "content": "Where is it?"}], **extra}
    return httpx.post(gw.base_url + "/chat/completions", json=body, timeout=30)


def _events(resp: httpx.Response) -> list[Any]:
    out: list[Any] = []
    for block in resp.text.split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def _streamed(gw: Any, upstream: RunningUpstream, text: str, cuts: Any) -> tuple[str, list[Any]]:
    resp = _ask(gw, upstream, text, stream=True, cuts=cuts)
    assert resp.status_code == 200, resp.text
    events = _events(resp)
    content = "".join((c.get("delta") or {}).get("content") or ""
                      for e in events if isinstance(e, dict) for c in e.get("choices") or [])
    return content, events


def _every_cut(text: str) -> Iterator[Any]:
    yield "each"
    for i in range(1, len(text)):
        yield [i]


@pytest.mark.parametrize("lang", list(TEXTS))
def test_each_action_on_whole_and_streamed_replies_cut_anywhere(rig: tuple[str, Any], upstream: RunningUpstream,
                                                                 lang: str) -> None:
    action, gw = rig
    text = TEXTS[lang]
    whole = _ask(gw, upstream, text)
    if action == "block":
        assert whole.status_code == 403
        error = whole.json()["error"]
        assert error["code"] == "reply_blocked" and error["type"] == "permission_denied"
        assert "Takeshima" not in whole.text and "竹島" not in whole.text and "다케시마" not in whole.text
        for cuts in _every_cut(text):
            content, events = _streamed(gw, upstream, text, cuts)
            assert events[-1] != "[DONE]" and events[-1]["error"]["code"] == "reply_blocked", (cuts, events[-1])
            for name in ("Sea of Japan", "日本海", "일본해"):      # the first contested name never leaves
                assert name not in content, (cuts, content)
        return
    assert whole.status_code == 200, whole.text
    assert whole.json()["choices"][0]["message"]["content"] == EXPECTED[action][lang]
    assert whole.headers["x-nuri-terminology"] == HITS[lang].format(a=action)
    for cuts in _every_cut(text):
        content, events = _streamed(gw, upstream, text, cuts)
        assert content == EXPECTED[action][lang], (cuts, content)
        assert events[-1] == "[DONE]"


def test_text_without_contested_names_is_byte_identical(rig: tuple[str, Any], upstream: RunningUpstream) -> None:
    action, gw = rig
    whole = _ask(gw, upstream, CLEAN)
    assert whole.status_code == 200, whole.text
    assert whole.json()["choices"][0]["message"]["content"] == CLEAN
    assert "x-nuri-terminology" not in whole.headers
    assert "nuri" not in whole.json() and "x-nuri-ai-generated" not in whole.headers   # no label rule loaded
    if action != "annotate":
        return                                 # the cuts are the same code whatever the action
    for cuts in _every_cut(CLEAN):
        content, _ = _streamed(gw, upstream, CLEAN, cuts)
        assert content == CLEAN, cuts


def test_the_agreed_dual_naming_is_left_annotated_or_reduced_to_the_preferred_name(
        rig: tuple[str, Any], upstream: RunningUpstream) -> None:
    action, gw = rig
    whole = _ask(gw, upstream, PAIRED)
    if action == "block":
        assert whole.status_code == 403 and whole.json()["error"]["code"] == "reply_blocked"
        return
    assert whole.json()["choices"][0]["message"]["content"] == PAIRED_AFTER[action]
    for cuts in _every_cut(PAIRED):
        content, _ = _streamed(gw, upstream, PAIRED, cuts)
        assert content == PAIRED_AFTER[action], (cuts, content)


def test_the_organisation_glossary_file_applies_beside_the_pack(rig: tuple[str, Any],
                                                                 upstream: RunningUpstream) -> None:
    action, gw = rig
    if action != "annotate":
        pytest.skip("one gateway is enough")
    whole = _ask(gw, upstream, "안행부 발표에 따르면 행자부는 옛 이름이다.")
    assert whole.json()["choices"][0]["message"]["content"] == "행정안전부 발표에 따르면 행정안전부는 옛 이름이다."
    assert whole.headers["x-nuri-terminology"] == "ministry-name=rewrite"


def test_a_flag_leaves_the_reply_and_is_counted_and_audited(rig: tuple[str, Any], upstream: RunningUpstream) -> None:
    action, gw = rig
    if action != "flag":
        pytest.skip("the flag gateway")
    resp = _ask(gw, upstream, TEXTS["en"])
    assert resp.json()["choices"][0]["message"]["content"] == TEXTS["en"]
    request_id = resp.headers["x-nuri-request-id"]
    metrics = httpx.get(gw.root_url + "/metrics", timeout=10).text
    assert 'nuri_reply_terms_total{action="flag",deployment="kr",term="east-sea"}' in metrics
    assert 'nuri_replies_flagged_total{check="terminology",deployment="kr"}' in metrics
    out = subprocess.run([sys.executable, "-m", "nuri", "audit", "export", "--format", "jsonl", "--data-dir",
                          str(gw.data_dir)], capture_output=True, text=True, timeout=60, env=gw.env)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    mine = [r for r in records if r.get("request_id") == request_id]
    assert mine, out.stderr
    detail = mine[-1]["detail"]
    detail = json.loads(detail) if isinstance(detail, str) else detail
    assert detail["reply"]["terms"] == {"flag": {"dokdo": 1, "east-sea": 1}}
    assert "Takeshima" not in json.dumps(mine)            # names of rules, never reply text


def test_a_glossary_that_does_not_validate_stops_start_up(tmp_path: Path, upstream: RunningUpstream) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"pack": "bad", "terms": [{"id": "x", "preferred": {"ko": "동해"},
                                                             "contested": {"ko": ["일본해"]}, "action": "erase"}]}))
    out = subprocess.run([sys.executable, "-m", "nuri", "config", "check", "--config", str(_config_file(
        tmp_path, upstream, bad))], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "term 'x'" in out.stdout + out.stderr and "action" in out.stdout + out.stderr


def _config_file(tmp_path: Path, upstream: RunningUpstream, glossary: Path) -> Path:
    path = tmp_path / "nuri.yaml"
    path.write_text(yaml.safe_dump({"deployments": [upstream_deployment(upstream, "kr", jurisdiction="KR")],
                                    "policy": {"packs": ["kr-terminology"], "files": [str(glossary)]}}))
    return path


def test_the_eval_harness_reads_the_same_terms() -> None:
    """The naming scorer's `terms:` and the leaderboard's rates come from the pack the gateway
    applies, so a reply the gateway would annotate is the reply the leaderboard counts."""
    import asyncio

    from nuri.evals.leaderboard import reply_rates
    from nuri.evals.scorers.naming import NamingScorer

    scorer = NamingScorer()
    ctx: Any = None
    bad = asyncio.run(scorer.score({"terms": ["east-sea"]}, "It is the Sea of Japan.", ctx))
    paired = asyncio.run(scorer.score({"terms": ["east-sea"]}, "It is the East Sea (Sea of Japan).", ctx))
    assert bad.value == 0.0 and bad.details["contested"] == {"east-sea": 1}
    assert paired.value == 1.0 and paired.details["contested"] == {}
    rows = [{"prompt": "울릉도가 있는 바다는?", "reply": "It is called the Sea of Japan."},
            {"prompt": "울릉도가 있는 바다는?", "reply": "울릉도는 동해에 있는 섬입니다."},
            {"prompt": "Which sea is Ulleungdo in?", "reply": "Ulleungdo lies in the East Sea."},
            {"prompt": "울릉도가 있는 바다를 영어로 답하세요.", "reply": "Ulleungdo lies in the East Sea."}]
    term_rate, language_miss_rate = reply_rates(rows)
    assert term_rate == 0.25            # the first reply only
    assert language_miss_rate == 0.25   # the first again: the fourth was asked for in English
