"""The use-case audit: per workload, what it carries, which rules apply, where it may go, and where it should.

For each workload: its samples go through the same classifier as live traffic and the declared
categories, entity types, topics, grade and domains are added; the policy engine decides on that
classification for every candidate deployment (rules with their citations, eligibility and
masking); licence and procurement gates exclude more; the stored eval results say which
eligible deployments meet the quality bar with confidence within the latency target; and the
cheapest of those is recommended (`recommend.py`). Nothing here calls a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nuri.catalog import Deployment, Hosting
from nuri.config import NuriConfig
from nuri.planning.evidence import Evidence
from nuri.planning.procurement import excluded
from nuri.planning.recommend import Assessment, SuiteCheck, recommend
from nuri.planning.scorecard import Criteria, Scorecard, default_criteria, score_deployments
from nuri.policy.decision import Decision, Verdict
from nuri.policy.engine import PolicyEngine
from nuri.policy.explain import classification_view
from nuri.policy.model import KNOWN_ENTITY_TYPES
from nuri.principal import Principal
from nuri.privacy import signals
from nuri.privacy.classify import classify_request
from nuri.privacy.scanner import Scanner
from nuri.privacy.types import Classification, Entity, PipaCategory
from nuri.privacy.types import Evidence as EntityEvidence
from nuri.workloads import PlannedCandidate, PlannedWorkload, RoutingPlan, Workload

_TYPE_CATEGORY = {"KR_RRN": PipaCategory.UNIQUE_ID, "KR_FRN": PipaCategory.UNIQUE_ID,
                  "KR_PASSPORT": PipaCategory.UNIQUE_ID, "KR_DRIVER_LICENSE": PipaCategory.UNIQUE_ID,
                  "CARD": PipaCategory.FINANCIAL, "BANK_ACCOUNT": PipaCategory.FINANCIAL,
                  "SECRET": PipaCategory.SECRET}
# A declared category without declared types stands for these types, so rules on types apply too.
_REPRESENTATIVE = {"unique_identification": ["KR_RRN"], "credit_financial": ["CARD", "BANK_ACCOUNT"],
                   "personal": ["PERSON", "PHONE"], "secret": ["SECRET"], "sensitive": []}
_SCRIPT = {"ko": "hangul", "en": "latin", "zh": "han", "ja": "kana"}
PERSONAL = {"personal", "unique_identification", "credit_financial", "sensitive"}


@dataclass(slots=True)
class WorkloadAudit:
    workload: Workload
    classification: dict[str, Any]
    rules: list[dict[str, str]]
    high_impact: bool
    high_impact_reasons: list[str]
    cross_border: list[str]
    licence_problems: list[str]
    assessments: list[Assessment]
    order: list[Assessment]
    recommended: Assessment | None
    why: str
    problems: list[str] = field(default_factory=list)

    @property
    def sovereign(self) -> bool | None:
        return None if self.recommended is None else self.recommended.sovereign

    @property
    def monthly_cost(self) -> float | None:
        return None if self.recommended is None else self.recommended.monthly_cost


@dataclass(slots=True)
class AuditResult:
    workloads: list[WorkloadAudit]
    scorecards: dict[str, Scorecard]
    deployments: list[Deployment]
    home: str
    currency: str
    inventory_errors: list[str] = field(default_factory=list)

    def routing_plan(self) -> RoutingPlan:
        planned = {}
        for w in self.workloads:
            planned[w.workload.name] = PlannedWorkload(
                candidates=[a.deployment for a in w.order],
                recommended=w.recommended.deployment if w.recommended else None,
                why=w.why,
                excluded={a.deployment: a.why_not() for a in w.assessments if not a.eligible},
                scores=[PlannedCandidate(deployment=a.deployment, meets_bar=a.meets_quality and a.meets_latency,
                                         score=a.mean_score, ci_low=a.min_ci_low,
                                         monthly_cost=round(a.monthly_cost, 4), p95_ms=a.p95_ms,
                                         note=a.why_not())
                        for a in w.order],
            )
        return RoutingPlan(home_jurisdiction=self.home, currency=self.currency, workloads=planned)


class Auditor:
    """Built once per audit: scanner, policy engine and scorecards are shared by every workload."""

    def __init__(self, config: NuriConfig, evidence: Evidence, criteria: Criteria | None = None) -> None:
        self.config = config
        self.home = config.policy.home_jurisdiction
        self.evidence = evidence
        self.criteria = criteria or default_criteria()
        self.scanner = Scanner(config.privacy)
        self.engine = PolicyEngine.load(config.policy, config.deployments) if config.policy.enabled else None
        self.packs = list(config.policy.packs) if config.policy.enabled else []
        self.scorecards = score_deployments(config.deployments, self.criteria, evidence, self.home)
        self.by_id = {d.id: d for d in config.deployments}
        currencies = {d.price.currency for d in config.deployments}
        self.currency = next(iter(currencies)) if len(currencies) == 1 else "mixed"

    def run(self, workloads: list[Workload], inventory_errors: list[str] | None = None) -> AuditResult:
        audits = [self.audit(w) for w in workloads]
        return AuditResult(audits, self.scorecards, list(self.config.deployments), self.home, self.currency,
                           list(inventory_errors or []))

    def classify(self, workload: Workload) -> tuple[Classification, list[str]]:
        """Samples through the live classifier, merged, plus what the workload declares."""
        problems: list[str] = []
        result = Classification()
        counts: dict[str, float] = {}
        for text in workload.samples:
            part = classify_request({"messages": [{"role": "user", "content": text}]}, "chat", self.scanner)
            result.entities.extend(part.entities)
            result.categories |= part.categories
            result.sensitive_topics |= part.sensitive_topics
            result.domains |= part.domains
            result.markings.extend(m for m in part.markings if m not in result.markings)
            result.n2sf_grade = signals.higher(result.n2sf_grade, part.n2sf_grade)
            result.chars += part.chars
            for script, share in part.languages.items():
                counts[script] = counts.get(script, 0.0) + share * part.chars
        unknown = [t for t in workload.entity_types if t not in KNOWN_ENTITY_TYPES]
        if unknown:
            problems.append(f"unknown entity types {unknown} ignored")
        declared = [t for t in workload.entity_types if t in KNOWN_ENTITY_TYPES]
        for category in workload.data_categories:
            result.categories.add(PipaCategory(category))
            if not any(_category(t) == category for t in declared):
                declared.extend(_REPRESENTATIVE[category])
        for t in dict.fromkeys(declared):
            cat = _TYPE_CATEGORY.get(t, PipaCategory.PERSONAL)
            result.entities.append(Entity(t, 0, 0, "", 1.0, EntityEvidence.CONTEXT, cat, "declared"))
            result.categories.add(cat)
        result.sensitive_topics |= set(workload.topics)
        if result.sensitive_topics:
            result.categories.add(PipaCategory.SENSITIVE)
        result.domains |= set(workload.domain)
        if workload.n2sf_grade:
            result.n2sf_grade = signals.higher(result.n2sf_grade, workload.n2sf_grade)
        if not counts:
            counts = {_SCRIPT.get(lang, lang): 1.0 for lang in workload.languages}
        total = sum(counts.values())
        result.languages = {k: round(v / total, 4) for k, v in counts.items()} if total else {}
        return result, problems

    def decide(self, workload: Workload, classification: Classification, candidates: list[Deployment]) -> Decision:
        if self.engine is None:
            verdicts = [Verdict(d.id, True, frozenset(), None, "policy disabled") for d in candidates]
            return Decision(action="allow", verdicts=verdicts, requested=workload.alias)
        principal = Principal(team=workload.owner or "anonymous", tags=frozenset(workload.tags))
        return self.engine.decide(classification, principal, workload.alias, candidates, endpoint="chat")

    def audit(self, workload: Workload) -> WorkloadAudit:
        classification, problems = self.classify(workload)
        candidates = list(self.config.deployments)
        if workload.deployments is not None:
            missing = [i for i in workload.deployments if i not in self.by_id]
            if missing:
                problems.append(f"unknown deployments {missing} ignored")
            candidates = [self.by_id[i] for i in workload.deployments if i in self.by_id]
        decision = self.decide(workload, classification, candidates)
        gates = excluded(candidates, workload, self.scorecards, criteria=self.criteria, packs=self.packs)
        bars = [s.suite for s in workload.suites]
        assessments = []
        for dep in candidates:
            verdict = decision.verdict(dep.id)
            checks = []
            for bar in workload.suites:
                e = self.evidence.get(bar.suite, dep.id)
                checks.append(SuiteCheck(bar.suite, bar.min_score, *( (e.score, e.ci_low, e.ci_high, e.n)
                                                                      if e else (None, None, None, 0))))
            stated = getattr(dep.procurement, "latency_p95_ms", None)
            p95 = self.evidence.p95(dep.id, bars) if bars else None
            p95 = p95 if p95 is not None else self.evidence.p95(dep.id, [])
            assessments.append(Assessment(
                deployment=dep.id, jurisdiction=dep.jurisdiction, hosting=str(dep.hosting),
                sovereign=self.sovereign(dep),
                monthly_cost=dep.price.cost(workload.monthly.input_tokens, workload.monthly.output_tokens),
                policy_eligible=verdict.eligible if verdict else False,
                policy_reason=verdict.reason if verdict else "no verdict",
                mask_types=sorted(verdict.mask_types) if verdict else [],
                excluded=gates.get(dep.id), suites=checks,
                p95_ms=p95 if p95 is not None else (float(stated) if stated is not None else None),
                latency_target=workload.latency_ms, procurement_score=self.scorecards[dep.id].total,
            ))
        order, best, why = recommend(assessments)
        flags = list(decision.flag_reasons)
        if classification.domains and not flags:
            flags.append(f"high-impact domain(s) {', '.join(sorted(classification.domains))} (AI Basic Act Art. 2)")
        return WorkloadAudit(
            workload=workload,
            classification=classification_view(classification),
            rules=[{"id": m.id, "pack": m.pack, "citation": m.citation, "action": m.action, "message": m.message}
                   for m in decision.matched],
            high_impact=bool(flags), high_impact_reasons=flags,
            cross_border=self.cross_border(classification, [a for a in order], best),
            licence_problems=[f"{d}: {r}" for d, r in gates.items() if "licence" in r],
            assessments=assessments, order=order, recommended=best, why=why, problems=problems,
        )

    def sovereign(self, dep: Deployment) -> bool:
        return dep.jurisdiction == self.home and dep.hosting != Hosting.FOREIGN_CLOUD

    def cross_border(self, classification: Classification, eligible: list[Assessment],
                     best: Assessment | None) -> list[str]:
        """What routing to each eligible foreign deployment means for personal data (PIPA Art. 28-8)."""
        personal = sorted({str(c) for c in classification.categories} & PERSONAL)
        out = []
        for a in eligible:
            if a.sovereign:
                continue
            lead = "recommended " if best is not None and a.deployment == best.deployment else ""
            if not personal:
                out.append(f"{lead}{a.deployment} ({a.jurisdiction}): no personal data found or declared; "
                           "no transfer of personal information")
            elif a.mask_types:
                out.append(f"{lead}{a.deployment} ({a.jurisdiction}): personal data ({', '.join(personal)}) crosses "
                           f"the border pseudonymised ({', '.join(a.mask_types)}); PIPA Art. 28-8 transfer basis "
                           "and notice needed")
            else:
                out.append(f"{lead}{a.deployment} ({a.jurisdiction}): personal data ({', '.join(personal)}) would "
                           "cross the border in clear; PIPA Art. 28-8 consent or another transfer basis needed")
        return out


def _category(entity_type: str) -> str:
    return str(_TYPE_CATEGORY.get(entity_type, PipaCategory.PERSONAL))


def audit_workloads(config: NuriConfig, workloads: list[Workload], evidence: Evidence,
                    criteria: Criteria | None = None, inventory_errors: list[str] | None = None) -> AuditResult:
    return Auditor(config, evidence, criteria).run(workloads, inventory_errors)
