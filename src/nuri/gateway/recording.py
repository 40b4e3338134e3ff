"""The record step: one audit record and one set of metrics per request, whatever its outcome.

Only types, counts and keyed hashes of personal data leave the request here (invariant 3).
`Trail` is the one place that decides when a request's record is written: the handler and the
stream relay end in a `finally` that calls `Trail.finish`, which writes at most once, so no path
(refusal, defect, malformed upstream, client gone, ledger down) ends with none or two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nuri.errors import (
    BudgetExceeded,
    InternalError,
    NuriError,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)
from nuri.gateway.context import RequestContext
from nuri.ledger.audit.records import AuditRecord
from nuri.observability import metrics

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


def _model_name(gw: Any, requested: str | None) -> str | None:
    """The client's `model` if the catalog knows it, else `<unknown>`: the field is free text, and
    stored raw it would put whatever a client typed there into the audit chain and /metrics."""
    if requested is None:
        return None
    catalog = getattr(gw, "catalog", None)
    if catalog is not None and (requested in catalog.deployments or requested in catalog.aliases):
        return requested
    return metrics.UNKNOWN_MODEL


def _summarised(error: NuriError | None) -> bool:
    """Refused credentials are audited as periodic per-address counts (Ledger.authenticate), not
    as one chained record each, which would let anyone without a key grow the chain."""
    return isinstance(error, Unauthorized) or (error is not None and error.code == "too_many_auth_failures")


def _count(usage: Any, name: str) -> int:
    """A usage count fit for the record and the budget: a non-negative int, else 0. Providers check
    replies already; this is the last guard, because a negative count here would be a negative cost
    that gives a spent budget back."""
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if type(value) is int and value > 0 else 0


def build_record(gw: Any, ctx: RequestContext, status: int, error: NuriError | None) -> AuditRecord:
    c, d, step = ctx.classification, ctx.decision, ctx.step
    hasher = getattr(gw.ledger, "keyed_hash", None)
    hashes: dict[str, list[str]] = {}
    if c is not None and hasher is not None:
        for e in c.entities:
            hashes.setdefault(e.type, []).append(hasher(e.text))
    prompt = _count(ctx.usage, "prompt_tokens")
    completion = _count(ctx.usage, "completion_tokens")
    dep = step.deployment if step is not None else None
    detail: dict[str, Any] = {}
    if d is not None and d.flag:
        detail["high_impact"] = sorted(c.domains) if c is not None else []
        detail["flag_reasons"] = list(getattr(d, "flag_reasons", []))
    if ctx.workload is not None:
        detail["workload"] = ctx.workload
        plan = gw.config.workloads.plan
        excluded = plan.workloads[ctx.workload].excluded if plan is not None and ctx.workload in plan.workloads else {}
        if excluded:
            detail["excluded_by_plan"] = dict(excluded)
    if len(ctx.attempts) > 1:
        detail["attempts"] = [getattr(a, "deployment_id", str(a)) for a in ctx.attempts]
    if ctx.citations:                       # RAG passages: chunk ids only, never their text
        detail["citations"] = [c["id"] for c in ctx.citations]
    if ctx.replies is not None and (reply := ctx.replies.audit()):   # term ids, languages: no text
        detail["reply"] = reply
    return AuditRecord(
        request_id=ctx.request_id,
        endpoint=ctx.endpoint,
        team=ctx.principal.team,
        key_id=ctx.principal.key_id,
        model_requested=_model_name(gw, ctx.requested),
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


async def record(gw: Any, ctx: RequestContext, *, status: int, error: NuriError | None = None,
                 sent: list[str] | None = None) -> None:
    """Durably record the outcome (before the client sees the last byte) and count it.

    `sent`: the deployments the body went to, so a request that failed after leaving still says
    where its data went even though no deployment served it."""
    rec = build_record(gw, ctx, status, error)
    if sent and "attempts" not in rec.detail and (len(sent) > 1 or ctx.step is None):
        rec.detail["attempts"] = list(sent)
    if gw.ledger is not None and _summarised(error):
        metrics.observe(rec)
        return
    if gw.ledger is not None:
        await gw.ledger.finish(ctx.admission, rec)   # also counts the request in /metrics
    else:
        metrics.observe(rec)
    for attempt in ctx.attempts:
        metrics.set_circuit_state(attempt.deployment_id, gw.health.state(attempt.deployment_id))
    log.info("request", extra={"nuri": {"request_id": rec.request_id, "team": rec.team, "status": status,
                                        "deployment": rec.deployment, "action": rec.action,
                                        "latency_ms": round(rec.latency_ms, 3), "outcome": rec.outcome}})


def build_attempt(gw: Any, ctx: RequestContext, step: Any, number: int) -> AuditRecord:
    """The record committed before a body goes to `step` (durability fsync): the decision and the
    destination, no outcome yet. The request's own record follows under the same request id."""
    rec = build_record(gw, ctx, 0, None)
    dep = step.deployment
    rec.kind = "attempt"
    rec.outcome = "forwarding"
    rec.deployment, rec.jurisdiction = dep.id, dep.jurisdiction
    rec.action = "pseudonymize" if step.mask_types else "allow"
    rec.detail = {**rec.detail, "attempt": number}
    rec.latency_ms, rec.ttft_ms = 0.0, None
    return rec


