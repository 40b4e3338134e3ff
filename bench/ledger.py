"""Ledger cost: the gateway's added latency with the ledger off, on SQLite, and on PostgreSQL + Redis.

Same run, same upstream, same load: 200 requests/s (open loop) of a 1 KB Korean chat request,
with policy off so only the ledger differs. With the ledger on, every request carries a team key
with rpm, tpm and budget limits, so authentication, admission (counters), settlement and the
durable audit append (group commit) all run. Every mode's gateway runs at once; at 200 req/s the
upstream called directly and each gateway take turns in ten rounds, latencies pooled per target.
Overhead = gateway p50/p99 − direct p50/p99. Ratio = mode / ledger-off. Each gateway's CPU time
per request over its own 200 req/s rounds (all threads, /proc schedstat; min and median over the
rounds) is reported beside it: on a shared machine it moves far less than latency does.

    .venv/bin/python bench/ledger.py [--quick] [--seconds S] [--modes off,sqlite,postgres_redis]

Modes: off | sqlite | sqlite_fsync | postgres_redis | postgres_redis_fsync | postgres_redis_resp.
Plain modes run the defaults: `durability: process` (an acknowledged record is in the replica's
local audit spool and reaches the chain a moment later), key rows cached under the key-epoch lease,
Redis quota leased per replica. "_fsync": `durability: fsync`, each record committed and flushed
before the answer. "postgres_redis_resp" is the A/B arm of postgres_redis: the same gateway with
the counters' Redis calls sent over a hand-written RESP client (one pipelined socket, hiredis
parsing; `RespClient` below) instead of redis-py's `redis.asyncio` (pooled, hiredis parsing).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    _open_loop_raw,
    chat_body,
    closed_loop,
    gateway_process,
    korean_prompt,
    make_sender,
    pin_self,
    summary_ms,
    upstream_process,
    write_result,
)
from conversation import cpu_ns, port_pid
from nuri.config import LedgerSettings
from nuri.ledger import Ledger

console = Console()
PG_URL = os.environ.get("NURI_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("NURI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ENV = {"NURI_AUDIT_HMAC_KEY": "bench-hmac", "NURI_AUDIT_SIGNING_KEY": "bench-signing"}
MODES = ("off", "sqlite", "sqlite_fsync", "postgres_redis", "postgres_redis_fsync", "postgres_redis_resp")
FSYNC = {"durability": "fsync"}
GATEWAY_CPU: int | None = 0   # --no-pin: let the gateway use both cores


@contextlib.contextmanager
def ledger_settings(mode: str) -> Iterator[dict[str, Any] | None]:
    """The `ledger:` config section for a mode, with PostgreSQL schema / Redis keys cleaned after."""
    if mode == "off":
        yield None
    elif mode == "sqlite":
        yield {"enabled": True}
    elif mode == "sqlite_fsync":
        yield {"enabled": True, **FSYNC}
    else:
        schema, prefix = f"nuri_bench_{secrets.token_hex(4)}", f"nuri_bench_{secrets.token_hex(4)}:"
        try:
            yield {"enabled": True, "database_url": PG_URL, "db_schema": schema, "redis_url": REDIS_URL,
                   "redis_prefix": prefix, **(FSYNC if mode.endswith("_fsync") else {})}
        finally:
            import psycopg
            import redis

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)


async def create_key(settings: dict[str, Any], data_dir: Path) -> str:
    led = await Ledger.open(LedgerSettings(**settings), data_dir)
    try:
        new = await led.create_key("bench", budget=1e9, rpm=10**7, tpm=10**10, team_rpm=10**7, team_tpm=10**10)
        return new.key
    finally:
        await led.close()


@contextlib.asynccontextmanager
async def gateway_for(mode: str, upstream: str) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A gateway with this mode's ledger in front of `upstream`: (base URL, request headers)."""
    with ledger_settings(mode) as ledger, tempfile.TemporaryDirectory(prefix="nuri-bench-ledger-") as tmp:
        data_dir = Path(tmp) / "data"
        config = {
            "deployments": [{"id": "fast", "provider": "openai_compatible", "model": "m", "base_url": upstream,
                             "jurisdiction": "KR", "hosting": "domestic_cloud", "max_concurrency": 256,
                             "price": {"input_per_mtok": 0.5, "output_per_mtok": 1.5}}],
            "aliases": {"default": ["fast"]},
            "policy": {"enabled": False},
            "ledger": ledger or {"enabled": False},
        }
        headers: dict[str, str] = {}
        if ledger is not None:
            os.environ.update(ENV)
            headers["Authorization"] = "Bearer " + await create_key(ledger, data_dir)
        launch = resp_gateway_process if mode.endswith("_resp") else gateway_process
        with launch(config, cpu=GATEWAY_CPU, env=ENV, data_dir=data_dir) as gw:
            yield gw, headers


