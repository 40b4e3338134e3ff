"""Recommendations follow eval results, prices, policy and procurement criteria; exclusions carry reasons."""

from __future__ import annotations

from planning_helpers import audit, catalog, recommended, rows, strong_everywhere, workload

from nuri.config import NuriConfig
from nuri.planning.evidence import Evidence
from nuri.planning.procurement import excluded
from nuri.planning.scorecard import Criteria, score_deployments


def test_cheapest_eligible_that_meets_the_bar_is_recommended() -> None:
    result = audit(catalog(), workload(), strong_everywhere())
    w = result.workloads[0]
    assert recommended(result) == "us-glob"            # no personal data: the cheaper global one
    assert [a.deployment for a in w.order] == ["us-glob", "kr-sov"]
    assert "kr-research" in {a.deployment for a in w.assessments if not a.eligible}


def test_eval_results_change_the_recommendation() -> None:
    # the global model's score is not significantly above the bar any more: the sovereign one wins
    weak_abroad = rows("kr-sov", "qa", 45) + rows("us-glob", "qa", 36) + rows("kr-research", "qa", 45)
    result = audit(catalog(), workload(), weak_abroad)
    assert recommended(result) == "kr-sov"
    glob = next(a for a in result.workloads[0].assessments if a.deployment == "us-glob")
    assert glob.eligible and not glob.meets_quality
    assert "qa: 0.720" in glob.why_not() and "not shown with confidence" in glob.why_not()
    # nobody meets it: no recommendation, and why
    none = audit(catalog(), workload(), rows("kr-sov", "qa", 20) + rows("us-glob", "qa", 20))
    assert recommended(none) is None and "no eligible deployment meets the quality bar" in none.workloads[0].why
    # results missing for a suite count as not met
    missing = audit(catalog(), workload(suites={"qa": 0.7, "other": 0.5}), strong_everywhere())
    assert recommended(missing) is None and "other: no results" in missing.workloads[0].why


def test_prices_change_the_recommendation() -> None:
    result = audit(catalog(us_glob={"price": {"input_per_mtok": 5.0, "output_per_mtok": 20.0}}), workload(),
                   strong_everywhere())
    assert recommended(result) == "kr-sov"
    assert result.workloads[0].recommended.monthly_cost == 1.0 * 10 + 4.0 * 2     # 10M in, 2M out


def test_latency_target_changes_the_recommendation() -> None:
    slow_abroad = rows("kr-sov", "qa", 45, latency_ms=300) + rows("us-glob", "qa", 45, latency_ms=2000)
    result = audit(catalog(), workload(latency_ms=1000), slow_abroad)
    assert recommended(result) == "kr-sov"
    glob = next(a for a in result.workloads[0].assessments if a.deployment == "us-glob")
    assert "over the 1000 ms target" in glob.why_not()


def test_policy_changes_the_recommendation() -> None:
    # personal data declared: PIPA lets it abroad only pseudonymised; public-sector N2SF forbids it
    personal = workload(data_categories=["personal"])
    pipa = audit(catalog(), personal, strong_everywhere())
    assert recommended(pipa) == "us-glob"
    w = pipa.workloads[0]
    glob = next(a for a in w.assessments if a.deployment == "us-glob")
    assert glob.mask_types == ["PERSON", "PHONE"]
    assert any("pseudonymised" in c and "Art. 28-8" in c for c in w.cross_border)
    assert "pipa-personal-abroad-pseudonymized" in {r["id"] for r in w.rules}
    public = catalog()
    public["policy"]["packs"] = ["kr-pipa", "kr-public-n2sf"]
    n2sf = audit(public, personal, strong_everywhere())
    assert recommended(n2sf) == "kr-sov"
    glob = next(a for a in n2sf.workloads[0].assessments if a.deployment == "us-glob")
    assert not glob.policy_eligible and glob.why_not().startswith("policy: n2sf-personal-no-external-ai")
    citations = {r["id"]: r["citation"] for r in n2sf.workloads[0].rules}
    assert "NIS generative AI security guideline" in citations["n2sf-personal-no-external-ai"]


def test_samples_go_through_the_live_classifier() -> None:
    w = workload(samples=["고객 홍길동의 주민등록번호 900101-1234568 로 조회해 주세요"], domain=["lending"])
    result = audit(catalog(), w, strong_everywhere())
    audit_ = result.workloads[0]
    assert audit_.classification["entities"].get("KR_RRN") == 1
    assert recommended(result) == "kr-sov"                   # unique identifiers stay domestic
    assert audit_.high_impact and any("aibasic-flag-high-impact" in r for r in audit_.high_impact_reasons)


def test_non_commercial_licence_excludes_for_commercial_use_only() -> None:
    cheap_research = rows("kr-research", "qa", 48) + rows("us-glob", "qa", 45) + rows("kr-sov", "qa", 45)
    commercial = audit(catalog(), workload(), cheap_research)
    research = next(a for a in commercial.workloads[0].assessments if a.deployment == "kr-research")
    assert not research.eligible
    assert "licence CC BY-NC 4.0 does not allow commercial use" in research.why_not()
    assert commercial.workloads[0].licence_problems and recommended(commercial) == "us-glob"
    public_use = audit(catalog(), workload(commercial=False), cheap_research)
    assert recommended(public_use) == "kr-research"          # the cheapest, and its licence allows this use


def test_procurement_gate_excludes_with_the_reason() -> None:
    criteria = Criteria.model_validate({"criteria": {"in_country_hosting": 3, "red_teaming": {"weight": 1}},
                                        "require": {"min_score": 0.5}})
    result = audit(catalog(), workload(commercial=False), strong_everywhere(), criteria)
    glob = next(a for a in result.workloads[0].assessments if a.deployment == "us-glob")
    assert not glob.eligible
    assert glob.why_not() == "procurement: scorecard 0.00 below the minimum 0.50"
    assert recommended(result) == "kr-research"
    # a named criterion: red-teaming measured by Nuri's own safety suite
    need = workload(commercial=False, procurement={"require": ["red_teaming"]})
    safety = strong_everywhere() + rows("kr-sov", "safety", 48) + rows("kr-research", "safety", 30)
    gated = audit(catalog(), need, safety, Criteria.model_validate({"criteria": {"red_teaming": 1}}))
    assert recommended(gated) == "kr-sov"
    research = next(a for a in gated.workloads[0].assessments if a.deployment == "kr-research")
    assert research.why_not().startswith("procurement: required criterion red_teaming not met (Nuri safety 0.600")
    # and a pack's demand applies while the pack is enabled
    packs = Criteria.model_validate({"criteria": {"in_country_hosting": 1}, "packs": {"ai-basic-act": {"min_score": 1}}})
    assert recommended(audit(catalog(), workload(), strong_everywhere(), packs)) == "kr-sov"


def test_excluded_function_for_the_pipeline() -> None:
    config = NuriConfig.model_validate(catalog())
    criteria = Criteria.model_validate({"criteria": {"in_country_hosting": 1, "license": 1}})
    cards = score_deployments(config.deployments, criteria, Evidence([]), "KR")
    w = workload(procurement={"require": ["in_country_hosting"]})
    out = excluded(config.deployments, w, cards, criteria=criteria)
    assert set(out) == {"us-glob", "kr-research"}
    assert out["us-glob"] == "procurement: required criterion in_country_hosting not met (US, foreign_cloud)"
    assert out["kr-research"].startswith("licence CC BY-NC 4.0 does not allow commercial use")
    assert excluded(config.deployments, workload(commercial=False), cards) == {}
