"""Gateway overhead: Nuri in front of a fast local upstream vs calling that upstream directly.

Same run, same upstream, same load generator:
  - added latency p50/p99 at concurrency 1 and at a fixed 100 and 200 requests/s (open loop; direct
    and gateway in ten alternating rounds, latencies pooled per side)
  - the gateway's CPU per request at concurrency 16 (every thread, the scheduler's nanoseconds)
  - sustained requests/s at concurrency 1, 16 and 64, non-stream and stream (time to first token)
  - the embedded model's tokens/s through the gateway vs llama-cpp-python called directly
The gateway runs pinned to one core, the upstream and the load generator on the other.

  - with --endpoints chat,responses,messages: the Responses and Messages APIs against chat
    completions through the same gateway (same prompt, same upstream, alternating rounds): latency
    and the gateway's CPU time per request, non-stream and stream, as ratios to chat, in 10 ms clock
    ticks and in the scheduler's nanoseconds; with --baseline REV the same for revision REV, served
    beside this tree and measured in the same interleaved rounds

  - with --terminology: streamed time to first token and the gateway's CPU time per request with the
    kr-terminology pack on vs off (two gateways, full mode, alternating rounds, same upstream
    answering a 1 KB Korean reply in 8-character chunks)

  - with --workers: requests/s of `nuri serve --workers 1` and `--workers 2` on the same machine,
    load generator included (bench/workers.py), and their ratio

    .venv/bin/python bench/overhead.py [--quick] [--modes core,full] [--skip-model] [--endpoints chat,responses,messages]
                                       [--endpoints-only] [--rounds N] [--baseline REV] [--terminology]
                                       [--workers]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    RESULTS,
    ROOT,
    chat_body,
    closed_loop,
    gateway_process,
    korean_prompt,
    make_sender,
    open_loop_interleaved,
    pin_self,
    upstream_process,
    write_result,
)

console = Console()

MODES: dict[str, dict[str, Any]] = {
    # the core proxy alone
    "core": {"policy": {"enabled": False}, "ledger": {"enabled": False}},
    # what a user runs: kr-pipa policy with classification, reply guard, SQLite ledger and audit chain
    "full": {"policy": {"enabled": True, "packs": ["kr-pipa"]}, "ledger": {"enabled": True}},
    # full with the AI Basic Act pack too: every reply labelled as generated (`--modes labelled`)
    "labelled": {"policy": {"enabled": True, "packs": ["kr-pipa", "ai-basic-act"]}, "ledger": {"enabled": True}},
}


def gateway_config(upstream_url: str, mode: str) -> dict[str, Any]:
    return {
        "deployments": [{"id": "fast", "provider": "openai_compatible", "model": "m", "base_url": upstream_url,
                         "jurisdiction": "KR", "hosting": "domestic_cloud", "max_concurrency": 256}],
        "aliases": {"default": ["fast"]},
        **MODES[mode],
    }


async def measure_http(direct: str, gateway: str, quick: bool) -> dict[str, Any]:
    prompt = korean_prompt(1.0)
    body, sbody = chat_body(prompt), chat_body(prompt, stream=True)
    n1 = 300 if quick else 1500
    seconds = 4 if quick else 10
    out: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        sends = {name: make_sender(session, base + "/chat/completions", body)
                 for name, base in (("direct", direct), ("gateway", gateway))}
        for send in sends.values():
            await closed_loop(send, 4, 200)  # warm-up: connections, caches
        # 100 and 200 req/s: direct and gateway in alternating rounds, so both see the same machine
        # state (at 100 the process idles between requests: the load most deployments see)
        paced = {rate: await open_loop_interleaved(sends, rate, seconds * 2, rounds=10 if not quick else 4)
                 for rate in (100, 200)}
        pid = gateway_pid(gateway)
        for name, base in (("direct", direct), ("gateway", gateway)):
            send = sends[name]
            res: dict[str, Any] = {"c1": await closed_loop(send, 1, n1),
                                   "rate100": paced[100][name], "rate200": paced[200][name]}
            for c in (16, 64):
                before = cpu_ns(pid) if pid and name == "gateway" else None
                res[f"c{c}"] = await closed_loop(send, c, n1 * 2)
                if before is not None:     # the gateway's own CPU (every thread, scheduler ns) per request
                    res[f"c{c}"]["cpu_ms_per_request"] = (cpu_ns(pid) - before) / 1e6 / (n1 * 2)
            ttft: list[float] = []
            ssend = make_sender(session, base + "/chat/completions", sbody, ttft=ttft)
            res["stream_c1"] = await closed_loop(ssend, 1, n1 // 2)
            res["stream_c1"]["ttft_p50"] = sorted(ttft)[len(ttft) // 2] * 1000
            res["stream_c16"] = await closed_loop(ssend, 16, n1)
            out[name] = res
    d, g = out["direct"], out["gateway"]
    out["added_ms"] = {
        "c1_p50": g["c1"]["p50"] - d["c1"]["p50"], "c1_p99": g["c1"]["p99"] - d["c1"]["p99"],
        "rate100_p50": g["rate100"]["p50"] - d["rate100"]["p50"],
        "rate100_p99": g["rate100"]["p99"] - d["rate100"]["p99"],
        "rate200_p50": g["rate200"]["p50"] - d["rate200"]["p50"],
        "rate200_p99": g["rate200"]["p99"] - d["rate200"]["p99"],
        "stream_ttft_p50": g["stream_c1"]["ttft_p50"] - d["stream_c1"]["ttft_p50"],
    }
    out["rps_ratio"] = {k: g[k]["rps"] / d[k]["rps"] for k in ("c1", "c16", "c64", "stream_c1", "stream_c16")}
    return out


TICKS = os.sysconf("SC_CLK_TCK")
SETTLE_SECONDS = 0.3     # after each round: the stored responses' writer finishes its batch inside it


def endpoint_bodies(prompt: str, stream: bool) -> dict[str, tuple[str, bytes]]:
    """The same question in each wire API: (path, body). Each API's text starts with a tag of its
    own, one Hangul syllable, the same shape for every API so the scans cost the same: `make_sender`
    numbers the requests of each sender from 0, so without one the n-th request of every API would
    carry the same text, and a cache of earlier scans would answer all APIs but the one measured
    first in a round."""
    tags = dict(zip(("chat", "responses", "responses-nostore", "messages"), "가나다라", strict=True))

    def text(name: str) -> str:
        return f"{tags[name]}. {prompt}"

    bodies: dict[str, tuple[str, dict[str, Any]]] = {
        "chat": ("/chat/completions", {"model": "default", "messages": [{"role": "user", "content": text("chat")}],
                                       "max_tokens": 16}),
        "responses": ("/responses", {"model": "default", "input": text("responses"), "max_output_tokens": 16}),
        "responses-nostore": ("/responses", {"model": "default", "input": text("responses-nostore"),
                                             "max_output_tokens": 16, "store": False}),
        "messages": ("/messages", {"model": "default", "max_tokens": 16,
                                   "messages": [{"role": "user", "content": text("messages")}]}),
    }
    return {name: (path, json.dumps({**body, **({"stream": True} if stream else {})}, ensure_ascii=False).encode())
            for name, (path, body) in bodies.items()}


def gateway_pid(base_url: str) -> int | None:
    """The `nuri serve` process listening on the URL's port (for its CPU time), if found."""
    port = base_url.rsplit(":", 1)[1].split("/", 1)[0]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and b"--port" in args and args[args.index(b"--port") + 1] == port.encode():
            return int(proc.name)
    return None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_ns(pid: int) -> int:
    """The process's CPU time in nanoseconds, every thread: the scheduler's own counter (what
    /proc/<pid>/task/*/schedstat shows per thread), read through the process's CPU-time clock,
    which also keeps the time of threads that have ended. Where that clock cannot be read, the
    sum of the live threads' schedstat."""
    try:
        return time.clock_gettime_ns(((~pid) << 3) | 2)       # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
    except OSError:
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except OSError:
                continue
        return total


