"""Privacy boundary: leak rate and fidelity per family × site × encoding × reply carrier.

A real `nuri serve` (kr-pipa) in front of two recording upstreams, `us` (foreign cloud, preferred by
the alias) and `kr` (on premises). Every cell of `support.boundary.full_grid()` is sent once;
a request cell leaks when `us` received its value in any recoverable form, a reply cell when the
client could recover a value it never sent; fidelity is whether the client got its own values back
byte-exact from placeholders. The baseline is the target itself: 0 leaks and fidelity 1.0 in every
cell. `tests/gateway/test_boundary.py` runs a reduced grid of the same cells in CI.

    .venv/bin/python bench/boundary.py [--quick] [--concurrency 8] [--show 40]
    .venv/bin/python bench/boundary.py --markdown    # the docs/privacy.md tables from the last run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, write_result
from support.boundary import (
    CARRIERS,
    ENCODINGS,
    FAMILIES,
    SITES,
    SPLIT_SITES,
    Cell,
    CellResult,
    ReplyCell,
    RequestCell,
    ci_grid,
    full_grid,
    group,
    rates,
    run_grid,
    running_boundary,
)

console = Console(width=150)
SHORT = {"plain": "plain", "percent": "%XX", "base64": "b64", "base64url": "b64u", "hex": "hex",
         "html-decimal": "&#NN;", "html-named": "&name;", "json-u": "\\u", "isolate-around": "iso",
         "isolate-inside": "iso×", "cgj": "CGJ", "arabic-indic": "٠١٢", "em-dash": "—", "fullwidth": "ｆｗ",
         "lookalike": "look"}


def _mark(stats: dict[str, Any] | None) -> str:
    """'·' for a clean bucket, else leaks/cells (E for errors, f for fidelity below 1)."""
    if not stats:
        return ""
    text = "·" if not stats["leaks"] else f"[red]{stats['leaks']}/{stats['cells']}[/red]"
    if stats["errors"]:
        text += f"[yellow] E{stats['errors']}[/yellow]"
    if stats["fidelity"] is not None and stats["fidelity"] < 1:
        text += f"[magenta] f{stats['fidelity']:.2f}[/magenta]"
    return text


def request_tables(cells: list[Cell], results: dict[str, CellResult]) -> None:
    req = [c for c in cells if isinstance(c, RequestCell)]
    by = group(req, results, "site", "encoding")
    encodings = [e for e in ENCODINGS if any(k.endswith(f" × {e}") for k in by)]
    t = Table(title="request path: leaks/cells over families, by site × encoding (· = none)")
    t.add_column("site")
    for e in encodings:
        t.add_column(SHORT.get(e, e), justify="center")
    for site in SITES:
        t.add_row(site, *[_mark(by.get(f"{site} × {e}")) for e in encodings])
    console.print(t)
    splits = group([c for c in req if c.split], results, "site", "family", "encoding")
    if splits:
        s = Table(title="request path, split values: leaks/cells by family (sep | digits)")
        s.add_column("site")
        fams = [f for f in FAMILIES if any(f" × {f} × " in k for k in splits)]
        for f in fams:
            s.add_column(f, justify="center")
        for site in SPLIT_SITES:
            s.add_row(site, *[" | ".join(_mark(splits[k]) for k in (f"{site} × {f} × sep", f"{site} × {f} × digits")
                                         if k in splits) for f in fams])
        console.print(s)
    fam = group(req, results, "family")
    f = Table(title="request path by family")
    for col in ("family", "cells", "leaks", "errors", "us masked", "us unmasked", "kr", "403", "fidelity"):
        f.add_column(col, justify="right" if col != "family" else "left")
    for name, st in fam.items():
        o = st["outcomes"]
        f.add_row(name, str(st["cells"]), str(st["leaks"]), str(st["errors"]), str(o.get("us masked", 0)),
                  str(o.get("us unmasked", 0)), str(o.get("kr", 0)), str(o.get("403", 0)),
                  "n/a" if st["fidelity"] is None else f"{st['fidelity']:.3f}")
    console.print(f)


def reply_tables(cells: list[Cell], results: dict[str, CellResult]) -> None:
    rep = [c for c in cells if isinstance(c, ReplyCell)]
    if not rep:
        return
    by = group(rep, results, "kind", "carrier", "stream")
    t = Table(title="reply path: leaks/cells and fidelity by carrier (whole reply | streamed, every cut)")
    for col in ("kind", "carrier", "whole", "streamed", "fidelity"):
        t.add_column(col)
    for kind in ("echo", "inject"):
        for carrier in CARRIERS:
            whole, streamed = by.get(f"{kind} × {carrier} × False"), by.get(f"{kind} × {carrier} × True")
            fid = [s["fidelity"] for s in (whole, streamed) if s and s["fidelity"] is not None]
            t.add_row(kind, carrier, _mark(whole), _mark(streamed),
                      "n/a" if not fid else " | ".join(f"{x:.2f}" for x in fid))
    console.print(t)


def compact(groups: dict[str, dict[str, Any]]) -> dict[str, str]:
    """One line per bucket: 'leaks/cells, errors, fidelity, outcomes' (keeps the JSON readable)."""
    out = {}
    for name, st in groups.items():
        fid = "n/a" if st["fidelity"] is None else f"{st['fidelity']:.3f}"
        outcomes = " ".join(f"{k}:{v}" for k, v in sorted(st["outcomes"].items()))
        out[name] = f"leaks {st['leaks']}/{st['cells']}, errors {st['errors']}, fidelity {fid}, {outcomes}"
    return out


def _md_rates(title: str, key: str, groups: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"| {title} | cells | leaks | us masked | us unmasked | kr | 403 | errors | fidelity |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, st in groups.items():
        o = st["outcomes"]
        fid = "n/a" if st["fidelity"] is None else f"{st['fidelity']:.2f}"
        leaks = f"**{st['leaks']}**" if st["leaks"] else "0"
        lines.append(f"| {name} | {st['cells']} | {leaks} | {o.get('us masked', 0)} | {o.get('us unmasked', 0)} | "
                     f"{o.get('kr', 0)} | {o.get('403', 0)} | {st['errors']} | {fid} |")
    return [f"{key}:", "", *lines, ""]


def markdown(data: dict[str, Any]) -> str:
    """The tables of docs/privacy.md, from a results file."""
    out = [f"Run {data['time']}, {data['grid']} grid, {data['cells']} cells in {data['seconds']} s "
           f"({data['machine']['cpus']} cores).", ""]
    out += _md_rates("site", "Request path by site (all families and encodings)", data["request_by_site"])
    out += _md_rates("encoding", "Request path by encoding (all families and sites)", data["request_by_encoding"])
    out += _md_rates("family", "Request path by family", data["request_by_family"])
    lines = ["| kind | carrier | reply | cells | leaks | fidelity |", "|---|---|---|---|---|---|"]
    for name, st in data["reply_by_carrier"].items():
        kind, carrier, stream = name.split(" × ")
        fid = "n/a" if st["fidelity"] is None else f"{st['fidelity']:.2f}"
        leaks = f"**{st['leaks']}**" if st["leaks"] else "0"
        lines.append(f"| {kind} | {carrier} | {'streamed' if stream == 'True' else 'whole'} | {st['cells']} | "
                     f"{leaks} | {fid} |")
    out += ["Reply path by carrier (streamed: every cut position and one character per chunk):", "", *lines, ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the CI grid only")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--show", type=int, default=40, help="failing cells to list")
    parser.add_argument("--markdown", action="store_true",
                        help="print the docs/privacy.md tables from bench/results/boundary.json and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads((RESULTS / "boundary.json").read_text())))
        return
    cells = ci_grid() if args.quick else full_grid()
    with tempfile.TemporaryDirectory(prefix="nuri-boundary-") as tmp, running_boundary(Path(tmp)) as setup:
        started = time.perf_counter()
        results = run_grid(setup, cells, args.concurrency)
        elapsed = time.perf_counter() - started
    request_tables(cells, results)
    reply_tables(cells, results)
    failing = [results[c.id] for c in cells if not results[c.id].ok]
    for r in failing[:args.show]:
        console.print(f"✗ {r.id}: {r.explain()[:200]}", markup=False, highlight=False, style="red")
    if len(failing) > args.show:
        console.print(f"… and {len(failing) - args.show} more (all in the JSON)")
    req = [c for c in cells if isinstance(c, RequestCell)]
    rep = [c for c in cells if isinstance(c, ReplyCell)]
    summary = {
        "request": rates(results[c.id] for c in req),
        "reply_echo": rates(results[c.id] for c in rep if c.kind == "echo"),
        "reply_inject": rates(results[c.id] for c in rep if c.kind == "inject"),
    }
    console.print(f"{len(cells)} cells in {elapsed:.1f} s; failing {len(failing)}; "
                  f"request leaks {summary['request']['leaks']}, injected leaks {summary['reply_inject']['leaks']}, "
                  f"errors {sum(s['errors'] for s in summary.values())}; target: 0 leaks, fidelity 1.0")
    path = write_result("boundary", {
        "grid": "ci" if args.quick else "full", "cells": len(cells), "concurrency": args.concurrency,
        "seconds": round(elapsed, 2), "target": {"leak_rate": 0.0, "fidelity": 1.0},
        "summary": summary,
        "request_by_site": group(req, results, "site"),
        "request_by_encoding": group(req, results, "encoding"),
        "request_by_family": group(req, results, "family"),
        "reply_by_carrier": group(rep, results, "kind", "carrier", "stream"),
        "by_site_encoding": compact(group(req, results, "site", "encoding")),
        "by_family": compact(group(req, results, "family")),
        "by_family_encoding": compact(group(req, results, "family", "encoding")),
        "by_reply_family": compact(group(rep, results, "kind", "family", "carrier")),
        "failing": {r.id: {"outcome": r.outcome, "leak": r.leak, "fidelity": r.fidelity, "detail": r.detail[:160]}
                    for r in failing},
    })
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
