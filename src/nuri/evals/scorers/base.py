"""The scorer interface: a reply and its item in, a score in [0, 1] with details out.

Scoring is async because two families leave the process: code runs in a sandboxed subprocess
and the LLM judge calls a catalog deployment.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nuri.providers.base import Provider


@dataclass
class Score:
    value: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoreContext:
    """What a scorer may need besides the reply: the prompt, a judge, and the call's measurements."""

    messages: list[dict[str, str]] = field(default_factory=list)
    judge: Callable[[], Awaitable[Provider]] | None = None
    seed: int = 0
    latency_ms: float | None = None
    ttft_ms: float | None = None
    cost: float | None = None


class Scorer:
    name = "base"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        raise NotImplementedError


def normalize(text: str) -> str:
    """NFKC, lower case, no punctuation or spaces: for comparisons that should ignore form."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if ch.isalnum())


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
