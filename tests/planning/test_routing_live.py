"""The routing file `nuri plan audit` writes, loaded by a real `nuri serve`, routes live requests as planned.

Three recording upstreams stand for a sovereign on-prem model, a cheaper global one and a cheap
research model under a non-commercial licence; the real OpenAI SDK calls the gateway.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openai import OpenAI
from planning_helpers import rows

from support.processes import upstream_deployment
from support.upstream_server import RunningUpstream, UpstreamState

INVENTORY = {"workloads": [
    {"name": "helpdesk", "owner": "it", "suites": {"qa": 0.7},
     "monthly": {"requests": 1000, "input_tokens": 10_000_000, "output_tokens": 2_000_000}},
    {"name": "petitions", "owner": "civil", "data_categories": ["personal"], "suites": {"qa": 0.7},
     "procurement": {"require": ["in_country_hosting"]},
     "monthly": {"requests": 1000, "input_tokens": 10_000_000, "output_tokens": 2_000_000}},
]}


@pytest.fixture
def upstreams() -> Iterator[dict[str, RunningUpstream]]:
    servers = {name: RunningUpstream(UpstreamState(reply=f"answer from {name}")).start()
               for name in ("kr-sov", "us-glob", "kr-research")}
    yield servers
    for server in servers.values():
        server.stop()


def _catalog(upstreams: dict[str, RunningUpstream]) -> dict[str, Any]:
    return {
        "deployments": [
            upstream_deployment(upstreams["kr-sov"], "kr-sov", jurisdiction="KR", hosting="on_prem",
                                license="Apache-2.0", price={"input_per_mtok": 1.0, "output_per_mtok": 4.0}),
            upstream_deployment(upstreams["us-glob"], "us-glob", license="proprietary",
                                price={"input_per_mtok": 0.2, "output_per_mtok": 0.8}),
            upstream_deployment(upstreams["kr-research"], "kr-research", jurisdiction="KR", hosting="on_prem",
                                license="CC BY-NC 4.0", commercial_use=False,
                                price={"input_per_mtok": 0.01, "output_per_mtok": 0.01}),
        ],
        "policy": {"packs": ["kr-pipa"]},
        "ledger": {"enabled": False},
    }


def _plan(tmp_path: Path, upstreams: dict[str, RunningUpstream]) -> tuple[Path, Path]:
    (tmp_path / "nuri.yaml").write_text(yaml.safe_dump(_catalog(upstreams)), encoding="utf-8")
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(INVENTORY, allow_unicode=True), encoding="utf-8")
    results = rows("kr-sov", "qa", 45) + rows("us-glob", "qa", 45) + rows("kr-research", "qa", 48)
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "nuri", "plan", "audit", "inventory.yaml", "-o", "plan",
                           "-c", "nuri.yaml", "--results", "results.jsonl", "--no-store"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return tmp_path / "inventory.yaml", tmp_path / "plan" / "routes.yaml"


def test_routing_file_routes_live_requests_as_planned(tmp_path: Path, gateway: Any,
                                                      upstreams: dict[str, RunningUpstream]) -> None:
    inventory, routes = _plan(tmp_path, upstreams)
    plan = yaml.safe_load(routes.read_text(encoding="utf-8"))["workloads"]
    assert plan["helpdesk"]["candidates"] == ["us-glob", "kr-sov"]
    assert plan["petitions"]["candidates"] == ["kr-sov"]
    assert "does not allow commercial use" in plan["helpdesk"]["excluded"]["kr-research"]
    assert plan["petitions"]["excluded"]["us-glob"].startswith("procurement: required criterion in_country_hosting")

    config = _catalog(upstreams) | {"workloads": {"inventory": str(inventory), "routes": str(routes)},
                                    "routing": {"strategy": "eval", "retries": 2, "backoff_seconds": 0}}
    gw = gateway(config)
    client = OpenAI(base_url=gw.base_url, api_key="nuri-open", max_retries=0)

    def ask(model: str, text: str) -> tuple[str, str]:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": text}])
        return raw.headers["x-nuri-deployment"], raw.parse().choices[0].message.content or ""

    assert ask("workload:helpdesk", "프린터 연결 방법을 알려주세요") == ("us-glob", "answer from us-glob")
    assert ask("workload:petitions", "민원 답변 초안을 써 주세요") == ("kr-sov", "answer from kr-sov")
    # policy still decides per request: a phone number goes abroad only masked
    deployment, _ = ask("workload:helpdesk", "제 번호 010-2345-6789 로 연락 주세요")
    assert deployment == "us-glob"
    assert "010-2345-6789" not in upstreams["us-glob"].received_bodies()[-1]
    # the planned fallback: the global upstream fails, the sovereign one serves; never the excluded one
    upstreams["us-glob"].state.script = [{"fault": "status", "status": 500}] * 3
    assert ask("workload:helpdesk", "VPN 접속이 안 됩니다")[0] == "kr-sov"
    assert upstreams["kr-research"].received_bodies() == []
    models = {m.id for m in client.models.list().data}
    assert {"workload:helpdesk", "workload:petitions"} <= models


def test_header_membership_and_explain_show_the_plan(tmp_path: Path, gateway: Any,
                                                     upstreams: dict[str, RunningUpstream]) -> None:
    inventory, routes = _plan(tmp_path, upstreams)
    config = _catalog(upstreams) | {"workloads": {"inventory": str(inventory), "routes": str(routes)},
                                    "routing": {"strategy": "eval"}}
    gw = gateway(config)
    client = OpenAI(base_url=gw.base_url, api_key="nuri-open", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "민원 답변 초안"}],
        extra_headers={"x-nuri-workload": "petitions"})
    assert raw.headers["x-nuri-deployment"] == "kr-sov"
    import httpx

    view = httpx.post(gw.root_url + "/v1/nuri/explain", headers={"x-nuri-workload": "helpdesk"},
                      json={"model": "default", "messages": [{"role": "user", "content": "프린터"}]}).json()
    rows_by_id = {d["id"]: d for d in view["deployments"]}
    assert "does not allow commercial use" in rows_by_id["kr-research"]["reason"]
    assert view["route"][0]["deployment"] == "us-glob" and view["ranking"][0]["why"].startswith("first")


def test_a_keys_default_workload_routes_its_requests_by_the_plan(tmp_path: Path, gateway: Any,
                                                                upstreams: dict[str, RunningUpstream]) -> None:
    """A key made with `--workload petitions` is routed by that plan when its requests ask for the
    default model; naming a model outright is still the client's choice."""
    from support.processes import create_key

    inventory, routes = _plan(tmp_path, upstreams)
    config = _catalog(upstreams) | {"workloads": {"inventory": str(inventory), "routes": str(routes)},
                                    "aliases": {"default": ["us-glob", "kr-sov"]}, "ledger": {"enabled": True}}
    gw = gateway(config, data_dir=tmp_path / "data")
    petitions = create_key(tmp_path / "data", "civil", "--workload", "petitions")
    plain = create_key(tmp_path / "data", "civil")

    def deployment(key: str, model: str) -> str:
        client = OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "민원 답변 초안을 써 주세요"}])
        return raw.headers["x-nuri-deployment"]

    assert deployment(petitions, "default") == "kr-sov"            # the petitions plan: in-country only
    assert deployment(plain, "default") == "us-glob"               # the catalog's default alias
    assert deployment(petitions, "us-glob") == "us-glob"           # a model named outright
