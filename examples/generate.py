"""Regenerate the examples: deterministic eval results, then `nuri plan audit` on each example.

    .venv/bin/python examples/generate.py            # rewrites examples/*/results.jsonl and report/

The eval results are synthetic (seeded): they stand for what `nuri eval run` would have stored,
so the reports can be reproduced byte for byte on any machine (tests/planning checks they are).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from pathlib import Path

from nuri.config import load_config
from nuri.planning.audit import audit_workloads
from nuri.planning.evidence import Evidence, read_rows
from nuri.planning.render import write_all
from nuri.planning.scorecard import load_criteria
from nuri.workloads import load_inventory

HERE = Path(__file__).resolve().parent
ITEMS = 60

# (deployment, suite) → (share of items passed, median latency in ms)
EXAMPLES: dict[str, dict[str, object]] = {
    "public-agency": {
        "title": "Public agency: workload audit",
        "inventory": "inventory.yaml",
        "results": {
            ("gov-cloud", "korean-knowledge"): (0.78, 1100), ("gov-cloud", "culture-geo"): (0.75, 1100),
            ("gov-cloud", "translation"): (0.62, 1300), ("gov-cloud", "safety"): (0.93, 900),
            ("agency-onprem", "korean-knowledge"): (0.58, 600), ("agency-onprem", "culture-geo"): (0.50, 600),
            ("agency-onprem", "translation"): (0.40, 700), ("agency-onprem", "safety"): (0.70, 500),
            ("global-api", "korean-knowledge"): (0.82, 900), ("global-api", "culture-geo"): (0.66, 900),
            ("global-api", "translation"): (0.72, 1000), ("global-api", "safety"): (0.95, 800),
        },
    },
    "bank": {
        "title": "Bank: workload audit",
        "inventory": "inventory.csv",
        "results": {
            ("bank-onprem", "korean-knowledge"): (0.80, 1500), ("bank-onprem", "code"): (0.62, 1800),
            ("bank-onprem", "safety"): (0.92, 1200),
            ("kr-cloud", "korean-knowledge"): (0.74, 1100), ("kr-cloud", "code"): (0.55, 1300),
            ("kr-cloud", "safety"): (0.85, 1000),
            ("global-api", "korean-knowledge"): (0.83, 900), ("global-api", "code"): (0.75, 1000),
            ("global-api", "safety"): (0.95, 800),
            ("research-model", "korean-knowledge"): (0.62, 500), ("research-model", "code"): (0.40, 600),
        },
    },
}


def synthetic_rows(results: dict[tuple[str, str], tuple[float, int]]) -> list[dict[str, object]]:
    """Item rows with exactly round(share × ITEMS) passes and latencies spread around the median."""
    rows = []
    for (model, suite), (share, median_ms) in sorted(results.items()):
        seed = int(hashlib.sha256(f"{model}/{suite}".encode()).hexdigest()[:8], 16)
        rng = random.Random(seed)
        passed = [i < round(share * ITEMS) for i in range(ITEMS)]
        rng.shuffle(passed)
        for i, ok in enumerate(passed):
            latency = max(50.0, rng.gauss(median_ms, median_ms * 0.2))
            rows.append({"suite": suite, "suite_version": "1", "model": model, "item_id": f"{suite}-{i:03d}",
                         "score": 1.0 if ok else 0.0, "passed": ok, "latency_ms": round(latency, 1)})
    return rows


def generate(name: str, root: Path = HERE) -> dict[str, Path]:
    """Write results.jsonl and report/ of one example under `root`."""
    spec = EXAMPLES[name]
    folder = root / name
    results = folder / "results.jsonl"
    rows = synthetic_rows(spec["results"])  # type: ignore[arg-type]
    results.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    with contextlib.chdir(folder):            # the config names its scorecard relative to here
        config = load_config("nuri.yaml")
        inventory = load_inventory(str(spec["inventory"]))
        evidence = Evidence.from_rows(read_rows("results.jsonl"))
        result = audit_workloads(config, inventory.workloads, evidence, load_criteria(config.workloads.scorecard),
                                 [str(e) for e in inventory.errors])
        return write_all(result, evidence, Path("report"), str(spec["title"]))


if __name__ == "__main__":
    for example in EXAMPLES:
        for kind, path in generate(example).items():
            print(f"{example}: {kind} {path}")
