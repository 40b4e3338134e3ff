"""The admin routes the console reads, against a real `nuri serve`, without a browser: a read is
never behind the requests already answered (it catches the audit index up first), and the
OpenAPI document describes these routes like the rest of the admin API."""

from __future__ import annotations

from typing import Any

import httpx
from openai import OpenAI

from support.processes import create_key, upstream_deployment
from support.upstream_server import RunningUpstream

ADMIN = "stats-admin-secret"
PROMPT = "제 전화번호는 010-2345-6789 입니다."


def _admin(gw: Any, path: str, **params: Any) -> httpx.Response:
    return httpx.get(gw.root_url + "/v1/nuri/admin" + path, params=params, timeout=30,
                     headers={"Authorization": f"Bearer {ADMIN}"})


def test_reads_see_every_answered_request_at_once(gateway: Any, upstream: RunningUpstream) -> None:
    gw = gateway({"deployments": [upstream_deployment(upstream, "us"),
                                  upstream_deployment(upstream, "kr", jurisdiction="KR", hosting="domestic_cloud")],
                  "policy": {"packs": ["kr-pipa"]}}, env={"NURI_ADMIN_KEY": ADMIN})
    key = create_key(gw.data_dir, "research")
    client = OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)
    before = _admin(gw, "/stats/overview").json()
    for _ in range(3):
        client.chat.completions.create(model="us", messages=[{"role": "user", "content": PROMPT}])
    client.chat.completions.create(model="kr", messages=[{"role": "user", "content": "안녕하세요"}])

    # straight after the answers, well inside the background indexer's interval
    overview = _admin(gw, "/stats/overview").json()
    assert overview["requests"] == before["requests"] + 4 and overview["unindexed"] == 0
    assert overview["pseudonymized"] == before["pseudonymized"] + 3 and overview["in_country"] >= 1
    found = _admin(gw, "/audit/records", team="research", action="pseudonymize").json()
    assert len(found["data"]) == 3 and found["unindexed"] == 0
    assert {r["deployment"] for r in found["data"]} == {"us"}
    kr = _admin(gw, "/stats/deployments").json()["deployments"]
    assert {d["id"]: d["samples"] for d in kr} == {"us": 3, "kr": 1}
    spend = _admin(gw, "/stats/spend").json()
    assert sum(k["requests"] for k in spend["keys"] if k["team"] == "research") == 4


def test_openapi_documents_the_console_routes(gateway: Any, upstream: RunningUpstream) -> None:
    gw = gateway({"deployments": [upstream_deployment(upstream, "us")]}, env={"NURI_ADMIN_KEY": ADMIN})
    spec = httpx.get(gw.root_url + "/v1/nuri/openapi.json", timeout=30).json()
    paths = spec["paths"]
    for path, method in (("/whoami", "get"), ("/stats/overview", "get"), ("/stats/spend", "get"),
                         ("/stats/deployments", "get"), ("/audit/records", "get"), ("/explain", "post"),
                         ("/evals/leaderboard", "get"), ("/plan", "get")):
        assert method in paths["/v1/nuri/admin" + path], path
    records = paths["/v1/nuri/admin/audit/records"]["get"]
    assert {"team", "rule", "action", "deployment", "since", "until", "before", "limit"} <= {
        p["name"] for p in records["parameters"]}
    error = records["responses"]["default"]["content"]["application/json"]["schema"]["$ref"]
    assert error.rsplit("/", 1)[1] in spec["components"]["schemas"]
    assert "get" in paths["/v1/nuri/admin/audit/verify"]                     # the rest of the API is still there
    for path, ops in paths.items():                                          # every documented console read answers
        if "get" in ops and "console" in ops["get"]["tags"]:
            assert _admin(gw, path.removeprefix("/v1/nuri/admin")).status_code == 200, path
