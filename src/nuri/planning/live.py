"""The eval strategy a running gateway uses: the routing file's ranking, rebuilt from the eval store.

`eval_strategy(config, database_url)` starts from the routing file's scores; when the store's
results change (a new run, more items), the planned workloads that are declared in the config are
audited again on the fresh results, limited to their planned candidates, so a new result can
reorder them but never add a deployment.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, func, select

from nuri.config import NuriConfig
from nuri.routing.eval_strategy import CandidateScore, EvalStrategy, table_from_plan


def ranking(config: NuriConfig, rows: list[dict[str, Any]]) -> dict[str, list[CandidateScore]]:
    """Per planned workload: the audit's order over its planned candidates, from these result rows."""
    from nuri.planning.audit import Auditor
    from nuri.planning.evidence import Evidence
    from nuri.planning.scorecard import load_criteria

    plan = config.workloads.plan
    if plan is None:
        return {}
    table = table_from_plan(plan.workloads)
    auditor = Auditor(config, Evidence.from_rows(rows), load_criteria(config.workloads.scorecard))
    for name, planned in plan.workloads.items():
        workload = config.workloads.get(name)
        if workload is None:
            continue                                   # only the routing file knows it: keep its scores
        limited = workload.model_copy(update={"deployments": list(planned.candidates)})
        audit = auditor.audit(limited)
        table[name] = [CandidateScore(a.deployment, a.meets_quality and a.meets_latency, a.monthly_cost, a.p95_ms,
                                      a.mean_score, a.min_ci_low, a.why_not()) for a in audit.order]
    return table


def eval_strategy(config: NuriConfig, database_url: str | None, check_seconds: float = 5.0) -> EvalStrategy:
    plan = config.workloads.plan
    table = table_from_plan(plan.workloads) if plan is not None else {}
    if database_url is None or plan is None:
        return EvalStrategy(table)
    from nuri.evals.store import items, metadata, runs

    engine = create_engine(database_url, future=True)
    metadata.create_all(engine)

    def stamp() -> tuple[Any, ...]:
        with engine.connect() as conn:
            item_mark = conn.execute(select(func.count(), func.max(items.c.id))).one()
            run_mark = conn.execute(select(func.count(), func.max(runs.c.finished_at))).one()
        return (*item_mark, *run_mark)

    def source() -> dict[str, list[CandidateScore]]:
        from nuri.planning.evidence import store_rows

        return ranking(config, store_rows(database_url))

    return EvalStrategy(table, source=source, stamp=stamp, check_seconds=check_seconds)
