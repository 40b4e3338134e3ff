"""Procurement scorecards: criteria and weights in YAML, one scored card per deployment.

Each criterion scores a deployment from 0 to 1 with the evidence it used (the catalog's facts,
`procurement:` entries of a deployment, and Nuri's own safety-suite results for red-teaming);
the total is the weighted mean. A workload (`procurement: {min_score, require}`), the criteria
file (`require:`) or an enabled policy pack (`packs: {kr-finance: {…}}`) can demand a minimum
total or named criteria fully met; a deployment short of it is excluded, with the reason.

    criteria:
      in_country_hosting: 3                       # a weight, or a mapping with weight and options
      certifications: {weight: 2, any_of: [CSAP-high, CSAP-medium, ISMS-P]}
      red_teaming: {weight: 2, suites: [safety], min_score: 0.8}
    require: {min_score: 0.5}
    packs:
      kr-finance: {min_score: 0.7, require: [red_teaming]}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nuri.catalog import Deployment, Hosting
from nuri.planning.evidence import Evidence
from nuri.workloads import ProcurementNeed


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(1.0, ge=0)
    any_of: list[str] | None = Field(None, description="certifications / support levels that count")
    suites: list[str] = Field(default_factory=lambda: ["safety"], description="red_teaming: Nuri's own suites")
    min_score: float = Field(0.8, ge=0, le=1, description="red_teaming: lower bound the suites must reach")
    min: float | None = Field(None, description="uptime: least percentage")
    max_ms: float | None = Field(None, gt=0, description="latency: most p95 milliseconds")
    max_days: float | None = Field(None, ge=0, description="data_retention: most days kept")


class Criteria(BaseModel):
    model_config = ConfigDict(extra="forbid")
    criteria: dict[str, Criterion] = Field(default_factory=dict)
    require: ProcurementNeed = Field(default_factory=ProcurementNeed)
    packs: dict[str, ProcurementNeed] = Field(default_factory=dict)

    @field_validator("criteria", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({"weight": v} if isinstance(v, int | float) else v) for k, v in value.items()}
        return value

    @field_validator("criteria")
    @classmethod
    def _known(cls, value: dict[str, Criterion]) -> dict[str, Criterion]:
        unknown = [k for k in value if k not in CRITERIA]
        if unknown:
            raise ValueError(f"unknown criteria {unknown}; known: {', '.join(CRITERIA)}")
        return value

    def needs(self, packs: list[str], workload: ProcurementNeed | None = None) -> ProcurementNeed:
        """The strictest of the file's, each enabled pack's and the workload's demands."""
        parts = [self.require, *(self.packs[p] for p in packs if p in self.packs)]
        if workload is not None:
            parts.append(workload)
        scores = [p.min_score for p in parts if p.min_score is not None]
        required = list(dict.fromkeys(c for p in parts for c in p.require))
        return ProcurementNeed(min_score=max(scores) if scores else None, require=required)


@dataclass(frozen=True, slots=True)
class CriterionScore:
    name: str
    weight: float
    score: float
    evidence: str

    @property
    def met(self) -> bool:
        return self.score >= 1.0


@dataclass(slots=True)
class Scorecard:
    deployment: str
    criteria: list[CriterionScore] = field(default_factory=list)

    @property
    def total(self) -> float:
        weight = sum(c.weight for c in self.criteria)
        return round(sum(c.weight * c.score for c in self.criteria) / weight, 3) if weight else 0.0

    def criterion(self, name: str) -> CriterionScore | None:
        return next((c for c in self.criteria if c.name == name), None)

    def shortfall(self, need: ProcurementNeed) -> str | None:
        """Why this card fails the demand, or None when it passes."""
        reasons = []
        if need.min_score is not None and self.total < need.min_score:
            reasons.append(f"scorecard {self.total:.2f} below the minimum {need.min_score:.2f}")
        for name in need.require:
            c = self.criterion(name)
            if c is None:
                reasons.append(f"required criterion {name} is not scored (add it to the criteria)")
            elif not c.met:
                reasons.append(f"required criterion {name} not met ({c.evidence})")
        return "; ".join(reasons) or None

    def as_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "total": self.total,
                "criteria": {c.name: {"weight": c.weight, "score": c.score, "evidence": c.evidence}
                             for c in self.criteria}}


def _fact(dep: Deployment, name: str) -> Any:
    return getattr(dep.procurement, name, None)


def _home(dep: Deployment, c: Criterion, ctx: _Context) -> tuple[float, str]:
    domestic = dep.jurisdiction == ctx.home and dep.hosting in (Hosting.ON_PREM, Hosting.DOMESTIC_CLOUD)
    return (1.0 if domestic else 0.0), f"{dep.jurisdiction}, {dep.hosting}"


def _certifications(dep: Deployment, c: Criterion, ctx: _Context) -> tuple[float, str]:
    held = {x.lower(): x for x in dep.certifications}
    if c.any_of is None:
        return (1.0 if held else 0.0), ", ".join(dep.certifications) or "none"
    hits = [x for x in c.any_of if x.lower() in held]
    return (1.0 if hits else 0.0), ", ".join(hits) if hits else f"none of {', '.join(c.any_of)}"


