"""Write an audit: self-contained HTML (inline SVG charts), Markdown, CSV and the routing file.

Outputs carry no time stamp, so the same inputs give byte-identical files (the examples are
checked by regenerating them).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from nuri.planning import charts, templates
from nuri.planning.audit import AuditResult
from nuri.planning.scorecard import Scorecard

ROUTES_HEADER = ("# Routing file written by `nuri plan audit`; load it with `workloads: {routes: <this file>}`.\n"
                 "# Each workload's candidates are eligible deployments in planned order (recommended first).\n")
CSV_FIELDS = ("workload", "owner", "n2sf_grade", "categories", "high_impact", "recommended", "sovereign",
              "requests_per_month", "cost_per_month", "currency", "p95_ms", "eligible", "excluded", "why")


def money(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def entity_list(entities: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in entities.items()) or "none"


def _env() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False,
                      keep_trailing_newline=True)
    env.globals.update(money=money, entity_list=entity_list)
    return env


def summary(result: AuditResult) -> dict[str, Any]:
    mix = {k: {"requests": 0.0, "cost": 0.0} for k in ("sovereign", "global", "unplanned")}
    counts = {"sovereign": 0, "global": 0, "none": 0}
    for w in result.workloads:
        kind = "unplanned" if w.recommended is None else ("sovereign" if w.recommended.sovereign else "global")
        mix[kind]["requests"] += w.workload.monthly.requests
        mix[kind]["cost"] += w.monthly_cost or 0.0
        counts["none" if kind == "unplanned" else kind] += 1
    return {"mix": mix, "counts": counts, "total_cost": mix["sovereign"]["cost"] + mix["global"]["cost"]}


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _quality_points(result: AuditResult, auditor_evidence: Any) -> list[dict[str, Any]]:
    points = []
    for dep in result.deployments:
        entries = [e for e in auditor_evidence.entries if e.deployment == dep.id]
        points.append({"id": dep.id, "price": dep.price.input_per_mtok + dep.price.output_per_mtok,
                       "sovereign": dep.jurisdiction == result.home and str(dep.hosting) != "foreign_cloud",
                       "score": _mean([e.score for e in entries]), "ci_low": _mean([e.ci_low for e in entries]),
                       "ci_high": _mean([e.ci_high for e in entries])})
    return points


def context(result: AuditResult, evidence: Any, title: str) -> dict[str, Any]:
    s = summary(result)
    rows = [{"name": w.workload.name, "cost": w.monthly_cost, "sovereign": w.sovereign,
             "deployment": w.recommended.deployment if w.recommended else None} for w in result.workloads]
    cards: list[Scorecard] = list(result.scorecards.values())
    return {
        "title": title, "n": len(result.workloads), "audits": result.workloads, "deployments": result.deployments,
        "home": result.home, "currency": result.currency, "inventory_errors": result.inventory_errors,
        "counts": s["counts"], "total_cost": s["total_cost"],
        "scorecards": cards, "criteria": [c.name for c in cards[0].criteria] if cards else [],
        "charts": {"mix": charts.mix_chart(s["mix"], result.currency),
                   "cost": charts.workload_cost_chart(rows, result.currency),
                   "quality": charts.quality_cost_chart(_quality_points(result, evidence), result.currency)},
        "style": Markup(templates.STYLE), "script": Markup(templates.SCRIPT),   # ours, not data
    }


def render_html(result: AuditResult, evidence: Any, title: str = "Nuri workload audit") -> str:
    return _env().from_string(templates.HTML).render(**context(result, evidence, title))


def render_markdown(result: AuditResult, evidence: Any, title: str = "Nuri workload audit") -> str:
    env = Environment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)
    env.globals.update(money=money, entity_list=entity_list)
    return env.from_string(templates.MARKDOWN).render(**context(result, evidence, title))


def render_csv(result: AuditResult) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for w in result.workloads:
        best = w.recommended
        writer.writerow({
            "workload": w.workload.name, "owner": w.workload.owner, "n2sf_grade": w.classification["n2sf_grade"],
            "categories": ";".join(w.classification["categories"]), "high_impact": str(w.high_impact).lower(),
            "recommended": best.deployment if best else "", "sovereign": "" if best is None else str(best.sovereign).lower(),
            "requests_per_month": w.workload.monthly.requests,
            "cost_per_month": f"{best.monthly_cost:.2f}" if best else "", "currency": result.currency,
            "p95_ms": "" if best is None or best.p95_ms is None else best.p95_ms,
            "eligible": ";".join(a.deployment for a in w.order),
            "excluded": ";".join(a.deployment for a in w.assessments if not a.eligible), "why": w.why,
        })
    return buf.getvalue()


def render_routes(result: AuditResult) -> str:
    data = result.routing_plan().model_dump(mode="json", exclude_none=True)
    # JSON is YAML: written as JSON because the YAML representer takes seconds for 1,000 workloads
    return ROUTES_HEADER + json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def write_all(result: AuditResult, evidence: Any, out_dir: Path, title: str = "Nuri workload audit") -> dict[str, Path]:
    """report.html, report.md, workloads.csv and routes.yaml in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"html": out_dir / "report.html", "markdown": out_dir / "report.md",
             "csv": out_dir / "workloads.csv", "routes": out_dir / "routes.yaml"}
    files["html"].write_text(render_html(result, evidence, title), encoding="utf-8")
    files["markdown"].write_text(render_markdown(result, evidence, title), encoding="utf-8")
    files["csv"].write_text(render_csv(result), encoding="utf-8")
    files["routes"].write_text(render_routes(result), encoding="utf-8")
    return files
