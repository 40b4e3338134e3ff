"""End to end: personal data sent through a live gateway appears in none of the ledger's outputs —
the SQLite files, the audit export, /metrics, the JSON logs and the exported trace spans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from support.processes import GatewayProcess, upstream_deployment
from support.upstream_server import RunningUpstream

pytestmark = pytest.mark.slow

RRN = "900101-1234567"
PHONE = "010-9876-5432"
EMAIL = "gildong.hong@example.kr"
KNOWN = [RRN, PHONE, EMAIL, RRN.replace("-", ""), PHONE.replace("-", "")]


class VerboseGateway(GatewayProcess):
    """`nuri serve --log-level info`, so every request writes its JSON log line."""

    def command(self) -> list[str]:
        return [*super().command(), "--log-level", "info"]


def test_no_personal_data_in_anything_emitted(tmp_path: Path) -> None:
    env = {"NURI_AUDIT_HMAC_KEY": "e2e-hmac", "NURI_AUDIT_SIGNING_KEY": "e2e-sign", "NURI_TRACING": "console",
           "NURI_ADMIN_KEY": "e2e-admin-key"}   # with team keys, /metrics needs the admin key even on loopback
    with RunningUpstream() as upstream:
        config = {
            "deployments": [upstream_deployment(upstream, "domestic", jurisdiction="KR", hosting="on_prem")],
            "aliases": {"default": ["domestic"]},
        }
        data = tmp_path / "data"
        key = subprocess.run(
            [sys.executable, "-m", "nuri", "keys", "create", "--team", "pii", "--budget", "5", "--json",
             "--data-dir", str(data)], capture_output=True, text=True, env={**os.environ, **env}, check=True,
        )
        api_key = json.loads(key.stdout)["key"]
        gw = VerboseGateway(tmp_path, config, env=env, data_dir=data).start(timeout=60)
        try:
            client = openai.OpenAI(base_url=gw.base_url, api_key=api_key, max_retries=0)
            prompt = f"제 주민등록번호는 {RRN}이고 전화번호는 {PHONE}, 이메일은 {EMAIL} 입니다. 확인 부탁드립니다."
            client.chat.completions.create(model="default", messages=[{"role": "user", "content": prompt}])
            stream = client.chat.completions.create(model="default", stream=True,
                                                    messages=[{"role": "user", "content": prompt}])
            for _ in stream:
                pass
            metrics_text = httpx.get(gw.root_url + "/metrics", timeout=5,
                                     headers={"Authorization": "Bearer e2e-admin-key"}).text
        finally:
            gw.stop()
    export = subprocess.run([sys.executable, "-m", "nuri", "audit", "export", "--data-dir", str(data)],
                            capture_output=True, text=True, env={**os.environ, **env}, check=True).stdout
    records = [json.loads(line) for line in export.splitlines()]
    requests = [r for r in records if r["kind"] == "request"]
    assert len(requests) == 2 and all(r["status"] == 200 for r in requests)
    assert any(r["classification"] for r in requests), "the classification summary should be recorded"
    verify = subprocess.run([sys.executable, "-m", "nuri", "audit", "verify", "--data-dir", str(data)],
                            capture_output=True, text=True, env={**os.environ, **env})
    assert verify.returncode == 0, verify.stdout
    assert "gen_ai_client_token_usage" in metrics_text
    log_text = gw.log_path.read_text(errors="replace")
    assert '"name": "nuri.upstream' in log_text, "spans should be exported"
    assert '"request_id": "req_' in log_text, "JSON request logs should be written"

    blobs = {"export": export, "metrics": metrics_text, "gateway log (JSON lines, spans)": gw.log()}
    blobs["gateway log (JSON lines, spans)"] = gw.log_path.read_text(errors="replace")
    for f in data.iterdir():
        if f.is_file():
            blobs[f.name] = f.read_bytes().decode("utf-8", "replace")
    for where, blob in blobs.items():
        for value in KNOWN:
            assert value not in blob, f"{value!r} found in {where}"
