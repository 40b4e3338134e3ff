"""The OpenAI wire format at the gateway's edge: reading bodies and validating requests.

Validation is strict (a number where a string belongs is a 400, not a silent coercion) but
open: unknown fields are kept and forwarded, so a client relying on a newer upstream feature is
not broken by Nuri. The raw dict is what travels on; the models only check it.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from nuri.errors import InvalidRequest, PayloadTooLarge

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ContentPart(_Open):
    type: str
    text: str | None = None


class FunctionCall(_Open):
    name: str | None = None
    arguments: str | None = None


class ToolCall(_Open):
    id: str | None = None
    type: str | None = "function"
    function: FunctionCall | None = None


class ChatMessage(_Open):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Open):
    include_usage: bool | None = None


class _Sampling(_Open):
    model: str = "default"
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    suffix: str | None = None
    echo: bool | None = None


class EmbeddingRequest(_Open):
    model: str = "default"
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class ResponsesRequest(_Open):
    """A Responses API request passed through to a deployment that speaks it (api_responses.py has
    already checked its items and tools); open like the others, every string is walked."""

    model: str = "default"
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stream: bool = False
    store: bool | None = None


SCHEMAS: dict[str, type[_Open]] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
    "embeddings": EmbeddingRequest,
    "responses": ResponsesRequest,
}


async def read_json_body(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413 that says exactly what is wrong."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequest("request body is empty; send a JSON object")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"request body is not valid UTF-8 (invalid byte at offset {exc.start})") from exc
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    return data


_TYPE_TAGS = {"str", "int", "float", "bool", "none"}


def _field_path(loc: tuple[int | str, ...]) -> list[int | str]:
    """The field's path without pydantic's union-member tags (`str`, `list[ContentPart]`)."""
    return [p for p in loc if isinstance(p, int) or (p not in _TYPE_TAGS and "[" not in p)]


def validate(body: dict[str, Any], endpoint: str) -> _Open:
    """Check a request against its schema; the first problem becomes a 400 naming the field."""
    try:
        return SCHEMAS[endpoint].model_validate(body)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        path = _field_path(first["loc"])
        param = ".".join(str(p) for p in path) or None
        same_field = [e for e in errors if _field_path(e["loc"]) == path]
        if first["type"] == "missing":
            problem = "required field is missing"
        elif len(same_field) > 1:
            problem = f"wrong type ({type(first['input']).__name__} given)"
        else:
            problem = first["msg"]
        raise InvalidRequest(f"{param}: {problem}", param=param, code="invalid_" + first["type"]) from exc
