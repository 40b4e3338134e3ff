"""Each shipped pack's rules against a three-deployment catalog (on-prem KR, domestic cloud KR, US)."""

from __future__ import annotations

import pytest
import yaml
from policy_factories import ALL_PACKS, catalog, classification, dep, engine

from nuri.policy.loader import PACKS_DIR, available_packs
from nuri.principal import Principal

P = Principal(team="ops")


def verdicts(decision):
    return {v.deployment_id: (v.eligible, set(v.mask_types)) for v in decision.verdicts}


def test_every_shipped_pack_loads_and_every_rule_cites_an_article():
    assert set(available_packs()) == set(ALL_PACKS)
    for path in PACKS_DIR.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for rule in raw["rules"]:
            assert rule.get("citation"), f"{path.name}: {rule['id']} has no citation"
            assert any(ch.isdigit() for ch in rule["citation"]), f"{rule['id']}: citation names no article"
    engine(ALL_PACKS)


@pytest.mark.parametrize("kind", ["KR_RRN", "KR_FRN", "KR_PASSPORT", "KR_DRIVER_LICENSE"])
def test_pipa_unique_identifiers_only_domestic_masked_or_not(kind):
    d = engine().decide(classification(kind, "PERSON"), P, "default", catalog())
    v = verdicts(d)
    assert v["onprem"][0] and v["kcloud"][0]
    assert v["global"] == (False, set())
    assert d.verdict("global").excluded_by == "pipa-unique-id-domestic"
    assert "pipa-unique-id-domestic" in d.rule_ids


def test_pipa_unique_identifier_on_prem_abroad_is_not_domestic():
    deps = [dep("own-us", "US", "on_prem"), dep("onprem", "KR", "on_prem")]
    d = engine(deployments=deps).decide(classification("KR_RRN"), P, "default", deps)
    assert [v.deployment_id for v in d.eligible] == ["onprem"]


def test_pipa_rrn_with_only_foreign_candidate_is_blocked_naming_the_rule():
    d = engine().decide(classification("KR_RRN"), P, "global", [catalog()[2]])
    assert d.action == "block"
    assert "pipa-unique-id-domestic" in d.block_message and "PIPA Art. 24" in d.block_message


def test_pipa_name_and_phone_go_abroad_only_masked():
    d = engine().decide(classification("PERSON", "PHONE"), P, "default", catalog())
    v = verdicts(d)
    assert v["onprem"] == (True, set()) and v["kcloud"] == (True, set())
    assert v["global"] == (True, {"PERSON", "PHONE"})
    assert d.action == "pseudonymize"


def test_pipa_financial_data_masked_abroad_and_nothing_else_masked():
    d = engine().decide(classification("CARD", "EMAIL"), P, "default", catalog())
    assert verdicts(d)["global"] == (True, {"CARD", "EMAIL"})


def test_pipa_secrets_blocked_from_every_external_deployment():
    d = engine().decide(classification("SECRET"), P, "default", catalog())
    v = verdicts(d)
    assert v["onprem"][0] and not v["kcloud"][0] and not v["global"][0]
    assert d.verdict("kcloud").excluded_by == "pipa-secret-internal"


def test_pipa_clean_request_goes_anywhere_in_clear():
    d = engine().decide(classification(), P, "default", catalog())
    assert d.action == "allow"
    assert all(v.eligible and not v.mask_types for v in d.verdicts)
    assert d.matched == []


def test_pipa_sensitive_topic_masks_identifiers_abroad():
    d = engine().decide(classification("PERSON", topics=("beliefs",)), P, "default", catalog())
    assert verdicts(d)["global"] == (True, {"PERSON"})
    assert "pipa-sensitive-abroad-pseudonymized" in d.rule_ids


def test_pipa_consent_tag_lifts_masking_but_not_unique_ids():
    consenting = Principal(team="cx", tags=frozenset({"pipa-cross-border-consent"}))
    d = engine().decide(classification("PERSON", "PHONE"), consenting, "default", catalog())
    assert verdicts(d)["global"] == (True, set())
    assert d.overridden == ["pipa-personal-abroad-pseudonymized"]
    d = engine().decide(classification("PERSON", "KR_RRN"), consenting, "default", catalog())
    assert not d.verdict("global").eligible