async def idle_ns_per_second(pid: int, seconds: float = 0.5, samples: int = 3) -> float:
    """What the gateway spends with no request in flight (timers, its ledger's background work), per
    second: subtracted from each round's settling time, so only the requests' own work is counted."""
    rates = []
    for _ in range(samples):
        before = cpu_ns(pid)
        await asyncio.sleep(seconds)
        rates.append((cpu_ns(pid) - before) / seconds)
    return statistics.median(rates)


async def measure_endpoints(gateways: dict[str, str], names: list[str], quick: bool,
                            rounds: int | None = None) -> dict[str, Any]:
    """Each API against chat completions in each gateway (this tree, and with --baseline a previous
    revision): p50 latency and the gateway's CPU per request, concurrency 1, in interleaved rounds
    (every gateway and API once per round, the order rotated each round) so each sees the same
    machine state. CPU comes in two resolutions: clock ticks of /proc/<pid>/stat (10 ms), and the
    scheduler's nanosecond counter (`cpu_ns`); each round ends with a pause in which the stored
    responses' writer finishes its batch, the gateway's idle CPU over that pause subtracted."""
    prompt = korean_prompt(1.0)
    pids = {g: gateway_pid(url) for g, url in gateways.items()}
    default_rounds, per_round = (4, 100) if quick else (8, 300)
    rounds = rounds or default_rounds
    out: dict[str, dict[str, Any]] = {g: {} for g in gateways}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:
        idle = {g: await idle_ns_per_second(pid) if pid else 0.0 for g, pid in pids.items()}
        for stream in (False, True):
            bodies = endpoint_bodies(prompt, stream)
            sends = {(g, n): make_sender(session, url + bodies[n][0], bodies[n][1])
                     for g, url in gateways.items() for n in names}
            for send in sends.values():
                await closed_loop(send, 1, 50)                     # warm-up
            lat: dict[Any, list[float]] = {k: [] for k in sends}
            ticks: dict[Any, list[float]] = {k: [] for k in sends}    # CPU ms per request, each round
            sched: dict[Any, list[float]] = {k: [] for k in sends}
            count = dict.fromkeys(sends, 0)
            order = list(sends)
            for r in range(rounds):
                for key in order[r % len(order):] + order[:r % len(order)]:
                    pid = pids[key[0]]
                    t0, n0 = (cpu_seconds(pid), cpu_ns(pid)) if pid else (0.0, 0)
                    res = await closed_loop(sends[key], 1, per_round)
                    await asyncio.sleep(SETTLE_SECONDS)
                    t1, n1 = (cpu_seconds(pid), cpu_ns(pid)) if pid else (0.0, 0)
                    count[key] += res["n"]
                    lat[key].append(res["p50"])
                    if res["n"]:
                        ticks[key].append((t1 - t0) / res["n"] * 1000)
                        sched[key].append((n1 - n0 - idle[key[0]] * SETTLE_SECONDS) / res["n"] / 1e6)
            failed = [f"{g}/{n}" for (g, n), c in count.items() if not c]
            if failed:
                raise RuntimeError(f"every request to {', '.join(failed)} failed")
            kind = "stream" if stream else "non_stream"
            for g in gateways:
                table = out[g][kind] = {}
                for n in names:
                    k = (g, n)
                    table[n] = {"p50_ms": statistics.median(lat[k]), "requests": count[k],
                                "cpu_ms_per_request": statistics.fmean(ticks[k]),
                                "cpu_ms_min": min(ticks[k]), "cpu_ms_median": statistics.median(ticks[k]),
                                "sched_ms_min": min(sched[k]), "sched_ms_median": statistics.median(sched[k]),
                                "sched_ms_rounds": sched[k]}
                chat = table.get("chat")
                if chat is None:
                    continue
                for n, row in table.items():
                    row["p50_vs_chat"] = row["p50_ms"] / chat["p50_ms"]
                    for stat in ("min", "median"):     # per-round figures: robust to a busy machine
                        for unit, prefix in (("cpu", "cpu_ms"), ("sched", "sched_ms")):
                            base = chat[f"{prefix}_{stat}"]
                            row[f"{unit}_{stat}_vs_chat"] = row[f"{prefix}_{stat}"] / base if base else float("nan")
                    row["cpu_vs_chat"] = (row["cpu_ms_per_request"] / chat["cpu_ms_per_request"]
                                          if chat["cpu_ms_per_request"] else float("nan"))
                    # each round against chat's in the same round, then the median of those ratios
                    row["sched_paired_vs_chat"] = statistics.median(
                        a / b for a, b in zip(sched[(g, n)], sched[(g, "chat")], strict=True) if b > 0)
            for g in gateways:
                out[g]["idle_ms_per_second"] = idle[g] / 1e6
    return out


