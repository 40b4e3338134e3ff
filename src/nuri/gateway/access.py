"""Who is asking, which workload and model they ask for, and which deployments may answer.

The steps every API surface and explain run before the evaluator, in one place so that they
cannot drift apart.
"""

from __future__ import annotations

from starlette.requests import Request

from nuri.catalog import Deployment
from nuri.errors import PermissionDenied
from nuri.gateway import limits
from nuri.gateway.context import RequestContext
from nuri.gateway.request import ParsedRequest
from nuri.gateway.state import Gateway
from nuri.planning.membership import routed_model, workload_for


async def authenticate(gw: Gateway, request: Request, ctx: RequestContext) -> None:
    if gw.ledger is not None:
        client = request.client.host if request.client else None
        ctx.principal = await gw.ledger.authenticate(request.headers.get("authorization"), client)


def check_model_access(ctx: RequestContext, requested: str) -> None:
    allowed = ctx.principal.allowed_models
    if allowed is not None and requested not in allowed:
        raise PermissionDenied(
            f"this API key may not use model {requested!r}; allowed: {', '.join(sorted(allowed))}",
            code="model_not_allowed", param="model",
        )


def candidates_for(gw: Gateway, request: Request, req: ParsedRequest, ctx: RequestContext) -> list[Deployment]:
    """The deployments that may serve: the key may name the model, a request of a planned workload
    (`model: workload:<name>` or the `x-nuri-workload` header) is routed by the workload's plan,
    and only deployments whose output cap allows n × max_tokens remain."""
    check_model_access(ctx, req.model)
    workload = workload_for(gw.config, req.model, request.headers, ctx.principal)
    if workload is not None:
        ctx.workload = workload.name
        req.model = routed_model(req.model, workload) or req.model
    return limits.within_output_caps(gw.catalog.resolve(req.model), req.output_tokens)
