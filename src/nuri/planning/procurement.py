"""Procurement exclusions: which deployments may not serve a workload, and why.

Two gates, both from facts known before any request: the licence (a model whose licence forbids
commercial use cannot serve a commercial workload) and the procurement scorecard (the minimum
total and named criteria that the workload, the criteria file and the enabled policy packs
demand). They only ever remove deployments: the router orders what is left, policy still decides
per request on what the request carries.
"""

from __future__ import annotations

from collections.abc import Iterable

from nuri.catalog import Deployment
from nuri.planning.scorecard import Criteria, Scorecard
from nuri.workloads import Workload


def licence_problem(dep: Deployment, workload: Workload) -> str | None:
    if workload.commercial and not dep.commercial_use:
        return f"licence {dep.license or '(not stated)'} does not allow commercial use; {workload.name} is commercial"
    return None


def excluded(
    deployments: Iterable[Deployment],
    workload: Workload,
    scorecards: dict[str, Scorecard],
    *,
    criteria: Criteria | None = None,
    packs: Iterable[str] = (),
) -> dict[str, str]:
    """deployment id → why it may not serve the workload (licence, then procurement), for each
    excluded deployment. A deployment without a scorecard is judged against an empty card, so a
    demand it cannot show fails rather than passes."""
    need = criteria.needs(list(packs), workload.procurement) if criteria is not None else workload.procurement
    out: dict[str, str] = {}
    for dep in deployments:
        reasons = []
        licence = licence_problem(dep, workload)
        if licence:
            reasons.append(licence)
        if need.min_score is not None or need.require:
            short = scorecards.get(dep.id, Scorecard(dep.id)).shortfall(need)
            if short:
                reasons.append(f"procurement: {short}")
        if reasons:
            out[dep.id] = "; ".join(reasons)
    return out