def report_endpoints(mode: str, res: dict[str, Any], side: str = "") -> None:
    t = Table(title=f"wire APIs vs chat completions ({mode}{', ' + side if side else ''}), 1 KB Korean prompt, "
                    "concurrency 1")
    for col in ("API", "p50 ms", "vs chat", "CPU ticks min / median ms", "vs chat",
                "CPU sched ns min / median ms", "vs chat", "paired"):
        t.add_column(col)
    for key in ("non_stream", "stream"):
        for name, r in res.get(key, {}).items():
            t.add_row(f"{name} ({key.replace('_', '-')})", f"{r['p50_ms']:.2f}", f"{r.get('p50_vs_chat', 1):.3f}",
                      f"{r['cpu_ms_min']:.3f} / {r['cpu_ms_median']:.3f}",
                      f"{r.get('cpu_min_vs_chat', 1):.3f} / {r.get('cpu_median_vs_chat', 1):.3f}",
                      f"{r['sched_ms_min']:.4f} / {r['sched_ms_median']:.4f}",
                      f"{r.get('sched_min_vs_chat', 1):.3f} / {r.get('sched_median_vs_chat', 1):.3f}",
                      f"{r.get('sched_paired_vs_chat', 1):.3f}")
    Console(width=max(console.width, 150)).print(t)


