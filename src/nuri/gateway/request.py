"""A request parsed once: the typed view every step after parsing reads.

The body is validated against its endpoint's schema, then walked once (the deny-by-default walk
of `privacy.fields`): classification scans those texts, the token estimate counts them, masking
rewrites them. Nothing later walks the raw body again, so a field the walk covers is covered by
every step at once, and the walk's cost is paid once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from nuri.gateway import limits
from nuri.gateway.wire import validate
from nuri.privacy.fields import Path, Unscanned, walk
from nuri.tokens import estimate_many

ENDPOINTS = ("chat", "completions", "embeddings", "responses")


def policy_endpoint(endpoint: str) -> str:
    """The endpoint policy rules name: a Responses request passed through generates as chat does,
    so it is decided as chat (the same rules as when it is translated)."""
    return "chat" if endpoint == "responses" else endpoint


@dataclass(slots=True)
class ParsedRequest:
    """What a request asks for and carries, in the shapes the pipeline's steps take."""

    endpoint: str
    body: dict[str, Any]                 # as the client sent it: what travels on, unknown keys kept
    wire: BaseModel                      # the validated schema view of `body`
    model: str
    stream: bool
    texts: list[tuple[Path, str]]        # every string to scan, with its path
    unscanned: list[Unscanned]           # content that cannot be read as text
    prompt_tokens: int                   # estimate, for admission and the cost strategy
    output_tokens: int                   # n × max_tokens, reserved in admission

    @property
    def include_usage(self) -> bool:
        """Whether a streaming client asked for the usage chunk."""
        options = self.body.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))

    @property
    def chars(self) -> int:
        return sum(len(t) for _p, t in self.texts)


def parse_request(body: dict[str, Any], endpoint: str) -> ParsedRequest:
    """Validate (400 naming the field) and walk once."""
    wire = validate(body, endpoint)
    texts, unscanned = walk(body)
    model = getattr(wire, "model", "default")
    return ParsedRequest(
        endpoint=endpoint, body=body, wire=wire, model=model, stream=bool(getattr(wire, "stream", False)),
        texts=texts, unscanned=unscanned, prompt_tokens=estimate_many(t for _p, t in texts),
        output_tokens=limits.requested_output(body),
    )


def endpoint_of(body: dict[str, Any]) -> str:
    """Which endpoint a bare body is for (explain takes any): messages → chat, input → embeddings."""
    if "messages" in body:
        return "chat"
    return "embeddings" if "input" in body else "completions"
