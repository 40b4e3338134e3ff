"""Re-score a stored run's replies with the current scorers, without calling any model again.

When a scorer is fixed, every run scored with the old rule can be brought up to date as long as
the dataset version is unchanged; the run records when and with which definition it was rescored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from nuri.evals.runner import score_reply
from nuri.evals.scorers import ScoreContext, get_scorer
from nuri.evals.store import ResultStore
from nuri.evals.suite import Suite


async def rescore_run(store: ResultStore, run_id: str, suites: dict[str, Suite]) -> dict[str, Any]:
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no evaluation run {run_id!r}")
    for s in run["suites"]:
        if s["name"] not in suites:
            raise KeyError(f"suite {s['name']!r} of run {run['id']} is not available")
        if suites[s["name"]].version != s["version"]:
            raise ValueError(f"suite {s['name']} is now version {suites[s['name']].version}; "
                             f"run {run['id']} scored {s['version']}: rerun it instead")
    rows = [r for r in store.run_items([run["id"]]) if r["reply"] is not None]
    changed = 0
    updates = []
    for name in {r["suite"] for r in rows}:
        suite = suites[name]
        scorer = get_scorer(suite.scorer.name, suite.scorer.options)
        by_id = {i["id"]: i for i in suite.items}
        for r in (r for r in rows if r["suite"] == name):
            ctx = ScoreContext(messages=json.loads(r["prompt"]), seed=suite.settings.seed,
                               latency_ms=r["latency_ms"], ttft_ms=r["ttft_ms"], cost=r["cost"])
            value, details, passed = await score_reply(suite, scorer, by_id[r["item_id"]], r["reply"], ctx)
            changed += value != r["score"]
            updates.append({"id": r["id"], "score": value, "details": details, "passed": passed, "error": None})
    store.update_scores(updates)
    settings = dict(run["settings"])
    settings["rescored"] = {"at": datetime.now(UTC).isoformat(),
                            "definitions": {n: suites[n].definition_hash for n in {r["suite"] for r in rows}}}
    store.set_settings(run["id"], settings)
    return {"run_id": run["id"], "items": len(updates), "changed": changed}
