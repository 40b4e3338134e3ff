"""Money: a KRW-priced and a USD-priced deployment under one budget, on a real `nuri serve`.

Costs reach the audit record, the usage table and the budget converted into the one declared
currency (the list cost stays in the record's detail); the cost strategy compares converted
prices; a priced deployment in a currency without a rate is a config error naming it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from nuri.config import ConfigError, parse_config
from support.processes import create_key, upstream_deployment

RATE = 0.00075                       # USD per KRW
CHAT = {"messages": [{"role": "user", "content": "오늘 날씨 어때?"}], "max_tokens": 8}


def _catalog(upstream: Any, **routing: Any) -> dict[str, Any]:
    return {
        "deployments": [
            upstream_deployment(upstream, "clova", jurisdiction="KR", hosting="domestic_cloud",
                                price={"input_per_mtok": 2000.0, "output_per_mtok": 8000.0, "currency": "KRW"}),
            upstream_deployment(upstream, "global", jurisdiction="KR", hosting="domestic_cloud",
                                price={"input_per_mtok": 3.0, "output_per_mtok": 12.0, "currency": "USD"}),
        ],
        "aliases": {"default": ["global", "clova"]},
        "money": {"currency": "USD", "rates": {"KRW": RATE}},
        "policy": {"enabled": False},
        "routing": routing,
        "ledger": {"durability": "fsync"},
    }


def _records(gw: Any) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "nuri", "audit", "export", "--kind", "request", "--data-dir",
                          str(gw.data_dir)], capture_output=True, text=True, timeout=60, env=gw.env)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_a_krw_and_a_usd_deployment_share_one_budget_in_usd(upstream: Any, gateway: Any) -> None:
    gw = gateway(_catalog(upstream))
    budget = 0.01
    key = create_key(gw.data_dir, "kr-team", "--budget", str(budget))
    headers = {"Authorization": f"Bearer {key}"}
    spent = 0.0
    for model in ("clova", "global"):
        reply = httpx.post(gw.base_url + "/chat/completions", json={**CHAT, "model": model}, headers=headers, timeout=30)
        assert reply.status_code == 200, reply.text
        usage = reply.json()["usage"]
        if model == "clova":
            spent += (usage["prompt_tokens"] * 2000.0 + usage["completion_tokens"] * 8000.0) / 1e6 * RATE
        else:
            spent += (usage["prompt_tokens"] * 3.0 + usage["completion_tokens"] * 12.0) / 1e6
    records = {r["deployment"]: r for r in _records(gw)}
    clova, usd = records["clova"], records["global"]
    assert clova["currency"] == usd["currency"] == "USD"
    assert clova["detail"]["list_currency"] == "KRW"
    assert clova["cost"] == pytest.approx(clova["detail"]["list_cost"] * RATE, rel=1e-6)
    assert "list_cost" not in usd["detail"]
    assert clova["cost"] + usd["cost"] == pytest.approx(spent, rel=1e-6)

    # 0.01 USD holds both; a won counted as a dollar would have spent it on the first request
    again = httpx.post(gw.base_url + "/chat/completions", json={**CHAT, "model": "clova"}, headers=headers, timeout=30)
    assert again.status_code == 200, again.text
    spent += sum(r["cost"] for r in _records(gw) if r["request_id"] == again.headers["x-nuri-request-id"])
    # a budget just above what was spent, in USD, refuses the next request's reservation
    subprocess.run([sys.executable, "-m", "nuri", "teams", "set", "kr-team", "--budget", f"{spent + 1e-6:.9f}",
                    "--data-dir", str(gw.data_dir)], check=True, capture_output=True, timeout=60, env=gw.env)
    refused = httpx.post(gw.base_url + "/chat/completions", json={**CHAT, "model": "global"}, headers=headers,
                         timeout=30)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded", refused.text
    usage = subprocess.run([sys.executable, "-m", "nuri", "usage", "--by", "deployment", "--format", "json",
                            "--data-dir", str(gw.data_dir)], capture_output=True, text=True, timeout=60, env=gw.env)
    by_dep = {r["deployment"]: r for r in json.loads(usage.stdout)}
    clova_total = sum(r["cost"] for r in _records(gw) if r["deployment"] == "clova")
    assert by_dep["clova"]["cost"] == pytest.approx(clova_total, rel=1e-6) and by_dep["clova"]["currency"] == "USD"


def test_the_cost_strategy_compares_converted_prices(upstream: Any, gateway: Any) -> None:
    # 2000 KRW is a larger number than 3 USD but, at 0.00075, the cheaper price
    gw = gateway(_catalog(upstream, strategy="cost"))
    reply = httpx.post(gw.base_url + "/chat/completions", json={**CHAT, "model": "default"}, timeout=30)
    assert reply.status_code == 200 and reply.headers["x-nuri-deployment"] == "clova"


def test_mixing_currencies_without_a_rate_is_a_config_error_naming_the_deployment() -> None:
    text = """
deployments:
  - {id: usd-model, provider: openai_compatible, base_url: "http://127.0.0.1:9", jurisdiction: US,
     hosting: foreign_cloud, price: {input_per_mtok: 1}}
  - {id: clova-x, provider: openai_compatible, base_url: "http://127.0.0.1:9", jurisdiction: KR,
     hosting: domestic_cloud, price: {input_per_mtok: 1500, currency: KRW}}
"""
    with pytest.raises(ConfigError, match="clova-x"):
        parse_config(text)
    with pytest.raises(ConfigError, match="clova-x.*no KRW rate"):
        parse_config(text + "money: {currency: USD}\n")
    config = parse_config(text + "money: {currency: KRW, rates: {USD: 1400}}\n")
    assert [round(d.price.converted(1_000_000, 0), 6) for d in config.deployments] == [1400.0, 1500.0]
    free = parse_config(text.replace("price: {input_per_mtok: 1}", "price: {currency: EUR}")
                        + "money: {currency: KRW}\n")   # a free deployment needs no rate
    assert free.money.currency == "KRW"
