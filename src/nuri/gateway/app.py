"""The ASGI application: routes, start-up and shutdown. Thin: handlers live in pipeline.py."""

from __future__ import annotations

import contextlib
import gc
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nuri.config import NuriConfig, admin_key
from nuri.errors import (
    InternalError,
    InvalidRequest,
    ModelNotFound,
    NuriError,
    PermissionDenied,
    RateLimited,
    Unauthorized,
)
from nuri.gateway import (
    admin_api,
    admin_stats,
    api_messages,
    api_responses,
    explain,
    pipeline,
    response_items,
)
from nuri.gateway.conversations import open_store
from nuri.gateway.generations import PinGeneration
from nuri.gateway.responses import JSONResponse, error_response
from nuri.gateway.state import Gateway
from nuri.ledger.keys import PREFIX, bearer
from nuri.rag import http as rag_http
from nuri.web import console

log = logging.getLogger("nuri.gateway")

_YOUNG_GC_THRESHOLD = 10_000   # allocations between scans of the youngest generation (default 700)


async def chat_completions(request: Request) -> Response:
    return await pipeline.handle(request, "chat")


async def completions(request: Request) -> Response:
    return await pipeline.handle(request, "completions")


async def embeddings(request: Request) -> Response:
    return await pipeline.handle(request, "embeddings")


async def models(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    ctx = pipeline.RequestContext(endpoint="models")
    try:
        await pipeline.authenticate(gw, request, ctx)
    except NuriError as exc:
        return error_response(exc)
    listing = gw.catalog.models_list()
    allowed = ctx.principal.allowed_models
    if allowed is not None:   # a key sees the names it may request, nothing else
        listing["data"] = [m for m in listing["data"] if m["id"] in allowed]
    return JSONResponse(listing)


async def model(request: Request) -> Response:
    """GET /v1/models/{id}: one entry of the listing; a model the key may not use is not found."""
    response = await models(request)
    if response.status_code != 200:
        return response
    wanted = request.path_params["model_id"]
    for entry in orjson.loads(response.body)["data"]:
        if entry["id"] == wanted:
            return JSONResponse(entry)
    return error_response(ModelNotFound(f"model {wanted!r} does not exist", param="model"))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    ready = await gw.ready()
    status = 200 if all(ready.values()) else 503
    return JSONResponse({"status": "ready" if status == 200 else "starting", "deployments": ready},
                        status_code=status)


ADMIN_ROLE = "admin"


async def require_admin(request: Request) -> str:
    """Management endpoints and /metrics: the NURI_ADMIN_KEY, or a team key whose team has the
    `admin` role. A loopback caller without a key is let in only while no API key exists at all
    and no admin key is set: once teams have keys, anyone on the host could otherwise read every
    team's metrics and reload the policy. Returns who is calling, as admin records name them:
    `admin-key`, `key:<key_id>` or `loopback`."""
    gw: Gateway = request.app.state.gateway
    ledger = gw.ledger
    client = request.client.host if request.client else None
    if ledger is not None and (wait := ledger.auth_retry_after(client)) is not None:
        ledger.auth_failed(client, "rate_limited")
        raise RateLimited(f"too many requests with refused API keys from this address; retry in {wait}s",
                          code="too_many_auth_failures", headers={"retry-after": str(wait)})
    key = admin_key()
    if key is None and _loopback(client) and (ledger is None or not await ledger.any_key()):
        return "loopback"                         # open mode: no credential exists to ask for
    header = request.headers.get("authorization")
    token = bearer(header)
    if token is not None and key is not None and _same_secret(token, key):
        return "admin-key"
    if token is not None and token.startswith(PREFIX) and ledger is not None:
        principal = await ledger.authenticate(header, client)   # counts and refuses bad keys itself
        if ADMIN_ROLE in principal.roles:
            return f"key:{principal.key_id}"
        raise PermissionDenied("management endpoints need the admin key (NURI_ADMIN_KEY) or a key of a team "
                               "with the admin role", code="admin_required")
    if ledger is not None:
        ledger.auth_failed(client, "missing" if token is None else "invalid")
    if key is None and (ledger is None or not await ledger.any_key()):
        raise Unauthorized("set NURI_ADMIN_KEY to reach management endpoints from other hosts",
                           code="admin_required")
    raise Unauthorized("management endpoints need the admin key (NURI_ADMIN_KEY) or a key of a team with the "
                       "admin role", code="admin_required")


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of bytes: header values arrive as latin-1 text and may hold any byte,
    which `hmac.compare_digest` refuses to compare as `str` (a non-ASCII header gave 500)."""
    return hmac.compare_digest(given.encode("latin-1", "replace"), expected.encode("utf-8"))


async def metrics(request: Request) -> Response:
    try:
        await require_admin(request)
    except NuriError as exc:
        return error_response(exc)
    from nuri.observability.metrics import render

    body, content_type = render()
    return Response(body, media_type=content_type)


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
        app.state.conversations = open_store(config, data_dir, gateway.scanner)   # Responses API state
        await app.state.conversations.start()
        # What start-up built (config, policy, detectors, the tagger's tables, the model) lives as
        # long as the process: moved out of the collector's sight, a full collection walks only
        # what requests made, instead of pausing every thousand or so requests for 0.1–0.3 s.
        gc.collect()
        gc.freeze()
        # A request allocates a few thousand container objects and frees nearly all of them by
        # reference counting; at the default threshold (700) the youngest generation is scanned
        # several times per request for cycles that are not there. 10,000 scans it once every
        # few requests: 0.52 -> 0.50 ms of CPU per request, young collections 4,000 -> 40 per
        # 30,000 requests, memory held between scans a few hundred KB.
        thresholds = gc.get_threshold()
        gc.set_threshold(_YOUNG_GC_THRESHOLD, *thresholds[1:])
        try:
            yield
        finally:
            try:
                await app.state.conversations.close()
                await gateway.stop()
            finally:
                gc.set_threshold(*thresholds)
                gc.unfreeze()      # an app built and closed in one process (tests) leaves its cycles collectable

    routes = [
        # the model APIs first: the router tries each route in turn, about 0.6 µs a route
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/responses", api_responses.create_response, methods=["POST"]),
        Route("/v1/messages", api_messages.create_message, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", model, methods=["GET"]),
        Route("/v1/responses/{response_id}", api_responses.get_response, methods=["GET"]),
        Route("/v1/responses/{response_id}/input_items", response_items.list_input_items, methods=["GET"]),
        Route("/v1/responses/{response_id}", api_responses.delete_response, methods=["DELETE"]),
        Route("/v1/messages/count_tokens", api_messages.count_tokens, methods=["POST"]),
        Route("/v1/nuri/explain", explain.explain_endpoint, methods=["POST"]),
        Route("/v1/nuri/retrieve", rag_http.retrieve_endpoint, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *admin_api.routes(require_admin),       # /v1/nuri/admin/… and /v1/nuri/openapi.json
        *admin_stats.routes(require_admin),     # what the console reads: stats, audit search, explain
        *console.routes(),                      # /console: the operations console (nuri.web)
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        middleware=[Middleware(PinGeneration, gateway=gateway)],   # a request keeps its config generation
    )
    app.state.gateway = gateway
    return app
