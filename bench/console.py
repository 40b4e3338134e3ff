"""Console pages with a million audit records, and what the audit index costs the writer.

Two parts, both reported in bench/results/console.json:

- Audit writes (`--writes N`, 0 to skip): the ledger's own write path in-process, group commit
  (`durability: fsync`) on SQLite, N records from 32 concurrent finishers, with the audit indexer
  stopped ("no index") and running as in the gateway ("indexer"), alternating over `--rounds`
  rounds in the same run; records/s and process CPU per record, and the indexer's own rate on the
  records it had not reached yet. The index must cost the writer nothing measurable.
- Pages (`--records N`, 0 to skip): a trail of N request records (valid hashes, signed head)
  written straight into a fresh SQLite ledger, then indexed by the indexer's catch-up from
  nothing, as on the first start after an upgrade (its rate reported apart), then a real
  `nuri serve`, signed in to /console, times each page over HTTP, the audit browser with its
  filters (common and rare values, a time range, a deep keyset page) included. Every page must
  render in under 200 ms. The verify action, a walk of the whole chain, is timed once and
  reported apart: it is a button, not a page.

    .venv/bin/python bench/console.py [--records 1000000] [--repeat 15] [--writes 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))          # support/: the real upstream and `nuri serve` processes

from nuri.config import LedgerSettings  # noqa: E402
from nuri.ledger.audit.indexer import AuditIndexer  # noqa: E402
from nuri.ledger.audit.records import AuditRecord, canonical, chain_hash  # noqa: E402
from nuri.ledger.audit.secrets import Keys  # noqa: E402
from nuri.ledger.service import Ledger  # noqa: E402
from support.processes import GatewayProcess, upstream_deployment  # noqa: E402
from support.upstream_server import RunningUpstream  # noqa: E402

ADMIN = "bench-console-admin"
HMAC = "bench-hmac-key-0123456789"
TEAMS = [f"team-{i:02d}" for i in range(20)]
DEPLOYMENTS = [("kr", "KR"), ("us", "US"), ("kr2", "KR"), ("eu", "DE")]
RULES = ["pipa-personal-abroad-pseudonymized", "pipa-rrn-domestic-only", "n2sf-secret-on-prem",
         "pipa-sensitive-domestic", "pipa-health-domestic"]
RARE_RULE = "bench-rare-rule"          # one record in 100,000


def make_record(rng: random.Random, seq: int, at: float | None = None) -> AuditRecord:
    """A request record as the gateway writes them: mostly allowed, 30% masked, 10% blocked."""
    roll = rng.random()
    dep, juris = DEPLOYMENTS[rng.randrange(len(DEPLOYMENTS))]
    action, rules = "allow", []
    if roll < 0.3:
        action, rules = "pseudonymize", [RULES[0]]
    elif roll < 0.4:
        action, rules, dep, juris = "block", [rng.choice(RULES[1:])], None, None
    if seq % 100_000 == 50_000:
        rules = [*rules, RARE_RULE]
    return AuditRecord(request_id=f"req-{seq:08d}", endpoint="/v1/chat/completions", team=rng.choice(TEAMS),
                       key_id=f"key{rng.randrange(200):04d}", model_requested="default", action=action,
                       rule_ids=rules, deployment=dep, jurisdiction=juris, prompt_tokens=rng.randrange(20, 400),
                       completion_tokens=rng.randrange(0, 300), cost=rng.random() / 1000,
                       latency_ms=rng.uniform(80, 900), status=403 if action == "block" else 200,
                       outcome="blocked" if action == "block" else "ok", **({"time": at} if at is not None else {}))


def build_trail(data_dir: Path, n: int, days: float = 30.0) -> float:
    """N request records over the last `days`, chained and signed; returns seconds taken."""
    started = time.perf_counter()
    os.environ["NURI_AUDIT_HMAC_KEY"] = HMAC

    async def migrate() -> None:
        ledger = await Ledger.open(LedgerSettings(), data_dir)
        await ledger.close()

    asyncio.run(migrate())
    keys = Keys.load(data_dir)
    rng = random.Random(7)
    db = sqlite3.connect(data_dir / "nuri.db", isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    now = time.time()
    t0 = now - days * 86400
    prev, seq, batch = "0" * 64, 0, []
    db.execute("BEGIN")
    for i in range(n):
        seq += 1
        record = make_record(rng, i, t0 + (now - t0) * i / n)
        body = record.to_body()
        text = canonical(body)
        digest = chain_hash(seq, prev, text)
        batch.append((seq, body["time"], "request", record.request_id, record.team, prev, digest, text))
        prev = digest
        if len(batch) == 20_000:
            db.executemany("INSERT INTO audit_log (seq, time, kind, request_id, team, prev_hash, hash, body) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
            batch.clear()
    if batch:
        db.executemany("INSERT INTO audit_log (seq, time, kind, request_id, team, prev_hash, hash, body) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
    db.execute("UPDATE audit_head SET seq = ?, hash = ?, sig = ?, checkpoint_seq = 0, checkpoint_time = ? WHERE id = 1",
               (seq, prev, keys.sign(seq, prev), now))
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - started


def index_trail(data_dir: Path) -> dict[str, Any]:
    """The first catch-up over a trail nothing has indexed yet (what an upgrade does in the
    background): wall and CPU time, records/s."""

    async def run() -> dict[str, Any]:
        ledger = await Ledger.open(LedgerSettings(), data_dir)
        await ledger.indexer.stop()                      # the loop below is the only indexer
        try:
            indexer = AuditIndexer(ledger.db)
            started, cpu = time.perf_counter(), time.process_time()
            while await indexer.catch_up(100_000):
                pass
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            facets = (await ledger.db.run_raw(lambda c: c.one("SELECT COUNT(*) FROM audit_facet"), tx=False))[0]
            return {"records": indexer.indexed, "seconds": round(wall, 1),
                    "records_per_s": round(indexer.indexed / wall) if wall else None,
                    "cpu_us_per_record": round(cpu / max(indexer.indexed, 1) * 1e6, 1), "facet_rows": facets}
        finally:
            await ledger.close()

    return asyncio.run(run())


async def _write_round(data_dir: Path, n: int, index: bool, seed: int, *, concurrency: int = 32,
                       rate: float | None = None) -> dict[str, Any]:
    """N records through `Ledger.finish` (group commit), with the background indexer on or off:
    as fast as `concurrency` finishers go, or paced at `rate` records/s (each one's wait measured
    from its scheduled start, as a request would see it)."""
    ledger = await Ledger.open(LedgerSettings(durability="fsync"), data_dir)
    try:
        if not index:
            await ledger.indexer.stop()
        rng = random.Random(seed)
        batch = [make_record(rng, i) for i in range(n)]
        records = iter(batch)
        waits: list[float] = []
        await asyncio.sleep(0)

        async def finisher() -> None:
            for record in records:
                await ledger.finish(None, record)

        async def one(record: AuditRecord, due: float) -> None:
            await ledger.finish(None, record)
            waits.append((time.perf_counter() - due) * 1000)

        async def paced(per_second: float) -> None:
            tasks, start = [], time.perf_counter()
            for i, record in enumerate(batch):
                due = start + i / per_second
                if (delay := due - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(record, due)))
            await asyncio.gather(*tasks)

        started, cpu = time.perf_counter(), time.process_time()
        if rate:
            await paced(rate)
        else:
            await asyncio.gather(*(finisher() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        indexer_cpu = ledger.indexer.cpu_seconds
        out: dict[str, Any] = {"records_per_s": round(n / wall), "cpu_us_per_record": round(cpu / n * 1e6, 1),
                               "write_cpu_us_per_record": round((cpu - indexer_cpu) / n * 1e6, 1),
                               "indexed_during": ledger.indexer.indexed,
                               "indexer_cpu_us_per_record": round(indexer_cpu / max(ledger.indexer.indexed, 1) * 1e6, 1)}
        if waits:
            waits.sort()
            out.update(p50_ms=round(waits[len(waits) // 2], 2), p99_ms=round(waits[int(len(waits) * 0.99)], 2),
                       max_ms=round(waits[-1], 2))
        if index:                                         # the indexer's own rate on what it had not reached
            await ledger.indexer.stop()
            tail, t, c = AuditIndexer(ledger.db), time.perf_counter(), time.process_time()
            while await tail.catch_up(100_000):
                pass
            t, c = time.perf_counter() - t, time.process_time() - c
            out.update(tail=tail.indexed, tail_records_per_s=round(tail.indexed / t) if tail.indexed else None,
                       tail_cpu_us_per_record=round(c / tail.indexed * 1e6, 1) if tail.indexed else None)
        return out
    finally:
        await ledger.close()


def _arms(work: Path, name: str, n: int, rounds: int, **how: Any) -> dict[str, list[dict[str, Any]]]:
    arms: dict[str, list[dict[str, Any]]] = {"no_index": [], "indexer": []}
    for r in range(rounds):
        for arm in (("no_index", "indexer") if r % 2 == 0 else ("indexer", "no_index")):
            data_dir = work / f"{name}-{arm}-{r}"
            data_dir.mkdir()
            result = asyncio.run(_write_round(data_dir, n, arm == "indexer", seed=r, **how))
            arms[arm].append(result)
            latency = f"; wait p50 {result['p50_ms']} p99 {result['p99_ms']} ms" if "p50_ms" in result else ""
            print(f"  round {r + 1} {arm:9s} {result['records_per_s']:6d} records/s "
                  f"{result['cpu_us_per_record']:6.1f} µs CPU/record, of which writing "
                  f"{result['write_cpu_us_per_record']:6.1f}; indexed meanwhile {result['indexed_during']:6d}{latency}",
                  flush=True)
    return arms


def paced_writes(work: Path, rate: float, seconds: float, rounds: int) -> dict[str, Any]:
    """Records at a gateway's pace: the wait each one sees and the CPU per record, with and without the indexer."""
    arms = _arms(work, "paced", int(rate * seconds), rounds, rate=rate)
    summary: dict[str, Any] = {"rate_per_s": rate, "seconds": seconds, "rounds": rounds, "arms": arms}
    for arm, results in arms.items():
        for field in ("p50_ms", "p99_ms", "cpu_us_per_record", "write_cpu_us_per_record"):
            summary[f"{arm}_{field}_median"] = round(statistics.median(x[field] for x in results), 2)
    return summary


