"""POST /v1/nuri/retrieve: the passages a question finds in a collection, with their citations.

Nothing leaves the country here (no model is called), but the caller sees document text, so the
collection's ACL applies, the key is admitted through its rate limits, and the request is audited
(one record, chunk ids only) like explain.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from nuri.errors import InternalError, InvalidRequest, NuriError
from nuri.gateway.access import authenticate
from nuri.gateway.context import RequestContext
from nuri.gateway.recording import record
from nuri.gateway.responses import JSONResponse, error_response
from nuri.gateway.wire import read_json_body
from nuri.rag.service import MODES
from nuri.rag.step import service_for

log = logging.getLogger("nuri.gateway")


def _arguments(body: Any) -> tuple[str, str, int | None, str | None]:
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    unknown = set(body) - {"collection", "query", "top_k", "mode"}
    if unknown:
        raise InvalidRequest(f"unknown field {sorted(unknown)[0]!r}; expected collection, query, top_k, mode",
                             param=sorted(unknown)[0])
    collection, query, top_k, mode = body.get("collection"), body.get("query"), body.get("top_k"), body.get("mode")
    if not isinstance(collection, str) or not collection:
        raise InvalidRequest("collection must be a collection name", param="collection")
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequest("query must be a non-empty string", param="query")
    if top_k is not None and (type(top_k) is not int or not 1 <= top_k <= 50):
        raise InvalidRequest("top_k must be an integer from 1 to 50", param="top_k")
    if mode is not None and mode not in MODES:
        raise InvalidRequest(f"mode must be one of {', '.join(MODES)}", param="mode")
    return collection, query, top_k, mode


async def retrieve_endpoint(request: Request) -> Response:
    gw = request.app.state.gateway
    ctx = RequestContext(endpoint="retrieve")
    try:
        await authenticate(gw, request, ctx)
        body = await read_json_body(request, gw.config.server.max_body_bytes)
        collection, query, top_k, mode = _arguments(body)
        ctx.requested = f"rag:{collection}"
        service = service_for(gw)
        service.require(ctx.principal, collection)          # 403 before any admission or search
        if gw.ledger is not None:
            ctx.admission = await gw.ledger.admit(ctx.principal, 0, estimated_cost=0.0)
        hits = await service.retrieve(ctx.principal, collection, query, top_k, mode)
        ctx.citations = [h.citation() for h in hits]
        data = [{**h.citation(), "text": h.chunk.text} for h in hits]
    except NuriError as exc:
        await record(gw, ctx, status=exc.status, error=exc)
        return error_response(exc)
    except Exception as exc:   # a defect: one record, the type only (a message could quote the query)
        log.error("retrieve %s failed: %s", ctx.request_id, type(exc).__name__)
        failure = InternalError("internal error; nothing was retrieved")
        await record(gw, ctx, status=500, error=failure)
        return error_response(failure)
    await record(gw, ctx, status=200)
    return JSONResponse({"object": "list", "collection": collection, "data": data})
