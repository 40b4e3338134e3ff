"""POST /v1/nuri/explain: what the gateway would do with a chat request, without calling anyone.

It runs the same evaluate step as the live handler, so the answer is the live decision.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from nuri.errors import NuriError
from nuri.gateway.context import RequestContext
from nuri.gateway.responses import JSONResponse, error_response
from nuri.gateway.wire import read_json_body, validate
from nuri.policy.evaluate import evaluate
from nuri.policy.explain import explain_view


async def explain_endpoint(request: Request) -> Response:
    from nuri.gateway.pipeline import authenticate, check_model_access

    gw = request.app.state.gateway
    ctx = RequestContext(endpoint="explain")
    try:
        await authenticate(gw, request, ctx)
        body = await read_json_body(request, gw.config.server.max_body_bytes)
        endpoint = "chat" if "messages" in body else ("embeddings" if "input" in body else "completions")
        parsed = validate(body, endpoint)
        check_model_access(ctx, parsed.model)
        candidates = gw.catalog.resolve(parsed.model)
        result = evaluate(
            body, endpoint, ctx.principal, parsed.model,
            scanner=gw.scanner, engine=gw.engine, router=gw.router, config=gw.config, candidates=candidates,
        )
        error = result.error.message if result.error is not None else None
        classification, decision, steps = result.classification, result.decision, result.steps
        view = explain_view(classification, decision, steps, list(gw.catalog.deployments.values()), error=error)
        return JSONResponse(view)
    except NuriError as exc:
        return error_response(exc)
