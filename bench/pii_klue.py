"""PERSON precision, recall and F1 of Nuri's Scanner on real Korean text: KLUE-NER (PS tags).

    .venv/bin/python bench/pii_klue.py [--data ../shared/data/klue-ner] [--limit N] [--folds 5]

KLUE-NER (CC BY-SA 4.0) is news and review text tagged per character; PS spans are people.
The data is not shipped with Nuri: it is read from ../shared/data/klue-ner relative to the
repository (or --data), and the measurement is skipped with a message when it is absent.
Matching as in pii_accuracy: overlapping spans count, one-to-one. Writes
bench/results/pii_klue.json.

Figures, all from the same run:
* rules alone (the person detector without its tagger);
* kiwipiepy's proper nouns (NNP) as names, a plain baseline;
* rules + tagger, 5-fold cross-validation: sentences are split into folds by their KLUE id, a
  tagger is trained (scripts/train_names.py) on four folds plus the synthetic sentences and scored
  on the fifth, so no sentence is ever scored by a model that saw it; per fold and pooled, with
  the tagger alone and a sweep of `privacy.person_threshold`.
The shipped model was trained on all of the KLUE half, so scoring it here would not be honest;
it is not. It is only timed: scan time per KB over all the sentences, rules alone and with it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pii_common import ROOT, match, prf, write_json

sys.path.insert(0, str(ROOT / "scripts"))
import train_names

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "klue-ner"


def load_klue(folder: Path) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """(sentence, PS spans) for every sentence of every .tsv file in the folder (the training
    script's reader, so the bench scores exactly the sentences the model is built from)."""
    return [(text, [(s, e, "PERSON") for s, e in spans]) for text, spans, _sid in train_names.load_klue(folder)]


Gold = list[tuple[int, int, str]]
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
DEFAULT_THRESHOLD = 0.5      # the default `privacy.person_threshold` (config.py)


def _score(sents: list[tuple[str, Gold]], predict: Any) -> dict[str, Any]:
    tp = fp = fn = 0
    for text, gold in sents:
        a, b, c = match(gold, [(s, e, "PERSON") for s, e in predict(text)])
        tp, fp, fn = tp + a["PERSON"], fp + b["PERSON"], fn + c["PERSON"]
    return prf(tp, fp, fn)


def _scanner_persons(detector: Any) -> Any:
    from nuri.config import PrivacySettings
    from nuri.privacy.scanner import Scanner

    scanner = Scanner(PrivacySettings(person_threshold=1.0), replace={"person": detector.detect})

    def predict(text: str) -> list[tuple[int, int]]:
        return [(e.start, e.end) for e in scanner.scan(text) if e.type == "PERSON"]

    return predict


def _kiwi_baseline(sents: list[tuple[str, Gold]]) -> dict[str, Any]:
    from kiwipiepy import Kiwi

    kiwi = Kiwi()
    kb = sum(len(t.encode()) for t, _ in sents) / 1024
    t0 = time.perf_counter()

    def predict(text: str) -> list[tuple[int, int]]:
        return [(t.start, t.start + t.len) for t in kiwi.tokenize(text) if t.tag == "NNP"]

    res = _score(sents, predict)
    res["ms_per_kb"] = round((time.perf_counter() - t0) * 1000 / kb, 2)
    return res


SYNTHETIC = 3000


def _scan_speed(sents: list[tuple[str, Gold]], threshold: float) -> float:
    """ms per KB of a whole scan over every sentence (the shipped model when `threshold` < 1)."""
    from nuri.config import PrivacySettings
    from nuri.privacy.scanner import Scanner

    scanner = Scanner(PrivacySettings(person_threshold=threshold))
    texts = [t for t, _ in sents]
    kb = sum(len(t.encode()) for t in texts) / 1024
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for t in texts:
            scanner.scan(t)
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000 / kb, 3)


