"""Small builders for policy and routing tests: deployments and classifications without a scanner."""

from __future__ import annotations

from typing import Any

from nuri.catalog import Deployment
from nuri.config import PolicySettings
from nuri.policy.engine import PolicyEngine
from nuri.privacy.types import Classification, Entity, Evidence, PipaCategory

CATEGORY = {
    "KR_RRN": PipaCategory.UNIQUE_ID, "KR_FRN": PipaCategory.UNIQUE_ID,
    "KR_PASSPORT": PipaCategory.UNIQUE_ID, "KR_DRIVER_LICENSE": PipaCategory.UNIQUE_ID,
    "PASSPORT": PipaCategory.UNIQUE_ID, "US_SSN": PipaCategory.UNIQUE_ID,
    "CARD": PipaCategory.FINANCIAL, "BANK_ACCOUNT": PipaCategory.FINANCIAL, "SECRET": PipaCategory.SECRET,
}
UNIQUE_IDS = frozenset({"KR_RRN", "KR_FRN", "KR_PASSPORT", "KR_DRIVER_LICENSE"})
ALL_PACKS = ["kr-pipa", "kr-public-n2sf", "kr-finance", "kr-health", "ai-basic-act", "kr-terminology"]


def dep(dep_id: str, jurisdiction: str = "KR", hosting: str = "on_prem", **extra: Any) -> Deployment:
    fields: dict[str, Any] = {"id": dep_id, "provider": "llamacpp", "jurisdiction": jurisdiction, "hosting": hosting}
    fields.update(extra)
    return Deployment(**fields)


def catalog() -> list[Deployment]:
    """One of each: on-prem KR, domestic cloud KR (CSAP), foreign cloud US."""
    return [
        dep("onprem", "KR", "on_prem"),
        dep("kcloud", "KR", "domestic_cloud", certifications=["CSAP-high"]),
        dep("global", "US", "foreign_cloud", model="big", model_version="2025-01"),
    ]


def classification(*types: str, grade: str = "O", topics: tuple[str, ...] = (),
                   domains: tuple[str, ...] = (), chars: int = 100) -> Classification:
    entities = [
        Entity(t, i * 10, i * 10 + 5, f"v{i}", 0.99, Evidence.PATTERN, CATEGORY.get(t, PipaCategory.PERSONAL))
        for i, t in enumerate(types)
    ]
    cats = {e.category for e in entities}
    if topics:
        cats.add(PipaCategory.SENSITIVE)
    return Classification(entities=entities, categories=cats, sensitive_topics=set(topics), n2sf_grade=grade,
                          languages={"hangul": 0.8, "latin": 0.2}, domains=set(domains), chars=chars)


def engine(packs: list[str] | None = None, deployments: list[Deployment] | None = None, **settings: Any) -> PolicyEngine:
    return PolicyEngine.load(PolicySettings(packs=packs or ["kr-pipa"], **settings), deployments or catalog())
