"""Shared benchmark plumbing: processes on loopback, CPU pinning, load drivers, reporting.

Every benchmark compares against a baseline measured in the same run (for the gateway: the same
upstream called directly), prints the ratio, and writes JSON under bench/results/.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# The real peers benchmarks share with the tests (an OpenAI-compatible upstream, `nuri serve`
# processes, the boundary harness) are test material: tests/support, not part of the package.
SUPPORT = ROOT / "tests" / "support"
if str(SUPPORT.parent) not in sys.path:
    sys.path.insert(0, str(SUPPORT.parent))
CPUS = os.cpu_count() or 1


def pin(cpu: int | None) -> list[str]:
    """`taskset` prefix: the gateway on one core, load and upstream on the other (as REFERENCE §5)."""
    if cpu is None or CPUS < 2 or not shutil_which("taskset"):
        return []
    return ["taskset", "-c", str(cpu % CPUS)]


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def pin_self(cpu: int | None) -> None:
    """Pin this process to one core, or with None let it use them all again."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, set(range(CPUS)) if cpu is None else {cpu % CPUS})


def free_port() -> int:
    from support.upstream_server import free_port as fp

    return fp()


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


@contextlib.contextmanager
def upstream_process(cpu: int = 1, latency_ms: float = 0.0) -> Iterator[str]:
    port = free_port()
    cmd = [*pin(cpu), sys.executable, str(SUPPORT / "upstream_server.py"), "--port", str(port), "--no-record",
           "--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def gateway_process(config: dict[str, Any], cpu: int | None = 0, env: dict[str, str] | None = None,
                    data_dir: Path | None = None) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nuri-bench-") as tmp:
        cfg = Path(tmp) / "nuri.yaml"
        cfg.write_text(yaml.safe_dump(config, allow_unicode=True))
        cmd = [*pin(cpu), sys.executable, "-m", "nuri", "serve", "--config", str(cfg), "--port", str(port),
               "--data-dir", str(data_dir or Path(tmp) / "data")]
        log = open(Path(tmp) / "serve.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ, **(env or {})})
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz")
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            proc.terminate()
            proc.wait(15)
            log.close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(latencies_s: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in latencies_s]
    return {"n": len(ms), "p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99),
            "mean": statistics.fmean(ms) if ms else float("nan")}


async def closed_loop(send: Callable[[], Awaitable[None]], concurrency: int, total: int) -> dict[str, Any]:
    """`concurrency` workers send back to back until `total` requests are done."""
    latencies: list[float] = []
    errors = 0
    remaining = total

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            try:
                await send()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {**summary_ms(latencies), "rps": len(latencies) / elapsed, "errors": errors}


async def open_loop(send: Callable[[], Awaitable[None]], rate: float, seconds: float) -> dict[str, Any]:
    """Requests started on a fixed schedule (`rate` per second), whatever the latency."""
    latencies, errors, elapsed = await _open_loop_raw(send, rate, seconds)
    return {**summary_ms(latencies), "achieved_rps": len(latencies) / elapsed, "errors": errors}


async def open_loop_interleaved(sends: dict[str, Callable[[], Awaitable[None]]], rate: float, seconds: float,
                                rounds: int) -> dict[str, dict[str, Any]]:
    """`open_loop` for several targets in alternating rounds, latencies pooled per target.

    On a shared virtual machine the cost of waking an idle core drifts from minute to minute;
    alternating short rounds exposes the baseline and the gateway to the same drift, where one
    long run each would compare two different moments."""
    pooled: dict[str, list[float]] = {name: [] for name in sends}
    errors = dict.fromkeys(sends, 0)
    busy = dict.fromkeys(sends, 0.0)
    for _ in range(rounds):
        for name, send in sends.items():
            latencies, errs, elapsed = await _open_loop_raw(send, rate, seconds / rounds)
            pooled[name] += latencies
            errors[name] += errs
            busy[name] += elapsed
    return {name: {**summary_ms(pooled[name]), "achieved_rps": len(pooled[name]) / busy[name],
                   "errors": errors[name], "rounds": rounds} for name in sends}


async def _open_loop_raw(send: Callable[[], Awaitable[None]], rate: float,
                         seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    interval = 1.0 / rate
    count = int(rate * seconds)

    async def one() -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            await send()
        except Exception:
            errors += 1
            return
        latencies.append(time.perf_counter() - t0)

    tasks = []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies, errors, time.perf_counter() - start


def chat_body(prompt: str, *, stream: bool = False, max_tokens: int = 16) -> bytes:
    body: dict[str, Any] = {"model": "default", "messages": [{"role": "user", "content": prompt}],
                            "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
    return json.dumps(body, ensure_ascii=False).encode()


_TEXT_STARTS = (b'"content": "', b'"input": "')     # chat and Messages; Responses with a string input


def numbered(body: bytes) -> Callable[[int], bytes]:
    """`body` with a number at the start of its first text (a chat or Messages `content`, a
    Responses string `input`): each request's text is then new to the gateway, as in real
    traffic, and no cache of earlier scans can answer it. A body without such a text is kept."""
    at = min((i for i in (body.find(m) + len(m) for m in _TEXT_STARTS if m in body)), default=-1)
    if at < 0:
        return lambda _number: body
    return lambda number: body[:at] + b"%d. " % number + body[at:]


def make_sender(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str] | None = None,
                ttft: list[float] | None = None, *, fresh: bool = True) -> Callable[[], Awaitable[None]]:
    """A coroutine function that sends `body` once per call. `fresh`: each request's first message
    starts with its own number (`numbered`); bench/conversation.py measures what a cache of
    earlier scans buys by sending the same texts again."""
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    numbers = itertools.count()
    with_number = numbered(body) if fresh else (lambda _number: body)

    async def send() -> None:
        data = with_number(next(numbers))
        t0 = time.perf_counter()
        async with session.post(url, data=data, headers=hdrs) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:200]}")
            if ttft is not None:
                await resp.content.readany()
                ttft.append(time.perf_counter() - t0)
            await resp.read()

    return send