@contextlib.contextmanager
def revision_src(rev: str) -> Iterator[Path]:
    """The `src/` of a git revision, exported (read-only: `git archive`) to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="nuri-baseline-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield Path(tmp) / "src"


async def measure_terminology(gateways: dict[str, str], quick: bool) -> dict[str, Any]:
    """Terminology on vs off: streamed TTFT p50 and gateway CPU per request, concurrency 1, in
    alternating rounds so both sides see the same machine state."""
    body = chat_body("동해와 독도에 대해 짧게 알려 주세요.", stream=True)
    pids = {name: gateway_pid(url) for name, url in gateways.items()}
    rounds, per_round = (4, 100) if quick else (10, 300)
    ttft: dict[str, list[float]] = {n: [] for n in gateways}
    cpu = dict.fromkeys(gateways, 0.0)
    count = dict.fromkeys(gateways, 0)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) as session:
        sends = {n: make_sender(session, url + "/chat/completions", body, ttft=ttft[n]) for n, url in gateways.items()}
        for send in sends.values():
            await closed_loop(send, 1, 50)                         # warm-up
        for samples in ttft.values():
            samples.clear()
        for _ in range(rounds):
            for name, send in sends.items():
                pid = pids[name]
                before = cpu_seconds(pid) if pid else 0.0
                res = await closed_loop(send, 1, per_round)
                cpu[name] += (cpu_seconds(pid) if pid else 0.0) - before
                count[name] += res["n"]
    out: dict[str, Any] = {n: {"ttft_p50_ms": statistics.median(ttft[n]) * 1000,
                               "cpu_ms_per_request": cpu[n] / count[n] * 1000 if count[n] else float("nan"),
                               "requests": count[n]} for n in gateways}
    out["added_ms"] = {"ttft_p50": out["on"]["ttft_p50_ms"] - out["off"]["ttft_p50_ms"],
                       "cpu_per_request": out["on"]["cpu_ms_per_request"] - out["off"]["cpu_ms_per_request"]}
    return out


def run_terminology(quick: bool) -> dict[str, Any]:
    import httpx

    reply = korean_prompt(1.0)
    with upstream_process(cpu=1) as upstream:
        httpx.post(upstream.rsplit("/v1", 1)[0] + "/_nuri/config", json={"reply": reply, "chunk_chars": 8}, timeout=10)
        off = gateway_config(upstream, "full")
        on = {**off, "policy": {"enabled": True, "packs": ["kr-pipa", "kr-terminology"]}}
        with gateway_process(off, cpu=0) as g_off, gateway_process(on, cpu=0) as g_on:
            res = asyncio.run(measure_terminology({"off": g_off, "on": g_on}, quick))
    res["reply_bytes"] = len(reply.encode())
    t = Table(title=f"terminology pack on vs off (full mode), streamed {res['reply_bytes']} B Korean reply, "
                    "concurrency 1")
    for col in ("", "TTFT p50 ms", "CPU ms/request"):
        t.add_column(col)
    for name in ("off", "on"):
        t.add_row(name, f"{res[name]['ttft_p50_ms']:.3f}", f"{res[name]['cpu_ms_per_request']:.3f}")
    t.add_row("added", f"{res['added_ms']['ttft_p50']:+.3f}", f"{res['added_ms']['cpu_per_request']:+.3f}")
    console.print(t)
    return res


def measure_model(gateway_url: str | None, quick: bool) -> dict[str, Any]:
    """Tokens/s of the embedded model: llama-cpp-python directly vs streamed through the gateway."""
    import httpx
    from llama_cpp import Llama

    from nuri.models import embedded_model_path
    from nuri.providers.llamacpp import fold_messages

    messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper in Busan."}]
    max_tokens = 64 if quick else 160
    runs = 2 if quick else 4
    # the same threads as the gateway's llamacpp provider uses by default
    llm = Llama(model_path=str(embedded_model_path()), n_ctx=2048, chat_format="gemma", verbose=False,
                n_threads=os.cpu_count() or 2)
    eos = llm.token_eos()
    direct: list[float] = []
    for _ in range(runs):
        t0, n = time.perf_counter(), 0
        for chunk in llm.create_chat_completion(messages=fold_messages(messages), max_tokens=max_tokens, stream=True,
                                                temperature=0, logit_bias={eos: -100.0}):
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                n += 1
        direct.append(n / (time.perf_counter() - t0))
    llm.close()
    via: list[float] = []
    assert gateway_url is not None
    body = {"model": "default", "messages": messages, "max_tokens": max_tokens, "stream": True, "temperature": 0,
            "logit_bias": {str(eos): -100.0}, "stream_options": {"include_usage": True}}
    for _ in range(runs):
        t0, n = time.perf_counter(), 0
        tail = b""
        with httpx.stream("POST", gateway_url + "/chat/completions", json=body, timeout=300) as resp:
            # The client reads the events as they come but parses only the last ones: decoding
            # every event in this process would take CPU from llama.cpp's threads on a 2-core
            # machine, which the in-process baseline does not pay either.
            for raw in resp.iter_raw():
                tail = (tail + raw)[-4096:]
        for line in tail.decode(errors="ignore").splitlines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    # tokens, not events: the reply guard may join a few tokens into one event
                    n = chunk["usage"]["completion_tokens"]
        via.append(n / (time.perf_counter() - t0))
    d, g = max(direct), max(via)
    return {"direct_tokens_per_s": d, "gateway_tokens_per_s": g, "ratio": g / d, "runs": runs,
            "max_tokens": max_tokens, "direct_all": direct, "gateway_all": via}


def report(mode: str, res: dict[str, Any]) -> None:
    t = Table(title=f"gateway overhead ({mode}) vs direct upstream, 1 KB Korean prompt")
    for col in ("load", "direct p50/p99 ms", "gateway p50/p99 ms", "added p50/p99 ms", "rps direct", "rps gateway",
                "ratio"):
        t.add_column(col)
    d, g = res["direct"], res["gateway"]
    for key, label in (("c1", "concurrency 1"), ("rate100", "100 req/s open loop"), ("rate200", "200 req/s open loop"),
                       ("c16", "concurrency 16"),
                       ("c64", "concurrency 64"), ("stream_c1", "stream, concurrency 1"),
                       ("stream_c16", "stream, concurrency 16")):
        rd = d[key].get("rps", d[key].get("achieved_rps"))
        rg = g[key].get("rps", g[key].get("achieved_rps"))
        t.add_row(label, f"{d[key]['p50']:.2f} / {d[key]['p99']:.2f}", f"{g[key]['p50']:.2f} / {g[key]['p99']:.2f}",
                  f"{g[key]['p50'] - d[key]['p50']:.2f} / {g[key]['p99'] - d[key]['p99']:.2f}",
                  f"{rd:.0f}", f"{rg:.0f}", f"{rg / rd:.2f}")
    console.print(t)
    console.print(f"stream time to first token p50: direct {d['stream_c1']['ttft_p50']:.2f} ms, "
                  f"gateway {g['stream_c1']['ttft_p50']:.2f} ms")
    if "cpu_ms_per_request" in g["c16"]:
        console.print(f"gateway CPU per request at concurrency 16 (every thread, pinned core): "
                      f"{g['c16']['cpu_ms_per_request']:.3f} ms, {1 / g['c16']['cpu_ms_per_request'] * 1000:.0f} "
                      f"requests/s per core of CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--modes", default="core,full")
    parser.add_argument("--skip-model", action="store_true")
    parser.add_argument("--skip-http", action="store_true", help="only the embedded model's tokens/s")
    parser.add_argument("--endpoints", default="chat",
                        help="also compare these wire APIs against chat completions: "
                        "chat,responses,responses-nostore,messages")
    parser.add_argument("--endpoints-only", action="store_true",
                        help="only the wire-API comparison (skips the direct-vs-gateway runs)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="with --endpoints: interleaved rounds per API (default 8, or 4 with --quick)")
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="with --endpoints: also serve git revision REV (exported with git archive) and "
                        "measure it in the same interleaved rounds, written under `before`")
    parser.add_argument("--terminology", action="store_true",
                        help="also measure the kr-terminology pack on vs off (streamed TTFT, CPU per request)")
    parser.add_argument("--terminology-only", action="store_true", help="only the terminology comparison")
    parser.add_argument("--workers", action="store_true",
                        help="also measure requests/s with `nuri serve --workers 1` and `--workers 2` (bench/workers.py)")
    args = parser.parse_args()
    if args.terminology_only:
        pin_self(1)
        path = write_result("overhead-terminology", {"terminology": run_terminology(args.quick)})
        console.print(f"results: {path}")
        return
    pin_self(1)
    results: dict[str, Any] = {"modes": {}}
    previous = RESULTS / "overhead.json"
    if args.skip_http and previous.exists():
        results["modes"] = json.loads(previous.read_text()).get("modes", {})
    baseline = contextlib.ExitStack()
    with baseline, upstream_process(cpu=1) as upstream:
        base_src = baseline.enter_context(revision_src(args.baseline)) if args.baseline else None
        if base_src is not None:
            commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline], check=True,
                                    capture_output=True, text=True).stdout.strip()
            results["before"] = {"revision": f"{commit} ({args.baseline})", "modes": {}}
        for mode in [] if args.skip_http else args.modes.split(","):
            endpoints = [e for e in args.endpoints.split(",") if e]
            with contextlib.ExitStack() as gateways:
                gw = gateways.enter_context(gateway_process(gateway_config(upstream, mode), cpu=0))
                res = {} if args.endpoints_only else asyncio.run(measure_http(upstream, gw, args.quick))
                if set(endpoints) - {"chat"}:
                    urls = {"after": gw}
                    if base_src is not None:     # the baseline revision, served from its own src/
                        urls["before"] = gateways.enter_context(gateway_process(
                            gateway_config(upstream, mode), cpu=0, env={"PYTHONPATH": str(base_src)}))
                    both = asyncio.run(measure_endpoints(urls, ["chat", *endpoints], args.quick, args.rounds))
                    res["endpoints"] = both["after"]
                    if "before" in both:
                        results["before"]["modes"][mode] = {"endpoints": both["before"]}
            results["modes"][mode] = res
            if not args.endpoints_only:
                report(mode, res)
            if "endpoints" in res:
                if "before" in results and mode in results["before"]["modes"]:
                    report_endpoints(mode, results["before"]["modes"][mode]["endpoints"], f"before: {args.baseline}")
                report_endpoints(mode, res["endpoints"], "this tree" if args.baseline else "")
    if args.endpoints_only:
        results["note"] = (
            "2-core machine, busy (other sessions working); gateways pinned to core 0, upstream and load on core 1. "
            f"{args.rounds or (4 if args.quick else 8)} rounds of {100 if args.quick else 300} requests, every API (and with a baseline both gateways) once per "
            "round, the order rotated each round. cpu_ms_*: CPU per request from /proc/<pid>/stat clock ticks "
            "(10 ms); sched_ms_*: from the scheduler's nanosecond counter (the process CPU-time clock: "
            "schedstat of every thread, ended ones included), each round followed by "
            f"{SETTLE_SECONDS} s for the stored responses' writer, the gateway's idle CPU over it subtracted; "
            "*_vs_chat: ratios to chat completions in the same gateway and run (min and median over rounds); "
            "sched_paired_vs_chat: the median over rounds of each round's ratio to that round's chat"
            + (f"; `before` is revision {args.baseline} measured in the same run" if args.baseline else ""))
    if args.terminology:
        results["terminology"] = run_terminology(args.quick)
    if args.workers:
        from workers import lean_upstream_process, report_workers, run_workers

        with lean_upstream_process() as lean:
            results["workers"] = run_workers(lean, gateway_config(lean, "full"), args.quick)
        report_workers("full", results["workers"])
        pin_self(1)
    if not args.skip_model:
        config = {"deployments": [{"id": "local-gemma", "provider": "llamacpp", "jurisdiction": "KR",
                                   "hosting": "on_prem", "options": {"n_ctx": 2048}}],
                  "policy": {"enabled": True}, "ledger": {"enabled": False}}
        pin_self(None)
        with gateway_process(config, cpu=None) as gw:
            # measured one after the other, so each side has the machine to itself
            results["embedded_model"] = measure_model(gw, args.quick)
        m = results["embedded_model"]
        console.print(f"embedded model tokens/s: direct {m['direct_tokens_per_s']:.1f}, "
                      f"through the gateway {m['gateway_tokens_per_s']:.1f}, ratio {m['ratio']:.3f}")
    path = write_result("overhead-endpoints" if args.endpoints_only else "overhead", results)
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
