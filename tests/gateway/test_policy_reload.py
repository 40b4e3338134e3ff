"""Reloading policy on a live gateway: a broken policy changes nothing; a good one takes effect."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import yaml

from support.processes import upstream_deployment


def test_reload_keeps_old_policy_on_error_and_audits_both(upstream, gateway, tmp_path):
    config = {"deployments": [upstream_deployment(upstream, "home", jurisdiction="KR", hosting="on_prem")],
              "policy": {"packs": ["kr-pipa"]}}
    gw = gateway(config)
    chat = {"model": "default", "messages": [{"role": "user", "content": "오늘 날씨 어때?"}]}
    before = httpx.post(gw.base_url + "/chat/completions", json=chat)
    assert before.status_code == 200 and "x-nuri-ai-generated" not in before.headers

    broken = dict(config, policy={"packs": ["kr-pipa", "no-such-pack"]})
    gw.config_path.write_text(yaml.safe_dump(broken))
    failed = httpx.post(gw.base_url + "/nuri/admin/reload")
    assert failed.status_code == 400 and "no-such-pack" in failed.json()["error"]["message"]
    assert "running config (catalog, aliases, policy, routing) stays" in failed.json()["error"]["message"]
    still = httpx.post(gw.base_url + "/chat/completions", json=chat)
    assert still.status_code == 200 and still.headers["x-nuri-policy"] == before.headers["x-nuri-policy"]

    gw.config_path.write_text(yaml.safe_dump(dict(config, policy={"packs": ["kr-pipa", "ai-basic-act"]})))
    ok = httpx.post(gw.base_url + "/nuri/admin/reload")
    assert ok.status_code == 200 and ok.json()["packs"] == ["kr-pipa", "ai-basic-act"]
    after = httpx.post(gw.base_url + "/chat/completions", json=chat)
    assert after.headers.get("x-nuri-ai-generated") == "true"

    out = subprocess.run([sys.executable, "-m", "nuri", "audit", "export", "--format", "jsonl", "--data-dir",
                          str(gw.data_dir)], capture_output=True, text=True, timeout=60, env=gw.env)
    kinds = [json.loads(line).get("endpoint") for line in out.stdout.splitlines() if line.startswith("{")]
    assert "config_reload_failed" in kinds and "config_reloaded" in kinds