def korean_prompt(kilobytes: float = 1.0) -> str:
    """A realistic Korean customer-service text of about the given UTF-8 size, with no personal data."""
    base = ("안녕하세요. 지난주에 주문한 상품의 배송 일정이 궁금해서 문의드립니다. 주문 내역에서는 출고 준비 중으로 "
            "표시되는데, 언제쯤 받아볼 수 있을까요? 그리고 교환이나 반품 절차도 함께 안내해 주시면 감사하겠습니다. ")
    target = int(kilobytes * 1024)
    text = ""
    while len(text.encode()) < target:
        text += base
    return text.encode()[:target].decode(errors="ignore")


@contextlib.contextmanager
def worktrees(revisions: dict[str, str], where: Path) -> Iterator[dict[str, Path]]:
    """A detached git worktree of each revision under `where` (by side name), removed afterwards:
    a baseline served from its own `src/` beside this tree."""
    trees = {side: where / side for side in revisions}
    try:
        for side, rev in revisions.items():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(trees[side]), rev],
                           check=True, capture_output=True)
        yield trees
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": CPUS, "python": platform.python_version(), "platform": platform.platform()},
            **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    return path


def content_length(head: bytes) -> int:
    """The Content-Length of an HTTP message head (0 when absent)."""
    low = head.lower()
    at = low.find(b"content-length:")
    if at < 0:
        return 0
    end = low.find(b"\r\n", at)
    return int(low[at + 15: end if end >= 0 else None].strip())


class LeanUpstream(asyncio.Protocol):
    """A lean keep-alive HTTP/1.1 upstream on asyncio's protocol layer: each request is answered
    with `answer(body)` (whole response bytes). An aiohttp server costs about as much per request
    as the gateway's pipeline, so benchmarks that must not measure their upstream use this."""

    def answer(self, body: bytes) -> bytes:
        raise NotImplementedError

    def connection_made(self, transport: Any) -> None:
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            total = end + 4 + content_length(self.buffer[:end])
            if len(self.buffer) < total:
                return
            body, self.buffer = self.buffer[end + 4:total], self.buffer[total:]
            self.transport.write(self.answer(body))


def serve_lean(protocol: Callable[[], asyncio.Protocol], port: int, *, fast_loop: bool = False) -> None:
    """Serve `protocol` on 127.0.0.1:port until killed (run in its own process; `fast_loop`: uvloop)."""
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    if fast_loop:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


@contextlib.contextmanager
def lean_process(script: str, cpu: int | None = None) -> Iterator[str]:
    """Run `script --upstream PORT` (a benchmark serving its lean upstream); yields its base URL."""
    port = free_port()
    proc = subprocess.Popen([*pin(cpu), sys.executable, script, "--upstream", str(port)])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)
