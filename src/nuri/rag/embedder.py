"""Dense vectors through Nuri's own /v1/embeddings.

Going through the gateway rather than to a provider directly means every text embedded, chunk
or question, is classified, decided, routed and audited like any request. The embedding model
must also be in-country in this config's catalog (a deployment, or an alias whose targets all
are), checked before anything is sent: a chunk's grade lives in the store, not always in its
text, so policy alone could not keep an unmarked grade-S chunk home.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from nuri.errors import NuriError
from nuri.rag.index import unit
from nuri.rag.settings import EmbeddingSettings


class EmbeddingError(NuriError):
    """The embeddings request failed; retrieval falls back to lexical search."""


def check_in_country(settings: EmbeddingSettings, config: Any) -> None:
    """Refuse an embedding model that is not, or may resolve to, a deployment abroad."""
    home = config.policy.home_jurisdiction
    targets = config.aliases.get(settings.model, [settings.model])
    by_id = {d.id: d for d in config.deployments}
    for target in targets:
        dep = by_id.get(target)
        if dep is None:
            raise ValueError(f"rag.embedding.model {settings.model!r} is not a deployment or alias of this config")
        if dep.jurisdiction != home or not dep.is_domestic:
            raise ValueError(f"rag.embedding.model {settings.model!r} reaches {dep.id} ({dep.jurisdiction}, "
                             f"{dep.hosting}); embeddings must stay in {home}")


class GatewayEmbedder:
    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self.url = settings.url.rstrip("/") + "/embeddings"
        key = settings.api_key.get_secret_value() if settings.api_key is not None else "nuri-open"
        self.headers = {"authorization": f"Bearer {key}"}

    async def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        async with httpx.AsyncClient(timeout=120) as client:
            for i in range(0, len(texts), self.settings.batch):
                batch = list(texts[i:i + self.settings.batch])
                try:
                    reply = await client.post(self.url, json={"model": self.settings.model, "input": batch},
                                              headers=self.headers)
                except httpx.HTTPError as exc:
                    raise EmbeddingError(f"embeddings request failed: {type(exc).__name__}", status=502,
                                         code="embedding_failed") from exc
                if reply.status_code != 200:
                    raise EmbeddingError(f"embeddings request refused with {reply.status_code}", status=502,
                                         code="embedding_failed")
                data = sorted(reply.json()["data"], key=lambda d: d["index"])
                out += [unit(d["embedding"]) for d in data]
        return out
