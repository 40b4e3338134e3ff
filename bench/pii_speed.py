"""Scan time of 1 KB and 32 KB Korean documents: Nuri's Scanner and Presidio in the same run.

    .venv/bin/python bench/pii_speed.py [--cpu N] [--no-presidio]

Documents are Korean texts from the labelled corpus (chats, forms, notes — with personal data in
them) joined until the UTF-8 size is reached. Nuri is timed as configured by default (names by
rules and the learned tagger) and with names by rules only, so the tagger's cost is read off one run; the two are also
timed in CPU time over interleaved batches (min and median), the fair comparison on a busy machine. Each engine gets warm-up calls, then p50 and p99
of wall time per scan are reported, with ms per KB and Presidio's time as a multiple of
Nuri's. `--cpu N` pins the process to one core (the target is stated per core). Writes
bench/results/pii_speed.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from pii_common import RESULTS, load_corpus, machine, presidio_engine, write_json

SIZES = {"1KB": 1024, "32KB": 32 * 1024}


def korean_document(docs: list[dict[str, Any]], size: int) -> str:
    """Korean corpus texts joined and cut at a character boundary to `size` UTF-8 bytes."""
    texts = [d["text"] for d in docs if d["lang"] == "ko" and d["spans"]]
    out: list[str] = []
    n = 0
    i = 0
    while n < size:
        t = texts[i % len(texts)] + "\n\n"
        out.append(t)
        n += len(t.encode())
        i += 1
    raw = "".join(out).encode()[:size]
    return raw.decode("utf-8", errors="ignore")


def timings(fn: Callable[[str], Any], text: str, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn(text)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(text)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def cpu_batches(engines: dict[str, Callable[[str], Any]], text: str, batches: int, reps: int) -> dict[str, dict[str, float]]:
    """CPU ms per KB of each engine over `batches` batches of `reps` scans, the engines taking turns
    in alternating order: on a shared, noisy machine the min and median of interleaved batches
    compare engines fairly where one run of each after the other would not."""
    kb = len(text.encode()) / 1024
    per: dict[str, list[float]] = {name: [] for name in engines}
    for fn in engines.values():
        for _ in range(5):
            fn(text)
    order = list(engines.items())
    for b in range(batches):
        for name, fn in order if b % 2 else reversed(order):
            t0 = time.thread_time()
            for _ in range(reps):
                fn(text)
            per[name].append((time.thread_time() - t0) * 1000 / reps / kb)
    return {name: {"batches": batches, "scans_per_batch": reps, "min_ms_per_kb": round(min(v), 4),
                   "median_ms_per_kb": round(statistics.median(v), 4)} for name, v in per.items()}


def previous_presidio() -> dict[str, Any]:
    """Presidio's figures from the last run that had it, kept (and marked as such) when this run
    cannot measure it, so that the ratio stays on record."""
    import json

    path = RESULTS / "pii_speed.json"
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if "presidio_not_measured" in old:
        return old["presidio_not_measured"]
    kept = {label: {k: r[k] for k in ("presidio_over_nuri_p50",) if k in r}
                   | {"Presidio analyze": r["engines"]["Presidio analyze"]}
            for label, r in old.get("results", {}).items() if "Presidio analyze" in r.get("engines", {})}
    return {"note": "from an earlier run (not measured in this one)", "presidio_setup": old.get("presidio_setup"),
            "results": kept} if kept else {}


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarise(ms: list[float], size: int) -> dict[str, float]:
    p50, p99 = pct(ms, 50), pct(ms, 99)
    kb = size / 1024
    return {"runs": len(ms), "p50_ms": round(p50, 4), "p99_ms": round(p99, 4), "p50_ms_per_kb": round(p50 / kb, 4),
            "p99_ms_per_kb": round(p99 / kb, 4)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description="Nuri vs Presidio scan speed on Korean text")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this core")
    ap.add_argument("--no-presidio", action="store_true")
    ap.add_argument("--runs", type=int, default=300, help="Nuri runs per size (Presidio: fewer)")
    ap.add_argument("--batches", type=int, default=40, help="interleaved CPU-time batches per size")
    args = ap.parse_args(argv)
    console = Console(width=None if Console().is_terminal else 150)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})

    from nuri.config import PrivacySettings
    from nuri.privacy.pseudonymizer import Pseudonymizer
    from nuri.privacy.scanner import Scanner

    docs = load_corpus()
    scanner = Scanner()                                           # the defaults: name tagger on
    rules = Scanner(PrivacySettings(person_threshold=1.0))

    def nuri_mask(text: str) -> str:
        return Pseudonymizer().mask_text(text, scanner.scan(text))

    # The scan with the name tagger off beside the default one, in the same run, is what the tagger costs.
    engines: dict[str, Callable[[str], Any]] = {"Nuri scan": scanner.scan, "Nuri scan + pseudonymise": nuri_mask,
                                                "Nuri scan, rules only (person_threshold 1.0)": rules.scan}
    note = "skipped (--no-presidio)"
    if not args.no_presidio:
        engine, note = presidio_engine()
        if engine is not None:
            engines["Presidio analyze"] = lambda text: engine.analyze(text, language="ko")
        else:
            console.print(f"[yellow]Presidio: {note}[/yellow]")

    results: dict[str, Any] = {}
    table = Table(title="Scan time per Korean document (wall clock, one thread)")
    for col in ("engine", "size", "runs", "p50 ms", "p99 ms", "p50 ms/KB", "p99 ms/KB"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    for label, size in SIZES.items():
        text = korean_document(docs, size)
        results[label] = {"bytes": len(text.encode()), "chars": len(text), "engines": {}}
        for name, fn in engines.items():
            presidio = name.startswith("Presidio")
            runs = (max(5, args.runs // 10) if label == "1KB" else 5) if presidio else (
                args.runs if label == "1KB" else max(20, args.runs // 10))
            ms = timings(fn, text, runs, warmup=2 if presidio else 10)
            s = summarise(ms, len(text.encode()))
            results[label]["engines"][name] = s
            table.add_row(name, label, str(s["runs"]), f"{s['p50_ms']:.3f}", f"{s['p99_ms']:.3f}",
                          f"{s['p50_ms_per_kb']:.3f}", f"{s['p99_ms_per_kb']:.3f}")
        eng = results[label]["engines"]
        if "Presidio analyze" in eng:
            ratio = eng["Presidio analyze"]["p50_ms"] / eng["Nuri scan"]["p50_ms"]
            results[label]["presidio_over_nuri_p50"] = round(ratio, 1)
    console.print(table)
    # CPU time, rules only against the tagger on, interleaved: what the tagger costs on top.
    pair = {"rules only": rules.scan, "name tagger on": scanner.scan}
    cpu = Table(title=f"CPU ms/KB of a whole scan, {args.batches} interleaved batches (min / median)")
    for col in ("size", *pair):
        cpu.add_column(col, justify="right")
    for label, size in SIZES.items():
        text = korean_document(docs, size)
        got = cpu_batches(pair, text, args.batches, 50 if label == "1KB" else 3)
        results[label]["cpu_interleaved"] = got
        cpu.add_row(label, *(f"{got[k]['min_ms_per_kb']:.3f} / {got[k]['median_ms_per_kb']:.3f}" for k in pair))
    console.print(cpu)
    for label in SIZES:
        r = results[label]
        line = f"{label}: Nuri {r['engines']['Nuri scan']['p50_ms_per_kb']:.3f} ms/KB p50"
        if "presidio_over_nuri_p50" in r:
            line += (f", Presidio {r['engines']['Presidio analyze']['p50_ms_per_kb']:.2f} ms/KB p50 — "
                     f"Nuri is {r['presidio_over_nuri_p50']}× faster")
        console.print(line)
    console.print("target: ≤ 0.3 ms/KB p50 on one core, ≥ 20× faster than Presidio")
    console.print(f"Presidio setup: {note}")
    payload = {"results": results, "presidio_setup": note, "pinned_cpu": args.cpu, "machine": machine(),
               "kb": "1 KB = 1024 bytes of UTF-8 Korean text"}
    if "Presidio analyze" not in engines:
        payload["presidio_not_measured"] = previous_presidio()
    path = write_json("pii_speed.json", payload)
    console.print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
