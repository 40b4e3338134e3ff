"""Through a running gateway (`--via-gateway`): the suite passes policy and routing like any client."""

from __future__ import annotations

import json
from pathlib import Path

from eval_helpers import catalog, make_suite

from nuri.config import NuriConfig
from nuri.evals.runner import EvalRunner, RunOptions


async def test_run_through_a_real_gateway(tmp_path: Path, gateway, upstream_fast, store) -> None:
    config = catalog(upstream_fast.base_url) | {"ledger": {"enabled": False}}
    proc = gateway(config)
    suite = make_suite(tmp_path, "gw", [{"id": str(i), "question": f"게이트웨이 질문 {i}", "choices": ["예", "아니오"],
                                         "answer": "A"} for i in range(4)])
    upstream_fast.state.reply = "정답은 A"
    cfg = NuriConfig.model_validate(config)
    options = RunOptions(via_gateway=proc.root_url)
    summary = await EvalRunner(store, cfg, [suite], ["dom"], options).run()
    assert summary["results"][0]["score"] == 1.0 and summary["results"][0]["errors"] == 0
    sent = [json.loads(b) for b in upstream_fast.received_bodies()]
    assert len(sent) == 4 and {b["model"] for b in sent} == {"dom-model"}
