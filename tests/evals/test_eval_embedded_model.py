"""The harness on the embedded Gemma 3 270M through its real provider (tiny limits: it is slow)."""

from __future__ import annotations

import importlib.util

import pytest
from eval_helpers import shipped

from nuri.config import load_config
from nuri.evals.runner import EvalRunner, RunOptions

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama-cpp-python is not installed, so the embedded model cannot run"),
]


async def test_shipped_suites_run_on_the_embedded_model(store) -> None:
    cfg = load_config(None)  # no file: the embedded model alone
    suites = [shipped("korean-knowledge"), shipped("culture-geo")]
    options = RunOptions(limit=1, concurrency=1, overrides={"max_tokens": 8})
    summary = await EvalRunner(store, cfg, suites, ["local-gemma"], options).run()
    assert summary["status"] == "finished"
    rows = store.run_items([summary["run_id"]])
    assert len(rows) == 2 and all(r["error"] is None for r in rows), [r["error"] for r in rows]
    assert all(0.0 <= r["score"] <= 1.0 and r["latency_ms"] > 0 and r["completion_tokens"] for r in rows)
    assert all(r["cost"] == 0.0 for r in rows)  # an on-prem model with no price
