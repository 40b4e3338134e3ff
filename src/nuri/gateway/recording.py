"""The record step: one audit record and one set of metrics per request, whatever its outcome.

Only types, counts and keyed hashes of personal data leave the request here (invariant 3).
"""

from __future__ import annotations

import logging
from typing import Any

from nuri.errors import BudgetExceeded, NuriError, PermissionDenied, RateLimited
from nuri.gateway.context import RequestContext
from nuri.ledger import metrics
from nuri.ledger.records import AuditRecord

log = logging.getLogger("nuri.access")


def _outcome(status: int, error: NuriError | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, BudgetExceeded):
        return "budget_exceeded"
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, PermissionDenied):
        return "blocked"
    if status == 499:
        return "cancelled"
    return "error"


def build_record(gw: Any, ctx: RequestContext, status: int, error: NuriError | None) -> AuditRecord:
    c, d, step = ctx.classification, ctx.decision, ctx.step
    hasher = getattr(gw.ledger, "keyed_hash", None)
    hashes: dict[str, list[str]] = {}
    if c is not None and hasher is not None:
        for e in c.entities:
            hashes.setdefault(e.type, []).append(hasher(e.text))
    prompt = int(ctx.usage.get("prompt_tokens", 0) or 0)
    completion = int(ctx.usage.get("completion_tokens", 0) or 0)
    dep = step.deployment if step is not None else None
    detail: dict[str, Any] = {}
    if d is not None and d.flag:
        detail["high_impact"] = sorted(c.domains) if c is not None else []
        detail["flag_reasons"] = list(getattr(d, "flag_reasons", []))
    if len(ctx.attempts) > 1:
        detail["attempts"] = [getattr(a, "deployment_id", str(a)) for a in ctx.attempts]
    return AuditRecord(
        request_id=ctx.request_id,
        endpoint=ctx.endpoint,
        team=ctx.principal.team,
        key_id=ctx.principal.key_id,
        model_requested=ctx.requested,
        classification=c.counts() if c is not None else {},
        entity_hashes=hashes,
        categories=sorted(str(x) for x in c.categories) if c is not None else [],
        n2sf_grade=c.n2sf_grade if c is not None else None,
        action=("pseudonymize" if step.mask_types else "allow") if step is not None else (d.action if d else None),
        rule_ids=list(d.rule_ids) if d is not None else [],
        deployment=dep.id if dep else None,
        jurisdiction=dep.jurisdiction if dep else None,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=dep.price.cost(prompt, completion) if dep else 0.0,
        currency=dep.price.currency if dep else "USD",
        latency_ms=ctx.elapsed_ms(),
        ttft_ms=ctx.ttft_ms(),
        stream=ctx.stream,
        status=status,
        outcome=_outcome(status, error),
        error_code=error.code if error is not None else None,
        detail=detail,
    )


async def record(gw: Any, ctx: RequestContext, *, status: int, error: NuriError | None = None) -> None:
    """Durably record the outcome (before the client sees the last byte) and count it."""
    rec = build_record(gw, ctx, status, error)
    if gw.ledger is not None:
        await gw.ledger.finish(ctx.admission, rec)   # also counts the request in /metrics
    else:
        metrics.observe(rec)
    for attempt in ctx.attempts:
        metrics.set_circuit_state(attempt.deployment_id, gw.health.state(attempt.deployment_id))
    log.info("request", extra={"nuri": {"request_id": rec.request_id, "team": rec.team, "status": status,
                                        "deployment": rec.deployment, "action": rec.action,
                                        "latency_ms": round(rec.latency_ms, 3), "outcome": rec.outcome}})