def write_rates(work: Path, n: int, rounds: int, concurrency: int = 32) -> dict[str, Any]:
    """Audit write throughput with and without the indexer, arms alternating, same run."""
    os.environ["NURI_AUDIT_HMAC_KEY"] = HMAC
    arms = _arms(work, "writes", n, rounds, concurrency=concurrency)
    summary: dict[str, Any] = {"records_per_round": n, "rounds": rounds, "concurrency": concurrency,
                               "durability": "fsync (group commit)", "arms": arms}
    for arm, results in arms.items():
        summary[f"{arm}_records_per_s_median"] = round(statistics.median(x["records_per_s"] for x in results))
        for field in ("cpu_us_per_record", "write_cpu_us_per_record"):
            summary[f"{arm}_{field}_median"] = round(statistics.median(x[field] for x in results), 1)
    summary["ratio_indexer_to_no_index"] = round(
        summary["indexer_records_per_s_median"] / summary["no_index_records_per_s_median"], 3)
    summary["indexer_cpu_us_per_record_during_writes_median"] = round(statistics.median(
        x["indexer_cpu_us_per_record"] for x in arms["indexer"] if x["indexed_during"]) if any(
        x["indexed_during"] for x in arms["indexer"]) else 0.0, 1)
    tails = [x for x in arms["indexer"] if x.get("tail")]
    if tails:
        summary["indexer_tail_records_per_s_median"] = round(statistics.median(x["tail_records_per_s"] for x in tails))
        summary["indexer_tail_cpu_us_per_record_median"] = round(
            statistics.median(x["tail_cpu_us_per_record"] for x in tails), 1)
    return summary


