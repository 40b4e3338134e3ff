"""Evaluation harness: overhead per item and throughput against a fixed-latency upstream.

Same run, same upstream (a subprocess on the other core), same provider:
  - overhead per item: the harness (render, stream, score, store) vs the provider called directly,
    both at concurrency 1 against an upstream with no added latency
  - throughput at concurrency 1, 4, 16 and 32 against an upstream with a fixed latency (50 ms):
    items/s, the ratio to the ideal concurrency / latency, and to the provider called directly
    at the same concurrency. Target: >= 0.9 x ideal up to 32.

    .venv/bin/python bench/evals.py [--latency-ms 50] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import pin_self, upstream_process, write_result
from nuri.config import NuriConfig
from nuri.evals.runner import EvalRunner, RunOptions
from nuri.evals.store import ResultStore
from nuri.evals.suite import Suite, load_suite, write_jsonl
from nuri.providers import create_provider

console = Console()
LEVELS = (1, 4, 16, 32)


def make_suite(root: Path, n: int) -> Suite:
    folder = root / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.yaml").write_text(
        "name: bench\ntemplate: \"다음 질문에 답하세요.\\n\\n{question}\"\nscorer: {name: contains}\n"
        "settings: {max_tokens: 16}\n", encoding="utf-8")
    write_jsonl(folder / "items.jsonl", [{"id": f"b{i:05d}", "question": f"질문 {i}: 대한민국의 수도는 어디인가요?",
                                          "answer": "Nuri"} for i in range(n)])
    return load_suite(folder)


def config(base_url: str) -> NuriConfig:
    return NuriConfig.model_validate({"deployments": [{
        "id": "bench", "provider": "openai_compatible", "base_url": base_url, "model": "m", "jurisdiction": "KR",
        "hosting": "on_prem", "max_concurrency": 64}]})


async def direct(cfg: NuriConfig, suite: Suite, concurrency: int, n: int) -> float:
    """Items/s calling the provider's stream_chat directly with the same bodies, no harness."""
    provider = create_provider(cfg.deployments[0])
    await provider.start()
    bodies = [{"model": "m", "messages": suite.messages(item), "temperature": 0.0, "max_tokens": 16, "seed": 0,
               "stream": True, "stream_options": {"include_usage": True}} for item in suite.items[:n]]
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async for _ in provider.stream_chat(body):
                pass

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    await provider.close()
    return len(bodies) / elapsed


def harness(cfg: NuriConfig, suite: Suite, concurrency: int, n: int, tmp: Path) -> float:
    store = ResultStore(f"sqlite:///{tmp / f'bench-{concurrency}-{n}-{time.monotonic_ns()}.db'}")
    runner = EvalRunner(store, cfg, [suite], ["bench"], RunOptions(limit=n, concurrency=concurrency))
    t0 = time.perf_counter()
    summary = asyncio.run(runner.run())
    elapsed = time.perf_counter() - t0
    store.close()
    assert summary["results"][0]["items"] == n and summary["results"][0]["errors"] == 0
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="fewer items per level")
    parser.add_argument("--repeats", type=int, default=2, help="best of N for each measurement")
    args = parser.parse_args()
    per_level = 8 if args.quick else 40
    pin_self(0)
    result: dict[str, Any] = {"latency_ms": args.latency_ms, "levels": []}
    with tempfile.TemporaryDirectory(prefix="nuri-bench-evals-") as tmp_name:
        tmp = Path(tmp_name)
        suite = make_suite(tmp, max(LEVELS) * per_level)
        with upstream_process(cpu=1, latency_ms=0.0) as url:
            cfg = config(url)
            n = 100 if args.quick else 300
            d = max(asyncio.run(direct(cfg, suite, 1, n)) for _ in range(args.repeats))
            h = max(harness(cfg, suite, 1, n, tmp) for _ in range(args.repeats))
            result["overhead"] = {"items": n, "direct_ms_per_item": round(1000 / d, 3),
                                  "harness_ms_per_item": round(1000 / h, 3),
                                  "overhead_ms_per_item": round(1000 / h - 1000 / d, 3)}
        with upstream_process(cpu=1, latency_ms=args.latency_ms) as url:
            cfg = config(url)
            for c in LEVELS:
                n = max(c * per_level, 100 if not args.quick else 40)
                d = max(asyncio.run(direct(cfg, suite, c, n)) for _ in range(args.repeats))
                h = max(harness(cfg, suite, c, n, tmp) for _ in range(args.repeats))
                ideal = c / (args.latency_ms / 1000)
                result["levels"].append({"concurrency": c, "items": n, "ideal_items_s": round(ideal, 1),
                                         "direct_items_s": round(d, 1), "harness_items_s": round(h, 1),
                                         "ratio_to_ideal": round(h / ideal, 3), "ratio_to_direct": round(h / d, 3)})
    result["target"] = "harness >= 0.9 x ideal throughput up to 32 concurrent requests"
    result["meets_target"] = all(lv["ratio_to_ideal"] >= 0.9 for lv in result["levels"])
    o = result["overhead"]
    console.print(f"overhead per item (no upstream latency, concurrency 1): harness {o['harness_ms_per_item']} ms "
                  f"vs direct {o['direct_ms_per_item']} ms → +{o['overhead_ms_per_item']} ms")
    table = Table("concurrency", "items", "ideal /s", "direct /s", "harness /s", "× ideal", "× direct",
                  title=f"throughput against a {args.latency_ms:g} ms upstream")
    for lv in result["levels"]:
        table.add_row(str(lv["concurrency"]), str(lv["items"]), str(lv["ideal_items_s"]), str(lv["direct_items_s"]),
                      str(lv["harness_items_s"]), f"{lv['ratio_to_ideal']:.3f}", f"{lv['ratio_to_direct']:.3f}")
    console.print(table)
    console.print(f"target met: {result['meets_target']}  (median ratio "
                  f"{statistics.median(lv['ratio_to_ideal'] for lv in result['levels']):.3f})")
    name = "evals" if args.latency_ms == 50 else f"evals_{args.latency_ms:g}ms"   # one file per latency
    console.print(f"wrote {write_result(name, result)}")


if __name__ == "__main__":
    main()
