"""RAG: ingest throughput, query latency on >= 10,000 chunks, memory, and the gateway's added
latency for a RAG request beside a plain one, in the same run.

  - ingest: PDF pages/s (fpdf2-made Korean pages, one section each) and Markdown chunks/s into
    SQLite, classification by the live scanner and Kiwi terms included
  - query: Kiwi-BM25 p50/p99 over the shipped questions on a collection of >= 10,000 chunks; the
    index (re)build time from the store; resident memory before and after
  - gateway: `model: rag:bench` against the same question with `model: default`, through one
    `nuri serve` in front of a local upstream, alternating, latencies pooled per side

    .venv/bin/python bench/rag.py [--chunks 10000] [--pdf-pages 100] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import gateway_process, pct, upstream_process, write_result
from nuri.config import NuriConfig
from nuri.privacy.scanner import Scanner
from nuri.rag.evaluate import load_set
from nuri.rag.ingest import Ingestor
from nuri.rag.service import RagService

FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def corpus(out: Path, chunks: int) -> int:
    """Markdown documents of six sections each, recombined from the shipped set's sentences with
    fresh numbers, until there are `chunks` sections (each a chunk at the default size)."""
    data = load_set()
    sentences = [s.strip() + "." for p in data.pieces for s in p.text.split(".") if len(s.strip()) > 10]
    rng = random.Random(7)
    written = 0
    doc = 0
    while written < chunks:
        lines = [f"# 운영 규정 {doc}"]
        for section in range(6):
            body = " ".join(rng.sample(sentences, 4)).replace("2", str(rng.randint(2, 9)))
            lines += ["", f"## 제{section + 1}조 항목 {doc}-{section}", "", body]
        (out / f"rule-{doc:05d}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        written += 6
        doc += 1
    return written


def pdf(path: Path, pages: int) -> None:
    from fpdf import FPDF

    data = load_set()
    doc = FPDF()
    doc.add_font("noto", fname=str(FONT), collection_font_number=1)
    doc.set_font("noto", size=11)
    for i in range(pages):
        doc.add_page()
        doc.multi_cell(0, 7, data.pieces[i % len(data.pieces)].text)
    doc.output(str(path))


async def ingest_and_query(data_dir: Path, chunks: int, pdf_pages: int) -> dict[str, Any]:
    config = NuriConfig.model_validate({"rag": {"collections": {"bench": {}, "pdf": {}}}})
    before = rss_mb()
    service = RagService.open(config, data_dir)
    ingestor = Ingestor(service.store, Scanner(config.privacy), service.tokenizer, chunk_chars=700)
    service.tokenizer.tokens("준비")                               # Kiwi loaded outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        pdf(Path(tmp) / "pages.pdf", pdf_pages)
        report = await ingestor.ingest([Path(tmp) / "pages.pdf"], "pdf")
        pdf_rate = pdf_pages / report.seconds
        made = corpus(Path(tmp), chunks)
        report = await ingestor.ingest([Path(tmp)], "bench")
        md = report.summary()
    started = time.perf_counter()
    index = await service.index("bench")
    build_s = time.perf_counter() - started
    after_index = rss_mb()
    questions = [item["question"] for item in load_set().items]
    latencies = []
    for _round in range(5):
        for q in questions:
            t = time.perf_counter()
            await service.search("bench", q, 5)
            latencies.append((time.perf_counter() - t) * 1000)
    return {
        "ingest": {"pdf_pages": pdf_pages, "pdf_pages_per_s": round(pdf_rate, 1),
                   "markdown_chunks": md["chunks"], "markdown_files": md["ingested"], "sections_written": made,
                   "markdown_chunks_per_s": round(md["chunks"] / md["seconds"], 1)},
        "query": {"chunks": len(index.chunks), "queries": len(latencies),
                  "p50_ms": round(pct(latencies, 50), 3), "p99_ms": round(pct(latencies, 99), 3),
                  "index_build_s": round(build_s, 2)},
        "memory_mb": {"before": round(before, 1), "after_ingest_and_index": round(after_index, 1),
                      "added": round(after_index - before, 1)},
    }


def gateway_latency(data_dir: Path, requests: int) -> dict[str, Any]:
    question = "국내 출장 일비는 하루에 얼마인가요?"
    with upstream_process(cpu=1) as upstream:
        config = {"deployments": [{"id": "kr", "provider": "openai_compatible", "model": "m", "base_url": upstream,
                                   "jurisdiction": "KR", "hosting": "on_prem"}],
                  "ledger": {"enabled": False}, "rag": {"collections": {"bench": {"model": "default"}}}}
        with gateway_process(config, cpu=0, data_dir=data_dir) as base, httpx.Client(timeout=60) as client:
            bodies = {"plain": {"model": "default", "messages": [{"role": "user", "content": question}], "max_tokens": 16},
                      "rag": {"model": "rag:bench", "messages": [{"role": "user", "content": question}], "max_tokens": 16}}
            for body in bodies.values():                     # warm: the index is built on first use
                client.post(base + "/chat/completions", json=body).raise_for_status()
            times: dict[str, list[float]] = {"plain": [], "rag": []}
            for _ in range(requests):
                for name, body in bodies.items():
                    t = time.perf_counter()
                    client.post(base + "/chat/completions", json=body).raise_for_status()
                    times[name].append((time.perf_counter() - t) * 1000)
    out = {name: {"p50_ms": round(pct(v, 50), 3), "p99_ms": round(pct(v, 99), 3), "mean_ms": round(statistics.mean(v), 3)}
           for name, v in times.items()}
    out["added_p50_ms"] = round(out["rag"]["p50_ms"] - out["plain"]["p50_ms"], 3)
    out["added_p99_ms"] = round(out["rag"]["p99_ms"] - out["plain"]["p99_ms"], 3)
    out["requests_each"] = requests
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--pdf-pages", type=int, default=100)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nuri-rag-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        result = asyncio.run(ingest_and_query(data_dir, args.chunks, args.pdf_pages))
        print(result)
        result["gateway"] = gateway_latency(data_dir, args.requests)
    path = write_result("rag", result)
    print(result["gateway"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