def login(client: httpx.Client) -> str:
    client.get("/console/login")
    answer = client.post("/console/login", data={"csrf": client.cookies.get("nuri_console_login"),
                                                 "credential": ADMIN})
    assert answer.status_code == 303, answer.text[:500]
    page = client.get("/console/keys")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)   # type: ignore[union-attr]


def timed(client: httpx.Client, method: str, path: str, repeat: int, **kwargs: Any) -> dict[str, Any]:
    client.request(method, path, **kwargs)            # warm: templates compiled, pages cached by SQLite
    samples = []
    size = rows = 0
    for _ in range(repeat):
        t = time.perf_counter()
        answer = client.request(method, path, **kwargs)
        samples.append((time.perf_counter() - t) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        size, rows = len(answer.content), answer.text.count('class="record"')
    samples.sort()
    return {"path": path, "median_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 1), "max_ms": round(samples[-1], 1),
            "bytes": size, "audit_rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--budget-ms", type=float, default=200.0)
    parser.add_argument("--reuse", type=Path, help="a data directory an earlier run built (same --records)")
    parser.add_argument("--writes", type=int, default=50_000, help="records per write round; 0: skip")
    parser.add_argument("--rounds", type=int, default=5, help="write rounds per arm")
    parser.add_argument("--paced-rate", type=float, default=1000.0, help="records/s of the paced write rounds")
    parser.add_argument("--paced-seconds", type=float, default=8.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nuri-console-bench-"))
    out = ROOT / "bench" / "results" / "console.json"
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    report["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    if args.writes:
        print(f"audit writes: {args.writes:,} records a round, {args.rounds} rounds per arm …", flush=True)
        writes = write_rates(work, args.writes, args.rounds)
        report["audit_writes"] = writes
        print(f"paced writes: {args.paced_rate:.0f} records/s for {args.paced_seconds:.0f} s, {args.rounds} rounds "
              "per arm …", flush=True)
        report["audit_writes_paced"] = paced_writes(work, args.paced_rate, args.paced_seconds, args.rounds)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"no index {writes['no_index_records_per_s_median']} records/s, indexer "
              f"{writes['indexer_records_per_s_median']} records/s (ratio {writes['ratio_indexer_to_no_index']})",
              flush=True)
    if not args.records:
        return
    if args.reuse:
        data_dir, build_s = args.reuse, 0.0
    else:
        data_dir = work / "data"
        data_dir.mkdir()
        print(f"building {args.records:,} records in {data_dir} …", flush=True)
        build_s = build_trail(data_dir, args.records)
    print(f"built in {build_s:.0f}s; indexing …", flush=True)
    indexing = index_trail(data_dir)
    print(f"indexed {indexing['records']:,} records in {indexing['seconds']}s: {indexing['records_per_s']} records/s, "
          f"{indexing['cpu_us_per_record']} µs CPU/record", flush=True)
    db_mb = sum(p.stat().st_size for p in data_dir.glob("nuri.db*")) / 1e6
    print(f"database {db_mb:.0f} MB", flush=True)
    month_ago = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 20 * 86400))
    month_ago_end = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 19 * 86400))
    pages = ["/console/overview", "/console/overview/live", "/console/spend", "/console/deployments",
             "/console/audit", "/console/audit?team=team-07", "/console/audit?action=block",
             f"/console/audit?rule={RULES[1]}", f"/console/audit?rule={RARE_RULE}",
             "/console/audit?team=team-03&action=pseudonymize&deployment=us",
             f"/console/audit?since={month_ago}&until={month_ago_end}",
             "/console/audit?before=1000", "/console/policy", "/console/keys", "/console/evals", "/console/plan"]
    results: list[dict[str, Any]] = []
    with RunningUpstream() as up:
        config = {"deployments": [upstream_deployment(up, d, jurisdiction=j) for d, j in DEPLOYMENTS],
                  "policy": {"packs": ["kr-pipa"]}}
        gw = GatewayProcess(work, config, env={"NURI_ADMIN_KEY": ADMIN, "NURI_AUDIT_HMAC_KEY": HMAC},
                            data_dir=data_dir).start(timeout=600)
        try:
            with httpx.Client(base_url=gw.root_url, timeout=600, headers={"Accept-Language": "en"}) as client:
                csrf = login(client)
                for path in pages:
                    result = timed(client, "GET", path, args.repeat)
                    results.append(result)
                    print(f"{result['median_ms']:8.1f} ms median {result['p95_ms']:8.1f} ms p95  "
                          f"{result['audit_rows']:3d} rows  {path}", flush=True)
                explain = timed(client, "POST", "/console/policy/explain", args.repeat,
                                data={"csrf": csrf, "prompt": "제 전화번호는 010-2345-6789 입니다.", "model": "us"})
                explain["path"] = "POST /console/policy/explain"
                results.append(explain)
                print(f"{explain['median_ms']:8.1f} ms median  explain", flush=True)
                t = time.perf_counter()
                verify = client.post("/console/audit/verify", data={"csrf": csrf})
                verify_s = time.perf_counter() - t
                intact = "Chain intact" in verify.text
                print(f"verify chain: {verify_s:.1f}s, intact: {intact}", flush=True)
        finally:
            gw.stop()
    worst = max(r["p95_ms"] for r in results)
    report.pop("note", None)
    report.update({
        "benchmark": "console pages over HTTP against nuri serve (SQLite ledger)",
        "records": args.records, "repeat": args.repeat, "build_seconds": round(build_s, 1),
        "indexing": indexing, "database_mb": round(db_mb, 1), "reused_trail": bool(args.reuse),
        "budget_ms": args.budget_ms, "worst_p95_ms": worst, "all_under_budget": worst < args.budget_ms,
        "pages": results, "verify_chain_seconds": round(verify_s, 2), "verify_chain_intact": intact,
    })
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"worst p95 {worst} ms (budget {args.budget_ms} ms) → {out}")


if __name__ == "__main__":
    main()
