"""PERSON precision / recall / F1 of the person detector alone on KLUE-NER PS tags.

    .venv/bin/python bench/pii_person_rules.py [--kiwi] [PATH]

Data: KLUE-NER v1.1 dev (part 1), CC BY-SA 4.0, https://klue-benchmark.com — copied in
../shared/data/klue-ner/ beside the repository. Exact-span and overlap matching, and Korean-shaped
gold names only; bench/pii_klue.py measures the whole scanner with and without the tagger.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from nuri.privacy.detectors.person import PersonDetector

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "klue-ner" / "klue-ner-v1.1_dev_part1.tsv"


def load(path: Path) -> list[tuple[str, list[tuple[int, int]], str]]:
    """(sentence, PS spans, source) from the KLUE character-level BIO file."""
    out: list[tuple[str, list[tuple[int, int]], str]] = []
    chars: list[str] = []
    tags: list[str] = []
    src = ""

    def flush() -> None:
        spans, i = [], 0
        while i < len(tags):
            if tags[i] == "B-PS":
                j = i + 1
                while j < len(tags) and tags[j] == "I-PS":
                    j += 1
                spans.append((i, j))
                i = j
            else:
                i += 1
        out.append(("".join(chars), spans, src))

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## klue"):
            src = line.split("\t")[0].rsplit("-", 1)[-1]
            continue
        if line.startswith("##"):
            continue
        if not line:
            if chars:
                flush()
            chars, tags = [], []
            continue
        c, t = line.split("\t")
        chars.append(c)
        tags.append(t)
    if chars:
        flush()
    return out


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    det = PersonDetector(use_kiwi="--kiwi" in sys.argv)
    data = load(Path(args[0]) if args else DEFAULT)
    strict = {"tp": 0, "fp": 0, "fn": 0}
    loose = {"tp": 0, "fp": 0, "fn": 0}
    hangul_only = {"tp": 0, "fp": 0, "fn": 0}
    elapsed, nbytes = 0.0, 0
    for text, gold, _src in data:
        t0 = time.perf_counter()
        found = {(h.start, h.end) for h in det.detect(text)}
        elapsed += time.perf_counter() - t0
        nbytes += len(text.encode())
        gold_set = set(gold)
        strict["tp"] += len(found & gold_set)
        strict["fp"] += len(found - gold_set)
        strict["fn"] += len(gold_set - found)
        overlaps = lambda a, b: a[0] < b[1] and b[0] < a[1]  # noqa: E731
        loose["tp"] += sum(1 for g in gold if any(overlaps(g, f) for f in found))
        loose["fn"] += sum(1 for g in gold if not any(overlaps(g, f) for f in found))
        loose["fp"] += sum(1 for f in found if not any(overlaps(g, f) for g in gold))
        # Korean-shaped names only: Hangul, 2–4 syllables, first syllable a surname.
        kr = {g for g in gold_set if 2 <= g[1] - g[0] <= 4 and text[g[0]] in
              "김이박최정강조윤장임한오서신권황안송전홍유고문양손배백허남심노하곽성차주우구민류나진지엄채원천방공현"}
        hangul_only["tp"] += len(found & kr)
        hangul_only["fn"] += len(kr - found)
        hangul_only["fp"] += len(found - gold_set)
    for name, c in (("exact span", strict), ("overlap", loose), ("Korean-shaped gold only", hangul_only)):
        p, r, f = prf(c["tp"], c["fp"], c["fn"])
        print(f"{name:26s} P={p:.3f} R={r:.3f} F1={f:.3f}  (tp={c['tp']} fp={c['fp']} fn={c['fn']})")
    print(f"person detector: {elapsed * 1000 / (nbytes / 1024):.3f} ms/KB over {nbytes} bytes")


if __name__ == "__main__":
    main()