# --- the A/B arm: the counters over a hand-written RESP client -------------------------------
# The client the counters used until the A/B showed it does not matter at the gateway (leases leave
# a few Redis calls per hundred requests), kept here, trimmed to TCP without AUTH or TLS, so the
# comparison can be run again.


class ReplyError(Exception):
    """An error reply from Redis, e.g. NOSCRIPT."""


def _encode(args: tuple[Any, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _RespProtocol(asyncio.Protocol):
    """One socket; replies parsed by hiredis and handed to the callers in the order sent."""

    def __init__(self) -> None:
        import hiredis

        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(encoding="utf-8", replyError=ReplyError)
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            fut = self.waiting.popleft()
            if not fut.done():
                (fut.set_exception if isinstance(reply, ReplyError) else fut.set_result)(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(ConnectionError("the connection to Redis was lost"))


class RedisLink:
    """`call` and `pipeline` over one shared, pipelined connection."""

    def __init__(self, url: str) -> None:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        self.host, self.port = parsed.hostname or "localhost", parsed.port or 6379
        self.db = int(parsed.path.strip("/") or 0)
        self.proto: _RespProtocol | None = None
        self.connecting = asyncio.Lock()

    async def call(self, *args: Any) -> Any:
        proto = await self._connected()
        return await asyncio.wait_for(self._send(proto, [args])[0], 5.0)

    async def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        proto = await self._connected()
        return list(await asyncio.wait_for(asyncio.gather(*self._send(proto, commands), return_exceptions=True), 5.0))

    def _send(self, proto: _RespProtocol, commands: list[tuple[Any, ...]]) -> list[asyncio.Future[Any]]:
        futs = [asyncio.get_running_loop().create_future() for _ in commands]
        proto.waiting.extend(futs)
        assert proto.transport is not None
        proto.transport.write(b"".join(_encode(c) for c in commands))
        return futs

    async def _connected(self) -> _RespProtocol:
        async with self.connecting:
            if self.proto is None or self.proto.lost:
                _, self.proto = await asyncio.get_running_loop().create_connection(_RespProtocol, self.host, self.port)
                if self.db:
                    await self._send(self.proto, [("SELECT", self.db)])[0]
            return self.proto

    async def close(self) -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()


class _RespScript:
    """What the counters call of a redis-py Script: `await script(keys, args, client=pipe)`."""

    def __init__(self, link: Any, text: str) -> None:
        import hashlib

        self.link, self.text = link, text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, keys: list[Any], args: list[Any], client: Any = None) -> Any:
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        if client is not None:           # a pipeline: queued, sent at execute()
            client.queued.append((self, command))
            return client
        return await self.link.call_script(self, command)


class _RespPipeline:
    def __init__(self, link: Any) -> None:
        self.link, self.queued = link, []

    async def __aenter__(self) -> _RespPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self) -> list[Any]:
        return await self.link.pipeline_scripts(self.queued)


class RespClient:
    """The part of redis-py's client the counters use, over `RedisLink`: scripts by EVALSHA with
    SCRIPT LOAD on NOSCRIPT."""

    def __init__(self, url: str) -> None:
        self.link = RedisLink(url)

    def register_script(self, text: str) -> _RespScript:
        return _RespScript(self, text)

    def pipeline(self, transaction: bool = False) -> _RespPipeline:
        return _RespPipeline(self)

    async def call_script(self, script: _RespScript, command: tuple[Any, ...]) -> Any:
        try:
            return await self.link.call(*command)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.link.call("SCRIPT", "LOAD", script.text)
        return await self.link.call(*command)

    async def pipeline_scripts(self, queued: list[tuple[_RespScript, tuple[Any, ...]]]) -> list[Any]:
        replies = await self.link.pipeline([c for _, c in queued])
        if any(isinstance(r, ReplyError) and str(r).startswith("NOSCRIPT") for r in replies):
            for text in {s.text for s, _ in queued}:
                await self.link.call("SCRIPT", "LOAD", text)
            replies = await self.link.pipeline([c for _, c in queued])
        for r in replies:
            if isinstance(r, BaseException):
                raise r
        return replies

    async def set(self, key: str, value: Any, nx: bool = False, ex: int | None = None) -> Any:
        return await self.link.call("SET", key, value, *(("NX",) if nx else ()), *(("EX", ex) if ex else ()))

    async def aclose(self) -> None:
        await self.link.close()


def use_resp_client() -> None:
    """In a gateway process: the counters connect through RespClient."""
    from nuri.ledger.quota import redis_counters

    redis_counters.connect = lambda url, reply_timeout=5.0: RespClient(url)  # type: ignore[assignment,return-value]


@contextlib.contextmanager
def resp_gateway_process(config: dict[str, Any], cpu: int | None = 0, env: dict[str, str] | None = None,
                         data_dir: Path | None = None) -> Iterator[str]:
    """`common.gateway_process`, with the counters on RespClient: `nuri serve` started through a
    prelude that swaps the client in before the gateway opens its ledger."""
    import subprocess

    import yaml

    from common import free_port, pin, wait_http

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nuri-bench-") as tmp:
        cfg = Path(tmp) / "nuri.yaml"
        cfg.write_text(yaml.safe_dump(config, allow_unicode=True))
        prelude = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
                   "import ledger; ledger.use_resp_client(); from nuri.cli import main; "
                   "sys.argv[0] = 'nuri'; main()")
        cmd = [*pin(cpu), sys.executable, "-c", prelude, "serve", "--config", str(cfg), "--port", str(port),
               "--data-dir", str(data_dir or Path(tmp) / "data")]
        with open(Path(tmp) / "serve.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ, **(env or {})})
            try:
                wait_http(f"http://127.0.0.1:{port}/readyz")
                yield f"http://127.0.0.1:{port}/v1"
            finally:
                proc.terminate()
                proc.wait(15)


def error_sampling(send: Callable[[], Awaitable[None]], samples: list[str]) -> Callable[[], Awaitable[None]]:
    async def sampled() -> None:
        try:
            await send()
        except Exception as exc:
            if len(samples) < 5:
                samples.append(f"{type(exc).__name__}: {str(exc)[:160]}")
            raise
    return sampled


async def run_modes(modes: list[str], upstream: str, seconds: float, n1: int) -> dict[str, Any]:
    """Every mode's gateway at once beside the direct upstream. At 200 req/s the targets take turns
    in ten rounds, latencies pooled per target, so each mode and the baseline see the same
    machine; on a shared virtual machine one long run per mode compares different moments."""
    body = chat_body(korean_prompt(1.0))
    async with contextlib.AsyncExitStack() as stack:
        targets: dict[str, tuple[str, dict[str, str]]] = {"direct": (upstream, {})}
        for mode in modes:
            targets[mode] = await stack.enter_async_context(gateway_for(mode, upstream))
        session = await stack.enter_async_context(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)))
        samples: dict[str, list[str]] = {name: [] for name in targets}
        sends = {name: error_sampling(make_sender(session, url + "/chat/completions", body, headers), samples[name])
                 for name, (url, headers) in targets.items()}
        c1: dict[str, Any] = {}
        for name, send in sends.items():
            console.print(f"[bold]{name}[/bold] …")
            await closed_loop(send, 4, 200)                     # warm-up
            c1[name] = await closed_loop(send, 1, n1)
        pids = {name: port_pid(url) for name, (url, _h) in targets.items() if name != "direct"}
        rate200, cpu = await interleaved_with_cpu(sends, pids, 200, seconds * len(sends), rounds=10)
    direct = {"c1": c1["direct"], "rate200": rate200["direct"]}
    out: dict[str, Any] = {}
    for mode in modes:
        via = {"c1": c1[mode], "rate200": rate200[mode], "error_samples": samples[mode]}
        added = {
            "c1_p50": via["c1"]["p50"] - direct["c1"]["p50"], "c1_p99": via["c1"]["p99"] - direct["c1"]["p99"],
            "rate200_p50": via["rate200"]["p50"] - direct["rate200"]["p50"],
            "rate200_p99": via["rate200"]["p99"] - direct["rate200"]["p99"],
        }
        out[mode] = {"direct": direct, "gateway": via, "added_ms": added, "cpu_ms_per_request": cpu[mode],
                     "errors": via["c1"]["errors"] + via["rate200"]["errors"]}
    return out


