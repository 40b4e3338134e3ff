"""The explain view: why a request would go where it goes, as JSON-able data without values.

Shared by `POST /v1/nuri/explain` and `nuri explain`. It shows entity types and counts,
never the entities' text (DESIGN invariant 3).
"""

from __future__ import annotations

from typing import Any

from nuri.catalog import Deployment
from nuri.policy.decision import Decision, step_action
from nuri.privacy.types import Classification
from nuri.routing.router import RouteStep


def classification_view(c: Classification) -> dict[str, Any]:
    return {
        "entities": dict(sorted(c.counts().items())),
        "categories": sorted(str(x) for x in c.categories | {e.category for e in c.entities}),
        "sensitive_topics": sorted(c.sensitive_topics),
        "n2sf_grade": c.n2sf_grade,
        "markings": sorted(set(c.markings)),
        "languages": {k: round(v, 3) for k, v in sorted(c.languages.items())},
        "domains": sorted(c.domains),
        "chars": c.chars,
        "unscanned_content": sorted(set(c.unscanned)),
    }


def explain_view(
    classification: Classification,
    decision: Decision,
    steps: list[RouteStep] | None,
    deployments: list[Deployment],
    error: str | None = None,
) -> dict[str, Any]:
    verdicts = {v.deployment_id: v for v in decision.verdicts}
    rows = []
    for dep in deployments:
        v = verdicts.get(dep.id)
        row: dict[str, Any] = {
            "id": dep.id,
            "jurisdiction": dep.jurisdiction,
            "hosting": str(dep.hosting),
            "candidate": v is not None,
        }
        if v is None:
            row.update(eligible=None, reason=f"not a deployment of {decision.requested!r}")
        else:
            row.update(
                eligible=v.eligible,
                mask_types=sorted(v.mask_types),
                excluded_by=v.excluded_by,
                reason=v.reason,
            )
        rows.append(row)
    route = [
        {
            "deployment": s.deployment.id,
            "jurisdiction": s.deployment.jurisdiction,
            "hosting": str(s.deployment.hosting),
            "action": step_action(s.mask_types),
            "mask_types": sorted(s.mask_types),
        }
        for s in steps or []
    ]
    return {
        "requested": decision.requested,
        "action": decision.action,
        "classification": classification_view(classification),
        "matched": [
            {
                "id": m.id,
                "pack": m.pack,
                "citation": m.citation,
                "action": m.action,
                "message": m.message,
                "mask_types": sorted(m.mask_types),
            }
            for m in decision.matched
        ],
        "overridden": list(decision.overridden),
        "label": decision.label,
        "label_text": decision.label_text,
        "flag": decision.flag,
        "flag_reasons": list(decision.flag_reasons),
        "block_message": decision.block_message,
        "deployments": rows,
        "route": route,
        "error": error,
    }