def _fold(args: tuple[int, int, Path, int]) -> dict[str, Any]:
    """Train on every fold but `k` (plus synthetic sentences), score rules+tagger on fold `k`."""
    k, folds, data, limit = args
    from nuri.privacy.detectors.person import PersonDetector
    from nuri.privacy.names_tagger import NamesTagger

    klue = train_names.load_klue(data)[: limit or None]
    train = [s for s in klue if train_names.fold_of(s[2], folds) != k]
    test = [(t, [(a, b, "PERSON") for a, b in sp]) for t, sp, sid in klue if train_names.fold_of(sid, folds) == k]
    with tempfile.TemporaryDirectory() as tmp:
        model = train_names.train(train + train_names.synthetic(SYNTHETIC, 12), Path(tmp) / "names.npz")
        tagger = NamesTagger(model)
    out: dict[str, Any] = {"fold": k, "train_sentences": len(train), "test_sentences": len(test)}
    for th in THRESHOLDS:
        out[f"rules+tagger@{th}"] = _score(test, _scanner_persons(PersonDetector(tagger=tagger, threshold=th)))
    out["tagger alone"] = _score(test, lambda t: [(a, b) for a, b, p in tagger.find(t) if p >= DEFAULT_THRESHOLD])
    return out


def _pool(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return prf(sum(r[key]["tp"] for r in rows), sum(r[key]["fp"] for r in rows), sum(r[key]["fn"] for r in rows))


def main(argv: list[str] | None = None, console: Console | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description="PERSON P/R/F1 on KLUE-NER")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    console = console or Console()
    if not args.data.is_dir() or not list(args.data.glob("*.tsv")):
        console.print(f"[yellow]KLUE-NER not found at {args.data}: PERSON measurement on real text skipped[/yellow]")
        return {"skipped": f"no data at {args.data}"}
    sents = load_klue(args.data)
    if args.limit:
        sents = sents[: args.limit]
    from nuri.privacy.detectors.person import PersonDetector

    t0 = time.perf_counter()
    rules = _score(sents, _scanner_persons(PersonDetector()))
    rules["seconds"] = round(time.perf_counter() - t0, 3)
    speed = {"rules_ms_per_kb": _scan_speed(sents, 1.0),
             f"rules+shipped_tagger@{DEFAULT_THRESHOLD}_ms_per_kb": _scan_speed(sents, DEFAULT_THRESHOLD),
             "note": "whole Scanner.scan per sentence, best of 3 passes; sentence-sized calls"}
    kiwi = _kiwi_baseline(sents)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(_fold, [(k, args.folds, args.data, args.limit) for k in range(args.folds)]))
    key = f"rules+tagger@{DEFAULT_THRESHOLD}"
    pooled = {k: _pool(rows, k) for k in rows[0] if k.startswith(("rules+", "tagger"))}
    res = {
        "sentences": len(sents), "gold_person_spans": rules["tp"] + rules["fn"],
        "rules": rules, "kiwi_nnp_baseline": kiwi, "scan_speed": speed,
        "cross_validation": {"folds": args.folds, "split": "by KLUE sentence id (crc32 mod folds)",
                             "synthetic_sentences_per_fold": len(train_names.synthetic(SYNTHETIC, 12)), "default_threshold": DEFAULT_THRESHOLD,
                             "per_fold": rows, "pooled": pooled},
        "data": "../" + str(Path(args.data).resolve().relative_to(ROOT.parent)) if Path(args.data).resolve().is_relative_to(ROOT.parent) else str(args.data),
        "licence": "KLUE-NER, CC BY-SA 4.0",
    }
    res.update({k: pooled[key][k] for k in ("precision", "recall", "f1")})
    table = Table(title=f"KLUE-NER PERSON ({len(sents)} sentences, {res['gold_person_spans']} PS spans)")
    for col in ("", "P", "R", "F1"):
        table.add_column(col)
    table.add_row("rules alone", *(f"{rules[m]:.3f}" for m in ("precision", "recall", "f1")))
    table.add_row(f"kiwipiepy NNP ({kiwi['ms_per_kb']} ms/KB)", *(f"{kiwi[m]:.3f}" for m in ("precision", "recall", "f1")))
    for r in rows:
        table.add_row(f"fold {r['fold']}: rules+tagger", *(f"{r[key][m]:.3f}" for m in ("precision", "recall", "f1")))
    for k, v in pooled.items():
        table.add_row(f"pooled {k}", *(f"{v[m]:.3f}" for m in ("precision", "recall", "f1")))
    console.print(table)
    console.print(f"scan time on these sentences: {speed}")
    write_json("pii_klue.json", res)
    return res


if __name__ == "__main__":
    main()
