"""Request → workload membership, and the eval strategy's order and refresh (routing-level data only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from planning_helpers import catalog, rows, strong_everywhere

from nuri.catalog import Deployment
from nuri.config import NuriConfig, RoutingSettings
from nuri.errors import InvalidRequest, ModelNotFound
from nuri.evals.store import ItemResult, ResultStore
from nuri.planning.live import eval_strategy, ranking
from nuri.planning.membership import routed_model, workload_for
from nuri.principal import ANONYMOUS
from nuri.routing.eval_strategy import CandidateScore, EvalStrategy
from nuri.routing.health import HealthBook
from nuri.routing.router import RouteStep

PLAN = {"nuri_routing_plan": 1, "workloads": {"helpdesk": {
    "candidates": ["us-glob", "kr-sov"], "recommended": "us-glob",
    "scores": [{"deployment": "us-glob", "meets_bar": True, "monthly_cost": 2.0},
               {"deployment": "kr-sov", "meets_bar": True, "monthly_cost": 18.0}]}}}


def _config(tmp_path: Path, **workloads: object) -> NuriConfig:
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump(PLAN), encoding="utf-8")
    raw = catalog() | {"workloads": {"routes": str(tmp_path / "routes.yaml"),
                                     "items": [{"name": "helpdesk", "suites": {"qa": 0.7},
                                                "monthly": {"input_tokens": 10_000_000, "output_tokens": 2_000_000}},
                                               {"name": "unplanned"}], **workloads}}
    return NuriConfig.model_validate(raw)


def test_routing_file_gives_each_planned_workload_an_alias(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert cfg.aliases["workload:helpdesk"] == ["us-glob", "kr-sov"]
    assert "workload:unplanned" not in cfg.aliases        # no plan, no route: never all deployments


def test_membership_by_model_alias_and_header(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert workload_for(cfg, "workload:helpdesk", {}, ANONYMOUS).name == "helpdesk"
    by_header = workload_for(cfg, "default", {"x-nuri-workload": "helpdesk"}, ANONYMOUS)
    assert by_header is not None and routed_model("default", by_header) == "workload:helpdesk"
    assert workload_for(cfg, "kr-sov", {}, ANONYMOUS) is None
    assert routed_model("kr-sov", None) == "kr-sov"
    with pytest.raises(ModelNotFound, match="workload 'nope' does not exist"):
        workload_for(cfg, "workload:nope", {}, ANONYMOUS)
    with pytest.raises(InvalidRequest, match="unknown workload 'nope'"):
        workload_for(cfg, None, {"x-nuri-workload": "nope"}, ANONYMOUS)
    with pytest.raises(InvalidRequest, match="name different workloads"):
        workload_for(cfg, "workload:helpdesk", {"x-nuri-workload": "unplanned"}, ANONYMOUS)
    with pytest.raises(InvalidRequest, match="routes by the workload's plan"):
        workload_for(cfg, "kr-sov", {"x-nuri-workload": "helpdesk"}, ANONYMOUS)


def _steps(cfg: NuriConfig, ids: list[str]) -> list[RouteStep]:
    by = {d.id: d for d in cfg.deployments}
    return [RouteStep(by[i]) for i in ids]


def test_eval_strategy_orders_by_bar_then_cost_then_latency_and_never_adds(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    health = HealthBook(RoutingSettings())
    strategy = EvalStrategy({"helpdesk": [
        CandidateScore("us-glob", False, 1.0, 100.0), CandidateScore("kr-sov", True, 9.0, 900.0),
        CandidateScore("kr-research", True, 9.0, 300.0)]})
    steps = _steps(cfg, ["us-glob", "kr-sov", "kr-research"])
    assert [s.deployment.id for s in strategy.order(steps, "workload:helpdesk", health)] == \
        ["kr-research", "kr-sov", "us-glob"]
    # only what the router handed over comes back (an excluded or unhealthy one is never added)
    assert [s.deployment.id for s in strategy.order(steps[:2], "workload:helpdesk", health)] == ["kr-sov", "us-glob"]
    assert strategy.order(steps, "default", health) == steps            # not a workload: plan order
    why = strategy.explain("workload:helpdesk", steps, health)
    assert why[0]["deployment"] == "kr-research" and why[0]["why"].startswith("first: meets the quality bar")
    assert why[2]["why"].startswith("behind kr-research: does not meet the quality bar")


def test_router_registers_eval(tmp_path: Path) -> None:
    from nuri.policy.decision import Decision, Verdict
    from nuri.routing.router import Router

    cfg = _config(tmp_path)
    router = Router(RoutingSettings(strategy="eval"), HealthBook(RoutingSettings()),
                    eval_strategy=EvalStrategy({"helpdesk": [CandidateScore("kr-sov", True, 1.0),
                                                             CandidateScore("us-glob", True, 2.0)]}))
    decision = Decision("allow", [Verdict("us-glob", True), Verdict("kr-sov", True)], requested="workload:helpdesk")
    deps: dict[str, Deployment] = {d.id: d for d in cfg.deployments}
    assert [s.deployment.id for s in router.plan(decision, deps, 10)] == ["kr-sov", "us-glob"]


def _save(store: ResultStore, run: str, result_rows: list[dict]) -> None:
    store.save_items([ItemResult(run_id=run, suite=r["suite"], suite_version="1", item_id=r["item_id"],
                                 item_hash="h", model=r["model"], prompt="q", score=r["score"], passed=r["passed"],
                                 latency_ms=r["latency_ms"]) for r in result_rows])


def test_new_eval_results_reorder_a_running_plan(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    url = f"sqlite:///{tmp_path / 'nuri.db'}"
    store = ResultStore(url)
    run = store.create_run("fp", [{"name": "qa", "version": "1"}], ["kr-sov", "us-glob"], {})
    _save(store, run, strong_everywhere())
    store.set_status(run, "finished")
    now = [0.0]
    strategy = eval_strategy(cfg, url, check_seconds=1.0)
    strategy._clock = lambda: now[0]
    health = HealthBook(RoutingSettings())
    steps = _steps(cfg, ["us-glob", "kr-sov"])
    assert [s.deployment.id for s in strategy.order(steps, "workload:helpdesk", health)] == ["us-glob", "kr-sov"]
    # a new run finds the global model below the bar: the next look after check_seconds reorders
    run2 = store.create_run("fp2", [{"name": "qa", "version": "1"}], ["us-glob"], {})
    _save(store, run2, rows("us-glob", "qa", 20))
    store.set_status(run2, "finished")
    assert [s.deployment.id for s in strategy.order(steps, "workload:helpdesk", health)][0] == "us-glob"
    now[0] = 2.0
    assert [s.deployment.id for s in strategy.order(steps, "workload:helpdesk", health)] == ["kr-sov", "us-glob"]
    table = ranking(cfg, store.latest_items())
    assert [c.deployment_id for c in table["helpdesk"]] == ["kr-sov", "us-glob"]   # never kr-research: not planned
    store.close()
