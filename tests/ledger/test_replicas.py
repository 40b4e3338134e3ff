"""End to end: two `nuri serve` replicas sharing PostgreSQL and Redis, driven with the real
`openai` SDK against an upstream test server on 127.0.0.1.

- a team's RPM limit and budget hold across both replicas (no more than the limit admitted);
- every acknowledged request has exactly one audit record, and `nuri audit verify` passes;
- crash: kill -9 one replica under load, restart it: the chain verifies and no acknowledged
  request is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from nuri.config import LedgerSettings
from nuri.ledger import Ledger
from support.processes import GatewayProcess
from support.upstream_server import free_port

from .conftest import PG_URL, REDIS_URL

SUPPORT = Path(__file__).resolve().parents[1] / "support"

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

ENV = {"NURI_AUDIT_HMAC_KEY": "replica-test-hmac", "NURI_AUDIT_SIGNING_KEY": "replica-test-signing"}
PROMPT = "안녕하세요, 배송 일정을 알려 주세요."
MAX_TOKENS = 8


@pytest.fixture
def upstream_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SUPPORT / "upstream_server.py"), "--port", str(port),
                             "--no-record"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            proc.poll()
            if proc.returncode is not None:
                pytest.fail("upstream test server did not start")
            import time

            time.sleep(0.1)
        yield url + "/v1"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def shared(pg: str, rprefix: str, upstream_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The config both replicas run with: one catalog, one PostgreSQL schema, one Redis prefix,
    and the same audit keys in every process that writes the chain (this one included)."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return {
        "deployments": [{"id": "up", "provider": "openai_compatible", "model": "m", "base_url": upstream_url,
                         "jurisdiction": "KR", "hosting": "domestic_cloud", "max_concurrency": 256,
                         "price": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}}],
        "aliases": {"default": ["up"]},
        "policy": {"enabled": False},
        "ledger": {"database_url": PG_URL, "db_schema": pg, "redis_url": REDIS_URL, "redis_prefix": rprefix},
    }


def settings_of(config: dict[str, Any]) -> LedgerSettings:
    return LedgerSettings(**config["ledger"])


async def make_key(config: dict[str, Any], data_dir: Path, team: str, **limits: Any) -> str:
    led = await Ledger.open(settings_of(config), data_dir)
    try:
        return (await led.create_key(team, **limits)).key
    finally:
        await led.close()


def start(tmp_path: Path, config: dict[str, Any], name: str, port: int | None = None) -> GatewayProcess:
    workdir = tmp_path / name
    workdir.mkdir(exist_ok=True)
    return GatewayProcess(workdir, config, env=ENV, port=port).start(timeout=60)


async def call(client: openai.AsyncOpenAI) -> tuple[int, str | None, float]:
    """(status, x-nuri-request-id, cost) of one chat completion; status 0: connection lost."""
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="default", messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS)
    except openai.APIStatusError as exc:
        return exc.status_code, exc.response.headers.get("x-nuri-request-id"), 0.0
    except openai.APIConnectionError:
        return 0, None, 0.0
    reply = raw.parse()
    usage = reply.usage
    cost = (usage.prompt_tokens * 1000.0 + usage.completion_tokens * 2000.0) / 1e6 if usage else 0.0
    return raw.status_code, raw.headers.get("x-nuri-request-id"), cost


async def load(urls: list[str], key: str, total: int, concurrency: int) -> list[tuple[int, str | None, float]]:
    clients = [openai.AsyncOpenAI(base_url=u, api_key=key, max_retries=0, timeout=30) for u in urls]
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> tuple[int, str | None, float]:
        async with sem:
            return await call(clients[i % len(clients)])

    try:
        return list(await asyncio.gather(*[one(i) for i in range(total)]))
    finally:
        for c in clients:
            await c.close()


async def audit_records(config: dict[str, Any], data_dir: Path) -> list[dict[str, Any]]:
    led = await Ledger.open(settings_of(config), data_dir)
    try:
        bodies = await led.db.run(lambda c: c.exec_driver_sql(
            "SELECT body FROM audit_log ORDER BY seq").scalars().all())
    finally:
        await led.close()
    return [json.loads(b) for b in bodies]


def cli_verify(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "verify.yaml"
    cfg.write_text(yaml.safe_dump(config))
    import os

    return subprocess.run([sys.executable, "-m", "nuri", "audit", "verify", "--config", str(cfg),
                           "--data-dir", str(tmp_path / "cli")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **ENV})


async def test_limits_hold_across_two_replicas(shared: dict[str, Any], tmp_path: Path) -> None:
    rpm_key = await make_key(shared, tmp_path / "cli", "rpm-team", team_rpm=40)
    a, b = start(tmp_path, shared, "a"), start(tmp_path, shared, "b")
    try:
        results = await load([a.base_url, b.base_url], rpm_key, total=120, concurrency=24)
        ok = [r for r in results if r[0] == 200]
        limited = [r for r in results if r[0] == 429]
        assert len(ok) == 40 and len(limited) == 80, [r[0] for r in results]

        # budget: each call costs the same; the budget fits exactly 10 of them
        probe_key = await make_key(shared, tmp_path / "cli", "probe")
        _, _, unit = await call(openai.AsyncOpenAI(base_url=a.base_url, api_key=probe_key, max_retries=0))
        assert unit > 0
        budget_key = await make_key(shared, tmp_path / "cli", "spend-team", budget=round(unit * 10.5, 9))
        spent = await load([a.base_url, b.base_url], budget_key, total=40, concurrency=8)
        paid = [r for r in spent if r[0] == 200]
        assert all(r[0] in (200, 429) for r in spent)
        assert sum(r[2] for r in paid) <= unit * 10.5 + 1e-9, f"{len(paid)} admitted, budget fits 10"
        assert 1 <= len(paid) <= 10
    finally:
        a.stop()      # a stopping replica ships what its audit spool still holds
        b.stop()
    # every acknowledged request (2xx and 4xx alike) has exactly one audit record
    records = await audit_records(shared, tmp_path / "cli")
    ids = [r["request_id"] for r in records if r["kind"] == "request"]
    for status, rid, _ in results + spent:
        assert rid is not None and ids.count(rid) == 1, (status, rid)
    verified = cli_verify(shared, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "OK" in verified.stdout


async def test_leased_quota_never_admits_more_than_the_limit_across_replicas(
        shared: dict[str, Any], tmp_path: Path) -> None:
    """A limit large enough to lease (rpm 1000 × share 0.01 = blocks of up to 10): each replica admits
    from quota Redis already counted for it, so the two together stay within the limit, and what
    one holds unused when the other is refused is at most a block or two."""
    key = await make_key(shared, tmp_path / "cli", "lease-team", team_rpm=1000)
    a, b = start(tmp_path, shared, "a"), start(tmp_path, shared, "b")
    try:
        results = await load([a.base_url, b.base_url], key, total=1300, concurrency=32)
    finally:
        a.stop()
        b.stop()
    ok = sum(1 for r in results if r[0] == 200)
    assert all(r[0] in (200, 429) for r in results)
    assert 980 <= ok <= 1000, ok


@pytest.mark.parametrize("durability", ["process", "fsync"])
async def test_kill_9_under_load_loses_no_acknowledged_request(
        shared: dict[str, Any], tmp_path: Path, durability: str) -> None:
    """fsync: a replica acknowledges once the record is committed; process (default): once it is in the
    replica's local audit spool, and the restarted replica ships what the killed one's spool still held."""
    config = {**shared, "ledger": {**shared["ledger"], "durability": durability}}
    key = await make_key(config, tmp_path / "cli", "crash-team")
    a, b = start(tmp_path, config, "a"), start(tmp_path, config, "b")
    try:
        task = asyncio.create_task(load([a.base_url, b.base_url], key, total=400, concurrency=16))
        await asyncio.sleep(1.0)
        a.kill()
        first = await task
        assert any(r[0] == 0 for r in first) or all(r[0] == 200 for r in first)
        a2 = start(tmp_path, config, "a", port=a.port)
        second = await load([a2.base_url, b.base_url], key, total=60, concurrency=8)
        a2.stop()
    finally:
        a.kill()
        b.stop()
    spools = sorted((tmp_path / "a").rglob("spool-*.jsonl")) + sorted((tmp_path / "b").rglob("spool-*.jsonl"))
    assert spools == [], spools                       # shipped and removed: the killed one's by its restart
    acknowledged = [r[1] for r in first + second if r[0] == 200]
    assert len(acknowledged) > 100
    records = await audit_records(config, tmp_path / "cli")
    ids = [r["request_id"] for r in records if r["kind"] == "request"]
    missing = [rid for rid in acknowledged if rid not in set(ids)]
    assert not missing, f"{len(missing)} acknowledged requests have no audit record"
    assert len(ids) == len(set(ids))
    verified = cli_verify(config, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
