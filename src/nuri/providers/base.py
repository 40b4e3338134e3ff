"""The provider interface every adapter implements.

Bodies in and out are OpenAI wire dicts: the gateway, the evaluation harness and the tests all
speak that one shape, so an adapter only translates to its upstream's protocol. The body's
`model` is already the upstream's model name when an adapter sees it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any

from nuri.catalog import Deployment
from nuri.errors import InvalidRequest

Body = dict[str, Any]


def text_of(content: Any) -> str:
    """A chat message's content as text: the string, or its text parts joined (other parts dropped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


class Provider(ABC):
    """One deployment's adapter. Created once per deployment and shared by all requests."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open pools or load weights; called once before the first request."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections, threads and memory."""

    async def ready(self) -> bool:
        """Whether the adapter can serve now (for /readyz)."""
        return True

    @abstractmethod
    async def chat(self, body: Body) -> Body:
        """A `chat.completion` object."""

    @abstractmethod
    def stream_chat(self, body: Body) -> AsyncIterator[Body]:
        """`chat.completion.chunk` objects as the upstream produces them; the last carries usage."""

    async def complete(self, body: Body) -> Body:
        raise InvalidRequest(f"deployment {self.deployment.id} does not serve /v1/completions")

    def stream_complete(self, body: Body) -> AsyncIterator[Body]:
        raise InvalidRequest(f"deployment {self.deployment.id} does not serve /v1/completions")

    async def embed(self, body: Body) -> Body:
        raise InvalidRequest(f"deployment {self.deployment.id} does not serve /v1/embeddings")