def _flag(name: str, label: str) -> Callable[[Deployment, Criterion, _Context], tuple[float, str]]:
    def score(dep: Deployment, c: Criterion, ctx: _Context) -> tuple[float, str]:
        value = _fact(dep, name)
        return (1.0 if value else 0.0), (f"{label}: yes" if value else f"{label}: not declared")
    return score


def _model_card(dep: Deployment, c: Criterion, ctx: _Context) -> tuple[float, str]:
    url = dep.procurement.model_card_url
    return (1.0, f"model card {url}") if url else (0.0, "no model card")


def _red_teaming(dep: Deployment, c: Criterion, ctx: _Context) -> tuple[float, str]:
    found = [e for s in c.suites if (e := ctx.evidence.get(s, dep.id)) is not None]
    if found:
        ok = all(e.meets(c.min_score) for e in found)
        text = "; ".join(f"Nuri {e.suite} {e.describe()}" for e in found)
        return (1.0, text) if ok else (0.25, f"{text} below {c.min_score}")
    if dep.procurement.red_team_report:
        return 0.5, "vendor red-team report (not measured by Nuri)"
    return 0.0, "no red-teaming evidence"


def _uptime(dep: Deployment, c: Criterion, ctx: _Context) -> tuple[float, str]:
    value = _fact(dep, "uptime")
    floor = c.min if c.min is not None else 99.5
    if value is None:
        return 0.0, f"uptime not stated{f' (SLA {dep.procurement.sla})' if dep.procurement.sla else ''}"
    return (1.0 if float(value) >= floor else 0.0), f"uptime {value}% (needs {floor}%)"


def _latency(dep: Deployment, c: Criterion, ctx: _Context) -> tuple[float, str]:
    measured = ctx.evidence.p95(dep.id, [])
    stated = _fact(dep, "latency_p95_ms")
    value, source = (measured, "measured") if measured is not None else (stated, "stated")
    ceiling = c.max_ms if c.max_ms is not None else 2000.0
    if value is None:
        return 0.0, "latency unknown"
    return (1.0 if float(value) <= ceiling else 0.0), f"p95 {float(value):.0f} ms {source} (needs ≤ {ceiling:.0f})"


def _support(dep: Deployment, c: Criterion, ctx: _Context) -> tuple[float, str]:
    value = _fact(dep, "support")
    if not value:
        return 0.0, "support not stated"
    ok = c.any_of is None or str(value).lower() in {x.lower() for x in c.any_of}
    return (1.0 if ok else 0.0), f"support {value}"


def _retention(dep: Deployment, c: Criterion, ctx: _Context) -> tuple[float, str]:
    value = _fact(dep, "data_retention_days")
    ceiling = c.max_days if c.max_days is not None else 30.0
    if value is None:
        return 0.0, "data retention not stated"
    return (1.0 if float(value) <= ceiling else 0.0), f"retains data {value} days (needs ≤ {ceiling:g})"


def _license(dep: Deployment, c: Criterion, ctx: _Context) -> tuple[float, str]:
    if dep.license is None:
        return 0.0, "licence not stated"
    if not dep.commercial_use:
        return 0.0, f"{dep.license}: no commercial use"
    return 1.0, f"{dep.license}: commercial use allowed"


def _portability(dep: Deployment, c: Criterion, ctx: _Context) -> tuple[float, str]:
    if _fact(dep, "open_weights"):
        return 1.0, "open weights: can be hosted elsewhere"
    value = _fact(dep, "portability")
    return (1.0, f"portability: {value}") if value else (0.0, "closed model, no portability stated")


@dataclass(frozen=True, slots=True)
class _Context:
    home: str
    evidence: Evidence


CRITERIA: dict[str, Callable[[Deployment, Criterion, _Context], tuple[float, str]]] = {
    "in_country_hosting": _home,
    "certifications": _certifications,
    "open_weights": _flag("open_weights", "open weights"),
    "training_data_disclosure": _flag("training_data_disclosure", "training data disclosed"),
    "model_card": _model_card,
    "red_teaming": _red_teaming,
    "uptime": _uptime,
    "latency": _latency,
    "support": _support,
    "data_retention": _retention,
    "license": _license,
    "portability": _portability,
}
DEFAULT_WEIGHTS = {"in_country_hosting": 3, "certifications": 2, "open_weights": 1, "training_data_disclosure": 1,
                   "model_card": 1, "red_teaming": 2, "uptime": 1, "latency": 1, "support": 1,
                   "data_retention": 1, "license": 2, "portability": 1}


def default_criteria() -> Criteria:
    return Criteria.model_validate({"criteria": DEFAULT_WEIGHTS})


def load_criteria(path: str | Path | None) -> Criteria:
    """Criteria from YAML; without a file, every criterion at its default weight and no minimum."""
    if path is None:
        return default_criteria()
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return Criteria.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"scorecard criteria {path}: {exc}") from exc


def score_deployments(deployments: list[Deployment], criteria: Criteria, evidence: Evidence,
                      home: str) -> dict[str, Scorecard]:
    ctx = _Context(home, evidence)
    cards = {}
    for dep in deployments:
        card = Scorecard(dep.id)
        for name, c in criteria.criteria.items():
            score, why = CRITERIA[name](dep, c, ctx)
            card.criteria.append(CriterionScore(name, c.weight, score, why))
        cards[dep.id] = card
    return cards
