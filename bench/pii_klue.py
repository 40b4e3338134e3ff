"""PERSON precision, recall and F1 of Nuri's Scanner on real Korean text: KLUE-NER (PS tags).

    .venv/bin/python bench/pii_klue.py [--data ../shared/data/klue-ner] [--limit N]

KLUE-NER (CC BY-SA 4.0) is news and review text tagged per character; PS spans are people.
The data is not shipped with Nuri: it is read from ../shared/data/klue-ner relative to the
repository (or --data), and the measurement is skipped with a message when it is absent.
Matching as in pii_accuracy: overlapping spans count, one-to-one. Writes
bench/results/pii_klue.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from pii_common import ROOT, match, nuri_predictor, prf, write_json

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "klue-ner"


def _sentence(chars: list[str], tags: list[str]) -> tuple[str, list[tuple[int, int, str]]]:
    spans: list[tuple[int, int, str]] = []
    start = None
    for i, tag in enumerate([*tags, "O"]):
        if start is not None and tag != "I-PS":
            spans.append((start, i, "PERSON"))
            start = None
        if tag == "B-PS":
            start = i
    return "".join(chars), spans


def load_klue(folder: Path) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """(sentence, PS spans) for every sentence of every .tsv file in the folder."""
    out: list[tuple[str, list[tuple[int, int, str]]]] = []
    for path in sorted(folder.glob("*.tsv")):
        chars: list[str] = []
        tags: list[str] = []
        for line in [*path.read_text(encoding="utf-8").split("\n"), ""]:
            if line.startswith("##"):
                continue
            if not line.strip("\r"):
                if chars:
                    out.append(_sentence(chars, tags))
                chars, tags = [], []
                continue
            ch, _, tag = line.rpartition("\t")
            chars.append(ch if ch else " ")
            tags.append(tag.strip())
    return out


def main(argv: list[str] | None = None, console: Console | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description="PERSON P/R/F1 on KLUE-NER")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args(argv)
    console = console or Console()
    if not args.data.is_dir() or not list(args.data.glob("*.tsv")):
        console.print(f"[yellow]KLUE-NER not found at {args.data}: PERSON measurement on real text skipped[/yellow]")
        return {"skipped": f"no data at {args.data}"}
    sents = load_klue(args.data)
    if args.limit:
        sents = sents[: args.limit]
    predict = nuri_predictor()
    tp = fp = fn = 0
    t0 = time.perf_counter()
    for text, gold in sents:
        pred = [p for p in predict(text) if p[2] == "PERSON"]
        a, b, c = match(gold, pred)
        tp += a["PERSON"]
        fp += b["PERSON"]
        fn += c["PERSON"]
    seconds = time.perf_counter() - t0
    res = {"sentences": len(sents), "gold_person_spans": tp + fn, **prf(tp, fp, fn), "seconds": round(seconds, 3),
           "data": "../" + str(Path(args.data).resolve().relative_to(ROOT.parent)) if Path(args.data).resolve().is_relative_to(ROOT.parent) else str(args.data), "licence": "KLUE-NER, CC BY-SA 4.0"}
    console.print(f"KLUE-NER PERSON ({len(sents)} sentences, {tp + fn} PS spans): P {res['precision']:.3f} "
                  f"R {res['recall']:.3f} F1 {res['f1']:.3f}  ({seconds:.1f} s)")
    write_json("pii_klue.json", res)
    return res


if __name__ == "__main__":
    main()
