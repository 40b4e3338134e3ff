"""Content Nuri cannot read is a policy fact: kr-pipa keeps it in the home jurisdiction unless the
operator allows it for a deployment (tag) or a team (tag)."""

from __future__ import annotations

import pytest
from policy_factories import catalog, classification, dep, engine

from nuri.policy.model import PolicyError, Rule
from nuri.principal import Principal

P = Principal(team="ops")


def _with_image(media: str = "image/png"):
    c = classification()
    c.unscanned = [media]
    return c


@pytest.mark.parametrize("media", ["image/png", "audio/wav", "application/pdf"])
def test_kr_pipa_keeps_unscanned_content_at_home(media: str) -> None:
    d = engine().decide(_with_image(media), P, "default", catalog())
    assert d.verdict("global").eligible is False
    assert d.verdict("global").excluded_by == "pipa-unscanned-content-domestic"
    assert d.verdict("onprem").eligible and d.verdict("kcloud").eligible


def test_foreign_only_request_is_blocked_naming_the_rule() -> None:
    d = engine().decide(_with_image(), P, "global", [dep("global", "US", "foreign_cloud")])
    assert d.action == "block"
    assert "pipa-unscanned-content-domestic" in (d.block_message or "")


def test_a_deployment_tagged_by_the_operator_may_take_it() -> None:
    deps = [dep("global", "US", "foreign_cloud", tags=["unscanned-content-abroad"])]
    d = engine(deployments=deps).decide(_with_image(), P, "global", deps)
    assert d.action == "allow"


def test_a_team_tagged_by_the_operator_may_send_it() -> None:
    principal = Principal(team="design", tags=frozenset({"unscanned-content-abroad"}))
    d = engine().decide(_with_image(), principal, "global", catalog())
    assert d.verdict("global").eligible


def test_text_only_requests_are_untouched() -> None:
    d = engine().decide(classification(), P, "global", catalog())
    assert d.verdict("global").eligible


def test_content_condition_is_validated() -> None:
    with pytest.raises(ValueError):
        Rule.model_validate({"id": "x", "citation": "Art. 1", "when": {"content": ["video"]},
                             "action": "flag"})
    assert issubclass(PolicyError, ValueError)

