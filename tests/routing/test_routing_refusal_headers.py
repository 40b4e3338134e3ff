"""A refusal through a running gateway: the router only says "nothing eligible"; the gateway
names the action and the rules in its x-nuri-* headers, as it does for a served request."""

from __future__ import annotations

import httpx

from support.processes import upstream_deployment

RRN = "900101-1234568"


def _chat(base_url: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": f"주민등록번호 {RRN} 확인해 주세요"}]}
    return httpx.post(base_url + "/chat/completions", json=body, timeout=30)


def test_a_refused_request_carries_block_and_its_rules_and_goes_nowhere(gateway, upstream):
    gw = gateway({
        "deployments": [upstream_deployment(upstream, "us", jurisdiction="US", hosting="foreign_cloud")],
        "policy": {"packs": ["kr-pipa"]},
        "ledger": {"enabled": False},
    })
    refused = _chat(gw.base_url, "us")
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_denied"
    assert refused.headers["x-nuri-action"] == "block"
    assert refused.headers["x-nuri-policy"] == "pipa-unique-id-domestic"
    assert "x-nuri-deployment" not in refused.headers
    assert upstream.received_bodies() == []


def test_policy_off_routes_the_same_request_with_no_rules(gateway, upstream):
    gw = gateway({
        "deployments": [upstream_deployment(upstream, "us", jurisdiction="US", hosting="foreign_cloud")],
        "policy": {"enabled": False},
        "ledger": {"enabled": False},
    })
    served = _chat(gw.base_url, "us")
    assert served.status_code == 200
    assert served.headers["x-nuri-action"] == "allow" and served.headers["x-nuri-policy"] == "none"
    assert served.headers["x-nuri-deployment"] == "us"
    assert len(upstream.received_bodies()) == 1