CLIENT_GONE = InternalError("the client closed the connection", code="client_closed", status=499)


class Trail:
    """A request's audit trail: its record written exactly once, and whether its body left.

    `forwarding` is called right before each upstream call and `finish` once the outcome is
    known; `finish` is idempotent, so the `finally` of the handler and of the stream relay can call
    it whatever happened before. `sent` is what makes error messages accurate: "not forwarded" is
    said only while it is empty.
    """

    __slots__ = ("ctx", "done", "gw", "relayed", "sent")

    def __init__(self, gw: Any, ctx: RequestContext) -> None:
        self.gw = gw
        self.ctx = ctx
        self.done = False
        self.relayed = False                  # a stream relay owns the record from here on
        self.sent: list[str] = []             # deployments the body was sent to, in order

    @property
    def forwarded(self) -> str | None:
        """The last deployment the body was sent to, if any."""
        return self.sent[-1] if self.sent else None

    async def forwarding(self, step: Any) -> None:
        """About to send the body to `step`. With durability fsync an attempt record is committed
        first, so a crash or a lost database connection after this point still leaves a record
        that the data went out; if it cannot be committed nothing is sent (503)."""
        ledger = self.gw.ledger
        if ledger is not None and getattr(ledger, "records_attempts", False):
            try:
                await ledger.record_attempt(build_attempt(self.gw, self.ctx, step, len(self.sent) + 1))
            except Exception as exc:
                log.error("attempt record not committed for %s", self.ctx.request_id,
                          extra={"error_type": type(exc).__name__})
                raise ServiceUnavailable(self._unavailable("its attempt record could not be committed"),
                                         code="ledger_unavailable") from exc
        self.sent.append(step.deployment.id)

    def defect(self, exc: BaseException) -> InternalError:
        """A bug, not a refusal. Only the exception's type is logged: its message could quote data."""
        log.error("request %s failed: %s", self.ctx.request_id, type(exc).__name__)
        if self.forwarded is None:
            return InternalError("internal error; the request was not forwarded", code="internal_error")
        return InternalError(f"internal error after the request was sent to deployment {self.forwarded}; "
                             "the request was not completed", code="internal_error")

    def _unavailable(self, what: str) -> str:
        if self.forwarded is None:
            return f"the audit ledger is unavailable ({what}); the request was not forwarded"
        return (f"the request was sent to deployment {self.forwarded}, but {what}; "
                "the reply is withheld, retry later")

    async def relay_closed(self, upstream: Any, status: int, error: NuriError | None) -> None:
        """The end of a stream's relay, however it ended: the upstream's stream closed, and the
        record written with what stands (`status`, `error`) if the client went away before it was.
        Shielded: the relay's task may be being cancelled."""
        with contextlib.suppress(Exception):
            aclose = getattr(upstream, "aclose", None)
            if aclose is not None:
                await aclose()
        if not self.done:
            await asyncio.shield(self.finish(status, error))

    async def finish(self, status: int, error: NuriError | None = None) -> NuriError | None:
        """Write the request's record unless it is written already. Returns the error the client
        must get instead when the record could not be written (the ledger is down): a reply is
        never acknowledged without its record."""
        if self.done:
            return None
        self.done = True
        try:
            await record(self.gw, self.ctx, status=status, error=error, sent=self.sent)
        except Exception as exc:
            log.error("audit record not written for %s", self.ctx.request_id,
                      extra={"error_type": type(exc).__name__})
            failure = ServiceUnavailable(self._unavailable("its audit record could not be written"),
                                         code="ledger_unavailable")
            ledger = self.gw.ledger
            if ledger is not None and hasattr(ledger, "finish_later"):
                # the record says what the client got: the 503, with the usage the upstream reported
                late = build_record(self.gw, self.ctx, failure.status, failure)
                if self.sent and (len(self.sent) > 1 or self.ctx.step is None):
                    late.detail["attempts"] = list(self.sent)
                ledger.finish_later(late)
            return failure
        return None
