"""GET /v1/responses/{id}/input_items: the items a stored response was generated from.

What a stored conversation keeps (conversations.py) is the history a response continued, its own
input and its output, all redacted. Its input items are the history and the input: what the
model saw to write it. They are listed as Nuri keeps them, so personal data in them reads as
`<TYPE_REDACTED>`, as in `GET /v1/responses/{id}`.

As in OpenAI's API: newest first unless `order=asc`, `limit` 1–100 (default 20), `after` and
`before` cursors naming an item id, and a page `{object: list, data, first_id, last_id,
has_more}`. An item the client sent without an id (most input messages) is given one derived
from the response id and the item's place, so a cursor names the same item on every call; a
message's text content is listed as content parts, as the API returns it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from nuri.errors import InvalidRequest, NuriError
from nuri.gateway.api_responses import not_found, stored_request
from nuri.gateway.conversations import Stored
from nuri.gateway.responses import JSONResponse, error_response

_PREFIXES = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_"}
MAX_LIMIT = 100
DEFAULT_LIMIT = 20


def input_items(response_id: str, stored: Stored) -> list[dict[str, Any]]:
    """The stored items before the response's own output, oldest first, each with an id."""
    output = stored.response.get("output") or []
    produced = {i.get("id") for i in output if isinstance(i, dict) and isinstance(i.get("id"), str)}
    # an item's `id` and `type` are whatever JSON the client or a deployment sent: only strings
    # are looked up
    return [_listed(response_id, place, item) for place, item in enumerate(stored.items)
            if isinstance(item, dict) and not (isinstance(item.get("id"), str) and item["id"] in produced)]


def _listed(response_id: str, place: int, item: dict[str, Any]) -> dict[str, Any]:
    kind = item.get("type", "message")
    out = dict(item)
    if not isinstance(out.get("id"), str):
        digest = hashlib.sha256(f"{response_id}:{place}".encode()).hexdigest()[:48]
        prefix = _PREFIXES.get(kind, "item_") if isinstance(kind, str) else "item_"
        out = {"id": prefix + digest, **{k: v for k, v in out.items() if k != "id"}}
    if kind == "message":
        out["type"] = "message"
        if isinstance(out.get("content"), str):
            part = "output_text" if out.get("role") == "assistant" else "input_text"
            text: dict[str, Any] = {"type": part, "text": out["content"]}
            if part == "output_text":
                text["annotations"] = []
            out["content"] = [text]
        out.setdefault("status", "completed")
    return out


def page(items: list[dict[str, Any]], order: str, limit: int, after: str | None,
         before: str | None) -> dict[str, Any]:
    """One page of `items` (oldest first) in `order`, between the cursors."""
    seq = items[::-1] if order == "desc" else items
    ids = [i["id"] for i in seq]
    start, end = 0, len(seq)
    if after is not None:
        if after not in ids:
            raise InvalidRequest(f"after: no input item with id {after!r} in this response", param="after")
        start = ids.index(after) + 1
    if before is not None:
        if before not in ids:
            raise InvalidRequest(f"before: no input item with id {before!r} in this response", param="before")
        end = ids.index(before)
    window = seq[start:end]
    data = window[:limit] if before is None else window[-limit:]
    has_more = len(window) > len(data)
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}


def _query(request: Request) -> tuple[str, int, str | None, str | None]:
    q = request.query_params
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order: must be asc or desc", param="order")
    raw = q.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest(f"limit: must be an integer from 1 to {MAX_LIMIT}", param="limit")
    return order, int(raw), q.get("after"), q.get("before")


async def list_input_items(request: Request) -> Response:
    """GET /v1/responses/{id}/input_items."""
    try:
        store, response_id, team = await stored_request(request)
        order, limit, after, before = _query(request)
        stored = await store.load(response_id, team) if store is not None else None
        if stored is None:
            raise not_found(response_id)
        return JSONResponse(page(input_items(response_id, stored), order, limit, after, before))
    except NuriError as exc:
        return error_response(exc)
