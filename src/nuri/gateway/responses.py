"""Responses in the OpenAI shape, fast: orjson bodies, errors as `{"error": {...}}`."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from nuri.errors import NuriError


class JSONResponse(Response):
    media_type = "application/json"
    content: Any = None
    trail: Any = None       # the pipeline's record of the request it answers, for an API that wraps it

    def render(self, content: Any) -> bytes:
        # kept beside its bytes: an API that translates the pipeline's answer in process (the
        # Responses API) reads it without parsing the bytes back
        self.content = content
        return orjson.dumps(content)


def json_body(response: Response) -> dict[str, Any]:
    """The JSON object of a whole answer: the object it was rendered from, or its bytes parsed."""
    content = getattr(response, "content", None)
    if isinstance(content, dict):
        return content
    data = orjson.loads(response.body)
    return data if isinstance(data, dict) else {}


def with_headers_of(response: Response, answer: Response) -> Response:
    """`response` with the x-nuri-* headers (and Retry-After) of the pipeline's `answer`, copied as
    they are encoded."""
    response.raw_headers.extend(h for h in answer.raw_headers if h[0].startswith(b"x-nuri-") or h[0] == b"retry-after")
    return response


def error_response(error: NuriError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status, headers={**error.headers, **(headers or {})})


def error_event(error: NuriError) -> bytes:
    """The last event of a stream that failed after it started: the SDKs raise on it."""
    return b"data: " + orjson.dumps(error.to_dict()) + b"\n\n"
