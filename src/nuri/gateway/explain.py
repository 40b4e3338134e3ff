"""POST /v1/nuri/explain: what the gateway would do with a chat request, without calling anyone.

It parses the body as the live handler does and asks the gateway's one `Evaluator`, so the
answer is the live decision, with policy on or off. It is
admitted through the key's rate limits and audited (one record, no tokens, no cost) like any
request: it scans the text it is given, and unmetered it would be a free classification service.
A key sees only the deployments it can reach (its allowed models and their alias targets).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from nuri.catalog import Catalog, Deployment
from nuri.errors import InternalError, NuriError
from nuri.gateway.access import authenticate, candidates_for
from nuri.gateway.context import RequestContext
from nuri.gateway.recording import record
from nuri.gateway.request import endpoint_of, parse_request
from nuri.gateway.responses import JSONResponse, error_response
from nuri.gateway.wire import read_json_body
from nuri.policy.explain import explain_view
from nuri.rag.step import public_citations, rag_step

log = logging.getLogger("nuri.gateway")


async def explain_endpoint(request: Request) -> Response:
    gw = request.app.state.gateway
    ctx = RequestContext(endpoint="explain")
    try:
        await authenticate(gw, request, ctx)
        body = await read_json_body(request, gw.config.server.max_body_bytes)
        body, ctx.citations = await rag_step(gw, ctx.principal, body)       # as handle does
        req = parse_request(body, endpoint_of(body))
        ctx.requested = req.model
        candidates = candidates_for(gw, request, req, ctx)                 # as handle does
        if gw.ledger is not None:
            ctx.admission = await gw.ledger.admit(ctx.principal, 0, estimated_cost=0.0)
        result = await gw.evaluator.evaluate_live(request, req, ctx.principal, candidates)   # as handle does
        ctx.classification, ctx.decision = result.classification, result.decision
        error = result.error.message if result.error is not None else None
        visible = reachable(gw.catalog, ctx.principal.allowed_models)
        view = explain_view(result.classification, result.decision, result.steps, visible, error=error)
        if ctx.workload is not None:
            plan_view(gw, ctx.workload, result.decision.requested, result.steps, view)
        if ctx.citations:
            view["citations"] = public_citations(ctx.citations)
    except NuriError as exc:
        await record(gw, ctx, status=exc.status, error=exc)
        return error_response(exc)
    except Exception as exc:   # a defect: still one record; the type only, as a message could quote the text
        log.error("explain %s failed: %s", ctx.request_id, type(exc).__name__)
        failure = InternalError("internal error; the request was not explained")
        await record(gw, ctx, status=500, error=failure)
        return error_response(failure)
    await record(gw, ctx, status=200)
    return JSONResponse(view)


def reachable(catalog: Catalog, allowed: frozenset[str] | None) -> list[Deployment]:
    """The deployments a key can reach: those it may name, and the targets of aliases it may name."""
    if allowed is None:
        return list(catalog.deployments.values())
    ids: set[str] = set()
    for name in allowed:
        if name in catalog.deployments:
            ids.add(name)
        ids.update(catalog.aliases.get(name, ()))
    return [d for d in catalog.deployments.values() if d.id in ids]


def plan_view(gw: Any, workload: str, requested: str, steps: list[Any], view: dict[str, Any]) -> None:
    """A planned workload's part of explain: why the plan left deployments out (procurement gates,
    licences) and, under the eval strategy, each step's scores and why it ranks where it does."""
    view["workload"] = workload
    plan = gw.config.workloads.plan
    excluded = plan.workloads[workload].excluded if plan is not None and workload in plan.workloads else {}
    for row in view["deployments"]:
        if row["id"] in excluded and not row["candidate"]:
            row["reason"] = f"excluded by the {workload!r} plan: {excluded[row['id']]}"
    view["ranking"] = gw.router.eval.explain(requested, steps, gw.health)
