"""Responses in the OpenAI shape, fast: orjson bodies, errors as `{"error": {...}}`."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from nuri.errors import NuriError


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: NuriError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status, headers={**error.headers, **(headers or {})})


def error_event(error: NuriError) -> bytes:
    """The last event of a stream that failed after it started: the SDKs raise on it."""
    return b"data: " + orjson.dumps(error.to_dict()) + b"\n\n"
