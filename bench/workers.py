"""Requests/s of `nuri serve` with 1 and with 2 workers, in one run, load generator included.

Nothing is pinned: the workers, the upstream and this load generator share the machine's cores,
as they would on a real host, so the ratio is what `--workers 2` buys with everything that runs
beside it. The load generator opens many keep-alive connections (the kernel spreads connections,
not requests, over the workers' SO_REUSEPORT sockets) and sends back to back; it and the upstream
are lean (raw HTTP/1.1 on asyncio protocols), so the cores go to the gateway.

    .venv/bin/python bench/workers.py [--quick] [--mode full|core]
    .venv/bin/python bench/overhead.py --workers     (the same measurement, beside the overhead runs)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    LeanUpstream,
    chat_body,
    content_length,
    free_port,
    korean_prompt,
    lean_process,
    pin_self,
    serve_lean,
    summary_ms,
    wait_http,
    write_result,
)

console = Console()
CONNECTIONS = 64


@contextlib.contextmanager
def served(config: dict[str, Any], workers: int) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nuri-bench-workers-") as tmp:
        cfg = Path(tmp) / "nuri.yaml"
        cfg.write_text(yaml.safe_dump(config, allow_unicode=True))
        cmd = [sys.executable, "-m", "nuri", "serve", "--config", str(cfg), "--port", str(port), "--data-dir",
               str(Path(tmp) / "data"), "--workers", str(workers)]
        with open(Path(tmp) / "serve.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ})
            try:
                wait_http(f"http://127.0.0.1:{port}/readyz")
                yield f"http://127.0.0.1:{port}/v1"
            finally:
                proc.terminate()
                proc.wait(30)


# --- a lean load generator and a lean upstream ------------------------------------------------
# Both share the cores with the gateway, so each costs what it must and no more: raw HTTP/1.1 on
# asyncio protocols, a fixed request and a fixed reply (the aiohttp client and server cost about as
# much per request as a gateway worker's whole pipeline, which would measure them, not the workers).

_REPLY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "안녕하세요. 배송은 내일 도착합니다."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 300, "completion_tokens": 12, "total_tokens": 312}}, ensure_ascii=False).encode()
_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
             + str(len(_REPLY)).encode() + b"\r\n\r\n" + _REPLY)


class _Upstream(LeanUpstream):
    def answer(self, body: bytes) -> bytes:
        return _RESPONSE


def lean_upstream(port: int) -> None:
    """Serve the canned reply on 127.0.0.1:port until killed (run in its own process)."""
    serve_lean(_Upstream, port, fast_loop=True)


def lean_upstream_process() -> contextlib.AbstractContextManager[str]:
    """This file's lean upstream in a process of its own; yields its base URL."""
    return lean_process(str(Path(__file__).resolve()))


class _Client(asyncio.Protocol):
    def __init__(self, request: bytes, shared: dict[str, Any]) -> None:
        self.request, self.shared, self.buffer = request, shared, b""
        self.sent = 0.0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._next()

    def _next(self) -> None:
        if self.shared["left"] <= 0:
            self.transport.close()
            return
        self.shared["left"] -= 1
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        total = end + 4 + content_length(self.buffer[:end])
        if len(self.buffer) < total:
            return
        if not self.buffer.startswith(b"HTTP/1.1 200"):
            self.shared["errors"] += 1
        else:
            self.shared["latencies"].append(time.perf_counter() - self.sent)
        self.buffer = self.buffer[total:]
        self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared["open"] -= 1
        if self.shared["open"] == 0:
            self.shared["done"].set()


async def _blast(host: str, port: int, request: bytes, connections: int, total: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    shared: dict[str, Any] = {"left": total, "errors": 0, "latencies": [], "open": connections,
                              "done": asyncio.Event()}
    started = time.perf_counter()
    for _ in range(connections):
        await loop.create_connection(lambda: _Client(request, shared), host, port)
    await shared["done"].wait()
    elapsed = time.perf_counter() - started
    lat = shared["latencies"]
    return {**summary_ms(lat), "rps": len(lat) / elapsed, "errors": shared["errors"]}


def throughput(base: str, quick: bool) -> dict[str, Any]:
    import uvloop

    body = chat_body(korean_prompt(1.0))
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    port = int(base.split(":")[2].split("/")[0])
    total = 4000 if quick else 16000

    async def run() -> dict[str, Any]:
        await _blast("127.0.0.1", port, request, CONNECTIONS, CONNECTIONS * 8)        # warm-up
        return await _blast("127.0.0.1", port, request, CONNECTIONS, total)

    return uvloop.run(run())


def run_workers(upstream: str, config: dict[str, Any], quick: bool) -> dict[str, Any]:
    """rps with 1 worker, then 2, then 1 again (the pair brackets drift on a shared machine)."""
    pin_self(None)
    out: dict[str, Any] = {"connections": CONNECTIONS, "cpus": os.cpu_count()}
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for workers in (1, 2, 1, 2):
        with served(config, workers) as gw:
            runs[workers].append(throughput(gw, quick))
    for workers, results in runs.items():
        best = max(results, key=lambda r: r["rps"])
        out[f"workers_{workers}"] = {**best, "all_rps": [r["rps"] for r in results]}
    out["ratio"] = out["workers_2"]["rps"] / out["workers_1"]["rps"]
    return out


def report_workers(mode: str, res: dict[str, Any]) -> None:
    t = Table(title=f"nuri serve --workers ({mode}), {res['connections']} connections, {res['cpus']} cores, "
                    "load generator and upstream on the same cores")
    for col in ("workers", "requests/s", "p50 ms", "p99 ms", "errors"):
        t.add_column(col)
    for n in (1, 2):
        r = res[f"workers_{n}"]
        t.add_row(str(n), f"{r['rps']:.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}", str(r["errors"]))
    console.print(t)
    console.print(f"2 workers / 1 worker: {res['ratio']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--mode", default="full", help="full (policy + ledger) or core")
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)      # the lean upstream's own process
    args = parser.parse_args()
    if args.upstream:
        lean_upstream(args.upstream)
        return
    from overhead import gateway_config

    with lean_upstream_process() as upstream:
        res = run_workers(upstream, gateway_config(upstream, args.mode), args.quick)
    report_workers(args.mode, res)
    console.print(f"results: {write_result('workers', {args.mode: res})}")


if __name__ == "__main__":
    main()
