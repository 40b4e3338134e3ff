"""Shared by the planning tests: a small catalog, workloads and synthetic eval rows."""

from __future__ import annotations

from typing import Any

from nuri.config import NuriConfig
from nuri.planning.audit import AuditResult, audit_workloads
from nuri.planning.evidence import Evidence
from nuri.planning.scorecard import Criteria
from nuri.workloads import Workload


def deployment(dep_id: str, jurisdiction: str, hosting: str, price: float, **extra: Any) -> dict[str, Any]:
    return {"id": dep_id, "provider": "openai_compatible", "base_url": extra.pop("base_url", "http://127.0.0.1:9/v1"),
            "model": dep_id, "jurisdiction": jurisdiction, "hosting": hosting,
            "price": {"input_per_mtok": price, "output_per_mtok": price * 4}, **extra}


def catalog(**overrides: Any) -> dict[str, Any]:
    """A sovereign on-prem deployment, a cheaper one abroad, and a cheap research model (non-commercial)."""
    deps = {
        "kr-sov": deployment("kr-sov", "KR", "on_prem", 1.0, license="Apache-2.0"),
        "us-glob": deployment("us-glob", "US", "foreign_cloud", 0.2, license="proprietary"),
        "kr-research": deployment("kr-research", "KR", "on_prem", 0.05, license="CC BY-NC 4.0",
                                  commercial_use=False),
    }
    for dep_id, changes in overrides.items():
        deps[dep_id.replace("_", "-")].update(changes)
    return {"deployments": list(deps.values()), "policy": {"packs": ["kr-pipa", "ai-basic-act"]},
            "ledger": {"enabled": False}}


def rows(model: str, suite: str, passed: int, n: int = 50, latency_ms: float = 500.0) -> list[dict[str, Any]]:
    """n items of one suite, the first `passed` of them right."""
    return [{"suite": suite, "suite_version": "1", "model": model, "item_id": f"{suite}-{i}",
             "score": 1.0 if i < passed else 0.0, "passed": i < passed, "latency_ms": latency_ms + i}
            for i in range(n)]


def strong_everywhere(suite: str = "qa") -> list[dict[str, Any]]:
    return rows("kr-sov", suite, 45) + rows("us-glob", suite, 45) + rows("kr-research", suite, 45)


def workload(**fields: Any) -> Workload:
    base: dict[str, Any] = {"name": "helpdesk", "owner": "it", "suites": {"qa": 0.7},
                            "monthly": {"requests": 1000, "input_tokens": 10_000_000, "output_tokens": 2_000_000}}
    return Workload.model_validate(base | fields)


def audit(config: dict[str, Any], w: Workload, result_rows: list[dict[str, Any]],
          criteria: Criteria | None = None) -> AuditResult:
    return audit_workloads(NuriConfig.model_validate(config), [w], Evidence.from_rows(result_rows), criteria)


def recommended(result: AuditResult) -> str | None:
    best = result.workloads[0].recommended
    return best.deployment if best else None
