"""CPU per request of the full pipeline: this tree against a baseline revision, same run.

The gateway's own CPU time (user + system, read from /proc) divided by the requests it served,
under a closed loop of 1 KB Korean chat requests: non-stream and stream, kr-pipa policy, reply
guard, SQLite ledger with a team key. The baseline is a git worktree of `--baseline` served
from its own `src/`; the two gateways run in alternating rounds so drift on a shared machine
lands on both sides. CPU time, not wall time, is what is compared: other load on the machine
changes it far less.

    .venv/bin/python bench/cpu.py [--baseline REV] [--current REV] [--names rules|tagger] [--rate N]
                                  [--set SECTION.KEY=VALUE]
                                  [--rounds 7] [--requests 600]

`--current REV` serves the other side from a worktree of REV too, so the cost of one change is
measured between its parent and itself. Names are found by rules on both sides by default
(`privacy.person_threshold: 1.0`, which revisions before the learned tagger know);
`--baseline-names` finds them differently on the baseline side, so `--baseline HEAD --current HEAD
--baseline-names rules --names tagger` is the tagger's cost. `--set` changes one setting on the
current side (`--set ledger.key_poll_seconds=1`); `--rate 100` paces requests instead of a closed
loop of 16.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    chat_body,
    closed_loop,
    free_port,
    korean_prompt,
    make_sender,
    open_loop,
    pin,
    upstream_process,
    wait_http,
    worktrees,
    write_result,
)

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def config(upstream: str, names: str = "rules", overrides: list[str] | None = None) -> dict[str, Any]:
    cfg = _config(upstream, names)
    for item in overrides or []:             # section.key=value, the value read as YAML
        dotted, _, value = item.partition("=")
        *sections, key = dotted.split(".")
        node = cfg
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = yaml.safe_load(value)
    return cfg


def _config(upstream: str, names: str) -> dict[str, Any]:
    return {
        "privacy": {"person_threshold": 1.0 if names == "rules" else 0.5},
        "deployments": [{"id": "fast", "provider": "openai_compatible", "model": "m", "base_url": upstream,
                         "jurisdiction": "KR", "hosting": "domestic_cloud", "max_concurrency": 256}],
        "aliases": {"default": ["fast"]},
        "policy": {"enabled": True, "packs": ["kr-pipa", "ai-basic-act"]},
        "ledger": {"enabled": True},
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextlib.contextmanager
def gateway(src: Path, upstream: str, tmp: Path, name: str, names: str = "rules",
            overrides: list[str] | None = None) -> Iterator[tuple[str, int, str]]:
    """A `nuri serve` from `src` on core 0; yields (base URL, pid, API key)."""
    data = tmp / f"data-{name}"
    data.mkdir()
    cfg = data / "nuri.yaml"
    cfg.write_text(yaml.safe_dump(config(upstream, names, overrides)))
    env = {**os.environ, "PYTHONPATH": str(src)}
    key = subprocess.run([sys.executable, "-m", "nuri", "keys", "create", "--team", "bench", "--config", str(cfg),
                          "--data-dir", str(data)], env=env, capture_output=True, text=True)
    if key.returncode != 0:
        raise RuntimeError(f"{name}: nuri keys create failed: {key.stderr[-2000:]}")
    token = next(w for w in key.stdout.split() if w.startswith("nuri-"))
    port = free_port()
    cmd = [*pin(0), sys.executable, "-m", "nuri", "serve", "--config", str(cfg), "--port", str(port),
           "--data-dir", str(data)]
    with open(data / "serve.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz")
            yield f"http://127.0.0.1:{port}/v1", proc.pid, token
        finally:
            proc.terminate()
            proc.wait(15)


async def per_request(url: str, pid: int, token: str, stream: bool, requests: int, rate: float = 0.0) -> float:
    """Milliseconds of gateway CPU per request over one round: a closed loop at concurrency 16, or
    with `rate`, requests paced at that many a second (the load most deployments see, where
    wake-ups and timers weigh more per request)."""
    body = chat_body(korean_prompt(1.0), stream=stream)
    async with aiohttp.ClientSession() as session:
        send = make_sender(session, url + "/chat/completions", body, {"Authorization": f"Bearer {token}"})
        await closed_loop(send, 16, 100)                       # warm-up
        before = cpu_seconds(pid)
        if rate:
            result = await open_loop(send, rate, requests / rate)
            requests = result.get("n", requests) + result.get("errors", 0)
        else:
            result = await closed_loop(send, 16, requests)
        spent = cpu_seconds(pid) - before
    if result.get("errors"):
        raise RuntimeError(f"{result['errors']} requests failed")
    return spent * 1000 / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="HEAD", help="git revision to compare against (default HEAD)")
    parser.add_argument("--current", default=None, help="git revision for the other side (default: this tree)")
    parser.add_argument("--names", choices=("rules", "tagger"), default="rules",
                        help="how both sides find names (default rules: person_threshold 1.0)")
    parser.add_argument("--baseline-names", choices=("rules", "tagger"), default=None,
                        help="how the baseline finds names, if not as --names (the tagger's cost: "
                             "--baseline HEAD --current HEAD --baseline-names rules --names tagger)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a config setting for the current side only, e.g. ledger.key_poll_seconds=1")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="pace requests at this many a second instead of a closed loop of 16")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nuri-cpu-") as tmpdir:
        tmp = Path(tmpdir)
        revisions = {"baseline": args.baseline, **({"current": args.current} if args.current else {})}
        with worktrees(revisions, tmp) as trees:
            current = trees["current"] / "src" if "current" in trees else ROOT / "src"
            figures = run(trees["baseline"] / "src", current, tmp, args)
    figures.update(baseline=args.baseline, current=args.current or "working tree", names=args.names,
                   current_settings=args.overrides,
                   baseline_names=args.baseline_names or args.names)
    print(f"written {write_result('cpu', figures)}")


def run(baseline_src: Path, current_src: Path, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    sides = {"baseline": baseline_src, "current": current_src}
    samples: dict[str, dict[str, list[float]]] = {s: {"chat": [], "stream": []} for s in sides}
    with upstream_process(cpu=1) as upstream, contextlib.ExitStack() as stack:
        names = {"baseline": args.baseline_names or args.names, "current": args.names}
        overrides = {"baseline": [], "current": args.overrides}
        running = {side: stack.enter_context(gateway(src, upstream, tmp, side, names[side], overrides[side]))
                   for side, src in sides.items()}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for side in order:
                url, pid, token = running[side]
                for kind in ("chat", "stream"):
                    samples[side][kind].append(asyncio.run(
                        per_request(url, pid, token, kind == "stream", args.requests, args.rate)))
    out: dict[str, Any] = {"rounds": args.rounds, "requests_per_round": args.requests,
                           "load": f"{args.rate:g} requests/s" if args.rate else "closed loop, concurrency 16",
                           "cpu_ms_per_request": {}}
    for kind in ("chat", "stream"):
        base = statistics.median(samples["baseline"][kind])
        cur = statistics.median(samples["current"][kind])
        out["cpu_ms_per_request"][kind] = {"baseline": round(base, 3), "current": round(cur, 3),
                                           "ratio": round(cur / base, 3),
                                           "samples": {s: [round(x, 3) for x in samples[s][kind]] for s in sides}}
        print(f"{kind:6s} CPU per request: baseline {base:.3f} ms, current {cur:.3f} ms, ratio {cur / base:.3f}")
    return out


if __name__ == "__main__":
    main()
