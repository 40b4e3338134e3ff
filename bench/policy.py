"""Policy cost: classification + decision time, and the gateway's added latency with policy on vs off.

In-process (one core): for 1 KB and 32 KB Korean prompts carrying personal data, p50/p99 of
  classify (the real Scanner), decide (all five shipped packs), plan (router), and the whole
  `Evaluator.evaluate` (parse and walk included) the gateway calls.
Gateway (same run, same upstream): `nuri serve` with policy on and with policy off in front of a
  fast local upstream, 1 client, sequential; added latency is measured against calling the
  upstream directly.

    .venv/bin/python bench/policy.py [--quick] [--no-gateway]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    chat_body,
    closed_loop,
    gateway_process,
    make_sender,
    pin_self,
    upstream_process,
    write_result,
)
from nuri.config import NuriConfig
from nuri.gateway.evaluator import Evaluator
from nuri.gateway.request import parse_request
from nuri.policy.engine import PolicyEngine
from nuri.principal import Principal
from nuri.privacy.classify import classify_request
from nuri.privacy.pseudonymizer import Pseudonymizer
from nuri.privacy.scanner import Scanner
from nuri.routing.health import HealthBook
from nuri.routing.router import Router

console = Console()
PACKS = ["kr-pipa", "kr-public-n2sf", "kr-finance", "kr-health", "ai-basic-act"]
DEPLOYMENTS = [
    {"id": "kr-local", "provider": "llamacpp", "jurisdiction": "KR", "hosting": "on_prem"},
    {"id": "kr-cloud", "provider": "llamacpp", "jurisdiction": "KR", "hosting": "domestic_cloud",
     "certifications": ["CSAP-high"]},
    {"id": "us-api", "provider": "llamacpp", "jurisdiction": "US", "hosting": "foreign_cloud",
     "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}},
]
PARAGRAPH = (
    "안녕하세요, 김서연 고객님. 지난주 접수하신 카드 분실 신고 건으로 연락드립니다. 등록된 연락처 010-3456-7890 으로 "
    "본인 확인 문자를 보내 드렸으며, 이메일 seoyeon.kim@example.co.kr 로도 안내문을 발송했습니다. 새 카드는 "
    "서울특별시 마포구 월드컵북로 396 주소로 배송될 예정입니다. 배송 일정이나 교환, 반품 절차가 궁금하시면 고객센터로 "
    "문의해 주시기 바랍니다. 항상 저희 서비스를 이용해 주셔서 감사합니다. "
)


def prompt(kilobytes: int) -> str:
    """A Korean customer-service text of the given UTF-8 size, with a name, phone, email, address."""
    target = kilobytes * 1024
    text = ""
    while len(text.encode()) < target:
        text += PARAGRAPH
    return text.encode()[:target].decode(errors="ignore")


def timed(fn: Any, n: int) -> dict[str, float]:
    for _ in range(min(50, n)):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return {
        "p50_ms": round(samples[len(samples) // 2] * 1000, 4),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 4),
        "mean_ms": round(statistics.fmean(samples) * 1000, 4),
        "n": n,
    }


def in_process(quick: bool) -> dict[str, Any]:
    config = NuriConfig.model_validate({"deployments": DEPLOYMENTS, "aliases": {"default": ["us-api", "kr-cloud",
                                                                                             "kr-local"]},
                                        "policy": {"packs": PACKS}})
    scanner = Scanner(config.privacy)
    engine = PolicyEngine.load(config.policy, config.deployments)
    router = Router(config.routing, HealthBook(config.routing))
    evaluator = Evaluator(config, scanner, engine, router)
    candidates = [config.deployment(i) for i in config.aliases["default"]]
    deployments = {d.id: d for d in candidates}
    principal = Principal(team="bench")
    out: dict[str, Any] = {"packs": PACKS, "rules": len(engine.rules)}
    for kb, n in ((1, 300 if quick else 2000), (32, 30 if quick else 200)):
        body = {"model": "default", "messages": [{"role": "user", "content": prompt(kb)}]}
        classification = classify_request(body, "chat", scanner)
        decision = engine.decide(classification, principal, "default", candidates, endpoint="chat")
        row = {
            "entities": classification.counts(),
            "action": decision.action,
            "classify": timed(lambda b=body: classify_request(b, "chat", scanner), n),
            "decide": timed(lambda c=classification: engine.decide(c, principal, "default", candidates,
                                                                   endpoint="chat"), n * 5),
            "plan": timed(lambda d=decision: router.plan(d, deployments, 300), n * 5),
            "evaluate_request": timed(lambda b=body: evaluator.evaluate(parse_request(b, "chat"), principal,
                                                                        candidates), n),
        }
        row["decide"]["p50_us"] = round(row["decide"]["p50_ms"] * 1000, 1)
        # For context: the transform step the foreign route needs (not policy, but policy causes it).
        masks = set(decision.eligible[0].mask_types) if decision.eligible else set()
        if masks:
            row["pseudonymize_for_first_step"] = timed(
                lambda b=body, m=masks: Pseudonymizer(config.privacy).mask_request(b, "chat", scanner, m), n)
        out[f"{kb}KB"] = row
    return out


async def _latency(url: str, body: bytes, n: int) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        send = make_sender(session, url + "/chat/completions", body)
        for _ in range(20):
            await send()
        return await closed_loop(send, 1, n)


def gateway_level(quick: bool) -> dict[str, Any]:
    n = 150 if quick else 600
    body = chat_body(prompt(1))
    result: dict[str, Any] = {"requests_each": n, "prompt_kb": 1}
    with upstream_process(cpu=1) as upstream:
        def config(enabled: bool) -> dict[str, Any]:
            return {
                "deployments": [
                    {"id": "kr", "provider": "openai_compatible", "base_url": upstream, "model": "m",
                     "jurisdiction": "KR", "hosting": "on_prem"},
                    {"id": "us", "provider": "openai_compatible", "base_url": upstream, "model": "m",
                     "jurisdiction": "US", "hosting": "foreign_cloud"},
                ],
                "aliases": {"default": ["us", "kr"]},
                "policy": {"enabled": enabled, "packs": PACKS},
                "ledger": {"enabled": False},
            }

        result["direct"] = asyncio.run(_latency(upstream, body, n))
        for name, enabled in (("policy_on", True), ("policy_off", False)):
            with gateway_process(config(enabled), cpu=0) as gw:
                result[name] = asyncio.run(_latency(gw, body, n))
    direct = result["direct"]
    for name in ("policy_on", "policy_off"):
        lat = result[name]
        lat["added_p50_ms"] = round(lat["p50"] - direct["p50"], 3)
        lat["added_p99_ms"] = round(lat["p99"] - direct["p99"], 3)
    result["policy_cost_p50_ms"] = round(result["policy_on"]["p50"] - result["policy_off"]["p50"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--no-gateway", action="store_true", help="skip the gateway-level comparison")
    args = parser.parse_args()

    pin_self(0)
    data: dict[str, Any] = {"in_process": in_process(args.quick)}
    pin_self(None)
    table = Table(title="policy: in-process, one core (ms)")
    for col in ("prompt", "step", "p50", "p99"):
        table.add_column(col)
    for kb in ("1KB", "32KB"):
        for step in ("classify", "decide", "plan", "evaluate_request"):
            r = data["in_process"][kb][step]
            table.add_row(kb, step, f"{r['p50_ms']:.4f}", f"{r['p99_ms']:.4f}")
    console.print(table)
    if not args.no_gateway:
        try:
            data["gateway"] = gateway_level(args.quick)
        except Exception as exc:  # the in-process figures are still worth keeping
            data["gateway"] = {"error": f"{type(exc).__name__}: {exc}"}
        g = data["gateway"]
        if "error" not in g:
            console.print(
                f"gateway added latency p50/p99 ms: policy on {g['policy_on']['added_p50_ms']}/"
                f"{g['policy_on']['added_p99_ms']}, off {g['policy_off']['added_p50_ms']}/"
                f"{g['policy_off']['added_p99_ms']}; policy cost p50 {g['policy_cost_p50_ms']} ms"
            )
        else:
            console.print(f"[red]gateway part failed: {g['error']}[/]")
    path = write_result("policy", data)
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
