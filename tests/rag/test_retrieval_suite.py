"""The shipped retrieval suite: Korean morphemes beat whitespace words, and the set is sound."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from nuri.evals.suite import load_suite
from nuri.rag.evaluate import compare, export_grounded, load_set, rankings_for


def test_kiwi_bm25_beats_whitespace_bm25_on_recall_at_5() -> None:
    result = asyncio.run(compare(load_set()))
    kiwi, space = result["methods"]["kiwi-bm25"], result["methods"]["whitespace-bm25"]
    assert result["items"] >= 50
    assert kiwi["recall@5"] > space["recall@5"] + 0.1, result
    assert kiwi["mrr@10"] > space["mrr@10"], result
    assert kiwi["recall@5"] >= 0.9, result


def test_every_question_has_exactly_one_answering_document() -> None:
    data = load_set()
    for item in data.items:
        docs = {data.sources[i] for i in data.relevant(item)}
        assert docs == {f"doc-{item['doc']}"}, item["id"]


def test_exported_grounded_suite_loads_and_cites_the_evidence(tmp_path: Path) -> None:
    data = load_set()
    suite = load_suite(export_grounded(data, rankings_for(data), tmp_path / "g"))
    assert suite.scorer.name == "grounded" and len(suite.items) == len(data.items)
    first = suite.items[0]
    assert all(data.items[0]["evidence"] in first["passages"][n - 1] for n in first["cite"])


def test_cli_eval_reports_every_method(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "nuri", "rag", "eval", "--json"], capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(out.stdout)
    assert set(result["methods"]) == {"kiwi-bm25", "whitespace-bm25"}
    assert set(result["skipped"]) == {"dense", "hybrid"}
