"""Instructions per request: this tree against a baseline revision, counted, not timed.

On a shared virtual machine the CPU time of one request moves by 10-30 % between runs minutes
apart (other tenants, halted cores, frequency), more than most single changes save; interleaved
rounds (bench/cpu.py) average that out only slowly. Valgrind counts the instructions a process
executes, which the machine's state does not change: the same code and inputs give the same count
within a fraction of a percent, so a change of 1-2 % is seen in one run.

Each count is a gateway application (full mode as in bench/overhead.py: kr-pipa policy, reply
guard, SQLite ledger with a team key) driven in process through ASGI (no HTTP server: uvicorn's
and the kernel's work are not counted) against the lean upstream on loopback, under
`valgrind --tool=cachegrind --cache-sim=no`. A run serves `--warm` requests and then `n` more;
two runs with different `n` give the instructions of one request as their difference over the
difference in requests, start-up and shutdown cancelled out. Every request's text is new (a
number first, as in bench/overhead.py). Background work (the audit shipper, the stored responses'
writer) is counted; under valgrind a request takes ~20× longer, so timers fire more often per
request than in a real gateway, on both sides alike.

    .venv/bin/python bench/instructions.py [--baseline REV] [--current REV]
        [--apis chat,responses,responses-nostore,messages,responses-chain] [--stream] [--requests 200] [--warm 30]

`responses-chain` sends stored Responses requests in conversations of five turns, each turn after
the first continuing the previous one (`previous_response_id`): the cost of a follow-up turn, whose
history is stored, loaded and stored again.

Prints, per API, the baseline's and the current tree's instructions per request and their ratio,
and each API's ratio to chat completions on each side; writes bench/results/instructions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, korean_prompt, numbered, upstream_process, worktrees, write_result

_IREFS = re.compile(r"I\s+refs:\s+([\d,]+)")
_SMALL = 20                 # requests after the warm-up in the shorter of the two runs
# `--apis responses-chain`: stored Responses turns in conversations of CHAIN_TURNS turns, each turn
# after the first continuing the one before it (`previous_response_id`), as an agent's are
CHAIN = "responses-chain"
CHAIN_TURNS = 5


def config(upstream: str) -> dict[str, Any]:
    return {
        "deployments": [{"id": "fast", "provider": "openai_compatible", "model": "m", "base_url": upstream,
                         "jurisdiction": "KR", "hosting": "domestic_cloud", "max_concurrency": 256}],
        "aliases": {"default": ["fast"]},
        "policy": {"enabled": True, "packs": ["kr-pipa"]},
        "ledger": {"enabled": True},
    }


# --- the driver: runs under valgrind, with the side's src/ first on the path -----------------------

async def drive(config_path: Path, data_dir: Path, token: str, api: str, stream: bool, count: int) -> None:
    """Start the application, serve `count` requests of `api` one at a time, shut it down."""
    from nuri.config import load_config
    from nuri.gateway.app import create_app
    from overhead import endpoint_bodies

    app = create_app(load_config(config_path), data_dir)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                       inbox.get, outbox.put))
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"start-up failed: {started}")
    chain = api == CHAIN
    path, body = endpoint_bodies(korean_prompt(1.0), stream)["responses" if chain else api]
    with_number = numbered(body)
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"authorization", f"Bearer {token}".encode())]
    previous = b""
    for number in range(count):
        request = with_number(number)
        if chain and number % CHAIN_TURNS:       # a follow-up of the chain's previous response
            request = b'{"previous_response_id": "' + previous + b'", ' + request[1:]
        # each request in a task of its own, as a server runs it (the key's in-flight slot is the task's)
        answer = await asyncio.create_task(_request(app, "/v1" + path, headers, request))
        if chain:
            at = answer.index(b'"id":"') + 6
            previous = answer[at:answer.index(b'"', at)]
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await lifespan


async def _request(app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [*headers, (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000), "state": {}}
    sent = False
    finished = asyncio.Event()
    status: list[int] = []
    answer: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()                       # the client stays until the answer is whole
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            answer.append(message.get("body", b""))
            if not message.get("more_body"):
                finished.set()

    await app(scope, receive, send)
    if status != [200]:
        raise RuntimeError(f"{path}: HTTP {status}")
    return b"".join(answer)


# --- the parent: keys, runs under valgrind, differences --------------------------------------------

def count_instructions(src: Path, upstream: str, tmp: Path, api: str, stream: bool, requests: int) -> int:
    """Instructions executed by one driver run of `requests` requests (start-up and shutdown included)."""
    data = Path(tempfile.mkdtemp(dir=tmp))
    cfg = data / "nuri.yaml"
    cfg.write_text(yaml.safe_dump(config(upstream)))
    # one BLAS thread fewer: numpy's OpenBLAS starts a thread that spins a while for work that never
    # comes here, and under valgrind how long it spins moved a count by up to 40 k a request
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
    key = subprocess.run([sys.executable, "-m", "nuri", "keys", "create", "--team", "bench", "--config", str(cfg),
                          "--data-dir", str(data)], env=env, capture_output=True, text=True)
    if key.returncode != 0:
        raise RuntimeError(f"nuri keys create failed: {key.stderr[-2000:]}")
    token = next(w for w in key.stdout.split() if w.startswith("nuri-"))
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, __file__, "--drive", str(cfg), str(data), token, api, "1" if stream else "0", str(requests)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    found = _IREFS.search(run.stderr)
    if run.returncode != 0 or found is None:
        raise RuntimeError(f"{api}: the driver failed under valgrind: {run.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


def per_request(src: Path, upstream: str, tmp: Path, api: str, stream: bool, warm: int, requests: int,
                pool: concurrent.futures.Executor) -> float:
    """Instructions of one request: two runs that differ by `requests` requests, on two cores."""
    short = pool.submit(count_instructions, src, upstream, tmp, api, stream, warm + _SMALL)
    long = pool.submit(count_instructions, src, upstream, tmp, api, stream, warm + _SMALL + requests)
    return (long.result() - short.result()) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="HEAD", help="git revision to compare against (default HEAD)")
    parser.add_argument("--current", default=None, help="git revision for the other side (default: this tree)")
    parser.add_argument("--apis", default="chat", help="comma-separated: chat,responses,responses-nostore,messages,responses-chain")
    parser.add_argument("--stream", action="store_true", help="streamed requests instead of whole answers")
    parser.add_argument("--requests", type=int, default=200, help="requests between the two runs' counts")
    parser.add_argument("--warm", type=int, default=30, help="requests before them, in both runs")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    apis = [a.strip() for a in args.apis.split(",") if a.strip()]
    figures: dict[str, Any] = {"apis": {}, "stream": args.stream, "requests": args.requests, "warm": args.warm,
                               "baseline": args.baseline, "current": args.current or "working tree"}
    with tempfile.TemporaryDirectory(prefix="nuri-instructions-") as tmpdir, upstream_process(cpu=1) as upstream:
        tmp = Path(tmpdir)
        revisions = {"baseline": args.baseline, **({"current": args.current} if args.current else {})}
        with worktrees(revisions, tmp) as trees, concurrent.futures.ThreadPoolExecutor(2) as pool:
            sides = {"baseline": trees["baseline"] / "src",
                     "current": trees["current"] / "src" if "current" in trees else ROOT / "src"}
            for api in apis:
                counts = {side: per_request(src, upstream, tmp, api, args.stream, args.warm, args.requests, pool)
                          for side, src in sides.items()}
                figures["apis"][api] = {"baseline": round(counts["baseline"]), "current": round(counts["current"]),
                                        "ratio": round(counts["current"] / counts["baseline"], 4)}
                print(f"{api:18s} instructions per request: baseline {counts['baseline'] / 1e6:.3f} M, "
                      f"current {counts['current'] / 1e6:.3f} M, ratio {counts['current'] / counts['baseline']:.3f}",
                      flush=True)
    chat = figures["apis"].get("chat")
    if chat:
        for api, row in figures["apis"].items():
            row["vs_chat"] = {side: round(row[side] / chat[side], 4) for side in ("baseline", "current")}
            print(f"{api:18s} vs chat: baseline {row['vs_chat']['baseline']:.3f}, current {row['vs_chat']['current']:.3f}")
    name = "instructions-stream" if args.stream else "instructions"
    print(f"written {write_result(name, figures)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--drive":
        cfg, data, token, api, stream, count = sys.argv[2:8]
        import uvloop  # the event loop `nuri serve` runs on

        uvloop.run(drive(Path(cfg), Path(data), token, api, stream == "1", int(count)))
    else:
        main()
