"""`nuri serve --workers 2` on one port and one SQLite file, under load with the real `openai` SDK.

Both workers serve; a team's rate limit and budget hold exactly across them (counters live in the
database, not in a worker's memory); every acknowledged request has exactly one audit record; the
one chain verifies with `nuri audit verify`; a reload through one worker reaches the other.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml

from support.processes import GatewayProcess, create_key, upstream_deployment

PROMPT = "안녕하세요, 배송 일정을 알려 주세요."
PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}
ADMIN = "workers-admin-key"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}


class Workers(GatewayProcess):
    """`nuri serve --workers N`: the supervisor is the process this object starts and stops."""

    def __init__(self, workdir: Path, config: dict[str, Any], workers: int) -> None:
        super().__init__(workdir, config, env={"NURI_ADMIN_KEY": ADMIN})
        self.workers = workers

    def command(self) -> list[str]:
        return [*super().command(), "--workers", str(self.workers)]


async def _call(client: openai.AsyncOpenAI) -> tuple[int, str | None, float]:
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="default", messages=[{"role": "user", "content": PROMPT}], max_tokens=8)
    except openai.APIStatusError as exc:
        return exc.status_code, exc.response.headers.get("x-nuri-request-id"), 0.0
    usage = raw.parse().usage
    cost = (usage.prompt_tokens * PRICE["input_per_mtok"] + usage.completion_tokens * PRICE["output_per_mtok"]) / 1e6
    return raw.status_code, raw.headers.get("x-nuri-request-id"), cost


async def _load(url: str, key: str, total: int, concurrency: int) -> list[tuple[int, str | None, float]]:
    # one client per slot: separate connections, which the kernel spreads over the workers
    clients = [openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=30) for _ in range(concurrency)]
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> tuple[int, str | None, float]:
        async with sem:
            return await _call(clients[i % concurrency])

    try:
        return list(await asyncio.gather(*[one(i) for i in range(total)]))
    finally:
        for c in clients:
            await c.close()


def _cli(gw: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nuri", *args, "--data-dir", str(gw.data_dir)],
                          capture_output=True, text=True, timeout=120, env=gw.env)


async def test_two_workers_keep_limits_exact_and_write_one_verifiable_chain(upstream: Any, tmp_path: Path) -> None:
    config = {"deployments": [upstream_deployment(upstream, "up", jurisdiction="KR", hosting="domestic_cloud",
                                                  price=PRICE, max_concurrency=256)],
              "policy": {"enabled": False}}
    gw = Workers(tmp_path, config, 2)
    rpm_key = create_key(gw.data_dir, "rpm-team", "--team-rpm", "40")
    probe_key = create_key(gw.data_dir, "probe")
    gw.start()
    try:
        results = await _load(gw.base_url, rpm_key, total=120, concurrency=24)
        assert sorted(r[0] for r in results).count(200) == 40, [r[0] for r in results]
        assert all(r[0] in (200, 429) for r in results)

        _, _, unit = await _call(openai.AsyncOpenAI(base_url=gw.base_url, api_key=probe_key, max_retries=0))
        budget_key = create_key(gw.data_dir, "spend-team", "--budget", f"{unit * 10.5:.9f}")
        spent = await _load(gw.base_url, budget_key, total=40, concurrency=8)
        paid = [r for r in spent if r[0] == 200]
        assert all(r[0] in (200, 429) for r in spent)
        assert 1 <= len(paid) <= 10 and sum(r[2] for r in paid) <= unit * 10.5 + 1e-9

        # a reload through whichever worker answers reaches both
        gw.config_path.write_text(yaml.safe_dump({**config, "aliases": {"default": ["up"], "extra": ["up"]}}))
        assert httpx.post(gw.base_url + "/nuri/admin/reload", headers=AS_ADMIN, timeout=30).status_code == 200
        deadline, seen = time.monotonic() + 10, set()
        while time.monotonic() < deadline and seen != {2}:
            seen = {httpx.get(gw.root_url + "/v1/nuri/admin/catalog", headers=AS_ADMIN, timeout=10).json()["generation"]
                    for _ in range(8)}
        assert seen == {2}
    finally:
        gw.stop()                      # each worker ships what its audit spool still holds
    assert gw.proc is not None and gw.proc.returncode == 0, gw.log()

    ids = [rid for _, rid, _ in results + spent]
    workers = {rid[4:14] for rid in ids if rid}          # request ids carry their process's prefix
    assert len(workers) == 2, "both workers should have served"
    exported = _cli(gw, "audit", "export", "--kind", "request")
    recorded = [json.loads(line)["request_id"] for line in exported.stdout.splitlines() if line.startswith("{")]
    for rid in ids:
        assert rid is not None and recorded.count(rid) == 1, rid
    verified = _cli(gw, "audit", "verify")
    assert verified.returncode == 0 and "OK" in verified.stdout, verified.stdout + verified.stderr
    assert not list((gw.data_dir / "audit-spool").glob("spool-*.jsonl"))