def test_n2sf_grade_c_only_on_prem():
    d = engine(["kr-pipa", "kr-public-n2sf"]).decide(classification(grade="C"), P, "default", catalog())
    assert [v.deployment_id for v in d.eligible] == ["onprem"]
    assert d.verdict("kcloud").excluded_by == "n2sf-c-on-prem"


def test_n2sf_grade_s_on_prem_or_certified_domestic_cloud():
    deps = [*catalog(), dep("kcloud-plain", "KR", "domestic_cloud")]
    d = engine(["kr-public-n2sf"], deps).decide(classification(grade="S"), P, "default", deps)
    assert [v.deployment_id for v in d.eligible] == ["onprem", "kcloud"]


def test_n2sf_personal_data_not_to_external_ai_even_masked():
    d = engine(["kr-pipa", "kr-public-n2sf"]).decide(classification("PERSON"), P, "default", catalog())
    assert not d.verdict("global").eligible
    assert d.verdict("global").excluded_by == "n2sf-personal-no-external-ai"


def test_n2sf_open_clean_request_unrestricted():
    d = engine(["kr-public-n2sf"]).decide(classification(grade="O"), P, "default", catalog())
    assert all(v.eligible for v in d.verdicts)


def test_finance_credit_data_domestic_only():
    d = engine(["kr-pipa", "kr-finance"], params={"approved_model_versions": ["big@2025-01"]}).decide(
        classification("CARD"), P, "default", catalog())
    assert not d.verdict("global").eligible
    assert d.verdict("global").excluded_by == "fin-credit-domestic"


def test_finance_external_ai_only_approved_versions():
    deps = [*catalog(), dep("kcloud-v2", "KR", "domestic_cloud", model="m", model_version="2")]
    none_approved = engine(["kr-finance"], deps).decide(classification(), P, "default", deps)
    assert [v.deployment_id for v in none_approved.eligible] == ["onprem"]
    approved = engine(["kr-finance"], deps, params={"approved_model_versions": ["big@2025-01", "7"]})
    d = approved.decide(classification(), P, "default", deps)
    assert [v.deployment_id for v in d.eligible] == ["onprem", "global"]
    assert d.verdict("kcloud-v2").excluded_by == "fin-external-ai-approved-version"


def test_health_topic_and_medical_domain_stay_in_korea():
    e = engine(["kr-pipa", "kr-health"])
    for cl in (classification(topics=("health",)), classification(domains=("medical",))):
        d = e.decide(cl, P, "default", catalog())
        assert [v.deployment_id for v in d.eligible] == ["onprem", "kcloud"]


def test_ai_basic_act_labels_generative_output_not_embeddings():
    e = engine(["ai-basic-act"])
    d = e.decide(classification(), P, "default", catalog(), endpoint="chat")
    assert d.label and "AI" in d.label_text
    assert not e.decide(classification(), P, "default", catalog(), endpoint="embeddings").label


def test_ai_basic_act_flags_high_impact_domains():
    e = engine(["ai-basic-act"])
    d = e.decide(classification(domains=("hiring",)), P, "default", catalog(), endpoint="chat")
    assert d.flag and d.flag_reasons[0].startswith("aibasic-flag-high-impact")
    assert all(v.eligible for v in d.verdicts)
    assert not e.decide(classification(), P, "default", catalog(), endpoint="chat").flag


def test_home_jurisdiction_is_configurable():
    deps = [dep("jp-cloud", "JP", "domestic_cloud"), dep("kr-cloud", "KR", "domestic_cloud")]
    e = engine(deployments=deps, home_jurisdiction="JP")
    d = e.decide(classification("KR_RRN"), P, "default", deps)
    assert [v.deployment_id for v in d.eligible] == ["jp-cloud"]


@pytest.mark.parametrize("kind", ["US_SSN", "PASSPORT"])
def test_foreign_unique_identifiers_go_abroad_only_masked(kind):
    d = engine().decide(classification(kind), P, "default", catalog())
    assert d.verdict("global").eligible
    assert kind in d.verdict("global").mask_types
    assert not d.verdict("onprem").mask_types