async def interleaved_with_cpu(sends: dict[str, Callable[[], Awaitable[None]]], pids: dict[str, int], rate: float,
                               seconds: float, rounds: int) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """`open_loop_interleaved`, plus each gateway's CPU time over its own rounds per request
    served (all threads, /proc schedstat): min and median over the rounds. CPU time moves far
    less than latency with other load on a shared machine."""
    pooled: dict[str, list[float]] = {name: [] for name in sends}
    errors = dict.fromkeys(sends, 0)
    busy = dict.fromkeys(sends, 0.0)
    per_round: dict[str, list[float]] = {name: [] for name in pids}
    for _ in range(rounds):
        for name, send in sends.items():
            before = cpu_ns(pids[name]) if name in pids else 0
            latencies, errs, elapsed = await _open_loop_raw(send, rate, seconds / rounds)
            if name in pids and latencies:
                per_round[name].append((cpu_ns(pids[name]) - before) / len(latencies) / 1e6)
            pooled[name] += latencies
            errors[name] += errs
            busy[name] += elapsed
    result = {name: {**summary_ms(pooled[name]), "achieved_rps": len(pooled[name]) / busy[name],
                     "errors": errors[name], "rounds": rounds} for name in sends}
    cpu = {name: {"min": round(min(v), 4), "median": round(statistics.median(v), 4)} if v else None
           for name, v in per_round.items()}
    return result, cpu


