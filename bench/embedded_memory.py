"""Embedded model memory: `nuri serve`'s resident memory and tokens/s at several context sizes.

The embedded Gemma 3 270M deployment takes its context length from `options.n_ctx` (default
min(context_window, 8192) = 8192). For each size, a `nuri serve` with only that deployment is
measured: RSS once ready (model loaded, nothing generated) and after generation (the
KV cache touched), split into anonymous memory (the KV cache, compute buffers, Python) and file
memory (the GGUF, mapped with mmap: those pages are the page cache's, shared by every worker and
process that maps the file, and can be dropped and re-read under pressure); tokens/s of a 160-token
streamed generation, best and median of a few; PSS (proportional set size) with every size's
server mapping the same GGUF, so its file pages are divided among them. The baseline in the same run is `nuri serve` with a
remote deployment only. All servers run at once and the generations take turns (rounds in rotating
order), so every size sees the same machine. Whether the GGUF is mapped is read from /proc/<pid>/maps.

    .venv/bin/python bench/embedded_memory.py [--quick] [--sizes default,2048,32768]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import gateway_process, write_result
from conversation import port_pid

console = Console()
PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper in Busan."}]


def status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, VmHWM of `pid` in MiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024)
    return out


def pss_mib(pid: int) -> int | None:
    """Proportional set size: a mapped file's pages divided among the processes sharing them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return None


def gguf_mapped(pid: int) -> bool:
    return any(line.rstrip().endswith(".gguf") for line in Path(f"/proc/{pid}/maps").read_text().splitlines())


def tokens_per_s(url: str, max_tokens: int, runs: int) -> list[float]:
    """Streamed generation of `max_tokens` tokens (end of sequence suppressed), tokens per second."""
    out = []
    body: dict[str, Any] = {"model": "default", "messages": PROMPT, "max_tokens": max_tokens, "stream": True,
                            "temperature": 0, "stream_options": {"include_usage": True}}
    # Gemma's <eos> (1) and <end_of_turn> (106) suppressed, so every run makes max_tokens tokens
    body["logit_bias"] = {"1": -100.0, "106": -100.0}
    for _ in range(runs):
        t0, n, tail = time.perf_counter(), 0, b""
        with httpx.stream("POST", url + "/chat/completions", json=body, timeout=600) as resp:
            resp.raise_for_status()
            for raw in resp.iter_raw():
                tail = (tail + raw)[-4096:]
        for line in tail.decode(errors="ignore").splitlines():
            if line.startswith("data: {") and '"usage"' in line:
                usage = json.loads(line[6:]).get("usage") or {}
                n = usage.get("completion_tokens", n)
        out.append(n / (time.perf_counter() - t0))
    return out


def config(options: dict[str, Any]) -> dict[str, Any]:
    return {"deployments": [{"id": "local-gemma", "provider": "llamacpp", "jurisdiction": "KR",
                             "hosting": "on_prem", "options": options}],
            "policy": {"enabled": False}, "ledger": {"enabled": False}}


REMOTE_ONLY = {"deployments": [{"id": "remote", "provider": "openai_compatible", "model": "m",
                                "base_url": "http://127.0.0.1:9/v1", "jurisdiction": "KR", "hosting": "domestic_cloud"}],
               "policy": {"enabled": False}, "ledger": {"enabled": False}}


def measure(sizes: list[str], max_tokens: int, runs: int) -> dict[str, Any]:
    """Every size's server at once (and the remote-only one); generations in rotating rounds."""
    from nuri.models import embedded_model_path

    # one copy of the weights for every server, as replicas and workers share it: mapped pages of
    # one file are shared between processes (PSS divides them); separate copies would not be
    env = {"NURI_MODELS_DIR": str(embedded_model_path().parent)}
    with contextlib.ExitStack() as stack:
        base_url = stack.enter_context(gateway_process(REMOTE_ONLY, cpu=None))
        urls = {size: stack.enter_context(gateway_process(config({} if size == "default" else {"n_ctx": int(size)}),
                                                          cpu=None, env=env)) for size in sizes}
        pids = {size: port_pid(url) for size, url in urls.items()}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(gguf_mapped(p) for p in pids.values()):
            time.sleep(0.2)                                # loaded at start; wait if lazy
        base_pid = port_pid(base_url)
        out: dict[str, Any] = {"baseline_remote_only": {"ready": status(base_pid), "pss_mib": pss_mib(base_pid)},
                               "sizes": {s: {"ready": status(p)} for s, p in pids.items()}}
        speeds: dict[str, list[float]] = {s: [] for s in sizes}
        for r in range(runs):
            for size in sizes[r % len(sizes):] + sizes[:r % len(sizes)]:
                speeds[size] += tokens_per_s(urls[size], max_tokens, 1)
        for size, pid in pids.items():
            out["sizes"][size].update({"after_generation": status(pid), "pss_mib": pss_mib(pid),
                                       "gguf_mapped": gguf_mapped(pid), "tokens_per_s": round(max(speeds[size]), 1),
                                       "tokens_per_s_median": round(statistics.median(speeds[size]), 1),
                                       "tokens_per_s_all": [round(x, 1) for x in speeds[size]]})
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter generations, one run each")
    parser.add_argument("--sizes", default="default,2048,32768",
                        help="n_ctx values; 'default' leaves options.n_ctx unset")
    args = parser.parse_args()
    max_tokens, runs = (48, 1) if args.quick else (160, 7)
    res: dict[str, Any] = {"threads": os.cpu_count(), "max_tokens": max_tokens, "runs": runs,
                           **measure(args.sizes.split(","), max_tokens, runs)}
    base = res["baseline_remote_only"]["ready"]["VmRSS"]
    t = Table(title=f"`nuri serve` with the embedded Gemma 3 270M; remote-only baseline {base} MiB RSS")
    for col in ("n_ctx", "RSS ready", "RSS after", "anon / file after", "PSS", "vs remote-only",
                "tokens/s best / median", "GGUF mmap"):
        t.add_column(col)
    for size, r in res["sizes"].items():
        a = r["after_generation"]
        t.add_row(size + (" (8192)" if size == "default" else ""), f"{r['ready']['VmRSS']} MiB",
                  f"{a['VmRSS']} MiB", f"{a['RssAnon']} / {a['RssFile']} MiB", f"{r['pss_mib']} MiB",
                  f"+{a['VmRSS'] - base} MiB", f"{r['tokens_per_s']:.1f} / {r['tokens_per_s_median']:.1f}",
                  "yes" if r["gguf_mapped"] else "no")
    console.print(t)
    console.print(f"results: {write_result('embedded_memory', res)}")


if __name__ == "__main__":
    main()
