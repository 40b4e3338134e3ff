"""Planning at scale: `nuri plan audit` on 1,000 workloads × 20 deployments.

Builds a synthetic catalog (20 deployments, in-country and abroad), an inventory of 1,000
workloads (two Korean samples each, some with personal data, declared categories, grades and
domains, 1-2 suites with a bar), and eval results (20 deployments × 5 suites × 100 items), then
times the real CLI end to end (a process, as a user runs it) and, in-process, each phase:
evidence (bootstrap intervals), audit (classify, decide, gates, recommend) and rendering.

    .venv/bin/python bench/planning.py [--workloads 1000] [--deployments 20]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result
from nuri.config import load_config
from nuri.planning.audit import audit_workloads
from nuri.planning.evidence import Evidence, read_rows
from nuri.planning.render import write_all
from nuri.workloads import load_inventory

SUITES = ["korean-knowledge", "culture-geo", "translation", "code", "safety"]
SAMPLES = ["민원인 김민수님(010-2345-6789)의 주차 과태료 이의신청 답변 초안을 작성해 주세요.",
           "다음 안내문을 영어로 번역해 주세요: 민원실 운영 시간이 변경됩니다.",
           "대출 신청인의 소득 자료를 요약하고 상환능력 검토 의견을 써 주세요.",
           "이 Python 함수의 예외 처리를 개선해 주세요.",
           "대외비 내부 검토 자료를 바탕으로 정책 초안을 작성해 주세요.",
           "사내 업무 매뉴얼에서 출장비 정산 절차를 요약해 주세요."]


def catalog(n: int, rng: random.Random) -> dict[str, Any]:
    places = [("KR", "on_prem"), ("KR", "domestic_cloud"), ("US", "foreign_cloud"), ("JP", "foreign_cloud")]
    deps = []
    for i in range(n):
        country, hosting = places[i % len(places)]
        price = round(rng.uniform(0.05, 3.0), 3)
        deps.append({"id": f"dep-{i:02d}", "provider": "openai_compatible", "base_url": "http://127.0.0.1:9/v1",
                     "jurisdiction": country, "hosting": hosting, "license": "Apache-2.0",
                     "commercial_use": i % 7 != 3, "certifications": ["CSAP-high"] if i % 4 == 1 else [],
                     "price": {"input_per_mtok": price, "output_per_mtok": price * 4},
                     "procurement": {"open_weights": i % 2 == 0, "uptime": 99.9, "support": "24x7",
                                     "data_retention_days": 0, "red_team_report": i % 3 == 0}})
    return {"deployments": deps, "policy": {"packs": ["kr-pipa", "kr-public-n2sf", "ai-basic-act"]},
            "ledger": {"enabled": False}}


def inventory(n: int, rng: random.Random) -> dict[str, Any]:
    items = []
    for i in range(n):
        suites = rng.sample(SUITES[:4], rng.choice([1, 2]))
        items.append({"name": f"workload-{i:04d}", "owner": f"team-{i % 40}", "samples": rng.sample(SAMPLES, 2),
                      "data_categories": rng.choice([[], ["personal"], ["credit_financial"]]),
                      "n2sf_grade": rng.choice([None, "O", "S"]), "latency_ms": rng.choice([None, 1500, 3000]),
                      "commercial": bool(i % 2), "suites": {s: round(rng.uniform(0.4, 0.75), 2) for s in suites},
                      "monthly": {"requests": rng.randrange(1000, 1_000_000), "input_tokens": rng.randrange(10**6, 10**9),
                                  "output_tokens": rng.randrange(10**5, 10**8)}})
    return {"workloads": [{k: v for k, v in w.items() if v is not None} for w in items]}


def results(deployments: int, rng: random.Random, items: int = 100) -> list[dict[str, Any]]:
    rows = []
    for d in range(deployments):
        for suite in SUITES:
            p = rng.uniform(0.3, 0.95)
            for i in range(items):
                ok = rng.random() < p
                rows.append({"suite": suite, "suite_version": "1", "model": f"dep-{d:02d}", "item_id": str(i),
                             "score": 1.0 if ok else 0.0, "passed": ok, "latency_ms": round(rng.uniform(200, 3000), 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--deployments", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "nuri.yaml").write_text(yaml.safe_dump(catalog(args.deployments, rng)), encoding="utf-8")
        (root / "inventory.yaml").write_text(yaml.safe_dump(inventory(args.workloads, rng), allow_unicode=True),
                                             encoding="utf-8")
        rows = results(args.deployments, rng)
        (root / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "nuri", "plan", "audit", "inventory.yaml", "-o", "out",
                               "-c", "nuri.yaml", "--results", "results.jsonl", "--no-store"],
                              cwd=root, capture_output=True, text=True)
        cli_s = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(done.stderr)

        phases: dict[str, float] = {}
        t = time.perf_counter()
        config = load_config(root / "nuri.yaml")
        parsed = load_inventory(root / "inventory.yaml")
        phases["load_config_and_inventory_s"] = time.perf_counter() - t
        t = time.perf_counter()
        evidence = Evidence.from_rows(read_rows(root / "results.jsonl"))
        phases["evidence_s"] = time.perf_counter() - t
        t = time.perf_counter()
        result = audit_workloads(config, parsed.workloads, evidence)
        phases["audit_s"] = time.perf_counter() - t
        t = time.perf_counter()
        files = write_all(result, evidence, root / "again")
        phases["render_s"] = time.perf_counter() - t
        sizes = {k: p.stat().st_size for k, p in files.items()}
    recommended = sum(1 for w in result.workloads if w.recommended is not None)
    data = {"workloads": args.workloads, "deployments": args.deployments, "eval_rows": len(rows),
            "cli_wall_s": round(cli_s, 2), **{k: round(v, 3) for k, v in phases.items()},
            "audit_ms_per_workload": round(phases["audit_s"] * 1000 / args.workloads, 3),
            "recommended": recommended, "output_bytes": sizes}
    path = write_result("planning", data)
    print(json.dumps(data, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