async def measure_calls(mode: str, n: int) -> dict[str, Any]:
    """The ledger's own calls in this process: authenticate, admit, finish (sequential: one commit
    per record; then n finishes at once: group commit shares the commits)."""
    import time

    from nuri.ledger import AuditRecord

    with ledger_settings(mode) as settings, tempfile.TemporaryDirectory(prefix="nuri-bench-calls-") as tmp:
        assert settings is not None
        os.environ.update(ENV)
        led = await Ledger.open(LedgerSettings(**settings), Path(tmp))
        try:
            new = await led.create_key("bench", budget=1e9, rpm=10**7, tpm=10**10, team_rpm=10**7)
            header = "Bearer " + new.key
            spent = {"authenticate": 0.0, "admit": 0.0, "finish": 0.0}
            for i in range(n):
                t0 = time.perf_counter()
                p = await led.authenticate(header)
                t1 = time.perf_counter()
                adm = await led.admit(p, 300)
                t2 = time.perf_counter()
                await led.finish(adm, AuditRecord(request_id=f"s{i}", endpoint="chat", team="bench", key_id=new.key_id,
                                                  prompt_tokens=200, completion_tokens=20, cost=0.0001))
                t3 = time.perf_counter()
                spent["authenticate"] += t1 - t0
                spent["admit"] += t2 - t1
                spent["finish"] += t3 - t2
            out = {f"{k}_ms": v / n * 1000 for k, v in spent.items()}
            t0 = time.perf_counter()
            await asyncio.gather(*[led.finish(None, AuditRecord(request_id=f"c{i}", endpoint="chat", team="bench"))
                                   for i in range(n)])
            out["finish_concurrent_ms_per_record"] = (time.perf_counter() - t0) / n * 1000
            return out
        finally:
            await led.close()


