"""The ASGI application: routes, start-up and shutdown. Thin: handlers live in pipeline.py."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nuri.config import NuriConfig, admin_key
from nuri.errors import InternalError, InvalidRequest, NuriError, Unauthorized
from nuri.gateway import explain, pipeline
from nuri.gateway.responses import JSONResponse, error_response
from nuri.gateway.state import Gateway

log = logging.getLogger("nuri.gateway")


async def chat_completions(request: Request) -> Response:
    return await pipeline.handle(request, "chat")


async def completions(request: Request) -> Response:
    return await pipeline.handle(request, "completions")


async def embeddings(request: Request) -> Response:
    return await pipeline.handle(request, "embeddings")


async def models(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    try:
        await pipeline.authenticate(gw, request, pipeline.RequestContext(endpoint="models"))
    except NuriError as exc:
        return error_response(exc)
    return JSONResponse(gw.catalog.models_list())


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    ready = await gw.ready()
    status = 200 if all(ready.values()) else 503
    return JSONResponse({"status": "ready" if status == 200 else "starting", "deployments": ready},
                        status_code=status)


def require_admin(request: Request) -> None:
    """Management endpoints and /metrics need NURI_ADMIN_KEY; without one set they are loopback only."""
    key = admin_key()
    header = request.headers.get("authorization", "")
    if key is None:
        client = request.client.host if request.client else ""
        if client not in ("127.0.0.1", "::1", "localhost"):
            raise Unauthorized("set NURI_ADMIN_KEY to reach management endpoints from other hosts")
        return
    import hmac

    if not hmac.compare_digest(header.removeprefix("Bearer ").strip(), key):
        raise Unauthorized("management endpoints need the admin key (NURI_ADMIN_KEY)")


async def metrics(request: Request) -> Response:
    try:
        require_admin(request)
    except NuriError as exc:
        return error_response(exc)
    from nuri.ledger.metrics import render

    body, content_type = render()
    return Response(body, media_type=content_type)


async def reload_policy(request: Request) -> Response:
    """Re-read the policy section of the config file; a policy that fails to load changes nothing."""
    gw: Gateway = request.app.state.gateway
    try:
        require_admin(request)
        summary = await gw.reload_policy()
    except NuriError as exc:
        return error_response(exc)
    return JSONResponse(summary)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: NuriError = InvalidRequest(f"no route {request.method} {request.url.path}", code="not_found", status=404)
    elif exc.status_code == 405:
        err = InvalidRequest(f"method {request.method} is not allowed on {request.url.path}",
                             code="method_not_allowed", status=405)
    else:
        err = InvalidRequest(str(exc.detail), status=exc.status_code)
    return error_response(err)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled %s on %s", type(exc).__name__, request.url.path)  # no traceback: it may quote data
    return error_response(InternalError("internal error; the request was not forwarded"))


def create_app(config: NuriConfig, data_dir: Path, listen_host: str = "127.0.0.1",
               config_path: Path | None = None) -> Starlette:
    gateway = Gateway.build(config, data_dir, listen_host)
    gateway.config_path = config_path

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/nuri/explain", explain.explain_endpoint, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/nuri/admin/reload", reload_policy, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.gateway = gateway
    return app
