"""POST /v1/nuri/explain: what the gateway would do with a chat request, without calling anyone.

It runs the same evaluate step as the live handler, so the answer is the live decision. It is
admitted through the key's rate limits and audited (one record, no tokens, no cost) like any
request: it scans the text it is given, and unmetered it would be a free classification service.
A key sees only the deployments it can reach (its allowed models and their alias targets).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from nuri.catalog import Catalog, Deployment
from nuri.errors import InternalError, NuriError
from nuri.gateway import limits
from nuri.gateway.context import RequestContext
from nuri.gateway.recording import record
from nuri.gateway.responses import JSONResponse, error_response
from nuri.gateway.wire import read_json_body, validate
from nuri.policy.evaluate import evaluate
from nuri.policy.explain import explain_view

log = logging.getLogger("nuri.gateway")


async def explain_endpoint(request: Request) -> Response:
    from nuri.gateway.pipeline import authenticate, check_model_access

    gw = request.app.state.gateway
    ctx = RequestContext(endpoint="explain")
    try:
        await authenticate(gw, request, ctx)
        body = await read_json_body(request, gw.config.server.max_body_bytes)
        endpoint = "chat" if "messages" in body else ("embeddings" if "input" in body else "completions")
        parsed = validate(body, endpoint)
        ctx.requested = parsed.model
        check_model_access(ctx, parsed.model)
        candidates = gw.catalog.resolve(parsed.model)
        if gw.ledger is not None:
            ctx.admission = await gw.ledger.admit(ctx.principal, 0, estimated_cost=0.0)
        classifier = await limits.classifier_for(request, body, endpoint, gw.scanner,
                                                 gw.config.server.classify_inline_max_bytes)   # large: off the loop
        result = evaluate(
            body, endpoint, ctx.principal, parsed.model, classifier=classifier,
            scanner=gw.scanner, engine=gw.engine, router=gw.router, config=gw.config, candidates=candidates,
        )
        ctx.classification, ctx.decision = result.classification, result.decision
        error = result.error.message if result.error is not None else None
        visible = reachable(gw.catalog, ctx.principal.allowed_models)
        view = explain_view(result.classification, result.decision, result.steps, visible, error=error)
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
