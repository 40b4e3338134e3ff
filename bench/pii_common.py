"""Shared pieces of the personal-data benchmarks: corpus, scoring, and the two engines.

Scoring: a prediction matches a gold span when the types are equal and the character spans
overlap; matching is one-to-one, largest overlap first. `strict` counts only identical
boundaries. Presidio's entity names are mapped to Nuri's; Presidio types with no Nuri equivalent
(URL, DATE_TIME, US_DRIVER_LICENSE, …) are ignored rather than counted as false positives.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

CORPUS = ROOT / "tests" / "fixtures" / "pii" / "corpus.jsonl"
RESULTS = ROOT / "bench" / "results"

Span = tuple[int, int, str]
Predictor = Callable[[str], list[Span]]

PRESIDIO_TO_NURI = {
    "KR_RRN": "KR_RRN", "KR_FRN": "KR_FRN", "KR_BRN": "KR_BRN", "KR_DRIVER_LICENSE": "KR_DRIVER_LICENSE",
    "KR_PASSPORT": "KR_PASSPORT", "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD",
    "IP_ADDRESS": "IP_ADDRESS", "US_SSN": "US_SSN", "US_PASSPORT": "PASSPORT", "US_BANK_NUMBER": "BANK_ACCOUNT",
    "PERSON": "PERSON",
}
PRESIDIO_RECOGNIZERS = [
    # Korean recognizers (disabled in Presidio's default configuration; enabled here)
    "KrRrnRecognizer", "KrFrnRecognizer", "KrBrnRecognizer", "KrDriverLicenseRecognizer", "KrPassportRecognizer",
    # the language-independent and US pattern recognizers of its default set
    "EmailRecognizer", "PhoneRecognizer", "CreditCardRecognizer", "IpRecognizer", "UsSsnRecognizer",
    "UsPassportRecognizer", "UsBankRecognizer",
]


def _corpus_generator() -> ModuleType:
    """tests/fixtures/pii/generate.py: the corpus generator is test material, not in the package."""
    path = ROOT / "tests" / "fixtures" / "pii" / "generate.py"
    spec = importlib.util.spec_from_file_location("pii_corpus_generator", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generator = _corpus_generator()


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def nuri_predictor() -> Predictor:
    from nuri.privacy.scanner import Scanner

    scanner = Scanner()

    def predict(text: str) -> list[Span]:
        return [(e.start, e.end, e.type) for e in scanner.scan(text)]

    predict.engine = scanner  # type: ignore[attr-defined]
    return predict


def presidio_engine() -> tuple[Any, str]:
    """(AnalyzerEngine, how it was configured) or (None, why not)."""
    try:
        import tldextract
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer import predefined_recognizers as pr
        from presidio_analyzer.nlp_engine import SlimSpacyNlpEngine
    except ImportError as exc:  # pragma: no cover - depends on the bench extra
        return None, f"presidio-analyzer not installed ({exc}); pip install -e '.[bench]'"
    # Offline: the e-mail recognizer's tldextract would download the public-suffix list; use the
    # snapshot bundled with tldextract instead.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    try:
        import presidio_analyzer
        version = getattr(presidio_analyzer, "__version__", None)
        if version is None:
            from importlib.metadata import version as _v
            version = _v("presidio-analyzer")
        registry = RecognizerRegistry(supported_languages=["ko"])
        for name in PRESIDIO_RECOGNIZERS:
            registry.add_recognizer(getattr(pr, name)(supported_language="ko"))
        # No spaCy model can be downloaded here: a blank multilingual tokenizer (spacy.blank) gives
        # tokens for Presidio's context words, and no NER, so Presidio finds no PERSON.
        nlp = SlimSpacyNlpEngine(supported_languages=["ko"], generic_tokenizer="blank", auto_download=False)
        engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["ko"])
        engine.analyze("warm-up 010-1234-5678", language="ko")
    except Exception as exc:  # report any setup failure and carry on without Presidio
        return None, f"presidio-analyzer could not be configured offline: {exc!r}"
    how = (f"presidio-analyzer {version}, language 'ko', Korean recognizers enabled + "
           f"{', '.join(PRESIDIO_RECOGNIZERS[5:])}; NLP engine: SlimSpacyNlpEngine with a blank spaCy "
           "tokenizer (no model, no NER: no PERSON); tldextract bundled suffix list")
    return engine, how


def presidio_predictor(engine: Any, threshold: float = 0.0,
                       cache: dict[str, list[tuple[int, int, str, float]]] | None = None) -> Predictor:
    """Presidio's results mapped to Nuri's types; with `cache`, each text is analysed once (at
    threshold 0) and other thresholds filter the cached scores."""
    def predict(text: str) -> list[Span]:
        found = cache.get(text) if cache is not None else None
        if found is None:
            found = []
            for r in engine.analyze(text, language="ko", score_threshold=0.0):
                t = PRESIDIO_TO_NURI.get(r.entity_type)
                if t is not None:
                    found.append((r.start, r.end, t, r.score))
            if cache is not None:
                cache[text] = found
        return [(s, e, t) for s, e, t, score in found if score >= threshold]

    return predict


def match(gold: list[Span], pred: list[Span], strict: bool = False) -> tuple[Counter, Counter, Counter]:
    """(true positives, false positives, false negatives) per type for one document."""
    tp: Counter = Counter()
    pairs = []
    for gi, (gs, ge, gt) in enumerate(gold):
        for pi, (ps, pe, pt) in enumerate(pred):
            if gt != pt:
                continue
            if strict:
                if (gs, ge) == (ps, pe):
                    pairs.append((ge - gs, gi, pi))
            else:
                ov = min(ge, pe) - max(gs, ps)
                if ov > 0:
                    pairs.append((ov, gi, pi))
    pairs.sort(reverse=True)
    used_g: set[int] = set()
    used_p: set[int] = set()
    for _ov, gi, pi in pairs:
        if gi in used_g or pi in used_p:
            continue
        used_g.add(gi)
        used_p.add(pi)
        tp[gold[gi][2]] += 1
    fp = Counter(p[2] for i, p in enumerate(pred) if i not in used_p)
    fn = Counter(g[2] for i, g in enumerate(gold) if i not in used_g)
    return tp, fp, fn


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "tp": tp, "fp": fp, "fn": fn}


def evaluate(docs: list[dict[str, Any]], predict: Predictor, types: list[str]) -> dict[str, Any]:
    """Per-type and micro scores, strict micro, recall per variant, and scan time."""
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    stp: Counter = Counter()
    sfp: Counter = Counter()
    sfn: Counter = Counter()
    var_total: Counter = Counter()
    var_hit: Counter = Counter()
    neg_fp: Counter = Counter()
    elapsed = 0.0
    for d in docs:
        gold = [(s["start"], s["end"], s["type"]) for s in d["spans"]]
        t0 = time.perf_counter()
        pred = [p for p in predict(d["text"]) if p[2] in types]
        elapsed += time.perf_counter() - t0
        a, b, c = match(gold, pred)
        tp += a
        fp += b
        fn += c
        a, b, c = match(gold, pred, strict=True)
        stp += a
        sfp += b
        sfn += c
        if not gold:
            neg_fp += Counter(p[2] for p in pred)
        for s in d["spans"]:
            kinds = [k for k in (s.get("variant"), "post2020" if s.get("post2020") else None) if k]
            hit = any(p[2] == s["type"] and min(p[1], s["end"]) > max(p[0], s["start"]) for p in pred)
            for v in kinds:
                var_total[v] += 1
                var_hit[v] += hit
    per_type = {t: prf(tp[t], fp[t], fn[t]) for t in types}
    return {
        "per_type": per_type,
        "micro": prf(sum(tp.values()), sum(fp.values()), sum(fn.values())),
        "micro_strict": prf(sum(stp.values()), sum(sfp.values()), sum(sfn.values())),
        "variant_recall": {v: round(var_hit[v] / var_total[v], 4) for v in sorted(var_total)},
        "hard_negative_docs_fp": dict(neg_fp),
        "seconds": round(elapsed, 4),
    }


def machine() -> dict[str, Any]:
    import platform

    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path
