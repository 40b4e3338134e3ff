"""Explain is the live decision (DESIGN invariant 4), with policy on and off, on every endpoint.

One real `nuri serve` per policy setting in front of a domestic and a foreign recording upstream;
each body is first explained, then sent live. The live request must go where explain's route
starts, under the rules explain names, masked as explain says; a body explain finds no route for
must be refused live with the same reason, and nothing forwarded.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.processes import upstream_deployment
from support.upstream_server import RunningUpstream

RRN = "900101-1234568"
PHONE = "010-2345-6789"
ENDPOINTS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}


def _body(endpoint: str, text: str, model: str = "default") -> dict[str, Any]:
    if endpoint == "chat":
        return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 16}
    if endpoint == "completions":
        return {"model": model, "prompt": text, "max_tokens": 16}
    return {"model": model, "input": text}


TEXTS = {
    "plain": "다음 주 회의 일정을 정리해 주세요.",
    "phone": f"홍길동 고객님 연락처는 {PHONE} 입니다.",
    "rrn": f"주민등록번호 {RRN} 확인 부탁드립니다.",
}


@pytest.fixture(scope="module")
def upstreams() -> Any:
    with RunningUpstream() as kr, RunningUpstream() as us:
        yield kr, us


def _config(kr: RunningUpstream, us: RunningUpstream, policy_on: bool) -> dict[str, Any]:
    return {
        "deployments": [upstream_deployment(us, "us", jurisdiction="US", hosting="foreign_cloud"),
                        upstream_deployment(kr, "kr", jurisdiction="KR", hosting="domestic_cloud")],
        "aliases": {"default": ["us", "kr"], "foreign": ["us"]},
        "policy": {"enabled": policy_on, "packs": ["kr-pipa", "ai-basic-act"]},
        "ledger": {"enabled": False},
    }


@pytest.mark.parametrize("policy_on", [True, False], ids=["policy-on", "policy-off"])
def test_explain_equals_the_live_decision_on_every_endpoint(gateway, upstreams, policy_on):
    kr, us = upstreams
    gw = gateway(_config(kr, us, policy_on))
    with httpx.Client(timeout=30) as client:
        for endpoint, path in ENDPOINTS.items():
            for name, text in TEXTS.items():
                for model in ("default", "foreign"):
                    body = _body(endpoint, text, model)
                    explained = client.post(gw.base_url + "/nuri/explain", json=body)
                    assert explained.status_code == 200, (endpoint, name, explained.text)
                    view = explained.json()
                    kr.state.requests.clear()
                    us.state.requests.clear()
                    live = client.post(gw.base_url + path, json=body)
                    case = (endpoint, name, model, "policy on" if policy_on else "policy off")
                    if not view["route"]:
                        assert live.status_code == 403, case
                        assert view["error"] and live.json()["error"]["message"] == view["error"], case
                        assert kr.state.requests == [] and us.state.requests == [], case
                        continue
                    assert live.status_code == 200, (case, live.text)
                    first = view["route"][0]
                    assert live.headers["x-nuri-deployment"] == first["deployment"], case
                    assert live.headers["x-nuri-policy"] == (",".join(m["id"] for m in view["matched"]) or "none"), case
                    masked = "pseudonymize" if first["mask_types"] else "allow"
                    assert live.headers["x-nuri-action"] == masked, case
                    sent = (us if first["deployment"] == "us" else kr).state.requests
                    assert len(sent) == 1, case
                    forwarded = str(sent[0]["body"])
                    if first["mask_types"]:
                        assert PHONE not in forwarded, case
                    elif name == "phone":
                        assert PHONE in forwarded, case


def test_policy_off_explain_answers_instead_of_failing(gateway, upstreams):
    """With policy switched off, explain once answered 500 classification_failed while the live
    request routed: now both say "allow, no rules" and name the same first deployment."""
    kr, us = upstreams
    gw = gateway(_config(kr, us, policy_on=False))
    body = _body("chat", TEXTS["rrn"])
    view = httpx.post(gw.base_url + "/nuri/explain", json=body, timeout=30).json()
    assert view["action"] == "allow" and view["matched"] == []
    assert [r["deployment"] for r in view["route"]] == ["us", "kr"]
    assert all(d["reason"] == "policy disabled" for d in view["deployments"])
