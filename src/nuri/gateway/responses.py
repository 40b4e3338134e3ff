"""Responses in the OpenAI shape, fast: orjson bodies, errors as `{"error": {...}}`."""

from __future__ import annotations

from operator import methodcaller
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


_latin1 = methodcaller("encode", "latin-1")      # as Starlette encodes header names and values


class ObjectAnswer(JSONResponse):
    """The pipeline's whole answer to an API that translates it in process (`pipeline.handle(...,
    as_objects=True)`): the chat reply as an object and its x-nuri-* headers as given. That API
    answers with an object of its own and these headers (`with_headers_of`), so the reply's bytes
    and encoded headers would be work thrown away: they are made only if this answer is sent as
    it is after all (its `body` or `raw_headers` read)."""

    def __init__(self, content: dict[str, Any], headers: dict[str, str], trail: Any) -> None:
        self.status_code = 200
        self.background = None
        self.content = content
        self.given_headers = headers
        self.trail = trail

    def __getattr__(self, name: str) -> Any:
        if name not in ("body", "raw_headers"):
            raise AttributeError(name)
        JSONResponse.__init__(self, self.content, headers=self.given_headers)
        return self.__dict__[name]


def json_body(response: Response) -> dict[str, Any]:
    """The JSON object of a whole answer: the object it was rendered from, or its bytes parsed."""
    content = getattr(response, "content", None)
    if isinstance(content, dict):
        return content
    data = orjson.loads(response.body)
    return data if isinstance(data, dict) else {}


def with_headers_of(response: Response, answer: Response) -> Response:
    """`response` with the x-nuri-* headers (and Retry-After) of the pipeline's `answer`, copied as
    they are encoded (an `ObjectAnswer`'s, all x-nuri-*, encoded here once)."""
    if type(answer) is ObjectAnswer:
        given = answer.given_headers
        response.raw_headers += zip(map(_latin1, given), map(_latin1, given.values()), strict=True)
        return response
    response.raw_headers.extend(h for h in answer.raw_headers if h[0].startswith(b"x-nuri-") or h[0] == b"retry-after")
    return response


def error_response(error: NuriError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status, headers={**error.headers, **(headers or {})})


def error_event(error: NuriError) -> bytes:
    """The last event of a stream that failed after it started: the SDKs raise on it."""
    return b"data: " + orjson.dumps(error.to_dict()) + b"\n\n"