async def main_async(modes: list[str], seconds: float, n1: int) -> dict[str, Any]:
    pin_self(1)   # load generator beside the upstream; the gateway has core 0 to itself
    out: dict[str, Any] = {"modes": {}, "calls": {}}
    for mode in modes:
        if mode != "off" and not mode.endswith("_resp"):
            out["calls"][mode] = await measure_calls(mode, 200)
    with upstream_process(cpu=1) as upstream:
        out["modes"] = await run_modes(modes, upstream, seconds, n1)
    if "postgres_redis" in out["modes"] and "postgres_redis_resp" in out["modes"]:
        a, b = out["modes"]["postgres_redis_resp"]["added_ms"], out["modes"]["postgres_redis"]["added_ms"]
        out["ab_redis_client"] = {"resp_added_ms": a, "redis_asyncio_added_ms": b,
                                  "redis_asyncio_over_resp": {k: (b[k] / a[k]) if a[k] > 0 else None for k in a}}
    base = out["modes"].get("off")
    if base:
        out["ratio_vs_off"] = {}
        for mode, res in out["modes"].items():
            out["ratio_vs_off"][mode] = {
                k: (res["added_ms"][k] / base["added_ms"][k]) if base["added_ms"][k] > 0 else None
                for k in ("c1_p50", "rate200_p50", "rate200_p99")
            }
            if res.get("cpu_ms_per_request") and base.get("cpu_ms_per_request"):
                out["ratio_vs_off"][mode]["cpu_median"] = (res["cpu_ms_per_request"]["median"]
                                                           / base["cpu_ms_per_request"]["median"])
    return out


def report(res: dict[str, Any]) -> None:
    calls = Table(title="ledger calls in process (ms; sequential, and per record when 200 finish at once)")
    for col in ("mode", "authenticate", "admit", "finish", "finish ×200 concurrent"):
        calls.add_column(col)
    for mode, c in res.get("calls", {}).items():
        calls.add_row(mode, f"{c['authenticate_ms']:.3f}", f"{c['admit_ms']:.3f}", f"{c['finish_ms']:.3f}",
                      f"{c['finish_concurrent_ms_per_record']:.3f}")
    console.print(calls)
    t = Table(title="gateway overhead by ledger mode (1 KB Korean chat, policy off)")
    for col in ("mode", "added c1 p50 ms", "added 200/s p50 ms", "added 200/s p99 ms", "achieved rps",
                "ratio p50 @200/s vs off", "CPU ms/request @200/s (median / min)", "ratio CPU vs off", "errors"):
        t.add_column(col)
    for mode, r in res["modes"].items():
        ratios = res.get("ratio_vs_off", {}).get(mode, {})
        ratio, cpu_ratio, cpu = ratios.get("rate200_p50"), ratios.get("cpu_median"), r.get("cpu_ms_per_request")
        t.add_row(mode, f"{r['added_ms']['c1_p50']:.3f}", f"{r['added_ms']['rate200_p50']:.3f}",
                  f"{r['added_ms']['rate200_p99']:.3f}", f"{r['gateway']['rate200']['achieved_rps']:.0f}",
                  "-" if ratio is None else f"{ratio:.2f}×",
                  "-" if not cpu else f"{cpu['median']:.3f} / {cpu['min']:.3f}",
                  "-" if cpu_ratio is None else f"{cpu_ratio:.2f}×", str(r["errors"]))
    console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--no-pin", action="store_true", help="do not pin the gateway to core 0")
    args = parser.parse_args()
    if args.no_pin:
        global GATEWAY_CPU
        GATEWAY_CPU = None
    seconds = args.seconds or (4.0 if args.quick else 10.0)
    n1 = 300 if args.quick else 1000
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {', '.join(MODES)}")
    res = asyncio.run(main_async(modes, seconds, n1))
    res["settings"] = {"seconds": seconds, "c1_requests": n1, "rate": 200, "gateway_pinned": GATEWAY_CPU is not None}
    report(res)
    console.print(f"results: {write_result('ledger', res)}")


if __name__ == "__main__":
    main()
