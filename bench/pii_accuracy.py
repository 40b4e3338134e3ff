"""Precision, recall and F1 per entity type: Nuri's Scanner and Presidio, same corpus, same run.

    .venv/bin/python bench/pii_accuracy.py [--corpus tests/fixtures/pii/corpus.jsonl] [--no-presidio]

Prints rich tables and writes bench/results/pii_accuracy.json. Presidio is scored at score
thresholds 0, 0.3 and 0.5 and reported at the one with its best micro F1. Its micro F1 is given
both over all of Nuri's types and over the types it has a recognizer for. The KLUE-NER PERSON
measurement (bench/pii_klue.py) runs at the end when the data is present.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pii_common import (
    CORPUS,
    PRESIDIO_TO_NURI,
    evaluate,
    generator,
    load_corpus,
    machine,
    nuri_predictor,
    presidio_engine,
    presidio_predictor,
    write_json,
)

TYPES, stats = generator.TYPES, generator.stats
STRUCTURED = ["KR_RRN", "KR_FRN", "KR_PASSPORT", "KR_DRIVER_LICENSE", "KR_BRN", "KR_CRN", "PHONE", "EMAIL", "CARD",
              "IP_ADDRESS", "US_SSN", "PASSPORT", "VEHICLE_PLATE", "SECRET"]


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def table(title: str, nuri: dict[str, Any], presidio: dict[str, Any] | None, supported: set[str],
          counts: dict[str, int]) -> Table:
    t = Table(title=title)
    for col in ("type", "gold", "Nuri P", "Nuri R", "Nuri F1", "Presidio P", "Presidio R", "Presidio F1", "Δ F1"):
        t.add_column(col, justify="right" if col != "type" else "left")
    for typ in TYPES:
        n = nuri["per_type"][typ]
        p = presidio["per_type"][typ] if presidio and typ in supported else None
        delta = n["f1"] - (p["f1"] if p else 0.0)
        t.add_row(typ, str(counts.get(typ, 0)), _fmt(n["precision"]), _fmt(n["recall"]), _fmt(n["f1"]),
                  _fmt(p and p["precision"]), _fmt(p and p["recall"]), _fmt(p and p["f1"]),
                  f"{delta:+.3f}")
    n = nuri["micro"]
    p = presidio["micro"] if presidio else None
    t.add_row("micro (all types)", str(sum(counts.values())), _fmt(n["precision"]), _fmt(n["recall"]),
              _fmt(n["f1"]), _fmt(p and p["precision"]), _fmt(p and p["recall"]), _fmt(p and p["f1"]),
              f"{n['f1'] - (p['f1'] if p else 0):+.3f}", style="bold")
    if presidio:
        ps = presidio["micro_supported"]
        ns = nuri["micro_supported"]
        t.add_row("micro (Presidio's types)", "", _fmt(ns["precision"]), _fmt(ns["recall"]), _fmt(ns["f1"]),
                  _fmt(ps["precision"]), _fmt(ps["recall"]), _fmt(ps["f1"]), f"{ns['f1'] - ps['f1']:+.3f}")
    t.add_row("micro, exact boundaries", "", "", "", _fmt(nuri["micro_strict"]["f1"]), "", "",
              _fmt(p and presidio["micro_strict"]["f1"]), "")
    return t


def _micro_over(result: dict[str, Any], types: set[str]) -> dict[str, float]:
    tp = sum(result["per_type"][t]["tp"] for t in types)
    fp = sum(result["per_type"][t]["fp"] for t in types)
    fn = sum(result["per_type"][t]["fn"] for t in types)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0, 4)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--no-presidio", action="store_true")
    ap.add_argument("--no-klue", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="only the first N documents (smoke test)")
    ap.add_argument("--seed", type=int, default=None,
                    help="score on a corpus generated in memory with this seed instead of the committed one "
                         "(same templates, fresh values: a check that detectors were not fitted to the values)")
    ap.add_argument("--out", default="pii_accuracy.json", help="file name under bench/results/")
    args = ap.parse_args(argv)
    console = Console(width=None if Console().is_terminal else 150)
    if args.seed is not None:
        docs = generator.generate(args.seed)
        args.corpus = Path(f"<generated, seed {args.seed}>")
    else:
        docs = load_corpus(args.corpus)
    if args.limit:
        docs = docs[:: max(1, len(docs) // args.limit)][: args.limit]
    st = stats(docs)
    console.print(f"corpus: {st['documents']} documents, {st['spans']} labelled spans ({args.corpus})")
    types = list(TYPES)

    nuri = evaluate(docs, nuri_predictor(), types)
    presidio = None
    presidio_note = "skipped (--no-presidio)"
    supported = {v for v in PRESIDIO_TO_NURI.values() if v != "PERSON"}
    nuri["micro_supported"] = _micro_over(nuri, supported)
    thresholds: dict[str, Any] = {}
    if not args.no_presidio:
        engine, presidio_note = presidio_engine()
        if engine is None:
            console.print(f"[yellow]Presidio: {presidio_note}[/yellow]")
        else:
            best = None
            cache: dict[str, list[tuple[int, int, str, float]]] = {}
            first_seconds = None
            for th in (0.0, 0.3, 0.5):
                res = evaluate(docs, presidio_predictor(engine, th, cache), types)
                first_seconds = first_seconds or res["seconds"]
                res["seconds"] = first_seconds
                res["micro_supported"] = _micro_over(res, supported)
                thresholds[str(th)] = {"micro": res["micro"], "micro_supported": res["micro_supported"]}
                if best is None or res["micro"]["f1"] > best[1]["micro"]["f1"]:
                    best = (th, res)
            assert best is not None
            presidio = best[1]
            presidio["score_threshold"] = best[0]
            console.print(f"Presidio: {presidio_note}; reported at score_threshold={best[0]}")

    console.print(table("Personal-data detection on Nuri's labelled corpus (overlap match)", nuri, presidio,
                        supported, st["by_type"]))
    vt = Table(title="Recall on evasions and post-2020 identifiers")
    vt.add_column("variant")
    vt.add_column("Nuri", justify="right")
    vt.add_column("Presidio", justify="right")
    for v in sorted(nuri["variant_recall"]):
        vt.add_row(v, _fmt(nuri["variant_recall"][v]), _fmt(presidio and presidio["variant_recall"].get(v)))
    console.print(vt)
    kb = sum(len(d["text"].encode()) for d in docs) / 1024
    console.print(f"scan time over the corpus ({kb:.0f} KB UTF-8): Nuri {nuri['seconds'] * 1000 / kb:.3f} ms/KB"
                  + (f", Presidio {presidio['seconds'] * 1000 / kb:.2f} ms/KB" if presidio else ""))
    below = [t for t in TYPES if nuri["per_type"][t]["f1"] < (0.98 if t in STRUCTURED else 0.90)]
    if below:
        console.print("[yellow]below target (structured ≥ 0.98, PERSON/ADDRESS/others ≥ 0.90): "
                      + ", ".join(f"{t} {nuri['per_type'][t]['f1']:.3f}" for t in below) + "[/yellow]")
    behind = [t for t in supported if presidio and nuri["per_type"][t]["f1"] < presidio["per_type"][t]["f1"]]
    if behind:
        console.print("[red]Presidio ahead on: " + ", ".join(sorted(behind)) + "[/red]")

    payload: dict[str, Any] = {
        "corpus": {"path": _shown(args.corpus), **st},
        "match": "same type and overlapping span, one-to-one; micro_strict requires identical boundaries",
        "nuri": nuri,
        "presidio": presidio,
        "presidio_setup": presidio_note,
        "presidio_thresholds": thresholds,
        "presidio_supported_types": sorted(supported),
        "below_target": below,
        "presidio_ahead_on": sorted(behind),
        "machine": machine(),
    }
    if not args.no_klue:
        import pii_klue

        payload["klue_person"] = pii_klue.main([], console=console)
    path = write_json(args.out, payload)
    console.print(f"wrote {path}")
    return payload


def _shown(path: object) -> str:
    """A path as the results JSON shows it: relative to the repository where it can be."""
    from pathlib import Path

    p = Path(str(path)).resolve()
    root = Path(__file__).resolve().parents[1]
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p.relative_to(root.parent)) if p.is_relative_to(root.parent) else str(p)


if __name__ == "__main__":
    main()
